"""A table that shows ``total`` rows while holding only the pages on screen (the Line API).

DataTable builds every row up front, which for 100,000 images costs seconds and hundreds of MiB.
This widget knows only how many rows there are and renders each screen line on demand from a
small page cache; rows it does not have yet show as ``…`` and are asked for with
:class:`LazyTable.PagesWanted`, which the screen answers from a worker. Columns that do not fit
the width are left out, least important first, so the table stays legible at 80 columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vdcmanage.textsafe import visible

R = TypeVar("R")

PAGE_SIZE = 100
MAX_PAGES = 40  # pages kept in memory (4,000 rows); the farthest from the viewport go first
GAP = 1  # blank cells between columns


@dataclass(frozen=True)
class Column:
    """A column: ``width`` cells (the minimum, for the one ``flex`` column that takes what is left).

    ``drop`` orders what goes when the table is too narrow: the highest first, 0 never.
    """

    key: str
    label: str
    width: int
    flex: bool = False
    align: str = "left"
    drop: int = 0


def fit_columns(columns: list[Column], width: int) -> list[tuple[Column, int]]:
    """The columns that fit in ``width`` cells and the width each gets (the flex one takes the rest)."""
    shown = list(columns)
    while True:
        fixed = sum(c.width for c in shown) + GAP * (len(shown) - 1)
        droppable = [c for c in shown if c.drop]
        if fixed <= width or not droppable:
            break
        shown.remove(max(droppable, key=lambda c: c.drop))
    spare = max(0, width - fixed)
    return [(c, c.width + spare if c.flex else c.width) for c in shown]


def fit_text(text: str, width: int, align: str) -> str:
    """Pad or cut ``text`` to exactly ``width`` cells; a cut shows ``…`` so nothing looks complete that is not."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    pad = width - cell_len(text)
    return " " * pad + text if align == "right" else text + " " * pad


class LazyTable(ScrollView, Generic[R], can_focus=True):
    """Rows ``0 .. total-1`` of one query, fetched a page at a time, with a cursor row."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "lazy-table--header",
        "lazy-table--cursor",
        "lazy-table--cursor-blurred",
        "lazy-table--pending",
        "lazy-table--failed",
        "lazy-table--warning",
        "lazy-table--muted",
        "lazy-table--empty",
    }

    DEFAULT_CSS = """
    LazyTable {
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        height: 1fr;
    }
    LazyTable > .lazy-table--header { text-style: bold underline; }
    LazyTable > .lazy-table--cursor { text-style: reverse bold; }
    LazyTable > .lazy-table--cursor-blurred { text-style: underline; }
    LazyTable > .lazy-table--pending { text-style: dim; }
    LazyTable > .lazy-table--muted { text-style: dim; }
    LazyTable > .lazy-table--failed { color: $error; text-style: bold; }
    LazyTable > .lazy-table--warning { color: $warning; text-style: bold; }
    LazyTable > .lazy-table--empty { text-style: italic; }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class Highlighted(Message):
        """The cursor is on another row, or the row under it was reloaded (``row`` None while loading)."""

        def __init__(self, table: LazyTable[object], index: int, row: object | None) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.row = row

        @property
        def control(self) -> LazyTable[object]:
            return self.table

    class PagesWanted(Message):
        """Pages of the current generation that are on (or next to) the screen and not loaded."""

        def __init__(self, table: LazyTable[object], generation: int, pages: list[int]) -> None:
            super().__init__()
            self.table = table
            self.generation = generation
            self.pages = pages

        @property
        def control(self) -> LazyTable[object]:
            return self.table

    def __init__(
        self,
        columns: list[Column],
        cell_text: Callable[[R, str], str],
        *,
        key_of: Callable[[R], str],
        row_class: Callable[[R], str | None] | None = None,
        empty_text: str = "Nothing to show",
        page_size: int = PAGE_SIZE,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = columns
        self.cell_text = cell_text
        self.key_of = key_of
        self.row_class = row_class
        self.empty_text = empty_text
        self.page_size = page_size
        self.generation = 0
        self.total = 0
        self.loaded = False  # nothing to show until the first load
        self.sort_key: str | None = None
        self.sort_descending = False
        self._pages: dict[int, list[R]] = {}
        self._requested: set[int] = set()
        self._fit_cache: tuple[int, list[tuple[Column, int]]] | None = None

    # --- data in -------------------------------------------------------------------------------

    def load(self, generation: int, total: int, pages: dict[int, list[R]], cursor: int) -> None:
        """Replace everything with a fresh answer; the cursor row keeps its line on screen where it can."""
        line_on_screen = self.cursor_row - int(self.scroll_y)
        self.generation = generation
        self.total = max(total, 0)
        self.loaded = True
        self._pages = dict(pages)
        self._requested = set(pages)
        self._update_virtual_size()
        cursor = self._clamp(cursor)
        self.scroll_to(y=max(0, cursor - max(0, line_on_screen)), animate=False, force=True)
        self.set_reactive(LazyTable.cursor_row, cursor)
        self._scroll_cursor_into_view()
        self.refresh()
        self._announce()
        self.call_after_refresh(self._want_pages)

    def add_page(self, generation: int, page: int, rows: list[R]) -> None:
        if generation != self.generation:
            return  # an answer to a question nobody asks any more
        self._pages[page] = rows
        self._evict()
        self.refresh()
        if self.cursor_row // self.page_size == page:
            self._announce()

    def set_total(self, generation: int, total: int) -> None:
        if generation != self.generation:
            return
        self.total = max(total, 0)
        self._update_virtual_size()
        if self.cursor_row >= self.total:
            self.cursor_row = self._clamp(self.cursor_row)
        self.refresh()
        self.call_after_refresh(self._want_pages)

    def forget_request(self, page: int) -> None:
        """A page could not be loaded: let the next scroll ask for it again."""
        self._requested.discard(page)

    # --- data out ------------------------------------------------------------------------------

    def row_at(self, index: int) -> R | None:
        page = self._pages.get(index // self.page_size)
        offset = index % self.page_size
        if page is None or offset >= len(page):
            return None
        return page[offset]

    @property
    def selected(self) -> R | None:
        if not 0 <= self.cursor_row < self.total:
            return None
        return self.row_at(self.cursor_row)

    def loaded_rows(self) -> list[tuple[int, R]]:
        pages = sorted(self._pages.items())
        return [(page * self.page_size + i, row) for page, rows in pages for i, row in enumerate(rows)]

    def find(self, key: str) -> int | None:
        for index, row in self.loaded_rows():
            if self.key_of(row) == key:
                return index
        return None

    @property
    def viewport_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def visible_range(self) -> range:
        top = int(self.scroll_y)
        return range(top, min(self.total, top + self.viewport_rows))

    # --- cursor --------------------------------------------------------------------------------

    def _clamp(self, index: int) -> int:
        return max(0, min(index, self.total - 1)) if self.total else 0

    def watch_cursor_row(self, old: int, new: int) -> None:
        clamped = self._clamp(new)
        if clamped != new:
            self.cursor_row = clamped
            return
        self._scroll_cursor_into_view()
        self.refresh()
        self._announce()

    def _scroll_cursor_into_view(self) -> None:
        top = int(self.scroll_y)
        rows = self.viewport_rows
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, force=True)
        elif self.cursor_row >= top + rows:
            self.scroll_to(y=self.cursor_row - rows + 1, animate=False, force=True)

    def _announce(self) -> None:
        self.post_message(self.Highlighted(self, self.cursor_row, self.selected))  # type: ignore[arg-type]

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self.viewport_rows

    def action_page_down(self) -> None:
        self.cursor_row += self.viewport_rows

    def action_first(self) -> None:
        self.cursor_row = 0

    def action_last(self) -> None:
        self.cursor_row = max(0, self.total - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.cursor_row = int(self.scroll_y) + event.y - 1

    # --- scrolling and page requests -----------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.call_after_refresh(self._want_pages)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_cache = None
        self._update_virtual_size()
        self._scroll_cursor_into_view()
        self.call_after_refresh(self._want_pages)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.total + 1)

    def _wanted_range(self) -> range:
        """The screen and one screen either side: what scrolling is about to show."""
        rows = self.viewport_rows
        top = int(self.scroll_y)
        return range(max(0, top - rows), min(self.total, top + 2 * rows))

    def _want_pages(self) -> None:
        wanted = self._wanted_range()
        if not wanted or not self.loaded:
            return
        first, last = wanted.start // self.page_size, (wanted.stop - 1) // self.page_size
        missing = [p for p in range(first, last + 1) if p not in self._pages and p not in self._requested]
        if missing:
            self._requested.update(missing)
            self.post_message(self.PagesWanted(self, self.generation, missing))  # type: ignore[arg-type]

    def _evict(self) -> None:
        if len(self._pages) <= MAX_PAGES:
            return
        here = int(self.scroll_y) // self.page_size
        for page in sorted(self._pages, key=lambda p: abs(p - here), reverse=True)[: len(self._pages) - MAX_PAGES]:
            del self._pages[page]
            self._requested.discard(page)

    # --- rendering -----------------------------------------------------------------------------

    def _fitted(self, width: int) -> list[tuple[Column, int]]:
        if self._fit_cache is None or self._fit_cache[0] != width:
            self._fit_cache = (width, fit_columns(self.columns, width))
        return self._fit_cache[1]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base)
        index = int(self.scroll_y) + y - 1
        if not self.loaded or index >= self.total:
            if y == 1 and self.loaded and self.total == 0:
                style = base + self.get_component_rich_style("lazy-table--empty")
                return Strip([Segment(fit_text(self.empty_text, width, "left"), style)])
            return Strip.blank(width, base)
        row = self.row_at(index)
        style = base + self._row_style(row, index)
        if row is None:
            return Strip([Segment(fit_text("…", width, "left"), style)])
        # Segments go to the terminal as they are: catalog text must not carry control characters.
        cells = [fit_text(visible(self.cell_text(row, col.key)), w, col.align) for col, w in self._fitted(width)]
        return Strip([Segment(fit_text((" " * GAP).join(cells), width, "left"), style)])

    def _row_style(self, row: R | None, index: int) -> Style:
        style = Style()
        if row is None:
            style += self.get_component_rich_style("lazy-table--pending")
        elif self.row_class is not None and (name := self.row_class(row)):
            style += self.get_component_rich_style(name)
        if index == self.cursor_row:
            cursor = "lazy-table--cursor" if self.has_focus else "lazy-table--cursor-blurred"
            style += self.get_component_rich_style(cursor)
        return style

    def _header(self, width: int, base: Style) -> Strip:
        cells = []
        for col, w in self._fitted(width):
            label = col.label
            if col.key == self.sort_key:
                label = f"{label}{'▼' if self.sort_descending else '▲'}"
            cells.append(fit_text(label, w, col.align))
        style = base + self.get_component_rich_style("lazy-table--header")
        return Strip([Segment(fit_text((" " * GAP).join(cells), width, "left"), style)])

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
