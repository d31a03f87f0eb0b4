"""The message log (``m``): every status message, notification, error and job event of the session, whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen

from tui.log import LogEntry
from tui.plain import PlainStatic
from tui.widgets.bars import KeyBar, TopBar

if TYPE_CHECKING:
    from tui.app import VdcApp

LEVEL_WORDS = {"info": "     ", "error": "ERROR", "job": "job  "}


def entry_text(entry: LogEntry) -> Text:
    """``12:00:03 ERROR cancel job-…: why``; errors in bold too, so the word is not the only mark."""
    text = Text(f"{entry.at} {LEVEL_WORDS.get(entry.level, entry.level)} ", style="bold")
    text.append(entry.text, style="bold" if entry.level == "error" else "")
    text.append("\n")
    return text


class MessagesScreen(Screen[None]):
    """The log, oldest first, kept at its newest line while new ones arrive (unless scrolled up)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,m,q", "back", "Back", key_display="esc"),
        Binding("home,g", "top", "First", show=False),
        Binding("end,G", "bottom", "Last", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield TopBar()
        with VerticalScroll(id="messages"):
            yield PlainStatic("", id="messages-text")
        yield PlainStatic(Text("Times UTC · ↑↓ PgUp PgDn scroll", style="dim"), id="messages-hint")
        yield KeyBar()

    @property
    def vdc(self) -> VdcApp:
        from tui.app import VdcApp

        assert isinstance(self.app, VdcApp)
        return self.app

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#messages"))
        self.show_entries()

    def show_entries(self) -> None:
        pane = self.query_one("#messages", VerticalScroll)
        at_end = pane.scroll_y >= pane.max_scroll_y
        entries = self.vdc.messages
        text = Text()
        for entry in entries:
            text.append_text(entry_text(entry))
        if not entries:
            text = Text("No messages yet in this session.")
        self.query_one("#messages-text", PlainStatic).update(text)
        if at_end:
            self.call_after_refresh(pane.scroll_end, animate=False)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_top(self) -> None:
        self.query_one("#messages", VerticalScroll).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one("#messages", VerticalScroll).scroll_end(animate=False)
