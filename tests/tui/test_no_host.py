"""Actions that need a host, in a catalog without one: they say so and offer the command that adds one."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, make_app, screen_text, wait_until
from tests.tui.test_jobs_view import jobs_ready

ADD_HOST = "vdc-manage host add NAME --address ADDRESS --accept-new-host-key"


def errors_logged(app: Any) -> list[str]:
    return [entry.text for entry in app.messages if entry.level == "error"]


async def offered_and_copied(pilot: Any, action: str) -> None:
    """The dialog names the command; `y` copies it; the reason is in the status line and the message log."""
    from tui.screens.dialogs import ConfirmDialog

    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the no-host dialog")
    assert ADD_HOST in screen_text(app) and "[y] copy command  [n] close" in screen_text(app)
    expected = f"ERROR: Cannot {action}: no host is defined. Add one with: {ADD_HOST}"
    assert expected in errors_logged(app)
    await pilot.press("y")
    await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="the dialog to close")
    assert app.clipboard == ADD_HOST
    assert app.screen.status.text.startswith(f"Copied {ADD_HOST}")


def test_import_with_no_host_says_so_and_offers_the_command(catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await pilot.press("i")
        await offered_and_copied(pilot, "import")
        assert pilot.app.screen is screen  # no form was opened: there is nothing to import onto
        await pilot.press("i", "n")
        await wait_until(pilot, lambda: pilot.app.screen is screen and "Cannot import" in screen.status.text)
        assert screen.status.text.startswith("ERROR: Cannot import: no host is defined")

    drive(make_app(catalog), scenario, size=(120, 30))


def test_check_with_no_host_says_so_and_offers_the_command(catalog: str) -> None:
    from tui.screens.hosts import HostsScreen

    async def scenario(pilot: Any) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: app.catalog_ready, what="the catalog")
        await pilot.press("3")
        await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen) and app.screen.inventory_loaded)
        await pilot.press("c")
        await offered_and_copied(pilot, "check")

    drive(make_app(catalog), scenario, size=(120, 30))
