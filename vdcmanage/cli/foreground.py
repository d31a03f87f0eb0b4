"""Running a job in this process with progress on stderr: ``image import xen`` and ``job retry``."""

from __future__ import annotations

import typer

from vdcmanage.cli.failures import report
from vdcmanage.cli.progress import ProgressPrinter
from vdcmanage.errors import ExitCode, Refused
from vdcmanage.jobs import queue
from vdcmanage.jobs.runner import run_job, worker_name


class StepProgress:
    """Announces each step on its own line and draws the byte progress of the current one."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.printer: ProgressPrinter | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self.step:
            self.finish()
            self.step = step
            self.printer = ProgressPrinter(f"{step}:")
        assert self.printer is not None
        self.printer(done, total)

    def finish(self) -> None:
        if self.printer is not None:
            self.printer.finish()
            self.printer = None


def run_in_foreground(job_id: str) -> int:
    """Claim the job for this process, run it to the end, print its result; return the exit code."""
    worker = worker_name()
    job = queue.claim_next(worker, job_id=job_id)
    if job is None:
        current = queue.get_job(job_id)
        raise Refused(f"Job {job_id} is {current.state}" + (f" on {current.worker}" if current.worker else ""))
    progress = StepProgress()
    try:
        outcome = run_job(job, worker, on_progress=progress)
    finally:
        progress.finish()
    finished = queue.get_job(job_id)
    if outcome.state == "succeeded":
        result = queue.job_dict(finished, details=False)["result"] or {}
        typer.echo(result.get("image_id", finished.id))
        return ExitCode.OK
    message = finished.error or outcome.state
    if outcome.state == "failed":
        message += f" (job {job_id}; see 'vdc-manage job show {job_id}', resume with 'vdc-manage job retry {job_id}')"
    report(message)
    return outcome.exit_code
