"""Fixtures for the dashboard tests: a catalog with fixed contents, and a way to drive the app with the pilot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.tui.data import NOW, fill_catalog

SIZE = (80, 24)


@pytest.fixture
def tui_catalog(sqlite_url: str) -> Iterator[str]:
    """A SQLite catalog holding tests/tui/data.py's records; its URL."""
    from vdcmanage.catalog.db import close_catalog, open_catalog

    open_catalog(sqlite_url)
    fill_catalog()
    yield sqlite_url
    close_catalog()


def fixed_clock():  # type: ignore[no-untyped-def]
    return NOW


def make_app(url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    from tui.app import create_app

    kwargs.setdefault("clock", fixed_clock)
    kwargs.setdefault("poll_interval", 0.2)
    return create_app(url, **kwargs)


def drive(app: Any, scenario: Callable[[Any], Awaitable[None]], size: tuple[int, int] = SIZE) -> None:
    """Run ``scenario(pilot)`` against ``app`` in a headless terminal of ``size``."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds (workers answer asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text lines (what a person reads, without styles)."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


async def images_ready(pilot: Any) -> Any:
    """Wait for the images view to show its first counted answer; return the view."""
    from tui.screens.images import ImagesScreen

    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ImagesScreen) and app.screen.total is not None and app.screen.table.loaded,
        what="the images view to load",
    )
    return app.screen


async def settled(pilot: Any, screen: Any) -> None:
    """Wait until the view's newest load has answered (rows and count)."""
    await wait_until(
        pilot,
        lambda: screen.table.generation == screen.generation and screen.total is not None,
        what="the view to answer",
    )
    await pilot.pause(0.05)
