"""The import form: a file on this host, a XenServer host, an account and a backup storage -> a queued job.

It submits exactly what ``vdc-manage image import xen PATH --detach`` would (``submit_import``): the
request is checked before anything is queued, and a refusal (no such file, unknown host, several
backup storages and none chosen ...) is shown in the form with nothing queued.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from tui import format as fmt
from tui.catalog import call_catalog, error_text
from tui.messages import ActionDone, ChoicesLoaded, SrsListed
from tui.plain import PlainStatic, plain
from tui.screens.dialogs import FormDialog
from tui.widgets.bars import KeyBar
from vdcmanage.catalog import browse
from vdcmanage.catalog.images import ARCHES
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID


def sr_option(sr: tuple[str, str, str, int | None], default: str | None) -> tuple[Text, str]:
    """``Local storage (ext) (default) 90.0G free 3f1c…``: the SR's name shown literally, the default
    mark before the uuid so a narrow form keeps it, and a cut label ends in an ellipsis."""
    uuid, name, kind, free = sr
    room = f" {fmt.short_size(free)} free" if free is not None else ""
    mark = " (default)" if uuid == default else ""
    label = plain(f"{name} ({kind}){mark}{room} {uuid}")
    label.no_wrap, label.overflow = True, "ellipsis"
    return (label, uuid)


def choice(record: dict[str, Any], name_key: str) -> tuple[Text, str]:
    """A select option: the record's name shown literally (a ``str`` prompt would be markup)."""
    name = record.get(name_key)
    return (plain(f"{name} ({record['id']})" if name else record["id"]), record["id"])


class ImportDialog(FormDialog):
    """File path, host, account, backup storage (and the optional fields of ``image import xen``)."""

    file_name = ""
    default_sr: str | None = None  # the SR the run-time choice would take: chosen, nothing is stored

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="import-form"):
            yield Static(Text("Import an image onto XenServer (queued as a job)", style="bold"), classes="dialog-title")
            with Grid(classes="form"):
                yield Label("Image file")
                yield Input(placeholder="/path/to/image.raw on this host", id="path", compact=True)
                yield Label("Host")
                yield Select[str]([], prompt="loading hosts …", id="host", compact=True)
                yield Label("SR")
                yield Select[str]([], prompt="choose a host first", id="sr", compact=True)
                yield Label("Name label")
                yield Input(placeholder="on XenServer; default: the file name", id="name-label", compact=True)
                yield Label("Account")
                yield Select[str]([], prompt="loading accounts …", id="account", compact=True)
                yield Label("Backup storage")
                yield Select[str]([], prompt="loading …", id="storage", compact=True)
                yield Label("Arch")
                yield Select[str]([(a, a) for a in ARCHES], value="x86_64", allow_blank=False, id="arch", compact=True)
                yield Label("Display name")
                yield Input(placeholder="default: the file name", id="display-name", compact=True, max_length=255)
                yield Label("Description")
                yield Input(placeholder="optional", id="description", compact=True)
            yield PlainStatic("", id="sr-note")
            yield from self.buttons("Queue import")
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#path", Input))
        self.run_worker(self._load_choices, thread=True, exit_on_error=False)

    def _load_choices(self) -> None:
        try:
            hosts, accounts, storages = call_catalog(
                lambda: (browse.live_hosts(), browse.live_accounts(), browse.live_backup_storages())
            )
        except Exception as exc:
            self.post_message(ActionDone("load hosts, accounts and backup storages", error_text(exc)))
        else:
            self.post_message(ChoicesLoaded(hosts, accounts, storages))

    def on_choices_loaded(self, message: ChoicesLoaded) -> None:
        host = self.query_one("#host", Select)
        host.set_options([choice(h, "name") for h in message.hosts])
        host.prompt = "choose a host" if message.hosts else "no hosts: vdc-manage host add"
        if len(message.hosts) == 1:
            host.value = message.hosts[0]["id"]
        account = self.query_one("#account", Select)
        account.set_options([choice(a, "name") for a in message.accounts])
        account.prompt = "choose an account"
        if any(a["id"] == SHARED_ACCOUNT_ID for a in message.accounts):
            account.value = SHARED_ACCOUNT_ID
        storage = self.query_one("#storage", Select)
        storage.set_options([choice(s, "display_name") for s in message.storages])
        storage.prompt = "the only one defined" if len(message.storages) <= 1 else "choose a backup storage"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "host":
            return
        sr = self.query_one("#sr", Select)
        sr.set_options([])
        self.default_sr = None
        self.query_one("#sr-note", PlainStatic).update("")
        if event.select.is_blank():
            sr.prompt = "choose a host first"
            return
        host_id = str(event.value)
        sr.prompt = f"listing the SRs of {host_id} …"
        self.run_worker(partial(self._list_srs_thread, host_id), thread=True, group="srs", exclusive=True,
                        exit_on_error=False)

    def _list_srs_thread(self, host_id: str) -> None:
        from tui.hostcheck import SrListing, abandonable
        from tui.hostcheck import list_srs as default_list_srs

        list_srs = getattr(self.app, "list_srs", default_list_srs)
        listing = abandonable(list_srs, host_id, get_current_worker().cancelled_event,
                              lambda error: SrListing(error=error))
        if listing is not None:
            self.post_message(SrsListed(host_id, listing))

    def on_srs_listed(self, message: SrsListed) -> None:
        if self.value("#host") != message.host_id:
            return  # the operator chose another host meanwhile
        listing = message.listing
        sr = self.query_one("#sr", Select)
        sr.set_options([sr_option(item, listing.default) for item in listing.srs])
        note = self.query_one("#sr-note", PlainStatic)
        if listing.error:
            sr.prompt = "SRs unknown: chosen when the job runs"
            note.update(plain(f"ERROR: could not list the SRs of {message.host_id}: {listing.error}"))
        else:
            sr.prompt = "the default SR, chosen when the job runs"
            note.update("")
        if listing.default in {item[0] for item in listing.srs}:
            self.default_sr = listing.default
            sr.value = listing.default

    def finished(self, message: ActionDone) -> None:
        if message.summary.startswith("load "):
            self.show_error(message.error or "")
            return
        super().finished(message)

    def value(self, selector: str) -> str | None:
        widget = self.query_one(selector)
        if isinstance(widget, Select):
            return None if widget.is_blank() else str(widget.value)
        assert isinstance(widget, Input)
        return widget.value or None

    def action_submit(self) -> None:
        from vdcmanage.importer.request import ImportRequest, submit_import

        request = ImportRequest(
            path=self.value("#path") or "",
            host=self.value("#host") or "",
            account_id=self.value("#account") or "",
            backup_storage=self.value("#storage"),
            sr_uuid=self.chosen_sr(),
            name_label=self.value("#name-label"),
            arch=self.value("#arch") or "x86_64",
            display_name=self.value("#display-name"),
            description=self.value("#description"),
        )
        self.file_name = request.path.rsplit("/", 1)[-1]
        self.submit_call("Queued", partial(submit_import, request))

    def chosen_sr(self) -> str | None:
        """None when the SR is left on the default: the job then chooses as ``image import xen`` does."""
        sr = self.value("#sr")
        return None if sr == self.default_sr else sr

    def describe(self, summary: str, result: object) -> str:
        """Runs in the worker thread: uses only what was saved at submit time."""
        return f"{summary} {getattr(result, 'id', '')}: import of {self.file_name}"
