"""The jobs view: every job with its live progress, a job's detail (steps, log tail), cancel, retry, and imports."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.events import Key
from textual.widgets import Input, Label

from tui import format as fmt
from tui.catalog import call_catalog, error_text
from tui.messages import ActionDone, DetailLoaded
from tui.plain import PlainStatic
from tui.screens.base import DataScreen, PagedScreen, Question, StatusLine
from tui.screens.importer import ImportDialog
from tui.widgets.bars import KeyBar, TopBar
from tui.widgets.filterbox import FilterBox
from tui.widgets.lazytable import Column, LazyTable
from vdcmanage.jobs import browse, queue
from vdcmanage.textsafe import visible

COLUMNS = [
    Column("id", "ID", 12),
    Column("state", "State", 10),
    Column("label", "Image", 8, flex=True),
    Column("step", "Step", 15),  # "5/10 vdi-import": which step of how many
    Column("progress", "Progress", 18),  # the step's bytes: "██░░░░ 1023M/1023M"
    Column("overall", "Done", 4, align="right"),  # the whole job
    Column("rate", "Rate", 7, align="right", drop=1),  # 80 columns: the ETA says more; the detail has the rate
    Column("eta", "ETA", 5, align="right"),
    Column("kind", "Kind", 10, drop=2),
    Column("created", "Created (UTC)", 16, drop=3),
]
STATE_FILTERS: list[str | None] = [None, "running", "failed", "queued", "succeeded", "cancelled"]
BAR_WIDTH = 6


def state_text(job: browse.JobRow, now: dt.datetime) -> str:
    """The state as a word that stands out where it needs attention (FAILED, STALLED), colour or not."""
    if job.state == "failed":
        return "FAILED"
    if browse.is_stalled_at(job.state, job.heartbeat_at, now):
        return "STALLED"
    if job.cancel_requested and job.state in ("running", "queued"):
        return "cancelling"
    return job.state


def step_text(job: browse.JobRow) -> str:
    if job.current_step is None:
        return ""
    if job.step_position is None or not job.step_count:
        return job.current_step
    return f"{job.step_position + 1}/{job.step_count} {job.current_step}"


def progress_text(job: browse.JobRow) -> str:
    if job.bytes_total <= 0:
        return ""
    done = f"{fmt.short_size(job.bytes_done)}/{fmt.short_size(job.bytes_total)}"
    return f"{fmt.bar(job.bytes_done, job.bytes_total, BAR_WIDTH)} {done}"


def job_cell(job: browse.JobRow, key: str, now: dt.datetime) -> str:
    if key == "state":
        return state_text(job, now)
    if key == "step":
        return step_text(job)
    if key == "overall":
        return "" if job.overall is None else f"{int(job.overall * 100)}%"
    if key == "progress":
        return progress_text(job)
    if key in ("rate", "eta"):
        if job.state != "running" or browse.is_stalled_at(job.state, job.heartbeat_at, now):
            return ""
        figures = browse.progress_figures(job.bytes_done, job.bytes_total, job.step_started_at, now)
        return fmt.rate(figures.rate) if key == "rate" else fmt.duration(figures.eta_seconds)
    if key == "created":
        return fmt.short_time(job.created_at)
    return str(getattr(job, key))


def job_row_class(job: browse.JobRow, now: dt.datetime) -> str | None:
    if job.state == "failed":
        return "lazy-table--failed"
    if browse.is_stalled_at(job.state, job.heartbeat_at, now):
        return "lazy-table--warning"
    if job.state in ("cancelled", "succeeded"):
        return "lazy-table--muted"
    return None


class JobsScreen(PagedScreen[browse.JobRow, browse.JobSearch]):
    """Every job, newest first, with state, step and live progress; Enter opens a job's steps and log."""

    MODE = "jobs"
    TABLES: ClassVar[frozenset[str]] = frozenset({"jobs"})
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the App runs it as the key arrives, so the keys typed right after it ("/ubuntu")
        # already go to the filter box (a plain binding runs only after they were queued on the table)
        Binding("slash", "filter", "Filter", key_display="/", priority=True),
        Binding("f", "state_filter", "State"),
        Binding("enter", "detail", "Detail", key_display="⏎"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("r", "retry_job", "Retry"),
        Binding("i", "import", "Import"),
        Binding("g", "goto_image", "Its image"),
        Binding("y", "copy_id", "Copy id"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.search = browse.JobSearch()

    def compose(self) -> ComposeResult:
        now = self.now
        yield TopBar()
        with Horizontal(classes="filter-bar"):
            yield Label("Filter ", classes="filter-label")
            yield FilterBox(placeholder="/ to search id, file, step, error", id="filter", compact=True, max_length=200)
            yield PlainStatic("", id="summary")
        yield LazyTable(
            COLUMNS,
            lambda job, key: job_cell(job, key, now()),
            key_of=lambda job: job.id,
            row_class=lambda job: job_row_class(job, now()),
            empty_text="No jobs (i starts an import)",
            id="jobs-table",
        )
        yield StatusLine("")
        yield KeyBar()

    def now(self) -> dt.datetime:
        return self.vdc.clock()

    def on_mount(self) -> None:
        self.set_focus(self.table)
        self.show_summary()
        self.set_interval(1.0, self.table.refresh)  # rates, ETAs and stalled marks move with the clock

    def fetch_page(self, search: browse.JobSearch, offset: int, limit: int) -> list[browse.JobRow]:
        return browse.job_page(search, offset, limit)

    def fetch_count(self, search: browse.JobSearch) -> int:
        return browse.count_jobs(search)

    def fetch_position(self, search: browse.JobSearch, key: str) -> int | None:
        return browse.job_position(search, key)

    def counted(self, total: int | None) -> None:
        self.show_summary()

    def show_summary(self) -> None:
        if self.total is None:
            count = f"≥{self.table.total:,} jobs, counting…" if self.table.loaded else "loading…"
        else:
            count = f"{self.total:,} job{'s' if self.total != 1 else ''}"
        state = self.search.state or "all states"
        self.query_one("#summary", PlainStatic).update(f"{count} · {state}")

    def action_filter(self) -> None:
        filter_box = self.query_one("#filter", Input)
        if filter_box.has_focus:
            filter_box.insert_text_at_cursor("/")  # a "/" typed in the filter is text (paths)
        else:
            self.set_focus(filter_box)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.search.text:
            self.search = replace(self.search, text=event.value)
            self.restart()
            self.show_summary()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.set_focus(self.table)

    def on_key(self, event: Key) -> None:
        filter_box = self.query_one("#filter", Input)
        if event.key == "escape" and filter_box.has_focus:
            event.stop()
            filter_box.value = ""
            self.set_focus(self.table)

    def action_state_filter(self) -> None:
        following = STATE_FILTERS[(STATE_FILTERS.index(self.search.state) + 1) % len(STATE_FILTERS)]
        self.search = replace(self.search, state=following)
        self.restart()
        self.show_summary()

    def action_reload(self) -> None:
        self.reload()

    def selected_job(self) -> browse.JobRow | None:
        job = self.table.selected
        if job is None:
            self.status.show("No job selected", error=True)
        return job

    def action_detail(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.app.push_screen(JobDetailScreen(job.id))

    def action_cancel_job(self) -> None:
        job = self.selected_job()
        if job is not None:
            confirm_cancel(self, job.id, job.label, job.state)

    def action_retry_job(self) -> None:
        job = self.selected_job()
        if job is not None:
            retry(self, job.id)

    def action_goto_image(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.go_to_image_of(job.id)

    def action_copy_id(self) -> None:
        job = self.table.selected
        self.copy_id(job.id if job else None, "job")

    def action_import(self) -> None:
        """Open the import form, or, with no host to import onto, say so and how to add one."""
        self.run_worker(self._hosts_thread, thread=True, group="import", exclusive=True, exit_on_error=False)

    def _hosts_thread(self) -> None:
        from vdcmanage.catalog.browse import live_hosts

        try:
            hosts = call_catalog(live_hosts)
        except Exception as exc:
            self.post_message(ActionDone("open the import form", error_text(exc)))
        else:
            self.app.call_from_thread(self._open_import_form if hosts else partial(self.say_no_host, "import"))

    def _open_import_form(self) -> None:
        self.app.push_screen(ImportDialog(), self._import_closed)

    def _import_closed(self, summary: str | None) -> None:
        if summary:
            self.status.show(f"✓ {summary}")
            self.search = replace(self.search, text="", state=None)
            self.query_one("#filter", Input).value = ""
            self.restart()  # the new job is the newest: first row


def retry(screen: DataScreen, job_id: str) -> None:
    """Queue a failed job to resume, or a cancelled one to start over (retrying only queues: no question)."""
    screen.run_catalog_action(f"retry {job_id}", partial(queue.retry, job_id), f"{job_id} queued again")


def confirm_cancel(screen: DataScreen, job_id: str, label: str, state: str) -> None:
    """Cancelling stops a running import and removes what it made on the host: ask first, naming the job."""
    what = f" ({visible(label)})" if label else ""
    keep = "queued" if state == "queued" else "running"
    question = Question(
        title=f"Cancel {job_id}",
        text=(
            f"Cancel job {job_id}{what}?\n\n"
            "A running job stops at its next chunk and removes what it created on the host; "
            "a job that never ran is cancelled at once."
        ),
        confirm="Cancel job",
        keep=f"Keep {keep}",
        summary=f"cancel {job_id}",
        done=f"Cancel of {job_id} requested" if state == "running" else f"Cancelled {job_id}",
        kept=f"{job_id} left {keep}",
    )
    screen.confirm_action(question, partial(queue.request_cancel, job_id))


class JobDetailScreen(DataScreen):
    """One job: its fields, each step's times, bytes and rate, and the last log lines; live while it runs."""

    MODE = "jobs"
    TABLES: ClassVar[frozenset[str]] = frozenset({"jobs"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("r", "retry_job", "Retry"),
        Binding("enter,g", "goto_image", "Its image", key_display="g"),
        Binding("y", "copy_id", "Copy id"),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.detail: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield TopBar()
        with VerticalScroll(id="job-detail"):
            yield PlainStatic(Text(f"Loading {self.job_id} …"), id="job-detail-text")
        yield PlainStatic("", id="scroll-hint")
        yield StatusLine("")
        yield KeyBar()

    def on_mount(self) -> None:
        pane = self.query_one("#job-detail", VerticalScroll)
        self.set_focus(pane)
        self.watch(pane, "scroll_y", self.show_scroll_hint, init=False)
        self.watch(pane, "max_scroll_y", self.show_scroll_hint, init=False)
        self.reload()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.detail is not None and self.detail["state"] in ("running", "queued"):
            self.reload()  # log lines and step ends do not always touch the job row

    def reload(self) -> None:
        now = self.vdc.clock()
        self.run_worker(
            partial(self._load_thread, now), thread=True, group="job-detail", exclusive=True, exit_on_error=False
        )

    def _load_thread(self, now: dt.datetime) -> None:
        try:
            detail = call_catalog(browse.job_detail, self.job_id, now, None)  # the whole log: the view scrolls
        except Exception as exc:
            self.post_message(ActionDone(f"load {self.job_id}", error_text(exc)))
        else:
            self.post_message(DetailLoaded(detail))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        self.detail = message.data
        pane = self.query_one("#job-detail", VerticalScroll)
        following = pane.max_scroll_y > 0 and pane.scroll_y >= pane.max_scroll_y  # at the end: stay there
        self.query_one("#job-detail-text", PlainStatic).update(job_detail_text(message.data))
        if following:
            self.call_after_refresh(pane.scroll_end, animate=False)
        self.call_after_refresh(self.show_scroll_hint)

    def show_scroll_hint(self, *_: object) -> None:
        """Say that the detail scrolls, how, and where in it the view is (nothing when it all fits)."""
        pane = self.query_one("#job-detail", VerticalScroll)
        hint = self.query_one("#scroll-hint", PlainStatic)
        if pane.max_scroll_y <= 0:
            hint.update("")
            return
        where = round(100 * pane.scroll_y / pane.max_scroll_y)
        hint.update(Text(f"↑↓ PgUp PgDn Home End scroll · {where}% · log of {len(self.log_lines)} lines", style="bold"))

    @property
    def log_lines(self) -> list[dict[str, Any]]:
        return self.detail["log"] if self.detail else []

    def show_result(self, message: ActionDone) -> None:
        if message.summary.startswith("load "):
            self.status.show(f"{message.summary}: {message.error}", error=True)
        else:
            super().show_result(message)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_cancel_job(self) -> None:
        label = browse.label_of(self.detail["params"]) if self.detail else ""
        confirm_cancel(self, self.job_id, label, self.detail["state"] if self.detail else "running")

    def action_retry_job(self) -> None:
        retry(self, self.job_id)

    def action_goto_image(self) -> None:
        self.go_to_image_of(self.job_id)

    def action_copy_id(self) -> None:
        self.copy_id(self.job_id, "job")


PARAM_LABELS = {
    "path": "File",
    "host_id": "Host",
    "sr_uuid": "SR",
    "account_id": "Account",
    "backup_storage_id": "Backup storage",
    "name_label": "Name label",
    "display_name": "Display name",
    "arch": "Arch",
    "description": "Description",
}


def job_detail_text(d: dict[str, Any]) -> Text:
    """The job's fields and parameters, each step's times, bytes and rate, and the log tail."""
    text = Text()
    if d["stalled"]:
        state = "STALLED (heartbeat stopped)"
    else:
        state = d["state"].upper() if d["state"] == "failed" else d["state"]
    text.append(f"{d['id']}  {d['kind']}  {state}", style="bold")
    text.append("  cancel requested\n" if d["cancel_requested"] else "\n")
    if d["error"]:
        text.append(f"Error: {visible(d['error'])}\n", style="bold")
    known = list(PARAM_LABELS)
    params = sorted(d["params"].items(), key=lambda kv: known.index(kv[0]) if kv[0] in known else len(known))
    pairs: list[tuple[str, object]] = [(PARAM_LABELS.get(k, visible(k.replace("_", " "))), v) for k, v in params]
    pairs += [
        ("Result", d["result"]),
        ("Attempts", d["attempts"]),
        ("Worker", d["worker"]),
        ("Heartbeat", d["heartbeat_at"]),
        ("Created", d["created_at"]),
        ("Started", d["started_at"]),
        ("Finished", d["finished_at"]),
    ]
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        if value not in (None, ""):
            text.append(f"{label:>{width}}: ", style="bold")
            text.append(f"{visible(value)}\n")
    text.append("\nSteps (times UTC)\n", style="bold underline")
    header = f"  {'step':<11}{'state':<8}{'started':<9}{'finished':<9}{'time':>6} {'bytes':>15} {'rate':>9}\n"
    text.append(header, style="bold")
    for step in d["steps"]:
        text.append_text(step_line(step))
    text.append(f"\nLog ({len(d['log'])} lines, oldest first)\n", style="bold underline")
    for line in d["log"]:
        style = "bold" if line["level"] == "error" else ""
        text.append(f"  {clock_time(line['at'])} {line['level']:<5} {visible(line['message'])}\n", style=style)
    return text


def step_line(step: dict[str, Any]) -> Text:
    done, total = step["bytes_done"], step["bytes_total"]
    bytes_text = f"{fmt.short_size(done)}/{fmt.short_size(total)}" if total else ""
    line = Text(
        f"  {step['name']:<11}{step['state']:<8}{clock_time(step['started_at']):<9}{clock_time(step['finished_at']):<9}"
        f"{fmt.duration(step['seconds']):>6} {bytes_text:>15} {fmt.rate(step['rate']):>9}\n",
        style="bold" if step["state"] == "failed" else "",
    )
    if step["error"]:
        line.append(f"      {visible(step['error'])}\n", style="bold")
    return line


def clock_time(iso: str | None) -> str:
    return iso[11:19] if iso else ""
