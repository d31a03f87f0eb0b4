"""The help screen (every key of every view, read from the bindings themselves) and the catalog error screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.plain import PlainStatic
from tui.widgets.bars import KeyBar, TopBar
from vdcmanage.textsafe import visible

if TYPE_CHECKING:
    from tui.app import VdcApp

ABOUT = (
    "Views show the catalog live: what the CLI, a worker or another dashboard changes appears "
    "within about 2 seconds. Times are UTC. Nothing is kept in the dashboard but an open form: "
    "a dropped session loses nothing."
)


def key_names(binding: Binding) -> str:
    names = []
    for key in binding.key.split(","):
        key = key.strip()
        names.append({"slash": "/", "question_mark": "?", "enter": "Enter", "escape": "Esc"}.get(key, key))
    return ", ".join(names)


def binding_lines(title: str, bindings: list[BindingType]) -> Text:
    text = Text(f"{title}\n", style="bold underline")
    for binding in bindings:
        if not isinstance(binding, Binding):
            binding = Binding(*binding)
        text.append(f"  {key_names(binding):<26}", style="bold")
        text.append(f"{binding.description or binding.action}\n")
    return text


def all_bindings() -> list[tuple[str, list[BindingType]]]:
    from tui.app import VdcApp
    from tui.screens.dialogs import ConfirmDialog, FormDialog
    from tui.screens.hosts import HostsScreen
    from tui.screens.images import ImagesScreen
    from tui.screens.jobs import JobDetailScreen, JobsScreen
    from tui.widgets.lazytable import LazyTable

    return [
        ("Everywhere", VdcApp.BINDINGS),
        ("Moving in a table", LazyTable.BINDINGS),
        ("1 Images", ImagesScreen.BINDINGS),
        ("2 Jobs", JobsScreen.BINDINGS),
        ("Job detail", JobDetailScreen.BINDINGS),
        ("3 Hosts and backup storages", HostsScreen.BINDINGS),
        ("Forms", FormDialog.BINDINGS),
        ("Confirmations", ConfirmDialog.BINDINGS),
    ]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close", key_display="esc")]

    def compose(self) -> ComposeResult:
        app: VdcApp = self.app  # type: ignore[assignment]
        text = Text()
        text.append("vdc-manage dashboard — keys\n\n", style="bold")
        text.append(f"Catalog: {visible(app.catalog_url)}\n{ABOUT}\n\n")
        for title, bindings in all_bindings():
            text.append_text(binding_lines(title, bindings))
            text.append("\n")
        with VerticalScroll(id="help", classes="dialog"):
            yield PlainStatic(text)
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#help"))

    def action_close(self) -> None:
        self.dismiss(None)


class CatalogErrorScreen(Screen[None]):
    """The catalog could not be opened: say why and how to fix it; retry without restarting."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        yield TopBar()
        with Vertical(id="catalog-error", classes="dialog"):
            yield Static(Text("The catalog cannot be opened", style="bold"))
            yield PlainStatic(self._message(), id="catalog-error-text")
        yield KeyBar()

    def _message(self) -> Text:
        app: VdcApp = self.app  # type: ignore[assignment]
        return Text(
            f"ERROR: {visible(self.error)}\n\nCatalog: {visible(app.catalog_url)}\n"
            "It comes from --db, then $VDC_MANAGE_DB, then db= in the config file.\n"
            "Press r to try again once it is reachable."
        )

    def show(self, error: str) -> None:
        self.error = error
        self.query_one("#catalog-error-text", PlainStatic).update(self._message())

    def action_retry(self) -> None:
        app: VdcApp = self.app  # type: ignore[assignment]
        self.query_one("#catalog-error-text", PlainStatic).update(Text("Connecting …"))
        app.retry_open()
