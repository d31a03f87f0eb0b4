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


KEY_NAMES = {"slash": "/", "question_mark": "?", "enter": "Enter", "escape": "Esc"}
SECTION_OF = {  # what the help calls the screen or widget whose keys it lists
    "ImagesScreen": "1 Images",
    "JobsScreen": "2 Jobs",
    "JobDetailScreen": "Job detail",
    "HostsScreen": "3 Hosts and backup storages",
    "MessagesScreen": "Messages",
    "ConfirmDialog": "Confirmations",
    "EditImageDialog": "Forms",
    "ImportDialog": "Forms",
    "LazyTable": "Moving in a table",
    "DataTable": "Moving in a table",
    "Input": "Typing in a field",
    "VdcApp": "Everywhere",
}


def key_names(binding: Binding) -> str:
    return ", ".join(KEY_NAMES.get(key.strip(), key.strip()) for key in binding.key.split(","))


def binding_lines(title: str, bindings: list[BindingType]) -> Text:
    text = Text(f"{title}\n", style="bold underline")
    for binding in bindings:
        if not isinstance(binding, Binding):
            binding = Binding(*binding)
        text.append(f"  {key_names(binding):<26}", style="bold")
        text.append(f"{binding.description or binding.action.replace('_', ' ')}\n")
    return text


def screen_bindings(screen: Screen[object]) -> list[tuple[str, list[BindingType]]]:
    """Every key that works on ``screen`` now (its focused widget's, its own, the app's), grouped by whose
    it is, each binding once with all its keys: what ``active_bindings`` holds one key at a time."""
    groups: dict[str, dict[tuple[str, str], list[str]]] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system:
            continue
        name = type(active.node).__name__
        section = SECTION_OF.get(name, name)
        keys = groups.setdefault(section, {}).setdefault((binding.action, binding.description), [])
        if key not in keys:
            keys.append(key)
    return [
        (section, [Binding(",".join(keys), action, description) for (action, description), keys in entries.items()])
        for section, entries in groups.items()
    ]


def all_bindings() -> list[tuple[str, list[BindingType]]]:
    from tui.app import VdcApp
    from tui.screens.dialogs import ConfirmDialog, FormDialog
    from tui.screens.hosts import HostsScreen
    from tui.screens.images import ImagesScreen
    from tui.screens.jobs import JobDetailScreen, JobsScreen
    from tui.screens.messages import MessagesScreen
    from tui.widgets.lazytable import LazyTable

    return [
        ("Everywhere", VdcApp.BINDINGS),
        ("Moving in a table", LazyTable.BINDINGS),
        ("1 Images", ImagesScreen.BINDINGS),
        ("2 Jobs", JobsScreen.BINDINGS),
        ("Job detail", JobDetailScreen.BINDINGS),
        ("Messages", MessagesScreen.BINDINGS),
        ("3 Hosts and backup storages", HostsScreen.BINDINGS),
        ("Forms", FormDialog.BINDINGS),
        ("Confirmations", ConfirmDialog.BINDINGS),
    ]


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened on (every one that works there now), then those of the other views."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close", key_display="esc")]

    def __init__(self, on_screen: Screen[object] | None = None) -> None:
        super().__init__()
        # read now: once this screen is open, the keys of the one below are no longer active
        self.here = screen_bindings(on_screen) if on_screen is not None else []
        self.here_name = SECTION_OF.get(type(on_screen).__name__, "") if on_screen is not None else ""

    def compose(self) -> ComposeResult:
        app: VdcApp = self.app  # type: ignore[assignment]
        text = Text()
        text.append("vdc-manage dashboard — keys\n\n", style="bold")
        if self.here:
            name = self.here_name
            here = sorted(self.here, key=lambda section: (section[0] != name, section[0] == "Everywhere"))
            text.append(f"Keys here ({name})\n\n", style="bold")
            for title, bindings in here:
                text.append_text(binding_lines(title, bindings))
                text.append("\n")
            text.append("Every view\n\n", style="bold")
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
