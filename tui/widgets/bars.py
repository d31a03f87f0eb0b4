"""The bars around every screen: which view is open and how the catalog is (top), and every key (bottom).

Textual's Footer is one line that scrolls sideways when the keys do not fit; over SSH at 80x24
nobody can see the keys that scrolled away. The key bar here wraps onto a second line instead,
so every binding of the focused screen is always on screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from vdcmanage.textsafe import visible

if TYPE_CHECKING:
    from textual.screen import Screen

VIEWS = (("1", "images", "Images"), ("2", "jobs", "Jobs"), ("3", "hosts", "Hosts"))


class TopBar(Widget):
    """``vdc-manage  1 Images  2 Jobs  3 Hosts     catalog.db  live``; the open view in reverse."""

    DEFAULT_CSS = """
    TopBar { height: 1; background: $panel; }
    TopBar > .topbar--current { text-style: reverse bold; }
    TopBar > .topbar--problem { color: $error; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"topbar--current", "topbar--problem"}

    current: reactive[str] = reactive("images")
    catalog: reactive[str] = reactive("")
    status: reactive[str] = reactive("connecting")  # connecting | live | unreachable

    def on_mount(self) -> None:
        app = self.app
        self.catalog = visible(getattr(app, "catalog_name", ""))
        self.current = str(getattr(self.screen, "MODE", "") or getattr(app, "current_mode", ""))
        if hasattr(app, "catalog_status"):
            self.watch(app, "catalog_status", self._catalog_status)

    def _catalog_status(self, status: str) -> None:
        self.status = status

    def render(self) -> Text:
        text = Text(" vdc-manage ", style="bold")
        for key, mode, label in VIEWS:
            style = self.get_component_rich_style("topbar--current") if mode == self.current else ""
            text.append(f" {key} {label} ", style=style)
        right = Text(f"{self.catalog}  ")
        if self.status in ("unreachable", "not answering"):
            right.append(f"CATALOG {self.status.upper()}", style=self.get_component_rich_style("topbar--problem"))
        else:
            right.append(self.status)
        right.append(" ")
        spare = self.size.width - text.cell_len - right.cell_len
        if spare < 1:  # narrow: the catalog's state matters more than its name
            right = Text(" ") + right[len(self.catalog) + 2 :]
            spare = max(1, self.size.width - text.cell_len - right.cell_len)
        return text + Text(" " * spare) + right


class KeyBar(Widget):
    """Every shown binding of the current screen and focused widget, wrapped over as many lines as needed.

    Items are laid out here rather than by Rich's word wrap, which would split a key from its label.
    """

    DEFAULT_CSS = """
    KeyBar { height: auto; max-height: 3; background: $panel; dock: bottom; }
    KeyBar > .keybar--key { text-style: bold reverse; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key"}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh(layout=True)

    def shown_bindings(self) -> list[tuple[str, Binding, bool]]:
        seen: set[str] = set()
        shown = []
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                shown.append((self.app.get_key_display(binding), binding, enabled))
        return shown

    def _items(self) -> list[Text]:
        key_style = self.get_component_rich_style("keybar--key")
        items = []
        for key, binding, enabled in self.shown_bindings():
            item = Text.assemble((f" {key} ", key_style), f" {binding.description}")
            if not enabled:
                item.stylize("dim")
            items.append(item)
        return items

    def _lines(self, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text()
        for item in self._items():
            if line.cell_len and line.cell_len + 2 + item.cell_len > width:
                lines.append(line)
                line = Text()
            if line.cell_len:
                line.append("  ")
            line.append_text(item)
        lines.append(line)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.size.width))
