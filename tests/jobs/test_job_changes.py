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


def test_job_rows_carry_the_step_position_count_and_overall_share(any_catalog: str) -> None:
    from vdcmanage.jobs.browse import JobSearch, job_page

    waiting = queue.submit("import-xen", {"name_label": "w"}, ["inspect", "upload", "register", "cleanup"])
    running = queue.submit("import-xen", {"name_label": "r"}, ["inspect", "upload", "register", "cleanup"])
    claimed = queue.claim_next("w1", job_id=running.id)
    assert claimed is not None
    queue.start_step(running.id, "upload")
    Job.update(bytes_done=1, bytes_total=4).where(Job.id == running.id).execute()
    rows = {row.id: row for row in job_page(JobSearch(), 0, 10)}
    assert (rows[running.id].step_position, rows[running.id].step_count) == (1, 4)
    assert rows[running.id].overall == (1 + 0.25) / 4
    assert (rows[waiting.id].step_position, rows[waiting.id].step_count, rows[waiting.id].overall) == (None, 4, None)
