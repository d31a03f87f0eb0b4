"""The dashboard application: the app factory shared by the CLI and the tests, and ``vdc-tui``.

The app opens the catalog in a worker (a server that does not answer shows an error screen with
a retry, never a frozen terminal), then watches it from one long-lived worker that polls cheap
change tokens every second and tells the open view which tables changed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from tui.catalog import Clock, catalog_label, error_text, open_catalog_url, redacted_url, release_connection, utc_clock
from tui.hostcheck import CheckHost, ListSrs, check_host, list_srs
from tui.log import LOG_LIMIT, JobWatch, LogEntry
from tui.messages import CatalogChanged, CatalogFailed, CatalogOpened, CatalogPolled
from tui.screens.base import DataScreen
from tui.screens.dialogs import ConfirmDialog
from tui.screens.help import CatalogErrorScreen, HelpScreen
from tui.screens.hosts import HostsScreen
from tui.screens.images import ImagesScreen
from tui.screens.jobs import JobsScreen
from tui.screens.messages import MessagesScreen
from vdcmanage.textsafe import visible

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from vdcmanage.jobs.browse import JobChange

POLL_INTERVAL_S = 1.0  # what other processes change appears within about this plus one query
NOT_ANSWERING_AFTER_S = 5.0  # a poll outstanding this long: the catalog is reported as not answering
TABLES = frozenset({"images", "jobs", "inventory"})
WORKER_THREADS = 24


class VdcApp(App[int]):
    """Images, jobs and hosts of one catalog; every catalog call runs in a worker thread."""

    CSS_PATH = "vdc.tcss"
    TITLE = "vdc-manage"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]  # noqa: RUF012 - declared by App
    MODES: ClassVar[dict[str, Any]] = {
        "images": ImagesScreen,
        "jobs": JobsScreen,
        "hosts": HostsScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "view('images')", "Images", show=False),
        Binding("2", "view('jobs')", "Jobs", show=False),
        Binding("3", "view('hosts')", "Hosts", show=False),
        Binding("m", "messages", "Messages"),
        Binding("question_mark", "help", "Help", key_display="?"),
        # priority: a dialog's own keys too (a modal screen hides the app's other keys); ? is text in a field
        Binding("f1", "help", "Help", show=False, priority=True),
        Binding("q", "quit", "Quit"),
        # priority: ctrl+c quits from anywhere, a text field included (Textual would copy the selection)
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    catalog_status: reactive[str] = reactive("connecting")  # connecting | live | unreachable | not answering

    def __init__(
        self,
        db_url: str,
        *,
        check_host: CheckHost = check_host,
        list_srs: ListSrs = list_srs,
        clock: Clock = utc_clock,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.db_url = db_url
        self.catalog_name = catalog_label(db_url)
        self.catalog_url = redacted_url(db_url)
        self.check_host = check_host
        self.list_srs = list_srs
        self.clock = clock
        self.poll_interval = poll_interval
        self.catalog_ready = False
        self.catalog_error: str | None = None
        self.last_answer = time.monotonic()
        # jobs this dashboard runs itself (not queued for a worker): quitting stops them, so it asks first
        self.foreground_jobs: dict[str, str] = {}  # job id -> what it works on
        self.messages: list[LogEntry] = []  # the session's message log (m)
        self.job_watch = JobWatch(session_start=clock())

    # --- start-up ------------------------------------------------------------------------------

    def on_load(self) -> None:
        """Thread workers run on the event loop's default executor, which asyncio sizes by CPU count (6 threads
        here). The change watcher holds one for good and each running host check one more (for up to the SSH
        connect timeout); page loads must never queue behind them."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="vdc-tui")
        asyncio.get_running_loop().set_default_executor(pool)

    def on_mount(self) -> None:
        if self.no_color:  # NO_COLOR: Textual draws in greys; vdc.tcss marks what colour would have said
            self.add_class("-no-color")
        self.switch_mode("images")
        self.open_catalog()
        self.set_interval(1.0, self.check_answering)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_catalog(self) -> None:
        try:
            open_catalog_url(self.db_url)
        except Exception as exc:
            self.post_message(CatalogFailed(error_text(exc)))
        else:
            self.post_message(CatalogOpened())

    def on_catalog_opened(self) -> None:
        self.catalog_ready = True
        self.catalog_error = None
        self.catalog_status = "live"
        if isinstance(self.screen, CatalogErrorScreen):
            self.pop_screen()
        self.tell_screens(TABLES)
        self.watch_catalog()

    def on_catalog_failed(self, message: CatalogFailed) -> None:
        self.catalog_status = "unreachable"
        self.catalog_error = message.error
        if isinstance(self.screen, CatalogErrorScreen):
            self.screen.show(message.error)
        else:
            self.push_screen(CatalogErrorScreen(message.error))

    def retry_open(self) -> None:
        self.catalog_status = "connecting"
        self.open_catalog()

    # --- live refresh --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def watch_catalog(self) -> None:
        """Poll the change tokens; report each round (so a hang is noticed) and what changed."""
        from vdcmanage.catalog.browse import images_token, inventory_token
        from vdcmanage.jobs.browse import jobs_changed_since, jobs_token

        worker = get_current_worker()
        previous: dict[str, object] | None = None
        mark: dt.datetime | None = None  # jobs updated since this are read for the message log
        try:
            while not worker.is_cancelled:
                try:
                    tokens = {"images": images_token(), "jobs": jobs_token(), "inventory": inventory_token()}
                    changed = TABLES if previous is None else {k for k in tokens if tokens[k] != previous[k]}
                    jobs: list[JobChange] = []
                    if "jobs" in changed or mark is None:
                        jobs, mark = jobs_changed_since(mark)
                except Exception as exc:
                    release_connection()  # reconnect on the next round
                    previous = None
                    self.post_message(CatalogPolled(False, frozenset(), error_text(exc)))
                else:
                    previous = tokens
                    self.post_message(CatalogPolled(True, frozenset(changed), jobs=jobs))
                worker.cancelled_event.wait(self.poll_interval)
        finally:
            release_connection()

    def on_catalog_polled(self, message: CatalogPolled) -> None:
        self.last_answer = time.monotonic()
        if not message.ok:
            if self.catalog_status != "unreachable":
                self.record(f"Catalog unreachable: {message.error}", "error")
            self.catalog_status = "unreachable"
            self.catalog_error = message.error
            return
        recovered = self.catalog_status != "live"
        if recovered and self.catalog_ready:
            self.record("Catalog answers again", "info")
        self.catalog_status = "live"
        self.catalog_error = None
        for level, text in self.job_watch.events(message.jobs):
            self.announce(text, level)
        changed = TABLES if recovered else message.changed
        if changed and self.catalog_ready:
            self.tell_screens(changed)

    # --- messages ------------------------------------------------------------------------------

    def record(self, text: str, level: str = "info") -> None:
        """Keep a message in the session's log (m), whole, with its time."""
        at = self.clock().strftime("%H:%M:%S")
        if self.messages and self.messages[-1].text == text and self.messages[-1].at == at:
            return  # the same message twice in the same second (a key held down)
        self.messages.append(LogEntry(at, level, text))
        del self.messages[:-LOG_LIMIT]
        for screen in self.screen_stack:
            if isinstance(screen, MessagesScreen):
                screen.show_entries()

    def announce(self, text: str, level: str = "info") -> None:
        """A message nobody asked for (a job event): logged, and on the status line of the view (under any
        dialog) unless that shows the result of the operator's own action, which matters more to them now."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, DataScreen) and screen.is_mounted:
                status = screen.status
                if not status.text or status.from_job:
                    status.show(text, error=level == "error", from_job=True)
                    return
                break
        self.record(text, level)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information", **kwargs: Any) -> None:
        self.record(f"{title}: {message}" if title else message, "error" if severity == "error" else "info")
        super().notify(message, title=title, severity=severity, **kwargs)

    def check_answering(self) -> None:
        if not self.catalog_ready or self.catalog_status == "unreachable":
            return
        if time.monotonic() - self.last_answer > max(NOT_ANSWERING_AFTER_S, 3 * self.poll_interval):
            self.catalog_status = "not answering"

    def tell_screens(self, tables: frozenset[str] | set[str]) -> None:
        for screen in self.screen_stack:
            screen.post_message(CatalogChanged(frozenset(tables)))

    # --- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("view", "messages"):  # a dialog is open: finish it first
            return not isinstance(self.screen, ModalScreen | CatalogErrorScreen)
        if action == "help":  # a dialog's own keys are worth a look; the help's own are on screen
            return not isinstance(self.screen, HelpScreen)
        return True

    def action_view(self, mode: str) -> None:
        if mode != self.current_mode:
            self.switch_mode(mode)

    def show_image(self, image_id: str) -> None:
        """The images view with ``image_id`` selected (wherever it is in the order; the filter is cleared)."""
        if self.current_mode != "images":
            self.switch_mode("images")
        while len(self.screen_stack) > 1:
            self.pop_screen()  # a job's detail opened from the images view
        screen = self.screen_stack[0]
        assert isinstance(screen, ImagesScreen)
        screen.select(image_id)

    def action_messages(self) -> None:
        if not isinstance(self.screen, MessagesScreen):
            self.push_screen(MessagesScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        """Quit at once, unless a job this dashboard runs itself would stop with it: then ask."""
        if not self.foreground_jobs:
            self.exit()
            return
        if isinstance(self.screen, ConfirmDialog) and self.screen.id == "confirm-quit":
            self.exit()  # ctrl+c twice: the operator means it
            return
        running = ", ".join(f"{job_id} ({visible(what)})" for job_id, what in self.foreground_jobs.items())
        question = (
            f"Quit while {running} runs in this dashboard?\n\n"
            "Quitting stops it; `vdc-manage job retry` resumes it later where it stopped."
        )
        dialog = ConfirmDialog("Quit", question, "Quit", "Keep running")
        dialog.id = "confirm-quit"
        self.push_screen(dialog, self._quit_answered)

    def _quit_answered(self, yes: bool | None) -> None:
        if yes:
            self.exit()


def create_app(
    db_url: str,
    *,
    check_host: CheckHost = check_host,
    list_srs: ListSrs = list_srs,
    clock: Clock = utc_clock,
    poll_interval: float = POLL_INTERVAL_S,
) -> VdcApp:
    """The dashboard on the catalog at ``db_url``; tests inject the host check, the SR listing, the clock and
    the poll interval."""
    return VdcApp(db_url, check_host=check_host, list_srs=list_srs, clock=clock, poll_interval=poll_interval)


def main(argv: list[str] | None = None) -> int:
    """``vdc-tui [--db URL]``: the same catalog choice as ``vdc-manage --db URL tui``."""
    import argparse
    import sys

    from vdcmanage.config import load_settings
    from vdcmanage.errors import VdcError, exit_code_for

    parser = argparse.ArgumentParser(prog="vdc-tui", description="The vdc-manage terminal dashboard.")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="Catalog URL (default: $VDC_MANAGE_DB, then db= in the config file, then the default SQLite file).",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.db)
        return run(settings.db_url)
    except VdcError as exc:
        sys.stderr.write(f"ERROR: {visible(exc.message)}\n")
        return int(exit_code_for(exc))


def monochrome_terminal() -> bool:
    """Whether the terminal (``$TERM``'s terminfo entry) has fewer than 8 colours: ``vt100``, ``xterm-mono``."""
    try:
        import curses
    except ImportError:  # a Python built without curses: trust the terminal's colours
        return False
    try:
        curses.setupterm(os.environ.get("TERM", "dumb"), sys.stdout.fileno())
        return curses.tigetnum("colors") < 8
    except (curses.error, OSError, ValueError):  # an unknown terminal, or no terminal
        return False


def run(db_url: str) -> int:
    """Run the dashboard in this terminal until the operator quits; refuse when there is no terminal."""

    from vdcmanage.errors import InvalidArgument

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidArgument("The dashboard needs a terminal (stdin and stdout); use the image and job commands")
    if monochrome_terminal():
        os.environ.setdefault("NO_COLOR", "1")  # Textual then draws in greys; states are in words anyway
    app = create_app(db_url)
    app.run()
    return app.return_code or 0
