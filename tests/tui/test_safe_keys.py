"""Keys that do no harm: what changes the catalog asks first naming both choices, then says what it did;
ctrl+c quits (asking while a job runs in the dashboard); ? lists the keys of the screen it is pressed on."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until
from tests.tui.test_app import help_text
from tests.tui.test_images_view import image_record
from tests.tui.test_jobs_view import job_state, jobs_ready, select


def screen_name(app: Any) -> str:
    return str(app.screen.__class__.__name__)


async def dialog_open(pilot: Any) -> str:
    await wait_until(pilot, lambda: screen_name(pilot.app) == "ConfirmDialog", what="the confirmation")
    await pilot.pause(0.05)
    return screen_text(pilot.app)


def test_cancel_names_both_choices_and_no_keeps_the_job_running(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-run00001")
        await pilot.press("c")
        text = await dialog_open(pilot)
        assert "Cancel job job-run00001 (ubuntu-14.04.raw)?" in text
        assert "[y] cancel job  [n] keep running" in text
        await pilot.press("n")
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        assert screen.status.text == "job-run00001 left running"
        assert job_state("job-run00001") == ("running", False, 1)
        await pilot.press("c", "y")
        await wait_until(pilot, lambda: screen.status.text == "✓ Cancel of job-run00001 requested")
        assert job_state("job-run00001") == ("running", True, 1)

    drive(make_app(tui_catalog), scenario)


def test_cancel_of_a_queued_job_offers_to_keep_it_queued(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-queue001")
        await pilot.press("c")
        assert "[y] cancel job  [n] keep queued" in await dialog_open(pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.status.text == "job-queue001 left queued")
        assert job_state("job-queue001") == ("queued", False, 0)

    drive(make_app(tui_catalog), scenario)


def test_public_toggle_asks_then_says_what_it_did(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        index = screen.table.find("wmi-debian7")
        screen.table.cursor_row = index
        await pilot.pause(0.05)
        await pilot.press("p")
        text = await dialog_open(pilot)
        assert "Make image wmi-debian7 “Debian 7 minimal” public?" in text
        assert "[y] make public  [n] keep private" in text
        await pilot.press("enter")  # the focus is on the choice that keeps things as they are
        await wait_until(pilot, lambda: screen.status.text == "wmi-debian7 left private")
        assert image_record("wmi-debian7")["is_public"] is False
        await pilot.press("p", "y")
        await wait_until(pilot, lambda: screen.status.text == "✓ wmi-debian7 is now public")
        assert image_record("wmi-debian7")["is_public"] is True
        await wait_until(pilot, lambda: screen.table.selected["is_public"])  # the view shows the catalog's answer
        await pilot.press("p")
        assert "[y] make private  [n] keep public" in await dialog_open(pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.status.text == "✓ wmi-debian7 is now private")
        assert image_record("wmi-debian7")["is_public"] is False

    drive(make_app(tui_catalog), scenario)


def test_ctrl_c_quits_at_once_from_a_text_field(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("slash", *"ubu")
        assert pilot.app.screen.query_one("#filter").has_focus
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not pilot.app.is_running, what="the app to exit")

    drive(make_app(tui_catalog), scenario)


def test_ctrl_c_asks_while_a_job_runs_in_the_dashboard(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        pilot.app.foreground_jobs["job-run00001"] = "ubuntu-14.04.raw"
        await pilot.press("ctrl+c")
        text = await dialog_open(pilot)
        assert "Quit while job-run00001 (ubuntu-14.04.raw) runs in this dashboard?" in text
        assert "[y] quit  [n] keep running" in text
        await pilot.press("n")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "ImagesScreen")
        assert pilot.app.is_running
        await pilot.press("q")  # q asks the same
        await dialog_open(pilot)
        await pilot.press("ctrl+c")  # twice: the operator means it
        await wait_until(pilot, lambda: not pilot.app.is_running, what="the app to exit")

    drive(make_app(tui_catalog), scenario)


def test_help_starts_with_every_key_of_the_screen_it_was_opened_on(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "HelpScreen")
        here = help_text(pilot.app).split("Every view")[0]
        assert here.startswith("vdc-manage dashboard — keys\n\nKeys here (2 Jobs)\n\n2 Jobs\n")
        for item in ("c                         Cancel job", "ctrl+r                    Reload",
                     "up, k                     Up", "2                         Jobs", "?, f1 "):  # fmt: skip
            assert item in here, item
        assert any("ctrl+c" in line and line.endswith("Quit") for line in here.splitlines())
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "JobsScreen")
        await pilot.press("i")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "ImportDialog")
        await pilot.press("f1")  # ? would be typed into the field
        await wait_until(pilot, lambda: screen_name(pilot.app) == "HelpScreen")
        here = help_text(pilot.app).split("Every view")[0]
        assert "Keys here (Forms)" in here
        assert "ctrl+s                    Save" in here
        assert "Typing in a field" in here

    drive(make_app(tui_catalog), scenario)
