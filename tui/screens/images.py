"""The images view: every live image, sorted and filtered by the catalog, a detail pane, and the image actions."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, VerticalScroll
from textual.events import Key
from textual.widgets import Input, Label

from tui import format as fmt
from tui.plain import PlainStatic
from tui.screens.base import PagedScreen, Question, StatusLine
from tui.screens.dialogs import EditImageDialog
from tui.widgets.bars import KeyBar, TopBar
from tui.widgets.filterbox import FilterBox
from tui.widgets.lazytable import Column, LazyTable
from vdcmanage.catalog import browse, images
from vdcmanage.textsafe import visible, visible_lines

COLUMNS = [
    Column("id", "ID", 12),
    Column("name", "Name", 12, flex=True),
    Column("account", "Account", 10, drop=3),
    Column("arch", "Arch", 6, drop=4),
    Column("format", "Fmt", 5, drop=5),
    Column("size", "Size", 5, align="right"),
    Column("virtual_size", "VSize", 6, align="right", drop=6),  # 6: "VSize▼" when sorted by it
    Column("state", "State", 9),
    Column("created", "Created (UTC)", 16, drop=7),
]
SORT_ORDER = ["created", "name", "id", "account", "arch", "format", "size", "virtual_size", "state"]
SORT_LABELS = {"virtual_size": "virtual size"}


def image_cell(row: dict[str, Any], key: str) -> str:
    if key == "name":
        return fmt.one_line(row["display_name"])
    if key == "account":
        return str(row["account_id"])
    if key == "format":
        return str(row["file_format"])
    if key in ("size", "virtual_size"):
        return fmt.short_size(row[key])
    if key == "created":
        return fmt.short_time(row["created_at"])
    return str(row[key])


def image_row_class(row: dict[str, Any]) -> str | None:
    if row["state"] == "broken":
        return "lazy-table--failed"
    if row["state"] in ("init", "creating"):
        return "lazy-table--muted"
    return None


def image_detail(row: dict[str, Any]) -> Text:
    """Every field of the image (as ``image show`` prints them), packed to fit a 10-line pane at 80 columns."""
    features = row["features"]
    lines: list[list[tuple[str, object]]] = [
        [
            ("Account", row["account_id"]),
            ("State", row["state"]),
            ("Public", fmt.yes_no(row["is_public"])),
            ("OS", row["os_type"]),
        ],
        [
            ("Arch", row["arch"]),
            ("Format", row["file_format"]),
            ("Boot", row["boot_type"]),
            ("Features", f"virtio {fmt.yes_no(features['virtio'])}, acpi {fmt.yes_no(features['acpi'])}"),
        ],
        [("Size", fmt.long_size(row["size"]))],
        [("Virtual size", fmt.long_size(row["virtual_size"]))],
        [("MD5", row["md5"])],
        [("SHA256", row["sha256"])],
        [("Source", row["source_uri"])],
        [("Job", row["job_id"] or "none"), ("Created", row["created_at"]), ("Updated", row["updated_at"])],
    ]
    text = Text()
    text.append(f"{row['id']}  {visible(row['display_name'] or '')}\n", style="bold")
    for pairs in lines:
        for i, (label, value) in enumerate(pairs):
            text.append(("   " if i else "") + f"{label}: ", style="bold")
            text.append("" if value is None else visible(value))
        text.append("\n")
    # Rich drops BEL, BS, CR ... from appended text silently: spell them out first (the lines stay lines).
    description = visible_lines(row["description"] or "").splitlines()
    text.append("Description: ", style="bold")
    text.append(description[0] if description else "none")
    for line in description[1:]:
        text.append(f"\n  {line}")
    return text


class ImagesScreen(PagedScreen[dict[str, Any], browse.ImageSearch]):
    """Browse images: ``/`` filters by id, name, description or account; ``s`` sorts; Enter shows every field."""

    MODE = "images"
    TABLES: ClassVar[frozenset[str]] = frozenset({"images"})
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the App runs it as the key arrives, so the keys typed right after it ("/ubuntu")
        # already go to the filter box (a plain binding runs only after they were queued on the table)
        Binding("slash", "filter", "Filter", key_display="/", priority=True),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse"),
        Binding("enter", "detail", "Detail", key_display="⏎"),
        Binding("e", "edit", "Edit"),
        Binding("p", "public", "Public"),
        Binding("v", "virtio", "Virtio"),
        Binding("a", "acpi", "ACPI"),
        Binding("d,delete", "delete", "Delete", key_display="d"),
        Binding("g", "goto_job", "Its job"),
        Binding("y", "copy_id", "Copy id"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.search = browse.ImageSearch()

    def compose(self) -> ComposeResult:
        yield TopBar()
        with Horizontal(classes="filter-bar"):
            yield Label("Filter ", classes="filter-label")
            yield FilterBox(
                placeholder="/ to search id, name, description, account",
                id="filter",
                compact=True,
                max_length=browse.SEARCH_MAX,
            )
            yield PlainStatic("", id="summary")
        with Container(id="body"):
            yield LazyTable(
                COLUMNS,
                image_cell,
                key_of=lambda row: str(row["id"]),
                row_class=image_row_class,
                empty_text="No images match",
                id="images-table",
            )
            with VerticalScroll(id="image-detail", classes="detail-pane"):
                yield PlainStatic("", id="image-detail-text")
        yield StatusLine("")
        yield KeyBar()

    def on_mount(self) -> None:
        self.table.sort_key = self.search.sort
        self.set_focus(self.table)
        self.show_summary()

    # --- the catalog side (worker threads) -------------------------------------------------------

    def fetch_page(self, search: browse.ImageSearch, offset: int, limit: int) -> list[dict[str, Any]]:
        return browse.image_page(search, offset, limit)

    def fetch_count(self, search: browse.ImageSearch) -> int:
        return browse.count_images(search)

    def fetch_position(self, search: browse.ImageSearch, key: str) -> int | None:
        return browse.image_position(search, key)

    # --- what is shown -----------------------------------------------------------------------------

    def counted(self, total: int | None) -> None:
        self.show_summary()

    def show_summary(self) -> None:
        if self.total is None:
            count = f"≥{self.table.total:,} images, counting…" if self.table.loaded else "loading…"
        else:
            count = f"{self.total:,} image{'s' if self.total != 1 else ''}"
        arrow = "▼" if self.search.descending else "▲"
        sort = SORT_LABELS.get(self.search.sort, self.search.sort)
        self.query_one("#summary", PlainStatic).update(f"{count} · {sort}{arrow}")

    @on(LazyTable.Highlighted)
    def _highlighted(self, message: LazyTable.Highlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        pane = self.query_one("#image-detail")
        if not pane.display:
            return
        row = self.table.selected
        text = image_detail(row) if row is not None else Text("No image selected")
        self.query_one("#image-detail-text", PlainStatic).update(text)

    # --- filter and sort -------------------------------------------------------------------------

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

    def action_sort(self) -> None:
        following = SORT_ORDER[(SORT_ORDER.index(self.search.sort) + 1) % len(SORT_ORDER)]
        self.resort(replace(self.search, sort=following, descending=following in ("created", "size", "virtual_size")))

    def action_reverse(self) -> None:
        self.resort(replace(self.search, descending=not self.search.descending))

    def resort(self, search: browse.ImageSearch) -> None:
        self.search = search
        self.table.sort_key, self.table.sort_descending = search.sort, search.descending
        self.reload()
        self.show_summary()

    def action_reload(self) -> None:
        self.reload()

    def select(self, image_id: str) -> None:
        """Select ``image_id`` wherever it is in the current order; a filter that hides it is cleared."""
        self.search = replace(self.search, text="")
        self.query_one("#filter", Input).value = ""
        self.select_next = image_id
        self.reload()
        self.show_summary()
        self.set_focus(self.table)

    def action_goto_job(self) -> None:
        row = self.selected_image()
        if row is None:
            return
        if row["job_id"]:
            self.go_to_job(row["job_id"])
        else:
            self.status.show(f"{row['id']} was not made by a job (it was added with image add)", error=True)

    def action_copy_id(self) -> None:
        row = self.table.selected
        self.copy_id(row["id"] if row else None, "image")

    # --- detail and actions ------------------------------------------------------------------------

    def action_detail(self) -> None:
        pane = self.query_one("#image-detail")
        pane.display = not pane.display
        self.show_detail()

    def selected_image(self) -> dict[str, Any] | None:
        row = self.table.selected
        if row is None:
            self.status.show("No image selected", error=True)
        return row

    def action_edit(self) -> None:
        row = self.selected_image()
        if row is not None:
            self.app.push_screen(EditImageDialog(row, images.modify_image), self._form_closed)

    def _form_closed(self, summary: str | None) -> None:
        if summary:
            self.status.show(f"✓ {summary}")
            self.reload()

    def action_virtio(self) -> None:
        self.toggle_feature("virtio")

    def action_acpi(self) -> None:
        self.toggle_feature("acpi")

    def toggle_feature(self, name: str) -> None:
        row = self.selected_image()
        if row is None:
            return
        value = not row["features"][name]
        summary = f"{name} {'on' if value else 'off'} for {row['id']}"
        done = f"{summary} (press {name[0]} again to undo)"
        self.run_catalog_action(summary, partial(images.set_features, row["id"], **{name: value}), done)

    def action_public(self) -> None:
        row = self.selected_image()
        if row is None:
            return
        image_id, public = row["id"], not row["is_public"]
        word = "public" if public else "private"
        effect = "every account can see and use it" if public else "only its account can see and use it"
        question = Question(
            title=f"Make {image_id} {word}",
            text=f"Make image {image_id}{quoted_name(row)} {word}?\n\nThen {effect}.",
            confirm=f"Make {word}",
            keep=f"Keep {'private' if public else 'public'}",
            summary=f"make {image_id} {word}",
            done=f"{image_id} is now {word}",
            kept=f"{image_id} left {'private' if public else 'public'}",
        )
        self.confirm_action(question, partial(images.modify_image, image_id, is_public=public))

    def action_delete(self) -> None:
        row = self.selected_image()
        if row is None:
            return
        image_id = row["id"]
        question = Question(
            title=f"Delete {image_id}",
            text=(
                f"Delete image {image_id}{quoted_name(row)}?\n\n"
                "It leaves the listings and its id is never reused; the record stays as deleted. "
                "The image file itself is not touched."
            ),
            confirm="Delete",
            keep="Keep it",
            summary=f"delete {image_id}",
            done=f"Deleted {image_id}",
            kept=f"Delete of {image_id} cancelled: the image is unchanged",
        )
        self.confirm_action(question, partial(images.delete_image, image_id))


def quoted_name(row: dict[str, Any]) -> str:
    return f" “{visible(row['display_name'])}”" if row["display_name"] else ""
