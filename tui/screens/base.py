"""What every view shares: the bars, a status line for results and errors, live refresh, and paging.

A view loads its data in worker threads only. It reloads when the app reports that a table it
shows changed (the change watcher, ~1 s), when it becomes the open view again, and after its
own actions; the row under the cursor stays selected across reloads, even when rows were
added above it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from textual import on
from textual.screen import Screen
from textual.worker import get_current_worker

from tui.catalog import call_catalog, error_text
from tui.messages import ActionDone, CatalogChanged, ImageOfJob, RowsCounted, RowsFailed, RowsLoaded, RowsPage
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


ADD_HOST_COMMAND = "vdc-manage host add NAME --address ADDRESS --accept-new-host-key"
STATUS_SHOWN_S = 15.0  # a result stays this long on the status line; the message log (m) keeps it


class StatusLine(PlainStatic):
    """The last result: ``✓ done …`` or ``ERROR: …`` (the word, not only the colour, says which), on one
    line whatever the message quotes (names, paths, remote errors are shown literally). A longer message
    ends in ``…``; every message goes to the session's log whole. A result clears after a while or when
    the cursor moves to another row; ``… `` (work under way) stays until its result replaces it."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    StatusLine.-error { color: $error; text-style: bold; }
    """

    def __init__(self, content: str = "", **kwargs: object) -> None:
        super().__init__(content, **kwargs)
        self.busy = False
        self.shown_at = 0.0  # monotonic
        self.from_job = False  # a job event, not the answer to something the operator did

    def show(self, message: str, *, error: bool = False, from_job: bool = False) -> None:
        text = f"ERROR: {message}" if error else message
        self.set_class(error, "-error")
        self.update(plain(text))
        self.busy = message.endswith("…")
        self.from_job = from_job
        self.shown_at = time.monotonic()
        record_message = getattr(self.app, "record", None)
        if record_message is not None:
            record_message(text, "error" if error else "job" if from_job else "info")
        if not self.busy:
            self.clear_timer(STATUS_SHOWN_S)

    def clear_timer(self, seconds: float) -> None:
        self.set_timer(seconds, partial(self._expire, self.text))

    def _expire(self, shown: str) -> None:
        if self.text == shown:
            self.clear()

    def clear(self) -> None:
        """The message no longer applies (it stays in the log)."""
        if not self.busy:
            self.set_class(False, "-error")
            self.update("")

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

    @on(LazyTable.Moved)
    def _status_follows_cursor(self, message: LazyTable.Moved) -> None:
        """A message about the row that was selected does not apply to another one (one shown after the move,
        by a key typed right after it, does)."""
        if self.status.shown_at < message.at:
            self.status.clear()

    def on_screen_resume(self) -> None:
        if self.vdc.catalog_ready:
            self.reload()

    def on_catalog_changed(self, message: CatalogChanged) -> None:
        if message.tables & self.TABLES and self.vdc.catalog_ready:
            self.reload()

    # --- going to related records, copying ids ---------------------------------------------------

    def copy_id(self, value: str | None, what: str) -> None:
        """``y``: the id to the terminal's clipboard with OSC 52, which travels through SSH and tmux."""
        if value is None:
            self.status.show(f"No {what} selected", error=True)
            return
        self.app.copy_to_clipboard(value)
        self.status.show(f"Copied {value} (sent to the terminal's clipboard with OSC 52)")

    def say_no_host(self, action: str) -> None:
        """``action`` needs a host and none is defined: say so (status line and log), and offer the command
        that adds one (the dashboard does not: a host's key and login are set up on the command line)."""
        from tui.screens.dialogs import ConfirmDialog

        self.status.show(f"Cannot {action}: no host is defined. Add one with: {ADD_HOST_COMMAND}", error=True)

        def answered(copy: bool | None) -> None:
            if copy:
                self.app.copy_to_clipboard(ADD_HOST_COMMAND)
                self.status.show(f"Copied {ADD_HOST_COMMAND} (sent to the terminal's clipboard with OSC 52)")

        question = (
            f"There is no host to {action} on. Add one on the command line, then come back:\n\n"
            f"  {ADD_HOST_COMMAND}\n\n(add --sr-uuid UUID to choose its SR; default: the pool's default SR)"
        )
        self.app.push_screen(ConfirmDialog("No host defined", question, "Copy command", "Close"), answered)

    def go_to_job(self, job_id: str) -> None:
        from tui.screens.jobs import JobDetailScreen

        self.app.push_screen(JobDetailScreen(job_id))

    def go_to_image_of(self, job_id: str) -> None:
        """``g`` on a job: find its image in a worker, then show it in the images view (or say why not)."""
        self.run_worker(partial(self._image_of_thread, job_id), thread=True, exit_on_error=False)

    def _image_of_thread(self, job_id: str) -> None:
        from vdcmanage.jobs.browse import image_of_job

        try:
            image_id, state = call_catalog(image_of_job, job_id)
        except Exception as exc:
            self.post_message(ActionDone(f"find the image of {job_id}", error_text(exc)))
        else:
            self.post_message(ImageOfJob(job_id, image_id, state))

    def on_image_of_job(self, message: ImageOfJob) -> None:
        image_id = message.image_id
        if image_id is None:
            self.status.show(f"{message.job_id} makes no image", error=True)
        elif message.state is None:
            self.status.show(f"{image_id} is not in the catalog yet: {message.job_id} registers it when it succeeds")
        elif message.state == "deleted":
            self.status.show(f"{image_id}, made by {message.job_id}, was deleted", error=True)
        else:
            self.vdc.show_image(image_id)

    def run_catalog_action(self, summary: str, call: Callable[[], object], done: str = "") -> None:
        """Run a catalog action in a worker; its result or refusal comes back as :class:`ActionDone`."""
        self.status.show(f"{summary} …")
        self.run_worker(partial(self._action_thread, summary, call, done), thread=True, exit_on_error=False)

    def confirm_action(self, question: Question, call: Callable[[], object]) -> None:
        """Ask ``question`` (both choices named); run ``call`` only on yes, and say either way what happened."""
        from tui.screens.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_catalog_action(question.summary, call, question.done)
            else:
                self.status.show(question.kept)

        dialog = ConfirmDialog(question.title, question.text, question.confirm, question.keep)
        self.app.push_screen(dialog, answered)

    def _action_thread(self, summary: str, call: Callable[[], object], done: str) -> None:
        try:
            call_catalog(call)
        except Exception as exc:
            self.post_message(ActionDone(summary, error_text(exc)))
        else:
            self.post_message(ActionDone(summary, done=done))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        self.show_result(message)

    def show_result(self, message: ActionDone) -> None:
        """Show what an action did, then the catalog as it is now; or why it was refused (which changed nothing,
        so the view stays as it is and the refusal stays readable)."""
        if message.error is None:
            self.status.show(f"✓ {message.done or message.summary + ': done'}")
            self.reload()
        else:
            self.status.show(f"{message.summary}: {message.error}", error=True)


@dataclass(frozen=True)
class Question:
    """A confirmation: the question, both choices named, and what the status line says after each answer."""

    title: str
    text: str
    confirm: str  # the choice that acts: "Cancel job"
    keep: str  # the choice that leaves things as they are: "Keep running"
    summary: str  # the action while it runs, and in a refusal: "cancel job-1a2b3c4d"
    done: str  # after it was done: "Cancel requested for job-1a2b3c4d"
    kept: str  # after the operator said no: "job-1a2b3c4d left running"


class PagedScreen(DataScreen, Generic[R, S]):
    """A view whose main table is a :class:`LazyTable` over one paged catalog query described by ``search``."""

    search: S

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self.total: int | None = None
        self.select_next: str | None = None  # a row to go to on the next load (g from another view)

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
        keep = self.select_next or keep  # until a load that asked for it answers
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
        self.select_next = None
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
