"""Catalog text with markup, terminal escapes and control characters, through every screen and table.

A host named ``[/]evil`` crashed the hosts view (its DataTable parsed cells as markup); an ESC or a
C1 CSI in a name reached the terminal raw. Every view, table, pane, dialog and status line must
show such text literally: markup as typed, control characters spelled out (``\\x1b``), and
nothing but plain characters in what is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.tui.conftest import drive, images_ready, make_app, screen_text, settled, wait_until
from tests.tui.data import HOSTILE_NAME, HOSTILE_TEXT, add_hostile_records, fill_catalog
from tui.hostcheck import HostCheckResult
from vdcmanage.textsafe import visible

SIZE = (200, 60)  # wide enough that the hostile names are not cut
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
MARKUP = "[/]evil [bold]x[link=https://e.example]y"  # shown as typed, never as markup
NAME_SHOWN = visible(HOSTILE_NAME)  # ...y\x1b[2J\x9b31m\x7f spelled out


@pytest.fixture
def hostile_catalog(sqlite_url: str) -> Iterator[str]:
    from vdcmanage.catalog.db import close_catalog, open_catalog

    open_catalog(sqlite_url)
    fill_catalog()
    add_hostile_records()
    yield sqlite_url
    close_catalog()


def hostile_check(host_id: str) -> HostCheckResult:
    """What a hostile XenServer could answer: names and an error holding markup and escapes."""
    return HostCheckResult(False, [("host name-label", HOSTILE_NAME), ("sr", HOSTILE_TEXT)], error=HOSTILE_TEXT)


def drawn(app: Any) -> str:
    """What is on screen now; asserts it holds no raw control character and no forged line."""
    text = screen_text(app)
    assert not RAW_CONTROL.search(text), repr(text)
    assert not any(line.lstrip().startswith("ERROR: forged") for line in text.splitlines()), text
    return text


def pane(pilot: Any, widget_id: str) -> str:
    """The whole text of a pane or dialog line (the screen wraps and cuts it)."""
    return str(pilot.app.screen.query_one(widget_id).content)


async def shows(pilot: Any, *expected: str) -> str:
    await wait_until(pilot, lambda: all(e in screen_text(pilot.app) for e in expected), what=f"{expected!r} on screen")
    return drawn(pilot.app)


def test_images_view_table_detail_and_dialogs(hostile_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await settled(pilot, screen)
        assert screen.table.selected["id"] == "wmi-evil0001"  # the newest: first row
        await shows(pilot, "wmi-evil0001", NAME_SHOWN)
        await pilot.press("enter")  # the detail pane
        await shows(pilot, "SHA256", "[link=https://e.example]y\\x1b[2J")
        detail = pane(pilot, "#image-detail-text").splitlines()
        assert detail[0] == f"wmi-evil0001  {NAME_SHOWN}"
        assert f"Source: file:///srv/{NAME_SHOWN}.raw" in detail
        assert detail[-2:] == [f"Description: {NAME_SHOWN}", "  ERROR: forged\\x1b]0;owned\\x07\tend"]
        await pilot.press("d")  # the delete confirmation names the image
        await shows(pilot, "Delete image wmi-evil0001")
        assert f"Delete image wmi-evil0001 “{NAME_SHOWN}”?" in pane(pilot, "#question")
        await pilot.press("n")
        await shows(pilot, "Delete of wmi-evil0001 cancelled")
        await pilot.press("e")  # the editors draw text as it is: the form holds it spelled out
        await wait_until(pilot, lambda: "Edit image wmi-evil0001" in screen_text(pilot.app), what="the edit form")
        drawn(pilot.app)
        from textual.widgets import Checkbox, Input, TextArea

        form = pilot.app.screen
        assert form.query_one("#display-name", Input).value == NAME_SHOWN
        assert form.query_one("#description", TextArea).text == f"{NAME_SHOWN}\nERROR: forged\\x1b]0;owned\\x07\tend"
        form.query_one("#public", Checkbox).value = True
        await pilot.press("ctrl+s")  # only what was changed is saved: name and description stay exact
        await shows(pilot, "✓ Saved is public of wmi-evil0001")
        from vdcmanage.catalog.models import Image

        saved = Image.get_by_id("wmi-evil0001")
        assert (saved.display_name, saved.description, saved.is_public) == (HOSTILE_NAME, HOSTILE_TEXT, True)
        screen.status.show(f"refused: {HOSTILE_TEXT}", error=True)  # what a refusal quoting a name shows
        text = await shows(pilot, "ERROR: refused: ")
        status = next(line for line in text.splitlines() if "ERROR: refused: " in line)
        assert status.strip() == f"ERROR: refused: {visible(HOSTILE_TEXT)}"  # one line, all of it

    drive(make_app(hostile_catalog), scenario, size=SIZE)


def test_jobs_view_table_detail_and_cancel_dialog(hostile_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
        await pilot.press("2")
        await shows(pilot, "job-evil0001", MARKUP)
        from tui.screens.jobs import JobsScreen

        screen = pilot.app.screen
        assert isinstance(screen, JobsScreen)
        await settled(pilot, screen)
        screen.table.cursor_row = screen.table.find("job-evil0001")
        await pilot.press("c")  # the cancel confirmation names the job's image
        await shows(pilot, "Cancel job job-evil0001")
        assert f"Cancel job job-evil0001 ({NAME_SHOWN})?" in pane(pilot, "#question")
        await pilot.press("n")
        await pilot.press("enter")  # the job's detail: parameters, error, step error, log
        await shows(pilot, "lines, oldest first)", "ERROR: forged")
        detail = pane(pilot, "#job-detail-text").splitlines()
        assert f"Error: {visible(HOSTILE_TEXT)}" in detail
        assert f"File: /srv/images/{NAME_SHOWN}" in [line.strip() for line in detail]
        assert f"      {visible(HOSTILE_TEXT)}" in detail  # the failed step's error
        assert detail[-1].endswith(f"error {visible(HOSTILE_TEXT)}")  # the log line

    drive(make_app(hostile_catalog), scenario, size=SIZE)


def test_import_dialog_lists_hostile_names_literally(hostile_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
        await pilot.press("2")
        await shows(pilot, "job-evil0001")
        await pilot.press("i")
        await wait_until(pilot, lambda: "choose a host" in screen_text(pilot.app), what="the choices")
        from textual.widgets import Select

        for select_id, record_id in (("#host", "hn-evil0001"), ("#account", "a-evil0001"), ("#storage", "bkst-evil0001")):
            select = pilot.app.screen.query_one(select_id, Select)
            select.focus()
            await pilot.press("enter")  # open the list of choices (a long name wraps there)
            await shows(pilot, NAME_SHOWN, f"({record_id})")
            await pilot.press("escape")
        select = pilot.app.screen.query_one("#host", Select)
        select.value = "hn-evil0001"  # chosen: the closed select shows the name literally too (its first line)
        await shows(pilot, "Host            [/]evil ")

    drive(make_app(hostile_catalog), scenario, size=SIZE)


def test_hosts_view_tables_panes_and_a_hostile_check(hostile_catalog: str) -> None:
    """The crash of the issue: a host and a backup storage named with markup."""

    async def scenario(pilot: Any) -> None:
        from tui.screens.hosts import HostsScreen

        await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
        await pilot.press("3")
        await wait_until(
            pilot, lambda: isinstance(pilot.app.screen, HostsScreen) and pilot.app.screen.host_table.row_count == 3,
            what="the hosts view",
        )  # fmt: skip
        screen = pilot.app.screen
        text = await shows(pilot, "hn-evil0001", "bkst-evil0001")
        assert text.count(MARKUP) >= 2  # in both tables
        screen.host_table.move_cursor(row=screen.host_table.get_row_index("hn-evil0001"))
        await wait_until(pilot, lambda: pane(pilot, "#check-result").startswith("hn-evil0001"), what="its pane")
        detail = pane(pilot, "#check-result").splitlines()
        assert detail[0] == f"hn-evil0001  {NAME_SHOWN}"
        assert f"Address: {NAME_SHOWN}.example  port 22  user root" in detail
        assert f"Key file: /keys/{NAME_SHOWN}" in detail
        drawn(pilot.app)
        await pilot.press("c")
        text = await shows(pilot, "host check FAILED")
        detail = pane(pilot, "#check-result").splitlines()
        assert f"ERROR: {visible(HOSTILE_TEXT)}" in detail
        assert f"  host name-label  {NAME_SHOWN}" in detail
        assert f"ERROR: host check hn-evil0001: {visible(HOSTILE_TEXT)}" in text  # the status line
        await pilot.press("tab")  # the storages table: its pane
        storages = screen.query_one("#storages")
        storages.move_cursor(row=storages.get_row_index("bkst-evil0001"))
        await wait_until(pilot, lambda: pane(pilot, "#check-result").startswith("bkst-evil0001"), what="its pane")
        drawn(pilot.app)
        detail = pane(pilot, "#check-result").splitlines()
        assert detail[0] == f"bkst-evil0001  {NAME_SHOWN}"
        assert f"Base URI: http://{NAME_SHOWN}/" in detail and f"Path: /var/www/{NAME_SHOWN}" in detail

    drive(make_app(hostile_catalog, check_host=hostile_check), scenario, size=SIZE)


def test_catalog_error_screen_shows_the_error_literally(hostile_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        from tui.screens.help import CatalogErrorScreen

        await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
        await pilot.app.push_screen(CatalogErrorScreen(HOSTILE_TEXT))
        await shows(pilot, "The catalog cannot be opened")
        assert pane(pilot, "#catalog-error-text").startswith(f"ERROR: {visible(HOSTILE_TEXT)}\n")
        pilot.app.screen.query_one("#catalog-error-text").content = HOSTILE_NAME  # the setter is guarded too
        await shows(pilot, NAME_SHOWN)

    drive(make_app(hostile_catalog), scenario, size=SIZE)


def test_narrow_terminal_cuts_hostile_names_without_breaking(hostile_catalog: str) -> None:
    """At 80x24 names are cut to their columns: a cut never leaves half an escape to the terminal."""

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await settled(pilot, screen)
        await shows(pilot, "wmi-evil0001", "[/]evil")
        for key in ("2", "3"):
            await pilot.press(key)
            await shows(pilot, "evil0001")

    drive(make_app(hostile_catalog), scenario)


def test_shown_keeps_styles_and_spells_controls() -> None:
    from rich.text import Text

    from tui.plain import plain, shown

    text = Text("a\x1bb", style="italic")
    text.append("\x9b", style="bold")
    text.append("c\nd\te")
    result = shown(text)
    assert result.plain == "a\\x1bb\\x9bc\nd\te"
    assert result.style == "italic"
    bold = [s for s in result.spans if s.style == "bold"]
    assert [(result.plain[s.start : s.end]) for s in bold] == ["\\x9b"]
    assert shown("[bold]x\x1b").plain == "[bold]x\\x1b" and not shown("[bold]x").spans
    assert plain(HOSTILE_TEXT).plain == visible(HOSTILE_TEXT) and plain(None).plain == ""


def test_widgets_get_catalog_text_only_through_the_plain_helpers() -> None:
    """``Static``/``Label`` parse a ``str`` as markup: in the dashboard they only ever get fixed text;
    whatever comes from the catalog goes into ``PlainStatic``, ``plain()`` cells and options."""
    import ast
    from pathlib import Path

    def fixed(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return True
        return isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Text" and all(
            isinstance(arg, ast.Constant) for arg in node.args
        )

    tui = Path(__file__).resolve().parents[2] / "tui"
    offending = []
    for module in sorted(tui.rglob("*.py")):
        source = module.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            if getattr(node.func, "id", "") in ("Static", "Label") and node.args and not fixed(node.args[0]):
                offending.append((module.name, ast.get_source_segment(source, node)))
            if getattr(node.func, "attr", "") in ("add_row", "update_cell"):
                cells = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
                if not all("plain(" in (ast.get_source_segment(source, c) or "") for c in cells[-1:]):
                    offending.append((module.name, ast.get_source_segment(source, node)))
    assert offending == []
