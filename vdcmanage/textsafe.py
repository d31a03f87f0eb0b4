"""Untrusted text made safe for a terminal: every control character shown, none obeyed.

Names, descriptions, paths, job messages and the stderr of remote commands come from operators,
image headers and other machines. Printed raw, a newline forges an ``ERROR:`` line or a table row,
an ESC or a C1 CSI (U+009B) moves the cursor or clears the screen. ``visible`` spells each such
character out (``\\n``, ``\\x1b``, ``\\x9b``), so what the operator reads is what the catalog holds.
JSON output keeps the exact text: JSON escapes C0 itself, ``json_safe`` the DEL and C1 it leaves raw.

No rich, typer or textual here: the CLI's output seams and the dashboard both use it.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (Unicode category Cc), the line/paragraph separators some
# terminals and pagers honour, and the bidirectional overrides that reorder what is displayed.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same, less the newline and the tab: in a multi-line report they only move the cursor forward.
UNSAFE_IN_REPORT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def spelled(char: str) -> str:
    """The visible spelling of one unsafe character."""
    if char in NAMED:
        return NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """``str(text)`` with every control character spelled out; safe text comes back unchanged."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable():  # the common case, 5x cheaper than the regex: no Cc, Cf, Zl, Zp at all
        return value
    return UNSAFE.sub(spell_match, value)


def spell_match(match: re.Match[str]) -> str:
    return spelled(match.group())


# What json.dumps(ensure_ascii=False) leaves raw although a terminal obeys it: DEL, C1, separators, bidi.
RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_safe(document: str) -> str:
    """A JSON text with the characters JSON leaves raw (DEL, C1 ...) written as ``\\uXXXX`` escapes:
    the same document to a parser, inert on a terminal. They can only occur inside strings."""
    return RAW_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", document)


def visible_lines(text: str) -> str:
    """A multi-line report made safe: its line breaks and tabs kept (they only move the cursor
    forward), every other control character spelled out. Fields that must stay on one line are
    passed through ``visible`` where the report is composed."""
    return UNSAFE_IN_REPORT.sub(spell_match, text)
