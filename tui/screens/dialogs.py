"""Modal dialogs: a confirmation that names what it is about, and the forms that change an image or start an import.

A form keeps its values when the catalog refuses them: the refusal is shown inside the form, in
the core's own words, and nothing was changed. Only a completed action closes the form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, TextArea

from tui.catalog import call_catalog, error_text
from tui.messages import ActionDone
from tui.plain import PlainStatic, plain
from tui.widgets.bars import KeyBar
from vdcmanage.textsafe import visible, visible_lines


class ConfirmDialog(ModalScreen[bool]):
    """``question`` with a confirm and a cancel button; cancel has the focus, so a stray Enter changes nothing."""

    DEFAULT_CLASSES = "dialog-screen"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str, confirm_label: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield PlainStatic(Text(self.title_text, style="bold"), classes="dialog-title")
            yield PlainStatic(Text(self.question), id="question")
            with Horizontal(classes="buttons"):
                yield Button(Text(f"{self.confirm_label} (y)"), id="yes", variant="error", compact=True)
                yield Button(Text("Cancel (n)"), id="no", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#no", Button))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class FormDialog(ModalScreen[str]):
    """A form whose submit runs a catalog call in a worker; dismissed with a summary once it is done."""

    DEFAULT_CLASSES = "dialog-screen"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]
    busy = False

    @property
    def error_line(self) -> PlainStatic:
        return self.query_one("#form-error", PlainStatic)

    def show_error(self, message: str) -> None:
        self.error_line.update(plain(f"ERROR: {message}"))
        self.error_line.add_class("-error")

    def show_info(self, message: str) -> None:
        self.error_line.update(plain(message))
        self.error_line.remove_class("-error")

    def submit_call(self, summary: str, call: Callable[[], object]) -> None:
        if self.busy:
            return
        self.busy = True
        self.show_info(f"{summary} …")
        self.run_worker(partial(self._call_thread, summary, call), thread=True, exit_on_error=False)

    def _call_thread(self, summary: str, call: Callable[[], object]) -> None:
        try:
            result = call_catalog(call)
        except Exception as exc:
            self.post_message(ActionDone(summary, error_text(exc)))
        else:
            self.post_message(ActionDone(self.describe(summary, result)))

    def describe(self, summary: str, result: object) -> str:
        return summary

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        self.finished(message)

    def finished(self, message: ActionDone) -> None:
        self.busy = False
        if message.error is not None:
            self.show_error(message.error)
        else:
            self.dismiss(message.summary)

    def action_cancel(self) -> None:
        self.dismiss("")

    def action_submit(self) -> None:
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def buttons(self, submit_label: str) -> ComposeResult:
        yield PlainStatic("", id="form-error")
        with Horizontal(classes="buttons"):
            yield Button(Text(f"{submit_label} (ctrl+s)"), id="submit", variant="primary", compact=True)
            yield Button(Text("Cancel (esc)"), id="cancel", compact=True)


class EditImageDialog(FormDialog):
    """Display name, description and public flag of one image, changed through ``modify_image``.

    The editors draw their text as it is, so a name or description holding control characters is
    shown spelled out (``\\x1b``); a field the operator leaves alone is not saved, one they change is
    saved as they see it.
    """

    def __init__(self, image: dict[str, Any], modify: Callable[..., object]) -> None:
        super().__init__()
        self.image = image
        self.modify = modify
        self.shown: dict[str, Any] = {
            "display_name": visible(image["display_name"] or ""),
            "description": visible_lines(image["description"] or ""),
            "is_public": bool(image["is_public"]),
        }

    def compose(self) -> ComposeResult:
        image = self.image
        with Vertical(classes="dialog", id="edit-image"):
            yield PlainStatic(Text(f"Edit image {image['id']}", style="bold"), classes="dialog-title")
            with Grid(classes="form"):
                yield Label("Display name")
                yield Input(self.shown["display_name"], id="display-name", compact=True, max_length=255)
                yield Label("Public")
                yield Checkbox("visible to every account", self.shown["is_public"], id="public", compact=True)
            yield Label("Description (may span lines)")
            yield TextArea(
                self.shown["description"], id="description", soft_wrap=True, show_line_numbers=False, compact=True
            )
            yield from self.buttons("Save")
        yield KeyBar()

    def changes(self) -> dict[str, Any]:
        """Only the fields the operator changed, so a concurrent change of another field is not undone
        (and a value shown with its control characters spelled out is not saved spelled out)."""
        wanted: dict[str, Any] = {
            "display_name": self.query_one("#display-name", Input).value,
            "description": self.query_one("#description", TextArea).text,
            "is_public": self.query_one("#public", Checkbox).value,
        }
        return {key: value for key, value in wanted.items() if value != self.shown[key]}

    def action_submit(self) -> None:
        changes = self.changes()
        if not changes:
            self.show_info("Nothing changed")
            return
        image_id = self.image["id"]
        fields = ", ".join(name.replace("_", " ") for name in changes)
        self.submit_call(f"Saved {fields} of {image_id}", partial(self.modify, image_id, **changes))
