"""Keys typed fast (or pasted, or arriving in one read over a slow SSH link) keep their order: the whole burst
is handed to the driver at once, as one read of the terminal would, with no pause for the app in between."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.tui.conftest import drive, images_ready, make_app, screen_text, settled
from tests.tui.test_terminal import dashboard  # noqa: F401 - the tmux fixture


def burst(pilot: Any, keys: list[tuple[str, str | None]]) -> None:
    """Queue every key event before the app handles any (``pilot.press`` waits for idle after each key)."""
    from textual import events

    driver = pilot.app._driver
    for key, character in keys:
        event = events.Key(key, character)
        event.set_sender(pilot.app)
        driver.send_message(event)


def typed(text: str) -> list[tuple[str, str | None]]:
    return [("space", " ") if c == " " else (c, c) for c in text]


def test_a_burst_of_keys_into_the_filter_keeps_its_order(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        # "/" opens the filter and the letters after it must land there, in order; the typo and its
        # backspace in the middle of the burst must cancel out
        burst(pilot, [("slash", "/"), *typed("ubuntu 32bx"), ("backspace", None), *typed("it")])
        await settled(pilot, screen)
        await pilot.pause(0.3)  # any key still queued would change the filter after this
        await settled(pilot, screen)
        assert screen.query_one("#filter").value == "ubuntu 32bit"
        assert [row["id"] for _, row in screen.table.loaded_rows()] == ["wmi-lucid32"]
        assert "1 image" in screen_text(pilot.app)

        burst(pilot, [("ctrl+u", None), *typed("tenant two")])  # clear the box, then a second burst
        await pilot.pause(0.3)
        await settled(pilot, screen)
        assert screen.query_one("#filter").value == "tenant two"
        assert [row["id"] for _, row in screen.table.loaded_rows()] == ["wmi-broken1", "wmi-gentoo1"]

    drive(make_app(tui_catalog), scenario)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is in .ci/apt-packages.txt")
def test_a_burst_in_a_real_terminal_keeps_its_order(dashboard: Any) -> None:  # noqa: F811
    """tmux writes one send-keys command's keys to the terminal together: the dashboard reads them at once."""
    tmux = dashboard(TERM="screen", NO_COLOR="1")
    tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
    tmux.keys("/", "ubuntu 32bx", "BSpace", "it")
    text = tmux.wait_for(lambda s: "1 image" in s, "the filtered table")
    assert "ubuntu 32bit" in text.splitlines()[1] and "wmi-lucid32" in text and "wmi-lucid0 " not in text
    tmux.keys("C-c")
