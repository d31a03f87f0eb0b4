"""The job queue and runner on every catalog backend: atomic claims, heartbeats, takeover, cancel, retry."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vdcmanage.catalog.models import Job, utcnow
from vdcmanage.errors import Refused
from vdcmanage.jobs import queue, runner
from vdcmanage.jobs.worker import run_worker

KIND = "test-counting"


@pytest.fixture(autouse=True)
def counting_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.KINDS, KIND, "tests.jobs.pipelines:CountingPipeline")


def submit(tmp_path: Path, **params: object) -> Job:
    return queue.submit(KIND, {"out": str(tmp_path / "out.txt"), "total": 3, **params}, ["prepare", "work", "finish"])


def lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "out.txt").read_text().splitlines()


def test_a_drawn_job_id_already_taken_is_drawn_again(
    any_catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vdcmanage.catalog import records

    first = submit(tmp_path)
    drawn = iter([first.id, "job-second0"])
    monkeypatch.setattr(records, "new_id", lambda kind: next(drawn))
    second = submit(tmp_path)
    assert second.id == "job-second0"
    assert [s.name for s in queue.steps_of(second.id)] == ["prepare", "work", "finish"]
    assert queue.job_dict(Job.get_by_id(first.id))["state"] == "queued"


def test_a_job_runs_its_steps_in_order(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path)
    claimed = queue.claim_next("w1")
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert runner.run_job(claimed, "w1").state == "succeeded"
    assert lines(tmp_path) == ["prepare", "chunk 1", "chunk 2", "chunk 3", "finish"]
    data = queue.job_dict(Job.get_by_id(job.id))
    assert data["state"] == "succeeded" and data["result"] == {"lines": 5}
    assert [s["state"] for s in data["steps"]] == ["done", "done", "done"]
    assert any("step work done" in line["message"] for line in data["log"])


def test_nothing_to_claim_twice(any_catalog: str, tmp_path: Path) -> None:
    submit(tmp_path)
    assert queue.claim_next("w1") is not None
    assert queue.claim_next("w2") is None


CLAIMER = """
import sys
from vdcmanage.catalog.db import open_catalog
from vdcmanage.jobs import queue
open_catalog(sys.argv[1])
while (job := queue.claim_next(sys.argv[2])) is not None:
    print(job.id, flush=True)
"""


def test_concurrent_workers_never_claim_the_same_job(any_catalog: str, tmp_path: Path) -> None:
    ids = {submit(tmp_path).id for _ in range(40)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, any_catalog, f"w{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    claimed = [line for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_stalled_job_is_taken_over_and_resumes_at_its_step(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=4)
    queue.claim_next("dead-worker")
    queue.start_step(job.id, "prepare")
    queue.finish_step(job.id, "prepare")
    queue.start_step(job.id, "work")
    queue.save_step_detail(job.id, "work", {"position": 2})
    assert queue.claim_next("w2") is None  # heartbeat is fresh
    Job.update(heartbeat_at=queue.stale_cutoff(120)).where(Job.id == job.id).execute()
    assert queue.is_stalled(Job.get_by_id(job.id), stale_after=60)
    taken = queue.claim_next("w2")
    assert taken is not None and taken.attempts == 2
    assert runner.run_job(taken, "w2").state == "succeeded"
    assert lines(tmp_path) == ["chunk 3", "chunk 4", "finish"]  # prepare not redone, work resumed at 3


def test_heartbeat_of_a_worker_that_lost_the_job_raises(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path)
    queue.claim_next("w1")
    Job.update(heartbeat_at=queue.stale_cutoff(120)).where(Job.id == job.id).execute()
    queue.claim_next("w2")
    with pytest.raises(queue.JobLost):
        queue.heartbeat(job.id, "w1")
    assert queue.heartbeat(job.id, "w2") is False


def test_failure_names_the_step_and_retry_resumes(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=3, fail_at=2)
    assert runner.run_job(queue.claim_next("w1"), "w1").state == "failed"  # type: ignore[arg-type]
    failed = Job.get_by_id(job.id)
    assert failed.error == "Step work failed: simulated failure at chunk 2"
    with pytest.raises(Refused, match="only failed, interrupted or cancelled jobs"):
        queue.retry(submit(tmp_path).id)
    queue.retry(job.id)
    assert runner.run_job(queue.claim_next("w1", job_id=job.id), "w1").state == "succeeded"  # type: ignore[arg-type]
    expected = ["prepare", "chunk 1", "chunk 2", "on_failure simulated failure at chunk 2", "chunk 3"]
    assert lines(tmp_path)[:5] == expected


def test_cancel_a_queued_job_that_never_ran(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path)
    assert queue.request_cancel(job.id).state == "cancelled"
    assert queue.claim_next("w1") is None
    with pytest.raises(Refused, match="already cancelled"):
        queue.request_cancel(job.id)


def cancel_while_running(job: Job, after: float) -> tuple[list[str], float]:
    """Run ``job`` in a thread, cancel it ``after`` seconds; the run's outcome and when the cancel was asked."""
    claimed = queue.claim_next("w1", job_id=job.id)
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(runner.run_job(claimed, "w1").state))  # type: ignore[arg-type]
    thread.start()
    time.sleep(after)
    asked = time.monotonic()
    queue.request_cancel(job.id)
    thread.join(10)
    return result, asked


def test_cancel_a_running_job_stops_it_within_two_seconds(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=1000, slow=0.05)
    result, asked = cancel_while_running(job, 1.0)
    assert result == ["cancelled"]
    assert time.monotonic() - asked < 2.0
    assert lines(tmp_path)[-1] == "cleanup"
    assert Job.get_by_id(job.id).state == "cancelled"


def test_cancel_a_failed_job_runs_its_cleanup(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=3, fail_at=1)
    runner.run_job(queue.claim_next("w1"), "w1")  # type: ignore[arg-type]
    assert queue.request_cancel(job.id).state == "queued"  # queued for its clean-up
    run_worker(once=True, report=lambda _m: None)
    assert Job.get_by_id(job.id).state == "cancelled"
    assert lines(tmp_path)[-1] == "cleanup"


def test_worker_stop_requeues_the_running_job(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=1000, slow=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, kwargs={"report": lambda _m: None, "stop": stop})
    thread.start()
    deadline = time.monotonic() + 10
    while Job.get_by_id(job.id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    stopped = Job.get_by_id(job.id)
    assert stopped.state == "queued" and stopped.worker is None
    assert queue.step_detail(job.id, "work")["position"] > 0


def test_worker_once_runs_everything_queued(any_catalog: str, tmp_path: Path) -> None:
    jobs = [queue.submit(KIND, {"out": str(tmp_path / f"{i}.txt"), "total": 2}, CountingSteps) for i in range(3)]
    run_worker(concurrency=2, once=True, report=lambda _m: None)
    assert {Job.get_by_id(j.id).state for j in jobs} == {"succeeded"}


CountingSteps = ["prepare", "work", "finish"]


def test_progress_is_written_by_the_heartbeat(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=40, slow=0.1)
    claimed = queue.claim_next("w1")
    thread = threading.Thread(target=runner.run_job, args=(claimed, "w1"))
    thread.start()
    time.sleep(2.5)
    seen = Job.get_by_id(job.id)
    queue.request_cancel(job.id)
    thread.join(10)
    assert seen.current_step == "work" and 0 < seen.bytes_done <= 40 and seen.bytes_total == 40
    assert seen.heartbeat_at is not None and (utcnow() - seen.heartbeat_at).total_seconds() < 5


def test_a_new_step_starts_from_zero_not_from_the_last_steps_bytes(any_catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=4, linger=2.5)  # work counts 4 of 4, then finish reports no bytes for 2.5 s
    claimed = queue.claim_next("w1")
    thread = threading.Thread(target=runner.run_job, args=(claimed, "w1"))
    thread.start()
    seen: list[tuple[str, str | None, int, int]] = []
    while thread.is_alive():
        row = Job.get_by_id(job.id)
        seen.append((row.state, row.current_step, row.bytes_done, row.bytes_total))
        time.sleep(0.05)
    assert Job.get_by_id(job.id).state == "succeeded"
    running = [figures[1:] for figures in seen if figures[0] == "running"]
    finish = running.index(("finish", 0, 0))
    # from the start of finish on, heartbeats (one a second) write finish's figures: never work's 4/4
    assert set(running[finish:]) == {("finish", 0, 0)} and len(running[finish:]) > 10


def test_a_cancelled_job_retried_runs_every_step_again(any_catalog: str, tmp_path: Path) -> None:
    """The cancel removed what the done steps had made: nothing of them is kept."""
    from vdcmanage.catalog.models import JobStep

    job = submit(tmp_path, total=1000, slow=0.02)
    assert cancel_while_running(job, 0.5)[0] == ["cancelled"]
    retried = queue.retry(job.id)
    assert (retried.state, retried.cancel_requested, retried.current_step, retried.bytes_done) == ("queued", False, None, 0)
    steps = JobStep.select().where(JobStep.job == job.id)
    assert {(s.state, s.detail, s.bytes_done, s.started_at) for s in steps} == {("pending", None, 0, None)}
    (tmp_path / "out.txt").unlink()
    params = json.dumps({"out": str(tmp_path / "out.txt"), "total": 2})  # a shorter run this time
    Job.update(params=params).where(Job.id == job.id).execute()
    assert runner.run_job(queue.claim_next("w1", job_id=job.id), "w1").state == "succeeded"  # type: ignore[arg-type]
    assert lines(tmp_path) == ["prepare", "chunk 1", "chunk 2", "finish"]  # from the first step
