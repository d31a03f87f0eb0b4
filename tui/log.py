"""The session's message log: every status message, notification, error and job event, with its time.

The status line shows only the latest message, on one line; the log keeps each one whole, so a
message cut short on screen (``…``) or replaced by the next one can still be read (``m``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vdcmanage.jobs.browse import JobChange

LOG_LIMIT = 5000  # a working day of messages; the oldest go first


@dataclass(frozen=True)
class LogEntry:
    at: str  # HH:MM:SS UTC
    level: str  # info | error | job
    text: str


@dataclass
class JobWatch:
    """The state and step last seen of each job, to turn the catalog's changes into job events."""

    session_start: object = None  # the catalog time the session started (jobs created after it are new)
    seen: dict[str, tuple[str, str | None]] | None = None  # None until the first (starting) batch

    def events(self, changes: list[JobChange]) -> list[tuple[str, str]]:
        """``(level, text)`` for each change worth a line: a new job, a step begun, a job finished.
        The first batch is where the session starts from: no events."""
        if self.seen is None:
            self.seen = {job.id: (job.state, job.current_step) for job in changes}
            return []
        events = []
        for job in changes:
            before = self.seen.get(job.id)
            now = (job.state, job.current_step)
            self.seen[job.id] = now
            if before == now:
                continue  # a heartbeat or progress: not an event
            events.extend(job_events(job, before, self.is_new(job)))
        return events

    def is_new(self, job: JobChange) -> bool:
        start = self.session_start
        created = job.created_at
        return isinstance(start, dt.datetime) and isinstance(created, dt.datetime) and created >= start


def job_events(job: JobChange, before: tuple[str, str | None] | None, new: bool) -> list[tuple[str, str]]:
    what = f"{job.id} ({job.label})" if job.label else job.id
    events = []
    if before is None and new:
        events.append(("job", f"{what} queued"))
    state_changed = before is None or before[0] != job.state
    if job.state == "running" and job.current_step and (before is None or before[1] != job.current_step):
        events.append(("job", f"{what}: step {job.current_step} started"))
    elif job.state == "running" and state_changed:
        events.append(("job", f"{what} running"))
    if job.state == "queued" and not new and state_changed:
        events.append(("job", f"{what} queued again"))
    if job.state == "failed" and state_changed:
        events.append(("error", f"{what} FAILED: {job.error or 'no reason recorded'}"))
    if job.state in ("succeeded", "cancelled") and state_changed:
        events.append(("job", f"{what} {job.state}"))
    return events
