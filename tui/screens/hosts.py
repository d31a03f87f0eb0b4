"""The hosts and backup storages view: the records of the catalog, and ``host check`` run in a worker."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.events import DescendantFocus
from textual.widgets import DataTable, Label
from textual.worker import get_current_worker

from tui import format as fmt
from tui.catalog import call_catalog, error_text
from tui.hostcheck import HostCheckResult, run_abandonable
from tui.messages import ActionDone, HostChecked, InventoryLoaded
from tui.plain import PlainStatic, plain
from tui.screens.base import DataScreen, StatusLine
from tui.widgets.bars import KeyBar, TopBar
from tui.widgets.lazytable import fit_text
from vdcmanage.catalog import browse
from vdcmanage.textsafe import visible

HOST_COLUMNS = ("ID", "Name", "Check", "Address", "Port", "User", "SR")
STORAGE_COLUMNS = ("ID", "Name", "Type", "Base URI", "Path", "Address")


@dataclass(frozen=True)
class CheckState:
    """The last check of a host in this session: running (no result yet) or its result and when it ended."""

    result: HostCheckResult | None = None
    finished_at: str = ""

    @property
    def word(self) -> str:
        if self.result is None:
            return "checking…"
        return "ok" if self.result.ok else "FAILED"


def host_cells(host: dict[str, Any], check: CheckState | None) -> tuple[str, ...]:
    port = host["port"] if host["port"] is not None else "(ssh)"
    user = host["user"] if host["user"] is not None else "(ssh)"
    return (
        host["id"],
        host["name"],
        check.word if check else "",
        host["address"],
        str(port),
        str(user),
        short_uuid(host["sr_uuid"]),
    )


def short_uuid(uuid: str | None) -> str:
    """The first 8 characters identify an SR to a person; the pane below shows the whole uuid."""
    if not uuid:
        return ""
    return uuid if len(uuid) <= 9 else uuid[:8] + "…"


def record_text(pairs: list[tuple[str, object]]) -> Text:
    text = Text()
    for label, value in pairs:
        text.append(f"{label}: ", style="bold")
        text.append(f"{'' if value is None else visible(value)}\n")
    return text


def host_text(host: dict[str, Any], check: CheckState | None) -> Text:
    port = host["port"] if host["port"] is not None else "from ~/.ssh/config, else 22"
    user = host["user"] if host["user"] is not None else "from ~/.ssh/config, else root"
    text = Text(f"{host['id']}  {visible(host['name'])}\n", style="bold")
    text.append_text(
        record_text(
            [
                ("Address", f"{host['address']}  port {port}  user {user}"),
                ("Key file", host["key_file"] or "ssh-agent or the usual key files"),
                ("SR", host["sr_uuid"] or "none chosen (host check lists them)"),
            ]
        )
    )
    text.append_text(check_text(host["id"], check))
    return text


def storage_text(storage: dict[str, Any]) -> Text:
    text = Text(f"{storage['id']}  {visible(storage['display_name'] or '')}\n", style="bold")
    pairs: list[tuple[str, object]] = [
        ("Type", storage["storage_type"]),
        ("Base URI", storage["base_uri"]),
        ("Path", storage["path"]),
    ]
    if storage["storage_type"] == "ssh":
        port = storage["port"] or "from ~/.ssh/config, else 22"
        user = storage["user"] or "from ~/.ssh/config"
        pairs.append(("Server", f"{storage['address']}  port {port}  user {user}"))
    text.append_text(record_text(pairs))
    return text


def storage_cells(storage: dict[str, Any]) -> tuple[str, ...]:
    return (
        storage["id"],
        storage["display_name"] or "",
        storage["storage_type"],
        storage["base_uri"],
        storage["path"],
        storage["address"] or "",
    )


def check_text(host_id: str, check: CheckState | None) -> Text:
    if check is None:
        return Text("Not checked in this session: press c to run host check.")
    if check.result is None:
        return Text("Checking … (an unreachable host takes up to the SSH connect timeout)")
    result = check.result
    text = Text()
    text.append(f"host check {'ok' if result.ok else 'FAILED'}", style="bold")
    text.append(f"  (at {check.finished_at} UTC)\n")
    if result.error:
        text.append(f"ERROR: {visible(result.error)}\n", style="bold")
    width = max((len(label) for label, _ in result.summary), default=0)
    for label, value in result.summary:
        text.append(f"  {visible(label):<{width}}  ", style="bold")
        text.append(f"{visible(value)}\n")
    return text


class HostsScreen(DataScreen):
    """XenServer hosts and backup storages; ``c`` runs ``host check`` on the selected host."""

    MODE = "hosts"
    TABLES: ClassVar[frozenset[str]] = frozenset({"inventory"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "check", "Check host"),
        Binding("y", "copy_id", "Copy id"),
        Binding("tab", "app.focus_next", "Next table", key_display="tab"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[dict[str, Any]] = []
        self.inventory_loaded = False
        self.storages: list[dict[str, Any]] = []
        self.checks: dict[str, CheckState] = {}
        self.showing = "hosts"  # the table whose selected record the pane shows

    def compose(self) -> ComposeResult:
        yield TopBar()
        yield Label("Hosts", classes="section")
        yield DataTable(id="hosts", cursor_type="row", zebra_stripes=False)
        yield Label("Backup storages", classes="section")
        yield DataTable(id="storages", cursor_type="row")
        with VerticalScroll(id="check-pane", classes="detail-pane"):
            yield PlainStatic("", id="check-result")
        yield StatusLine("")
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#hosts", DataTable))

    @property
    def host_table(self) -> DataTable[Text]:
        return self.query_one("#hosts", DataTable)

    def reload(self) -> None:
        self.run_worker(self._load_thread, thread=True, group="inventory", exclusive=True, exit_on_error=False)

    def action_reload(self) -> None:
        self.reload()

    def _load_thread(self) -> None:
        try:
            hosts, storages = call_catalog(lambda: (browse.live_hosts(), browse.live_backup_storages()))
        except Exception as exc:
            self.post_message(ActionDone("load hosts and backup storages", error_text(exc)))
        else:
            self.post_message(InventoryLoaded(hosts, storages))

    def on_inventory_loaded(self, message: InventoryLoaded) -> None:
        self.hosts, self.storages = message.hosts, message.storages
        self.inventory_loaded = True
        self.fill_tables()
        self.show_check()

    def fill_tables(self) -> None:
        hosts = [(h["id"], host_cells(h, self.checks.get(h["id"]))) for h in self.hosts]
        fill(self.host_table, hosts, HOST_COLUMNS)
        storages = [(s["id"], storage_cells(s)) for s in self.storages]
        fill(self.query_one("#storages", DataTable), storages, STORAGE_COLUMNS)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fill_tables)

    def show_result(self, message: ActionDone) -> None:
        if message.error:
            self.status.show(f"{message.summary}: {message.error}", error=True)

    def selected_host(self) -> str | None:
        table = self.host_table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.showing:
            self.show_check()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, DataTable) and event.widget.id:
            self.showing = event.widget.id
            self.show_check()

    def show_check(self) -> None:
        """The selected record in full: the host (and its last check) or the backup storage."""
        pane = self.query_one("#check-result", PlainStatic)
        if self.showing == "storages":
            storage = selected_record(self.query_one("#storages", DataTable), self.storages)
            pane.update(storage_text(storage) if storage else Text("No backup storages: vdc-manage backupstorage add"))
            return
        host = selected_record(self.host_table, self.hosts)
        pane.update(host_text(host, self.checks.get(host["id"])) if host else Text("No hosts: vdc-manage host add"))

    def action_copy_id(self) -> None:
        table = self.query_one(f"#{self.showing}", DataTable)
        key = None if table.row_count == 0 else table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.copy_id(key, "host" if self.showing == "hosts" else "backup storage")

    def action_check(self) -> None:
        host_id = self.selected_host()
        if host_id is None and not self.inventory_loaded:
            self.status.show("Cannot check a host yet: the hosts are still loading", error=True)
            return
        if host_id is None:
            self.say_no_host("check")
            return
        self.checks[host_id] = CheckState()
        self.showing = "hosts"
        self.update_check_cell(host_id)
        self.show_check()
        self.status.show(f"Checking {host_id} …")
        self.run_worker(
            partial(self._check_thread, host_id),
            thread=True,
            group=f"check-{host_id}",
            exclusive=True,
            exit_on_error=False,
        )

    def _check_thread(self, host_id: str) -> None:
        result = run_abandonable(self.vdc.check_host, host_id, get_current_worker().cancelled_event)
        if result is not None:
            finished = self.vdc.clock().strftime("%H:%M:%S")
            self.post_message(HostChecked(host_id, result, finished))

    def on_host_checked(self, message: HostChecked) -> None:
        self.checks[message.host_id] = CheckState(message.result, message.finished_at)
        self.update_check_cell(message.host_id)
        self.show_check()
        result: HostCheckResult = message.result
        if result.ok:
            self.status.show(f"✓ host check {message.host_id}: ok")
        else:
            self.status.show(f"host check {message.host_id}: {result.error or 'failed'}", error=True)

    def update_check_cell(self, host_id: str) -> None:
        if host_id in {str(k.value) for k in self.host_table.rows}:
            self.fill_tables()  # the column may need to be wider


def selected_record(table: DataTable[Text], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    if table.row_count == 0:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return next((record for record in records if record["id"] == key), None)


def fill(table: DataTable[Text], rows: list[tuple[str, tuple[str, ...]]], labels: tuple[str, ...]) -> None:
    """Replace the rows, keeping the cursor on the same record where it still exists. Columns are sized to
    the table's width, and a cell too long for its column ends in ``…``: DataTable would cut a path or an
    address at the table's edge without a sign. Cells are ``Text``: a ``str`` cell would be parsed as markup
    (a host named ``[/]x`` broke the view)."""
    selected = None
    if table.row_count:
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    texts = [[visible(fmt.one_line(c)) for c in cells] for _, cells in rows]  # measured as they will show
    room = (table.size.width or table.screen.size.width) - 2 * table.cell_padding * len(labels) - 1
    widths = fit_widths(labels, texts, room)
    table.clear(columns=True)
    for label, width in zip(labels, widths, strict=True):
        table.add_column(label, width=width, key=label.lower())
    for (key, _), cells in zip(rows, texts, strict=True):
        table.add_row(*(plain(fit_text(c, w, "left").rstrip()) for c, w in zip(cells, widths, strict=True)), key=key)
    if selected is not None and selected in {key for key, _ in rows}:
        table.move_cursor(row=table.get_row_index(selected), animate=False)


MIN_COLUMN = 6  # a cut column keeps at least this much (five characters and the …)


def fit_widths(labels: tuple[str, ...], rows: list[list[str]], room: int) -> list[int]:
    """Each column as wide as its longest cell; while they do not fit in ``room``, the widest gives a cell.
    The ids (the first column) stay whole: they are what an operator types next."""
    widths = [max([len(label), *(cell_len(row[i]) for row in rows)]) for i, label in enumerate(labels)]
    while sum(widths) > room:
        wide = [i for i, w in enumerate(widths) if i and w > max(MIN_COLUMN, len(labels[i]))]
        if not wide:
            break  # narrower than every column's minimum: the table scrolls no further
        widths[max(wide, key=lambda i: widths[i])] -= 1
    return widths
