"""The catalog cannot be reached at start, or goes away mid-session: the dashboard says so and recovers.

PostgreSQL is reached through a TCP forwarder that the test cuts and restores: a real server
really going away, as a network outage or a restart would do it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import reset_tables, server_database_url
from tests.tui.conftest import drive, images_ready, make_app, screen_text, wait_until
from tests.tui.data import fill_catalog
from tests.tui.tcpproxy import TcpProxy


def test_unreachable_at_start_shows_the_error_and_how_to_fix_it() -> None:
    async def scenario(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "CatalogErrorScreen")
        text = screen_text(pilot.app)
        assert "The catalog cannot be opened" in text
        assert "ERROR: Cannot create catalog /dev/null/catalog.db: Not a directory" in text
        assert "--db, then $VDC_MANAGE_DB, then db= in the config file" in text
        assert "CATALOG UNREACHABLE" in text
        await pilot.press("1")  # views need the catalog: the keys that open them do nothing here
        assert pilot.app.screen.__class__.__name__ == "CatalogErrorScreen"
        await pilot.press("q")

    drive(make_app("sqlite:///dev/null/catalog.db"), scenario)


@pytest.fixture
def pg_behind_proxy(server_databases: dict[str, object]) -> Iterator[tuple[str, TcpProxy]]:
    """A PostgreSQL catalog with the fixed data, and a URL that reaches it only through a proxy (stopped)."""
    from vdcmanage.catalog.db import close_catalog, open_catalog

    url = server_database_url("postgresql", server_databases)
    reset_tables(url)
    open_catalog(url)
    fill_catalog()
    close_catalog()
    proxy = TcpProxy(5432)
    _host, name = url.rsplit("/", 1)
    yield f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}", proxy
    proxy.stop()


def test_unreachable_at_start_then_retry_opens_it(pg_behind_proxy: tuple[str, TcpProxy]) -> None:
    url, proxy = pg_behind_proxy

    async def scenario(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "CatalogErrorScreen")
        assert "Connection refused" in screen_text(pilot.app)
        proxy.start()
        await pilot.press("r")
        screen = await images_ready(pilot)
        assert screen.total == 7
        assert "live" in screen_text(pilot.app).splitlines()[0]

    drive(make_app(url), scenario)


def test_lost_mid_session_is_shown_actions_fail_cleanly_and_it_recovers(pg_behind_proxy: tuple[str, TcpProxy]) -> None:
    from vdcmanage.catalog.db import close_catalog, open_catalog
    from vdcmanage.catalog.images import get_image, image_dict

    url, proxy = pg_behind_proxy
    proxy.start()

    def features() -> dict[str, bool]:
        open_catalog(url)
        try:
            return dict(image_dict(get_image("wmi-lucid0"))["features"])
        finally:
            close_catalog()

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        proxy.stop()
        await wait_until(pilot, lambda: "CATALOG UNREACHABLE" in screen_text(pilot.app), timeout=3)
        assert "wmi-lucid0" in screen_text(pilot.app)  # what was shown stays on screen
        await pilot.press("v")
        await wait_until(pilot, lambda: screen.status.has_class("-error"), timeout=5)
        assert screen.status.text.startswith("ERROR: virtio on for wmi-lucid0: Catalog error:")
        await pilot.press("down", "down")  # the keyboard still answers
        assert screen.table.cursor_row == 2
        proxy.start()
        await wait_until(pilot, lambda: pilot.app.catalog_status == "live", timeout=3)
        assert "CATALOG UNREACHABLE" not in screen_text(pilot.app)
        assert features() == {"virtio": False, "acpi": True}  # the refused toggle changed nothing

    drive(make_app(url), scenario)


def test_a_catalog_that_stops_answering_is_reported_and_the_keyboard_still_works(
    pg_behind_proxy: tuple[str, TcpProxy],
) -> None:
    """The network holds every byte (no reset, no refusal): queries hang, the dashboard must not."""
    from tui.app import NOT_ANSWERING_AFTER_S

    url, proxy = pg_behind_proxy
    proxy.start()

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        proxy.flowing.clear()
        timeout = NOT_ANSWERING_AFTER_S + 3
        await wait_until(pilot, lambda: "CATALOG NOT ANSWERING" in screen_text(pilot.app), timeout=timeout)
        await pilot.press("down", "down", "enter")
        assert screen.table.cursor_row == 2 and screen.query_one("#image-detail").display
        proxy.flowing.set()
        await wait_until(pilot, lambda: pilot.app.catalog_status == "live", timeout=5)

    drive(make_app(url), scenario)
