"""Small pipelines for exercising the job runner (registered under test-only kinds)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from vdcmanage.errors import VdcError
from vdcmanage.jobs.runner import StepContext


class CountingPipeline:
    """Writes one line per step into params['out']; step 'work' counts to params['total'] in chunks,
    saving its position so a resumed run continues where it was."""

    steps: ClassVar[list[str]] = ["prepare", "work", "finish"]

    def __init__(self, job_id: str, params: dict[str, Any]) -> None:
        self.job_id, self.params = job_id, params
        self.out = Path(params["out"])

    def run_step(self, ctx: StepContext) -> None:
        if ctx.step == "work":
            total = int(self.params["total"])
            position = int(ctx.detail.get("position", 0))
            while position < total:
                position += 1
                with self.out.open("a") as f:
                    f.write(f"chunk {position}\n")
                ctx.save(position=position)
                if self.params.get("fail_at") == position and not ctx.detail.get("failed_once"):
                    ctx.save(failed_once=True)
                    raise VdcError(f"simulated failure at chunk {position}")
                ctx.progress(position, total)
                if self.params.get("slow"):
                    ctx.sleep(float(self.params["slow"]))
                if self.params.get("die_at") == position:
                    os._exit(9)  # a worker killed mid-step
        else:
            with self.out.open("a") as f:
                f.write(f"{ctx.step}\n")
            if ctx.step == "finish" and self.params.get("linger"):
                ctx.sleep(float(self.params["linger"]))  # long enough for heartbeats during a step without bytes

    def cleanup(self, ctx: StepContext) -> None:
        with self.out.open("a") as f:
            f.write("cleanup\n")

    def on_failure(self, ctx: StepContext, exc: VdcError) -> None:
        with self.out.open("a") as f:
            f.write(f"on_failure {exc}\n")

    def result(self) -> dict[str, Any]:
        return {"lines": len(self.out.read_text().splitlines())}


class PreflightPipeline(CountingPipeline):
    """CountingPipeline with a preflight that notes each run and refuses while params['refuse_if'] exists."""

    def preflight(self, ctx: StepContext) -> None:
        from vdcmanage.errors import Refused

        with self.out.open("a") as f:
            f.write("preflight\n")
        if Path(self.params["refuse_if"]).exists():
            raise Refused("no room: 1.0 MiB free, the job needs 2.0 MiB")


def stall_in_work(job_id: str, position: int) -> None:
    """A job whose worker died in step 'work' at ``position``, its heartbeat old enough for a take-over."""
    from vdcmanage.catalog.models import Job
    from vdcmanage.jobs import queue

    queue.claim_next("dead-worker", job_id=job_id)
    queue.start_step(job_id, "prepare")
    queue.finish_step(job_id, "prepare")
    queue.start_step(job_id, "work")
    queue.save_step_detail(job_id, "work", {"position": position})
    Job.update(heartbeat_at=queue.stale_cutoff(120)).where(Job.id == job_id).execute()


class ProgressNotingPipeline(CountingPipeline):
    """CountingPipeline whose 'finish' step notes the progress it starts with, as the heartbeat would send it."""

    def run_step(self, ctx: StepContext) -> None:
        if ctx.step == "finish":
            from vdcmanage.catalog.models import Job
            from vdcmanage.jobs import queue

            state = ctx.progress_state
            job = Job.get_by_id(self.job_id)
            queue.heartbeat(self.job_id, job.worker, state)
            job = Job.get_by_id(self.job_id)
            with self.out.open("a") as f:
                f.write(f"finish starts at {state.step} {state.done}/{state.total}, "
                        f"job {job.current_step} {job.bytes_done}/{job.bytes_total}\n")
        super().run_step(ctx)
