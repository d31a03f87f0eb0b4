"""The filter box of the images and jobs views: an Input whose editing keys keep their place in a burst.

Textual hands a key to the focused Input; a printable key is inserted there at once, but a key bound by
the Input (backspace, delete, arrows, enter) is not handled there: it bubbles up through the message
queues of the screen and the app, which then run the binding. When keys arrive in one read (typed fast,
over a slow SSH link), the letters after a backspace are inserted before the backspace runs:
"32bx", backspace, "it" became "32bxi". Here the box runs its own bindings when the key reaches it.
"""

from __future__ import annotations

from textual.events import Key
from textual.widgets import Input


class FilterBox(Input):
    async def _on_key(self, event: Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority and await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()
                    return
        await super()._on_key(event)
