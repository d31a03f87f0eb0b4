"""Under NO_COLOR (and on a monochrome terminal) every state is in words or symbols, not only in colour."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until
from tests.tui.test_hosts_view import OK_REPORT, check_pane, hosts_ready
from tests.tui.test_jobs_view import jobs_ready, line_of
from tui.hostcheck import HostCheckResult


@pytest.fixture(autouse=True)
def no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


def public_box(app: Any) -> str:
    return str(app.screen.query_one("#public").render()).rstrip()


def test_the_public_checkbox_is_ticked_by_its_mark_not_its_colour(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        assert pilot.app.no_color
        screen = await images_ready(pilot)
        assert screen.table.selected["id"] == "wmi-lucid0" and screen.table.selected["is_public"]
        await pilot.press("e")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "EditImageDialog")
        assert public_box(pilot.app) == "▐X▌ visible to every account"
        pilot.app.screen.query_one("#public").focus()
        await pilot.press("space")
        await pilot.pause(0.05)
        assert public_box(pilot.app) == "▐ ▌ visible to every account"
        assert "▐ ▌ visible to every account" in screen_text(pilot.app)

    drive(make_app(tui_catalog), scenario)


def test_every_job_state_is_a_word(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        text = screen_text(pilot.app)
        states = {
            "job-run00001": "running",
            "job-stall001": "STALLED",
            "job-fail0001": "FAILED",
            "job-queue001": "queued",
            "job-done0001": "succeeded",
            "job-cncl0001": "cancelled",
        }
        for job_id, word in states.items():
            assert line_of(text, job_id).split()[1] == word, job_id

    drive(make_app(tui_catalog), scenario)


def test_host_check_results_are_words(tui_catalog: str) -> None:
    failed = HostCheckResult(False, [("reachable", "no")], "Connection refused by 10.0.0.5:22")

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: "host check ok" in check_pane(screen))
        assert str(screen.host_table.get_cell("hn-xen62a", "check")) == "ok"
        await pilot.press("down", "c")
        await wait_until(pilot, lambda: "host check FAILED" in check_pane(screen))
        assert str(screen.host_table.get_cell("hn-xcp83b", "check")) == "FAILED"
        assert "ERROR: Connection refused by 10.0.0.5:22" in check_pane(screen)
        assert screen.status.text == "ERROR: host check hn-xcp83b: Connection refused by 10.0.0.5:22"

    results = {"hn-xen62a": OK_REPORT, "hn-xcp83b": failed}
    drive(make_app(tui_catalog, check_host=results.__getitem__), scenario)


def test_a_monochrome_terminal_counts_as_no_color() -> None:
    """Asked of the terminfo database, once per process (curses reads it once): a process per terminal."""
    code = "from tui.app import monochrome_terminal; print(monochrome_terminal())"
    for term, mono in (("vt100", True), ("xterm-mono", True), ("xterm-256color", False), ("screen", False)):
        env = {**os.environ, "TERM": term}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(mono), term
