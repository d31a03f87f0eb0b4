"""What every view shares: the bars, a status line for results and errors, live refresh, and paging.

A view loads its data in worker threads only. It reloads when the app reports that a table it
shows changed (the change watcher, ~1 s), when it becomes the open view again, and after its
own actions; the row under the cursor stays selected across reloads, even when rows were
added above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from textual import on
from textual.screen import Screen
from textual.worker import get_current_worker

from tui.catalog import call_catalog, error_text
from tui.messages import ActionDone, CatalogChanged, RowsCounted, RowsFailed, RowsLoaded, RowsPage
from tui.plain import PlainStatic, plain
from tui.widgets.lazytable import LazyTable

if TYPE_CHECKING:
    from tui.app import VdcApp

R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class Window(Generic[S]):
    """What one load asks for: the pages around the cursor, and which row to keep selected."""

    generation: int
    search: S
    keep: str | None
    cursor: int
    pages: list[int]
    count_first: bool
    size: int
    key_of: Callable[[Any], str]


class StatusLine(PlainStatic):
    """The last result: ``✓ done …`` or ``ERROR: …`` (the word, not only the colour, says which), on one
    line whatever the message quotes (names, paths, remote errors are shown literally)."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; }
    StatusLine.-error { color: $error; text-style: bold; }
    """

    def show(self, message: str, *, error: bool = False) -> None:
        self.set_class(error, "-error")
        self.update(plain(f"ERROR: {message}" if error else message))

    @property
    def text(self) -> str:
        return str(self.render())


class DataScreen(Screen[None]):
    """A view of the catalog: reloads on changes of its ``TABLES`` and on becoming the open view."""

    TABLES: ClassVar[frozenset[str]] = frozenset()
    MODE: ClassVar[str] = ""

    @property
    def vdc(self) -> VdcApp:
        from tui.app import VdcApp

        assert isinstance(self.app, VdcApp)
        return self.app

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def reload(self) -> None:
        """Ask the catalog again for what this view shows (in a worker)."""

    def on_screen_resume(self) -> None:
        if self.vdc.catalog_ready:
            self.reload()

    def on_catalog_changed(self, message: CatalogChanged) -> None:
        if message.tables & self.TABLES and self.vdc.catalog_ready:
            self.reload()

    def run_catalog_action(self, summary: str, call: Callable[[], object]) -> None:
        """Run a catalog action in a worker; its result or refusal comes back as :class:`ActionDone`."""
        self.status.show(f"{summary} …")
        self.run_worker(partial(self._action_thread, summary, call), thread=True, exit_on_error=False)

    def _action_thread(self, summary: str, call: Callable[[], object]) -> None:
        try:
            call_catalog(call)
        except Exception as exc:
            self.post_message(ActionDone(summary, error_text(exc)))
        else:
            self.post_message(ActionDone(summary))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        self.show_result(message)

    def show_result(self, message: ActionDone) -> None:
        """Show what an action did, then the catalog as it is now; or why it was refused (which changed nothing,
        so the view stays as it is and the refusal stays readable)."""
        if message.error is None:
            self.status.show(f"✓ {message.summary}: done")
            self.reload()
        else:
            self.status.show(f"{message.summary}: {message.error}", error=True)


class PagedScreen(DataScreen, Generic[R, S]):
    """A view whose main table is a :class:`LazyTable` over one paged catalog query described by ``search``."""

    search: S

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self.total: int | None = None

    @property
    def table(self) -> LazyTable[R]:
        table: LazyTable[R] = self.query_one(LazyTable)
        return table

    # --- what a concrete view answers (in a worker thread) --------------------------------------

    def fetch_page(self, search: S, offset: int, limit: int) -> list[R]:
        raise NotImplementedError

    def fetch_count(self, search: S) -> int:
        raise NotImplementedError

    def fetch_position(self, search: S, key: str) -> int | None:
        raise NotImplementedError

    def counted(self, total: int | None) -> None:
        """The number of rows is known (or being counted): show it."""

    # --- loading --------------------------------------------------------------------------------

    def reload(self) -> None:
        """Reload around the selected row and keep it selected (live refresh, after an action)."""
        table = self.table
        selected = table.selected
        keep = table.key_of(selected) if selected is not None else None
        rows = set(table.visible_range()) | {table.cursor_row}
        pages = sorted({i // table.page_size for i in rows}) or [0]
        self._start_load(keep, table.cursor_row, pages, count_first=True)

    def restart(self) -> None:
        """A new search: show its first rows as soon as they are found, and count them after."""
        self._start_load(None, 0, [0], count_first=False)

    def _start_load(self, keep: str | None, cursor: int, pages: list[int], *, count_first: bool) -> None:
        self.generation += 1
        table = self.table
        window = Window(self.generation, self.search, keep, cursor, pages, count_first, table.page_size, table.key_of)
        self.run_worker(
            partial(self._load_thread, window),
            thread=True,
            group=f"load-{self.MODE}",
            exclusive=True,
            exit_on_error=False,
        )

    def _load_thread(self, window: Window[S]) -> None:
        try:
            call_catalog(self._load_window, window)
        except Exception as exc:
            self.post_message(RowsFailed(window.generation, error_text(exc)))

    def _load_window(self, w: Window[S]) -> None:
        total = self.fetch_count(w.search) if w.count_first else None
        loaded: dict[int, list[Any]] = {page: self.fetch_page(w.search, page * w.size, w.size) for page in w.pages}
        cursor = self._find_kept(w, loaded) if w.keep is not None else w.cursor
        if total is None and len(loaded) == 1 and len(loaded.get(0, ())) < w.size:
            total = len(loaded[0])  # the first page is not full: that is the whole answer
        self.post_message(RowsLoaded(w.generation, loaded, cursor, total))
        if total is None and not get_current_worker().is_cancelled:
            self.post_message(RowsCounted(w.generation, self.fetch_count(w.search)))

    def _find_kept(self, w: Window[S], loaded: dict[int, list[Any]]) -> int:
        assert w.keep is not None
        for page, rows in loaded.items():
            for i, row in enumerate(rows):
                if w.key_of(row) == w.keep:
                    return page * w.size + i
        position = self.fetch_position(w.search, w.keep)
        if position is None:
            return w.cursor  # it left the list (deleted, filtered out): stay on the same line
        page = position // w.size
        if page not in loaded:
            loaded[page] = self.fetch_page(w.search, page * w.size, w.size)
        return position

    def _page_thread(self, generation: int, search: S, page: int, size: int) -> None:
        try:
            rows = call_catalog(self.fetch_page, search, page * size, size)
        except Exception as exc:
            self.post_message(RowsFailed(generation, error_text(exc), page))
        else:
            self.post_message(RowsPage(generation, page, rows))

    @on(LazyTable.PagesWanted)
    def _pages_wanted(self, message: LazyTable.PagesWanted) -> None:
        if message.generation != self.generation or not self.vdc.catalog_ready:
            return
        for page in message.pages:
            job = partial(self._page_thread, message.generation, self.search, page, self.table.page_size)
            self.run_worker(job, thread=True, group=f"page-{self.MODE}", exit_on_error=False)

    def on_rows_loaded(self, message: RowsLoaded) -> None:
        if message.generation != self.generation:
            return
        table = self.table
        pages = message.pages
        provisional = max((p * table.page_size + len(rows) for p, rows in pages.items()), default=0)
        if message.total is not None:
            self.total = message.total
            table.load(message.generation, message.total, pages, message.cursor)
        else:
            self.total = None
            table.load(message.generation, provisional, pages, message.cursor)  # until the count comes
        self.counted(self.total)

    def on_rows_counted(self, message: RowsCounted) -> None:
        if message.generation != self.generation:
            return
        self.total = message.total
        self.table.set_total(message.generation, message.total)
        self.counted(message.total)

    def on_rows_page(self, message: RowsPage) -> None:
        self.table.add_page(message.generation, message.page, message.rows)

    def on_rows_failed(self, message: RowsFailed) -> None:
        if message.generation != self.generation:
            return
        if message.page is not None:
            self.table.forget_request(message.page)  # ask again on the next scroll
        self.status.show(message.error, error=True)
