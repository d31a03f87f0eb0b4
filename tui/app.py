"""The dashboard application: the app factory shared by the CLI and the tests, and ``vdc-tui``.

The app opens the catalog in a worker (a server that does not answer shows an error screen with
a retry, never a frozen terminal), then watches it from one long-lived worker that polls cheap
change tokens every second and tells the open view which tables changed.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from tui.catalog import Clock, catalog_label, error_text, open_catalog_url, redacted_url, release_connection, utc_clock
from tui.hostcheck import CheckHost, check_host
from tui.messages import CatalogChanged, CatalogFailed, CatalogOpened, CatalogPolled
from tui.screens.help import CatalogErrorScreen, HelpScreen
from tui.screens.hosts import HostsScreen
from tui.screens.images import ImagesScreen
from tui.screens.jobs import JobsScreen
from vdcmanage.textsafe import visible

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
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    catalog_status: reactive[str] = reactive("connecting")  # connecting | live | unreachable | not answering

    def __init__(
        self,
        db_url: str,
        *,
        check_host: CheckHost = check_host,
        clock: Clock = utc_clock,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.db_url = db_url
        self.catalog_name = catalog_label(db_url)
        self.catalog_url = redacted_url(db_url)
        self.check_host = check_host
        self.clock = clock
        self.poll_interval = poll_interval
        self.catalog_ready = False
        self.catalog_error: str | None = None
        self.last_answer = time.monotonic()

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
        from vdcmanage.jobs.browse import jobs_token

        worker = get_current_worker()
        previous: dict[str, object] | None = None
        try:
            while not worker.is_cancelled:
                try:
                    tokens = {"images": images_token(), "jobs": jobs_token(), "inventory": inventory_token()}
                except Exception as exc:
                    release_connection()  # reconnect on the next round
                    previous = None
                    self.post_message(CatalogPolled(False, frozenset(), error_text(exc)))
                else:
                    changed = TABLES if previous is None else {k for k in tokens if tokens[k] != previous[k]}
                    previous = tokens
                    self.post_message(CatalogPolled(True, frozenset(changed)))
                worker.cancelled_event.wait(self.poll_interval)
        finally:
            release_connection()

    def on_catalog_polled(self, message: CatalogPolled) -> None:
        self.last_answer = time.monotonic()
        if not message.ok:
            self.catalog_status = "unreachable"
            self.catalog_error = message.error
            return
        recovered = self.catalog_status != "live"
        self.catalog_status = "live"
        self.catalog_error = None
        changed = TABLES if recovered else message.changed
        if changed and self.catalog_ready:
            self.tell_screens(changed)

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
        # a dialog is open: finish it first
        return not (action in ("view", "help") and isinstance(self.screen, ModalScreen | CatalogErrorScreen))

    def action_view(self, mode: str) -> None:
        if mode != self.current_mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def create_app(
    db_url: str,
    *,
    check_host: CheckHost = check_host,
    clock: Clock = utc_clock,
    poll_interval: float = POLL_INTERVAL_S,
) -> VdcApp:
    """The dashboard on the catalog at ``db_url``; tests inject the host check, the clock and the poll interval."""
    return VdcApp(db_url, check_host=check_host, clock=clock, poll_interval=poll_interval)


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


def run(db_url: str) -> int:
    """Run the dashboard in this terminal until the operator quits; refuse when there is no terminal."""
    import sys

    from vdcmanage.errors import InvalidArgument

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidArgument("The dashboard needs a terminal (stdin and stdout); use the image and job commands")
    app = create_app(db_url)
    app.run()
    return app.return_code or 0
