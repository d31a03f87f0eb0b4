"""Tables at 80 columns: nothing cut without an ellipsis, and the column the rows are sorted by is shown."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, settled
from tests.tui.test_hosts_view import hosts_ready
from tui.widgets.lazytable import Column, fit_columns


def test_the_sort_column_stays_when_columns_are_dropped() -> None:
    columns = [Column("id", "ID", 10), Column("a", "A", 10, drop=1), Column("created", "Created", 16, drop=2)]
    assert [c.key for c, _ in fit_columns(columns, 30)] == ["id", "a"]
    assert [c.key for c, _ in fit_columns(columns, 30, keep="created")] == ["id", "created"]


def test_images_at_80_columns_show_the_created_column_they_are_sorted_by(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        header = screen_text(pilot.app).splitlines()[2]
        assert screen.search.sort == "created"
        assert header.split() == ["ID", "Name", "Account", "Arch", "Size", "State", "Created", "(UTC)▲"]
        assert "2024-05-01 02:00" in screen_text(pilot.app)  # wmi-lucid0, the oldest, first
        await pilot.press(*"sssssss")  # … virtual size, a column 80 columns leave out unless sorted by it
        await settled(pilot, screen)
        header = screen_text(pilot.app).splitlines()[2]
        assert screen.search.sort == "virtual_size" and "VSize▼" in header
        assert "Created" not in header

    drive(make_app(tui_catalog), scenario)


def test_hosts_and_storages_end_a_cut_cell_in_an_ellipsis_and_show_it_whole_when_wide(tui_catalog: str) -> None:
    from vdcmanage.catalog.models import BackupStorage

    long_path = "/srv/published/templates/of/the/cloud/for/every/tenant/and/every/region"
    BackupStorage.update(path=long_path).where(BackupStorage.id == "bkst-local01").execute()

    async def narrow(pilot: Any) -> None:
        await hosts_ready(pilot)
        lines = screen_text(pilot.app).splitlines()
        row = next(line for line in lines if line.startswith(" bkst-local01"))
        assert "/srv/published…" in row
        assert long_path not in row
        assert all(len(line) <= 80 for line in lines)
        header = next(line for line in lines if line.startswith(" ID            Name"))
        assert header.split() == ["ID", "Name", "Type", "Base", "URI", "Path", "Address"]  # every column there

    async def wide(pilot: Any) -> None:
        await hosts_ready(pilot)
        text = screen_text(pilot.app)
        assert long_path in text and "http://templates.example/vhd/" in text and "…" not in text.split("Backup")[1]

    drive(make_app(tui_catalog), narrow)
    drive(make_app(tui_catalog), wide, size=(200, 50))
