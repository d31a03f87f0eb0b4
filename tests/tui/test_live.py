"""Live refresh: what another process changes in the catalog appears within about 2 s, without a key press."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until
from tests.tui.test_jobs_view import jobs_ready, line_of
from tui.app import POLL_INTERVAL_S


async def other_process(url: str, *args: str) -> float:
    """Run ``vdc-manage ARGS`` as another process (without blocking the app); return when it ended."""
    env = {**os.environ, "VDC_MANAGE_DB": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vdcmanage", *args, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    return time.monotonic()


def test_an_image_changed_by_the_cli_appears_within_2_seconds(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("down", "down")  # on wmi-debian7
        done = await other_process(tui_catalog, "image", "modify", "wmi-lucid0", "--display-name", "Renamed elsewhere")
        await wait_until(pilot, lambda: "Renamed elsewhe…" in screen_text(pilot.app), timeout=2)  # cut to its column
        assert time.monotonic() - done < 2
        assert screen.table.selected["id"] == "wmi-debian7"  # the selection did not move
        done = await other_process(tui_catalog, "image", "del", "wmi-lucid0")
        await wait_until(pilot, lambda: "wmi-lucid0" not in screen_text(pilot.app), timeout=2)
        assert time.monotonic() - done < 2
        assert screen.table.selected["id"] == "wmi-debian7"  # the row above went: the cursor follows its row
        assert screen.table.cursor_row == 1

    drive(make_app(tui_catalog, poll_interval=POLL_INTERVAL_S), scenario)


def test_a_job_cancelled_by_another_process_appears_within_2_seconds(tui_catalog: str) -> None:
    """``vdc-manage job cancel`` comes with the import issue; the other process makes the same core call."""
    code = (
        f"from vdcmanage.catalog.db import open_catalog; open_catalog({tui_catalog!r}); "
        "from vdcmanage.jobs.queue import request_cancel; request_cancel('job-queue001')"
    )

    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        assert await proc.wait() == 0
        done = time.monotonic()
        await wait_until(pilot, lambda: "cancelled" in line_of(screen_text(pilot.app), "job-queue001"), timeout=2)
        assert time.monotonic() - done < 2

    drive(make_app(tui_catalog, poll_interval=POLL_INTERVAL_S), scenario)
