"""How runs and steps start: the preflight at every run (first, retry, take-over); each step at zero bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.pipelines import stall_in_work
from vdcmanage.catalog.models import Job, JobStep
from vdcmanage.errors import ExitCode
from vdcmanage.jobs import queue, runner

KIND = "test-preflight"


@pytest.fixture(autouse=True)
def preflight_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.KINDS, KIND, "tests.jobs.pipelines:PreflightPipeline")


def submit(tmp_path: Path, **params: object) -> Job:
    params = {"out": str(tmp_path / "out.txt"), "total": 3, "refuse_if": str(tmp_path / "full"), **params}
    return queue.submit(KIND, params, ["prepare", "work", "finish"])


def lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "out.txt").read_text().splitlines()


def test_refusal_fails_the_job_before_any_step_and_retry_checks_again(catalog: str, tmp_path: Path) -> None:
    (tmp_path / "full").touch()
    job = submit(tmp_path)
    outcome = runner.run_job(queue.claim_next("w1"), "w1")  # type: ignore[arg-type]
    assert (outcome.state, outcome.exit_code) == ("failed", ExitCode.REFUSED)
    failed = Job.get_by_id(job.id)
    assert failed.error == "Preflight: no room: 1.0 MiB free, the job needs 2.0 MiB"
    assert {s.state for s in JobStep.select().where(JobStep.job == job.id)} == {"pending"}
    assert lines(tmp_path) == ["preflight"]  # no step ran

    queue.retry(job.id)
    assert runner.run_job(queue.claim_next("w1"), "w1").state == "failed"  # type: ignore[arg-type]
    (tmp_path / "full").unlink()
    queue.retry(job.id)
    assert runner.run_job(queue.claim_next("w1"), "w1").state == "succeeded"  # type: ignore[arg-type]
    assert lines(tmp_path) == ["preflight", "preflight", "preflight", "prepare", "chunk 1", "chunk 2", "chunk 3",
                               "finish"]


def test_a_taken_over_job_runs_the_preflight_again(catalog: str, tmp_path: Path) -> None:
    job = submit(tmp_path, total=4)
    stall_in_work(job.id, 2)
    (tmp_path / "full").touch()  # the room went away while the first worker was dead
    taken = queue.claim_next("w2")
    assert taken is not None and runner.run_job(taken, "w2").state == "failed"
    assert lines(tmp_path) == ["preflight"]  # the step did not resume
    assert queue.step_detail(job.id, "work") == {"position": 2}  # and what it saved is kept for the retry
    (tmp_path / "full").unlink()
    queue.retry(job.id)
    assert runner.run_job(queue.claim_next("w2"), "w2").state == "succeeded"  # type: ignore[arg-type]
    assert lines(tmp_path) == ["preflight", "preflight", "chunk 3", "chunk 4", "finish"]


def test_a_cancel_of_a_failed_job_cleans_up_without_a_preflight(catalog: str, tmp_path: Path) -> None:
    (tmp_path / "full").touch()
    job = submit(tmp_path)
    runner.run_job(queue.claim_next("w1"), "w1")  # type: ignore[arg-type]
    queue.request_cancel(job.id)
    assert runner.run_job(queue.claim_next("w1"), "w1").state == "cancelled"  # type: ignore[arg-type]
    assert lines(tmp_path) == ["preflight", "cleanup"]


def test_a_step_starts_at_zero_not_with_the_previous_steps_bytes(
    catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(runner.KINDS, "test-progress", "tests.jobs.pipelines:ProgressNotingPipeline")
    queue.submit("test-progress", {"out": str(tmp_path / "out.txt"), "total": 3}, ["prepare", "work", "finish"])
    assert runner.run_job(queue.claim_next("w1"), "w1").state == "succeeded"  # type: ignore[arg-type]
    assert "finish starts at finish 0/0, job finish 0/0" in lines(tmp_path)  # 'work' ended at 3/3
