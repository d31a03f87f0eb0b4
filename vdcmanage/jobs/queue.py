"""The job table as a queue: submit, claim atomically, heartbeat, progress, finish, cancel, retry.

Claiming is one conditional UPDATE whose row count says who won, which is atomic on SQLite,
PostgreSQL and MariaDB alike, so two workers never run one job. A running job whose heartbeat is
older than the stale timeout (its worker was killed) can be claimed again and resumes at the step
it was in: steps already ``done`` are skipped, the interrupted one starts again from the
``detail`` it saved.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import peewee

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.models import Job, JobLog, JobStep, utcnow
from vdcmanage.catalog.records import insert_new, iso
from vdcmanage.errors import InvalidArgument, NotFound, Refused

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
STEP_STATES = ("pending", "running", "done", "failed", "skipped")
STALE_AFTER_S = 60.0  # a running job whose heartbeat is older than this is taken over
LOG_TAIL = 20


class JobLost(Refused):
    """This worker no longer owns the job (it was considered stale and taken over, or deleted)."""


def submit(kind: str, params: dict[str, Any], steps: list[str]) -> Job:
    """Queue a job with its named steps, all pending (under another id if the drawn one is taken)."""

    def create(job_id: str) -> Job:
        job = Job.create(id=job_id, kind=kind, params=json.dumps(params, sort_keys=True), state="queued")
        JobStep.insert_many(
            [{"job": job.id, "position": i, "name": name} for i, name in enumerate(steps)]
        ).execute()
        log(job.id, f"queued {kind}")
        return job

    return insert_new(Job, "job", None, lambda: None, create)


def get_job(key: str) -> Job:
    if not key:
        raise InvalidArgument("The job id must not be empty")
    job = Job.get_or_none(Job.id == key)
    if job is None:
        raise NotFound(f"Unknown job id: {key}")
    return job


def params_of(job: Job) -> dict[str, Any]:
    value = json.loads(job.params)
    assert isinstance(value, dict)
    return value


def update_params(job_id: str, **changes: Any) -> dict[str, Any]:
    """Record what a run decided (e.g. the SR it chose) in the job's parameters; returns them all."""
    with transaction(write=True):
        params = params_of(Job.get_by_id(job_id))
        params.update(changes)
        Job.update(params=json.dumps(params, sort_keys=True), updated_at=utcnow()).where(Job.id == job_id).execute()
    return params


def stale_cutoff(stale_after: float = STALE_AFTER_S) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=stale_after)


def claimable(stale_after: float = STALE_AFTER_S) -> peewee.Expression:
    return (Job.state == "queued") | ((Job.state == "running") & (Job.heartbeat_at < stale_cutoff(stale_after)))


def claim_next(
    worker: str,
    kinds: tuple[str, ...] | None = None,
    job_id: str | None = None,
    stale_after: float = STALE_AFTER_S,
) -> Job | None:
    """Take the oldest claimable job (or ``job_id``) for ``worker``; None when there is none.

    A running job whose heartbeat is older than ``stale_after`` seconds counts as claimable: its worker died.
    """
    query = Job.select(Job.id).where(claimable(stale_after)).order_by(Job.created_at, Job.id).limit(10)
    if kinds:
        query = query.where(Job.kind.in_(kinds))
    if job_id:
        query = query.where(Job.id == job_id)
    for candidate in [job.id for job in query]:
        if try_claim(candidate, worker, stale_after):
            return Job.get_by_id(candidate)
    return None


def try_claim(job_id: str, worker: str, stale_after: float = STALE_AFTER_S) -> bool:
    now = utcnow()
    with transaction(write=True):
        won = (
            Job.update(
                state="running",
                worker=worker,
                heartbeat_at=now,
                updated_at=now,
                attempts=Job.attempts + 1,
                started_at=peewee.fn.COALESCE(Job.started_at, now),
                error=None,
            )
            .where(Job.id == job_id, claimable(stale_after))
            .execute()
        )
        if won:
            log(job_id, f"claimed by {worker}")
    return bool(won)


def heartbeat(job_id: str, worker: str, progress: Progress | None = None) -> bool:
    """Record that ``worker`` is alive on the job (and its progress); return whether cancel was asked.

    Raises JobLost when the job is no longer this worker's.
    """
    now = utcnow()
    fields: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if progress is not None:
        fields.update(current_step=progress.step, bytes_done=progress.done, bytes_total=progress.total)
    with transaction(write=True):
        owned = Job.update(**fields).where(Job.id == job_id, Job.worker == worker, Job.state == "running").execute()
        if not owned:
            raise JobLost(f"Job {job_id} is no longer run by {worker}")
        if progress is not None and progress.step:
            JobStep.update(bytes_done=progress.done, bytes_total=progress.total).where(
                JobStep.job == job_id, JobStep.name == progress.step
            ).execute()
        cancel = Job.select(Job.cancel_requested).where(Job.id == job_id).scalar()
    return bool(cancel)


@dataclass
class Progress:
    step: str | None
    done: int = 0
    total: int = 0

    def restart(self, step: str) -> None:
        """A new step starts at zero: nothing of the previous step's bytes carries over."""
        self.done = self.total = 0
        self.step = step


def steps_of(job_id: str) -> list[JobStep]:
    return list(JobStep.select().where(JobStep.job == job_id).order_by(JobStep.position))


def start_step(job_id: str, name: str) -> None:
    now = utcnow()
    with transaction(write=True):
        JobStep.update(state="running", started_at=now, finished_at=None, error=None).where(
            JobStep.job == job_id, JobStep.name == name
        ).execute()
        Job.update(current_step=name, bytes_done=0, bytes_total=0, updated_at=now).where(Job.id == job_id).execute()
        log(job_id, f"step {name} started")


def finish_step(job_id: str, name: str, state: str = "done", error: str | None = None) -> None:
    now = utcnow()
    with transaction(write=True):
        step = JobStep.get_or_none((JobStep.job == job_id) & (JobStep.name == name))
        if step is None:  # cancelled before any step ran
            log(job_id, f"{state}" + (f": {error}" if error else ""))
            return
        fields: dict[str, Any] = {"state": state, "finished_at": now, "error": error}
        if state == "done" and step.bytes_total:
            fields["bytes_done"] = step.bytes_total
        JobStep.update(**fields).where(JobStep.id == step.id).execute()
        log(job_id, f"step {name} {state}" + (f": {error}" if error else ""), "error" if error else "info")


def reset_steps(job_id: str, names: list[str]) -> None:
    """Make steps pending again with nothing saved: what they made is gone and must be made anew."""
    with transaction(write=True):
        forget_steps(job_id, JobStep.name.in_(names))
        log(job_id, f"steps {', '.join(names)} will run again")


def forget_steps(job_id: str, which: peewee.Expression | None = None) -> None:
    """Inside a write transaction: the steps ``which`` selects (all by default) back to pending, nothing saved."""
    condition = JobStep.job == job_id if which is None else (JobStep.job == job_id) & which
    JobStep.update(state="pending", detail=None, error=None, bytes_done=0, started_at=None, finished_at=None).where(
        condition
    ).execute()


def save_step_detail(job_id: str, name: str, detail: dict[str, Any]) -> None:
    """Persist what a step needs to resume (e.g. the byte ranges uploaded and verified so far)."""
    with transaction(write=True):
        JobStep.update(detail=json.dumps(detail, sort_keys=True)).where(
            JobStep.job == job_id, JobStep.name == name
        ).execute()


def step_detail(job_id: str, name: str) -> dict[str, Any]:
    raw = JobStep.select(JobStep.detail).where(JobStep.job == job_id, JobStep.name == name).scalar()
    value = json.loads(raw) if raw else {}
    assert isinstance(value, dict)
    return value


def finish_job(job_id: str, state: str, *, error: str | None = None, result: dict[str, Any] | None = None) -> None:
    now = utcnow()
    fields: dict[str, Any] = {"state": state, "finished_at": now, "updated_at": now, "error": error}
    if result is not None:
        fields["result"] = json.dumps(result, sort_keys=True)
    if state == "cancelled":
        fields["cancel_requested"] = False
    with transaction(write=True):
        Job.update(**fields).where(Job.id == job_id).execute()
        log(job_id, f"job {state}" + (f": {error}" if error else ""), "error" if state == "failed" else "info")


def release(job_id: str, worker: str, reason: str) -> None:
    """Give a running job back to the queue (worker shutting down): another worker resumes it."""
    with transaction(write=True):
        Job.update(state="queued", worker=None, updated_at=utcnow()).where(
            Job.id == job_id, Job.worker == worker, Job.state == "running"
        ).execute()
        log(job_id, f"released by {worker}: {reason}")


def log(job_id: str, message: str, level: str = "info") -> None:
    with transaction(write=True):
        JobLog.create(job=job_id, message=message, level=level)


def request_cancel(key: str) -> Job:
    """Cancel a job. A running one stops at its next chunk boundary and cleans up after itself;
    one that ran before (failed, or queued for a retry) is queued for its clean-up; one that never
    ran is cancelled at once."""
    with transaction(write=True):
        job = get_job(key)
        if job.state in ("succeeded", "cancelled"):
            raise Refused(f"Job {job.id} is already {job.state}")
        if job.state == "queued" and job.attempts == 0:
            now = utcnow()
            Job.update(state="cancelled", finished_at=now, updated_at=now).where(Job.id == job.id).execute()
            log(job.id, "cancelled before it started")
        else:
            Job.update(cancel_requested=True, updated_at=utcnow()).where(Job.id == job.id).execute()
            if job.state == "failed":
                Job.update(state="queued").where(Job.id == job.id).execute()
            log(job.id, "cancel requested")
        return Job.get_by_id(job.id)


def retry(key: str) -> Job:
    """Queue a failed or cancelled job again. A failed job keeps its done steps and resumes the failed one
    from its saved detail; a cancelled job starts over, since its cancel removed what its steps had made.
    A running job whose owner is gone (see :func:`interrupt_if_owner_gone`) is retried too."""
    with transaction(write=True):
        job = get_job(key)
        if job.state == "running":
            interrupt_if_owner_gone(job)
            job = get_job(key)
        if job.state not in ("failed", "cancelled"):
            raise Refused(f"Job {job.id} is {job.state}; only failed, interrupted or cancelled jobs can be retried")
        fields: dict[str, Any] = {
            "state": "queued", "error": None, "finished_at": None, "worker": None, "cancel_requested": False,
        }
        if job.state == "cancelled":
            forget_steps(job.id)
            fields.update(current_step=None, bytes_done=0, bytes_total=0)
        else:
            JobStep.update(state="pending", error=None).where(
                JobStep.job == job.id, JobStep.state.in_(("failed", "running"))
            ).execute()
        Job.update(**fields, updated_at=utcnow()).where(Job.id == job.id).execute()
        log(job.id, "queued for retry" if job.state == "failed" else "queued again after its cancel: every step runs")
        return Job.get_by_id(job.id)


def owner_gone_reason(job: Job) -> str | None:
    """Why a running job's owner process is certainly gone; None while it may live."""
    from vdcmanage.jobs.owner import owner_gone

    return owner_gone(job.worker, job.heartbeat_at, stale_cutoff())


def interrupt_if_owner_gone(job: Job) -> None:
    """Mark a running job whose owner process is gone as interrupted (failed, resumable), at once:
    a foreground import killed outright or a worker that died. Refused while the owner may live."""
    reason = owner_gone_reason(job)
    if reason is None:
        raise Refused(
            f"Job {job.id} is running on {job.worker} (heartbeat {iso(job.heartbeat_at)}); "
            f"wait for it or 'vdc-manage job cancel {job.id}'"
        )
    message = f"Interrupted: {reason}; resume with: vdc-manage job retry {job.id}"
    now = utcnow()
    with transaction(write=True):
        taken = (
            Job.update(state="failed", error=message, finished_at=now, updated_at=now)
            .where(Job.id == job.id, Job.state == "running", Job.worker == job.worker)
            .execute()
        )
        if not taken:
            raise Refused(f"Job {job.id} changed hands meanwhile; look at 'vdc-manage job show {job.id}'")
        JobStep.update(state="failed", error="interrupted", finished_at=now).where(
            JobStep.job == job.id, JobStep.state == "running"
        ).execute()
        log(job.id, message, "error")


@dataclass
class JobFilter:
    state: str | None = None
    kind: str | None = None
    limit: int | None = None


def job_query(flt: JobFilter | None = None) -> peewee.ModelSelect[Job]:
    flt = flt or JobFilter()
    query = Job.select().order_by(Job.created_at.desc(), Job.id)
    if flt.state:
        query = query.where(Job.state == flt.state)
    if flt.kind:
        query = query.where(Job.kind == flt.kind)
    if flt.limit:
        query = query.limit(flt.limit)
    return query


def list_jobs(flt: JobFilter | None = None) -> list[Job]:
    return list(job_query(flt))


def is_stalled(job: Job, stale_after: float = STALE_AFTER_S) -> bool:
    """A running job whose worker stopped sending heartbeats."""
    return job.state == "running" and (job.heartbeat_at is None or job.heartbeat_at < stale_cutoff(stale_after))


def log_tail(job_id: str, count: int | None = LOG_TAIL) -> list[JobLog]:
    """The job's last ``count`` log lines, oldest first; all of them with ``count=None``."""
    query = JobLog.select().where(JobLog.job == job_id).order_by(JobLog.id.desc())
    rows = list(query.limit(count) if count is not None else query)
    return rows[::-1]


def steps_by_job(job_ids: list[str]) -> dict[str, list[JobStep]]:
    """The steps of many jobs in one query, each job's in order."""
    found: dict[str, list[JobStep]] = {job_id: [] for job_id in job_ids}
    if job_ids:
        query = JobStep.select().where(JobStep.job.in_(job_ids)).order_by(JobStep.job, JobStep.position)
        for step in query:
            found[step.__data__["job"]].append(step)  # the key as stored, without loading the Job
    return found


def where_it_stands(job: Job, steps: list[JobStep]) -> dict[str, Any]:
    """Step k of N and a percentage: each step counts the same, the current one by its bytes done.

    A succeeded job is at 100 %; a failed or cancelled one stays where it stopped.
    """
    total = len(steps)
    done = sum(1 for s in steps if s.state in ("done", "skipped"))
    current = next((s for s in steps if s.name == job.current_step), None)
    number = current.position + 1 if current is not None else (total if job.state == "succeeded" else 0)
    fraction = 0.0
    if current is not None and current.state not in ("done", "skipped") and current.bytes_total:
        fraction = min(1.0, current.bytes_done / current.bytes_total)
    percent = 100 if job.state == "succeeded" or not total else min(100, int(100 * (done + fraction) / total))
    return {"step_number": number, "steps_total": total, "percent": percent}


def step_dict(step: JobStep) -> dict[str, Any]:
    elapsed = (step.finished_at or utcnow()) - step.started_at if step.started_at else None
    seconds = elapsed.total_seconds() if elapsed is not None else None
    rate = step.bytes_done / seconds if seconds and step.bytes_done else None
    return {
        "name": step.name,
        "state": step.state,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "seconds": round(seconds, 3) if seconds is not None else None,
        "bytes_done": step.bytes_done,
        "bytes_total": step.bytes_total,
        "rate_bytes_per_s": int(rate) if rate else None,
        "error": step.error,
    }


def job_dict(
    job: Job, *, details: bool = True, steps: list[JobStep] | None = None, log_lines: int | None = None
) -> dict[str, Any]:
    """The job as JSON: with ``details`` its steps and its log (all of it unless ``log_lines``)."""
    data: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "stalled": is_stalled(job),
        "current_step": job.current_step,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "attempts": job.attempts,
        "worker": job.worker,
        "heartbeat_at": iso(job.heartbeat_at),
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "result": json.loads(job.result) if job.result else None,
        "params": params_of(job),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "age_seconds": round((utcnow() - job.created_at).total_seconds(), 3),
    }
    steps = steps if steps is not None else steps_of(job.id)
    data.update(where_it_stands(job, steps))
    if details:
        data["steps"] = [step_dict(s) for s in steps]
        data["log"] = [{"at": iso(r.at), "level": r.level, "message": r.message} for r in log_tail(job.id, log_lines)]
    return data
