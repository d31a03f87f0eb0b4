"""The message log (m): every status message, error and job event of the session, whole and with its time;
the status line shows the latest on one line (``…`` when cut) and clears when it no longer applies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until
from tests.tui.test_jobs_view import jobs_ready, select


def log_lines(app: Any) -> list[str]:
    return [f"{entry.at} {entry.level} {entry.text}" for entry in app.messages]


async def open_log(pilot: Any) -> str:
    await pilot.press("m")
    await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "MessagesScreen")
    await pilot.pause(0.1)
    return screen_text(pilot.app)


def test_a_long_refusal_ends_in_an_ellipsis_and_the_log_has_it_whole(tui_catalog: str) -> None:
    start = "ERROR: retry job-run00001: Job job-run00001 is running on admin1:4242:1 (heartbeat "
    end = "wait for it or 'vdc-manage job cancel job-run00001'"

    async def scenario(pilot: Any) -> None:
        from vdcmanage.catalog.models import Job, utcnow

        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-run00001")
        # its owner lives (a fresh heartbeat by the real clock): the retry is refused, at length
        Job.update(heartbeat_at=utcnow()).where(Job.id == "job-run00001").execute()
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.status.has_class("-error"))
        status_row = screen_text(pilot.app).splitlines()[-3]  # above the two lines of keys
        assert status_row.startswith(" ERROR: retry job-run00001: Job job-run00001 is running on")
        assert status_row.endswith("…") and len(status_row) <= 80
        whole = log_lines(pilot.app)[-1]
        assert whole.startswith(f"12:00:00 error {start}") and whole.endswith(end)
        text = await open_log(pilot)
        assert "12:00:00 ERROR ERROR: retry job-run00001: Job job-run00001 is running on" in text
        assert "cancel job-run00001'" in text  # its end, wrapped onto the next lines, not cut
        assert "Times UTC" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: pilot.app.screen is screen)

    drive(make_app(tui_catalog), scenario)


def test_the_log_keeps_every_message_in_order_with_its_time(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("d", "n")
        await wait_until(pilot, lambda: "Delete of wmi-lucid0 cancelled" in screen.status.text)
        await pilot.press("v")
        await wait_until(pilot, lambda: screen.status.text.startswith("✓ virtio on"))
        assert log_lines(pilot.app) == [
            "12:00:00 info Delete of wmi-lucid0 cancelled: the image is unchanged",
            "12:00:00 info virtio on for wmi-lucid0 …",
            "12:00:00 info ✓ virtio on for wmi-lucid0 (press v again to undo)",
        ]
        text = await open_log(pilot)
        assert "12:00:00       Delete of wmi-lucid0 cancelled: the image is unchanged" in text
        assert "12:00:00       ✓ virtio on for wmi-lucid0 (press v again to undo)" in text
        pilot.app.record("a message while the log is open")
        await wait_until(pilot, lambda: "a message while the log is open" in screen_text(pilot.app))

    drive(make_app(tui_catalog), scenario)


def test_the_status_line_clears_when_the_cursor_moves_or_after_a_while(
    tui_catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tui.screens.base.STATUS_SHOWN_S", 0.5)

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        screen.query_one("#filter").value = "no-such-image"
        await wait_until(pilot, lambda: screen.total == 0)
        screen.table.focus()
        await pilot.press("e")
        assert screen.status.text == "ERROR: No image selected"
        screen.query_one("#filter").value = ""
        await wait_until(pilot, lambda: screen.total == 7)
        await pilot.press("down")  # a row is selected now: the error no longer applies
        assert screen.status.text == ""
        await pilot.press("d", "n")
        await wait_until(pilot, lambda: "cancelled" in screen.status.text)
        await wait_until(pilot, lambda: screen.status.text == "", timeout=3, what="the status line to clear")
        assert len(pilot.app.messages) == 2  # both stay in the log

    drive(make_app(tui_catalog), scenario)


def test_job_events_of_the_session_reach_the_status_line_and_the_log(tui_catalog: str) -> None:
    from vdcmanage.catalog.models import Job, utcnow
    from vdcmanage.jobs import queue

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await pilot.pause(0.3)  # the watcher has read the jobs as they were at the start
        assert pilot.app.messages == []  # jobs that were already running are not events
        Job.update(current_step="compress", updated_at=utcnow()).where(Job.id == "job-run00001").execute()
        await wait_until(pilot, lambda: "step compress started" in screen.status.text, timeout=3)
        assert screen.status.text == "job-run00001 (ubuntu-14.04.raw): step compress started"
        Job.update(state="failed", error="disk full", updated_at=utcnow()).where(Job.id == "job-run00001").execute()
        await wait_until(pilot, lambda: screen.status.has_class("-error"), timeout=3)
        assert screen.status.text == "ERROR: job-run00001 (ubuntu-14.04.raw) FAILED: disk full"
        job = queue.submit("import-xen", {"path": "/srv/images/new.raw"}, ["inspect"])
        await wait_until(pilot, lambda: screen.status.text == f"{job.id} (new.raw) queued", timeout=3)
        assert [line.split(" ", 1)[1] for line in log_lines(pilot.app)] == [
            "job job-run00001 (ubuntu-14.04.raw): step compress started",
            "error ERROR: job-run00001 (ubuntu-14.04.raw) FAILED: disk full",
            f"job {job.id} (new.raw) queued",
        ]

    drive(make_app(tui_catalog), scenario)
