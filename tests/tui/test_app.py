"""Moving between views, the help screen, and the keys every view shows."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until


def test_number_keys_switch_views_and_the_top_bar_follows(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        for key, name, word in (
            ("2", "JobsScreen", "job-run00001"),
            ("3", "HostsScreen", "hn-xen62a"),
            ("1", "ImagesScreen", "wmi-lucid0"),
        ):
            await pilot.press(key)
            await wait_until(pilot, lambda name=name: pilot.app.screen.__class__.__name__ == name)
            await wait_until(pilot, lambda word=word: word in screen_text(pilot.app))
            top = pilot.app.screen.query_one("TopBar")
            assert top.current == pilot.app.screen.MODE

    drive(make_app(tui_catalog), scenario)


def test_help_lists_every_key_of_every_view(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen")
        text = str(pilot.app.screen.query_one("#help Static").render())
        for expected in (
            "1 Images",
            "2 Jobs",
            "Job detail",
            "3 Hosts and backup storages",
            "Forms",
            "Reverse",
            "Virtio",
            "Cancel job",
            "Retry",
            "Import",
            "Check host",
            "Page down",
            "pagedown, ctrl+f, space",
            f"Catalog: {pilot.app.catalog_url}",
        ):
            assert expected in text, expected
        await pilot.press("escape")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ImagesScreen")

    drive(make_app(tui_catalog), scenario)


def test_view_keys_wait_while_a_dialog_is_open_and_help_shows_its_keys(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmDialog")
        await pilot.press("2")
        assert pilot.app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("f1")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen")
        assert "Keys here (Confirmations)" in help_text(pilot.app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmDialog")
        await pilot.press("n")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ImagesScreen")

    drive(make_app(tui_catalog), scenario)


def help_text(app: Any) -> str:
    return str(app.screen.query_one("#help Static").render())


def test_every_view_shows_all_its_keys_at_80_columns(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        expected = {
            "1": [
                "/  Filter",
                "s  Sort",
                "S  Reverse",
                "⏎  Detail",
                "e  Edit",
                "v  Virtio",
                "a  ACPI",
                "d  Delete",
                "?  Help",
                "q  Quit",
            ],
            "2": ["/  Filter", "f  State", "⏎  Detail", "c  Cancel job", "r  Retry", "i  Import", "?  Help", "q  Quit"],
            "3": ["tab  Next table", "c  Check host", "?  Help", "q  Quit"],
        }
        for key, items in expected.items():
            await pilot.press(key)
            await pilot.pause(0.3)
            bottom = "\n".join(screen_text(pilot.app).splitlines()[-2:])
            for item in items:
                assert item in bottom, (key, item, bottom)

    drive(make_app(tui_catalog), scenario)


def test_q_quits(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert pilot.app.return_code == 0 or not pilot.app.is_running

    drive(make_app(tui_catalog), scenario)
