"""jobs_changed_since: what the dashboard's message log reads to report job events, on every backend."""

from __future__ import annotations

from vdcmanage.catalog.models import Job
from vdcmanage.jobs import queue
from vdcmanage.jobs.browse import jobs_changed_since


def test_the_start_lists_active_jobs_then_each_call_what_changed_since(any_catalog: str) -> None:
    done = queue.submit("import-xen", {"path": "/srv/a.raw"}, ["inspect"])
    queue.request_cancel(done.id)  # never ran: cancelled at once, a final state
    waiting = queue.submit("import-xen", {"name_label": "b"}, ["inspect"])
    start, mark = jobs_changed_since(None)
    assert [(job.id, job.state, job.label) for job in start] == [(waiting.id, "queued", "b")]
    assert mark is not None
    again, mark = jobs_changed_since(mark)
    assert [job.id for job in again] == [waiting.id]  # the newest change is read again: same tick, not lost
    claimed = queue.claim_next("w1")
    assert claimed is not None
    changes, later = jobs_changed_since(mark)
    assert [(job.id, job.state) for job in changes] == [(waiting.id, "running")]
    assert later is not None and later >= mark
    assert Job.select().count() == 2
