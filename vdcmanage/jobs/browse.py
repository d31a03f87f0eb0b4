"""Browsing the job table at scale: pages of jobs with their live progress, and what a job's detail shows.

Like :mod:`vdcmanage.catalog.browse` for images: the database filters, orders and pages, so a
table of 10,000 jobs costs one screenful of rows. Figures that depend on the time (rate, ETA,
whether a heartbeat stopped) take ``now`` as an argument, so a display can be reproduced exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import peewee

from vdcmanage.catalog.browse import ChangeToken, change_token, check_page, check_search_text, row_position
from vdcmanage.catalog.models import Image, Job, JobLog, JobStep
from vdcmanage.catalog.records import iso
from vdcmanage.errors import InvalidArgument
from vdcmanage.jobs.queue import LOG_TAIL, STALE_AFTER_S, STATES, get_job


@dataclass(frozen=True)
class JobSearch:
    """Words every listed job must contain (in its id, kind, state, step, parameters or error), and a state."""

    text: str = ""
    state: str | None = None

    def words(self) -> list[str]:
        return self.text.split()


@dataclass(frozen=True)
class JobRow:
    """One line of the job table: the job's own fields plus the start of the step it is in."""

    id: str
    kind: str
    state: str
    label: str  # what the job works on, for people: the import's name label or file name
    current_step: str | None
    bytes_done: int
    bytes_total: int
    attempts: int
    worker: str | None
    error: str | None
    cancel_requested: bool
    heartbeat_at: dt.datetime | None
    step_started_at: dt.datetime | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    step_position: int | None = None  # 0-based position of the current step among the job's steps
    step_count: int = 0

    @property
    def overall(self) -> float | None:
        """How far the whole job is, 0..1: the steps before the current one, plus its share of bytes done.
        None for a job that has not started a step (or has no steps)."""
        if self.state == "succeeded":
            return 1.0
        if self.step_position is None or not self.step_count:
            return None
        part = min(1.0, self.bytes_done / self.bytes_total) if self.bytes_total > 0 else 0.0
        return min(1.0, (self.step_position + part) / self.step_count)


def check_job_search(search: JobSearch) -> None:
    check_search_text(search.text)
    if search.state is not None and search.state not in STATES:
        raise InvalidArgument(f"Unknown job state {search.state!r}: expected one of {', '.join(STATES)}")


def word_matches_job(word: str) -> peewee.Expression:
    return (
        Job.id.contains(word)
        | Job.kind.contains(word)
        | Job.state.contains(word)
        | Job.current_step.contains(word)
        | Job.params.contains(word)
        | Job.error.contains(word)
    )


def filtered_jobs(search: JobSearch, *columns: Any) -> peewee.ModelSelect[Job]:
    check_job_search(search)
    query = Job.select(*columns)
    if search.state is not None:
        query = query.where(Job.state == search.state)
    for word in search.words():
        query = query.where(word_matches_job(word))
    return query


JOB_ORDERING = [Job.created_at.desc(), Job.id.desc()]  # newest first, as `job list`


def count_jobs(search: JobSearch) -> int:
    return int(filtered_jobs(search).count())


def job_page(search: JobSearch, offset: int, limit: int) -> list[JobRow]:
    """Rows ``offset`` .. ``offset + limit - 1``, newest first, with the current step's start time (one query)."""
    check_page(offset, limit)
    step = JobStep.alias("current")
    on_current = (step.job == Job.id) & (step.name == Job.current_step)
    counted = JobStep.alias("counted")
    step_count = counted.select(peewee.fn.COUNT(counted.id)).where(counted.job == Job.id)
    columns = (Job, step.started_at.alias("step_started_at"), step.position.alias("step_position"))
    query = (
        filtered_jobs(search, *columns, step_count.alias("step_count"))
        .join(step, peewee.JOIN.LEFT_OUTER, on=on_current)
        .order_by(*JOB_ORDERING)
        .offset(offset)
        .limit(limit)
    )
    return [job_row(job, *step_fields(job)) for job in query.objects()]


def step_fields(job: Job) -> tuple[dt.datetime | None, int | None, int]:
    """The current step's start and position and the number of steps, selected along with the job."""
    started, position = getattr(job, "step_started_at", None), getattr(job, "step_position", None)
    return started, position, int(getattr(job, "step_count", 0) or 0)


def job_row(
    job: Job, step_started_at: dt.datetime | None, step_position: int | None = None, step_count: int = 0
) -> JobRow:
    return JobRow(
        id=job.id,
        kind=job.kind,
        state=job.state,
        label=job_label(job.params),
        current_step=job.current_step,
        bytes_done=job.bytes_done,
        bytes_total=job.bytes_total,
        attempts=job.attempts,
        worker=job.worker,
        error=job.error,
        cancel_requested=bool(job.cancel_requested),
        heartbeat_at=job.heartbeat_at,
        step_started_at=step_started_at,
        created_at=job.created_at,
        finished_at=job.finished_at,
        step_position=step_position,
        step_count=step_count,
    )


def job_label(params_json: str) -> str:
    """A short name for what a job works on, from its stored parameters (never fails on odd JSON)."""
    try:
        params = json.loads(params_json)
    except ValueError:
        return ""
    return label_of(params) if isinstance(params, dict) else ""


def label_of(params: dict[str, Any]) -> str:
    for key in ("name_label", "display_name", "path"):
        value = params.get(key)
        if isinstance(value, str) and value:
            return value.rsplit("/", 1)[-1] if key == "path" else value
    return ""


def job_position(search: JobSearch, job_id: str) -> int | None:
    return row_position(filtered_jobs(search, Job.id), Job.id, JOB_ORDERING, job_id)


def jobs_token() -> ChangeToken:
    """Changes with every submit, claim, heartbeat, step start and finish of any job."""
    return change_token(Job)


def is_stalled_at(state: str, heartbeat_at: dt.datetime | None, now: dt.datetime) -> bool:
    """A running job whose worker stopped sending heartbeats (as :func:`queue.is_stalled`, at a given time)."""
    if state != "running":
        return False
    return heartbeat_at is None or heartbeat_at < now - dt.timedelta(seconds=STALE_AFTER_S)


@dataclass(frozen=True)
class Figures:
    """A running transfer's speed and the time it still needs, where they can be known."""

    rate: float | None  # bytes per second since the step started
    eta_seconds: float | None


def progress_figures(bytes_done: int, bytes_total: int, started_at: dt.datetime | None, now: dt.datetime) -> Figures:
    if started_at is None or bytes_done <= 0:
        return Figures(None, None)
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return Figures(None, None)
    rate = bytes_done / elapsed
    remaining = max(bytes_total - bytes_done, 0)
    return Figures(rate, remaining / rate if bytes_total else None)


def job_detail(key: str, now: dt.datetime, log_lines: int | None = LOG_TAIL) -> dict[str, Any]:
    """Everything a job's detail view shows: its fields, each step's times, bytes and rate, the log tail
    (the last ``log_lines`` lines, oldest first; None: the whole log)."""
    job = get_job(key)
    steps = list(JobStep.select().where(JobStep.job == job.id).order_by(JobStep.position))
    log = list(JobLog.select().where(JobLog.job == job.id).order_by(JobLog.id.desc()).limit(log_lines))[::-1]
    try:
        params = json.loads(job.params)
    except ValueError:
        params = {"unreadable": job.params}
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "stalled": is_stalled_at(job.state, job.heartbeat_at, now),
        "current_step": job.current_step,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "attempts": job.attempts,
        "worker": job.worker,
        "heartbeat_at": iso(job.heartbeat_at),
        "cancel_requested": bool(job.cancel_requested),
        "error": job.error,
        "result": job.result,  # JSON text as stored, e.g. {"image_id": "wmi-..."}
        "params": params,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "steps": [step_detail(step, now) for step in steps],
        "log": [{"at": iso(line.at), "level": line.level, "message": line.message} for line in log],
    }


def step_detail(step: JobStep, now: dt.datetime) -> dict[str, Any]:
    end = step.finished_at or (now if step.state == "running" else None)
    seconds = (end - step.started_at).total_seconds() if step.started_at and end else None
    rate = step.bytes_done / seconds if seconds and step.bytes_done else None
    return {
        "name": step.name,
        "state": step.state,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "seconds": seconds,
        "bytes_done": step.bytes_done,
        "bytes_total": step.bytes_total,
        "rate": rate,
        "error": step.error,
    }


@dataclass(frozen=True)
class JobChange:
    """What a job is now, for a session's log of job events: its state, step and error."""

    id: str
    state: str
    current_step: str | None
    error: str | None
    label: str
    created_at: dt.datetime


def jobs_changed_since(since: dt.datetime | None, limit: int = 500) -> tuple[list[JobChange], dt.datetime | None]:
    """Jobs updated at or after ``since``, and the mark for the next call; with ``since`` None, the queued and
    running jobs (what a watcher starts from). ``at or after``: a change in the same clock tick as the last
    one is not lost; the caller compares states, so a job seen twice is reported once."""
    newest = Job.select(peewee.fn.MAX(Job.updated_at)).scalar()
    columns = (Job.id, Job.state, Job.current_step, Job.error, Job.params, Job.created_at)
    which = Job.state.in_(("queued", "running")) if since is None else Job.updated_at >= since
    query = Job.select(*columns).where(which).order_by(Job.updated_at, Job.id).limit(limit)
    changes = [
        JobChange(job.id, job.state, job.current_step, job.error, job_label(job.params), job.created_at)
        for job in query
    ]
    return changes, newest if newest is not None else since or dt.datetime.min


def image_of_job(key: str) -> tuple[str | None, str | None]:
    """The image a job makes (from its result, else the id its import was given at submission) and that
    image's state in the catalog: ``None`` while it is not registered yet; ``(None, None)``: no image."""
    job = get_job(key)
    image_id = None
    for stored in (job.result, job.params):
        try:
            value = json.loads(stored or "{}")
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("image_id"), str):
            image_id = value["image_id"]
            break
    if image_id is None:
        return None, None
    state = Image.select(Image.state).where(Image.id == image_id).scalar()
    return image_id, state
