"""SVG snapshots of every view at 80x24, the main ones also at 200x50 (and one wide detail), made deterministic: fixed data and clock
(tests/tui/data.py), fixed terminal size, no cursor blink, Textual pinned in the test extra.

Look at a changed snapshot in the report (``--snapshot-report``), then accept it with
``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.tui.conftest import images_ready, make_app, wait_until
from tests.tui.test_hosts_view import OK_REPORT, check_pane, hosts_ready
from tests.tui.test_jobs_view import jobs_ready, open_import_form, select

Step = Callable[[Any], Awaitable[None]]


def steady(app: Any) -> None:
    """No blinking cursor in a snapshot: it would be there or not depending on the moment."""
    from textual.widgets import Input, TextArea

    for widget in app.screen.query("Input, TextArea"):
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False


def scenario(*steps: Step) -> Step:
    async def run(pilot: Any) -> None:
        for step in steps:
            await step(pilot)
        steady(pilot.app)
        await pilot.pause(0.2)

    return run


def keys(*names: str, settle: float = 0.3) -> Step:
    async def press(pilot: Any) -> None:
        await pilot.press(*names)
        await pilot.pause(settle)

    return press


async def images(pilot: Any) -> None:
    await images_ready(pilot)


async def jobs(pilot: Any) -> None:
    await jobs_ready(pilot)


def screen_named(name: str) -> Step:
    async def wait(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == name, what=name)
        await pilot.pause(0.2)

    return wait


async def fail_job_detail(pilot: Any) -> None:
    screen = await jobs_ready(pilot)
    await select(pilot, screen, "job-fail0001")
    await pilot.press("enter")
    await wait_until(pilot, lambda: "Steps (times UTC)" in str(pilot.app.screen.query_one("#job-detail-text").render()))


async def import_form(pilot: Any) -> None:
    await jobs_ready(pilot)
    await open_import_form(pilot)


async def checked_host(pilot: Any) -> None:
    screen = await hosts_ready(pilot)
    await pilot.press("c")
    await wait_until(pilot, lambda: "host check ok" in check_pane(screen))


async def help_screen(pilot: Any) -> None:
    await images_ready(pilot)
    pilot.app.catalog_url = "sqlite:///var/lib/vdc-manage/catalog.db"  # the test's tmp path would vary
    await pilot.press("question_mark")
    await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen")


CASES = {
    "images": (scenario(images), (80, 24)),
    "images_filtered_detail": (scenario(images, keys("slash", *"ubuntu", "enter"), keys("enter")), (80, 24)),
    "images_sorted_by_size": (scenario(images, keys(*"ssssss")), (80, 24)),
    "images_wide_detail": (scenario(images, keys("down", "enter")), (160, 40)),
    "image_edit": (scenario(images, keys("e"), screen_named("EditImageDialog")), (80, 24)),
    "image_delete_confirm": (scenario(images, keys("down", "d"), screen_named("ConfirmDialog")), (80, 24)),
    "jobs": (scenario(jobs), (80, 24)),
    "job_detail_failed": (scenario(fail_job_detail), (80, 24)),
    "import_form": (scenario(import_form), (80, 24)),
    "hosts_checked": (scenario(checked_host), (80, 24)),
    "help": (scenario(help_screen), (80, 24)),
    "images_200x50": (scenario(images), (200, 50)),
    "jobs_200x50": (scenario(jobs), (200, 50)),
    "job_detail_failed_200x50": (scenario(fail_job_detail), (200, 50)),
    "hosts_checked_200x50": (scenario(checked_host), (200, 50)),
    "import_form_200x50": (scenario(import_form), (200, 50)),
    "messages": (
        scenario(images, keys("d", "n"), keys("down", "v"), keys("m"), screen_named("MessagesScreen")),
        (80, 24),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_snapshot(name: str, tui_catalog: str, snap_compare: Any) -> None:
    run_before, size = CASES[name]
    app = make_app(tui_catalog, check_host=lambda host_id: OK_REPORT, poll_interval=60)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_snapshot_catalog_error(snap_compare: Any) -> None:
    app = make_app("sqlite:///dev/null/catalog.db")
    assert snap_compare(app, run_before=scenario(screen_named("CatalogErrorScreen")))


def test_snapshot_jobs_no_color(tui_catalog: str, snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tui_catalog, poll_interval=60)
    assert snap_compare(app, run_before=scenario(jobs))
