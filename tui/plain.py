"""Catalog text on screen: always plain text, never markup, never terminal control.

Names, descriptions, paths, job messages and error texts come from operators, image files and
remote hosts. Given to a widget as a ``str`` they would be parsed as Textual markup (``[/]evil``
crashes the view, ``[link=…]`` makes a link); written raw, an ESC or a C1 CSI would drive the
terminal. Everything the dashboard shows goes through one of these:

- ``plain(value)``: one value as a ``Text`` on one line (table cells, labels, select options);
- ``shown(content)``: a whole pane's ``Text`` (or ``str``) with its styles and line breaks kept and
  every other control character spelled out; :class:`PlainStatic` applies it on every update.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from vdcmanage.textsafe import UNSAFE_IN_REPORT, visible, visible_lines


def plain(value: object) -> Text:
    """One catalog value as literal text on one line (``None`` shows as nothing)."""
    return Text("" if value is None else visible(value))


def shown(content: Text | str) -> Text:
    """``content`` as literal text: a ``str`` is never markup; control characters other than line
    breaks and tabs are spelled out, keeping the styles of the characters around them."""
    if isinstance(content, str):
        return Text(visible_lines(content))
    cuts = sorted({offset for m in UNSAFE_IN_REPORT.finditer(content.plain) for offset in (m.start(), m.end())})
    if not cuts:
        return content
    result = Text(style=content.style, justify=content.justify, no_wrap=content.no_wrap, end=content.end)
    for piece in content.divide(cuts):
        if UNSAFE_IN_REPORT.fullmatch(piece.plain):
            spelled = Text(visible_lines(piece.plain), style=piece.style)
            for span in piece.spans:
                spelled.stylize(span.style)
            piece = spelled
        result.append_text(piece)
    return result


class PlainStatic(Static):
    """A ``Static`` that shows catalog text literally: markup off, control characters spelled out."""

    def __init__(self, content: Text | str = "", **kwargs: object) -> None:
        super().__init__(shown(content), markup=False, **kwargs)  # type: ignore[arg-type]

    def update(self, content: Text | str = "", *, layout: bool = True) -> None:  # type: ignore[override]
        super().update(shown(content), layout=layout)

    @property
    def content(self) -> Text:
        content = super().content
        assert isinstance(content, Text)
        return content

    @content.setter  # type: ignore[override]  # takes only text: that is the point of this widget
    def content(self, content: Text | str) -> None:
        Static.content.fset(self, shown(content))  # type: ignore[attr-defined]
