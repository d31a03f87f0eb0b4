"""Printing results: aligned tables, ``Key: value`` records, and stable JSON for scripts.

Every cell and value of a table or record goes through ``cell``, which spells out control
characters (vdcmanage/textsafe.py): catalog text cannot add a row, forge an ``ERROR:`` line or
drive the terminal. JSON holds the exact text: JSON escapes C0 controls itself, and ``json_safe``
escapes the DEL and C1 characters it would leave raw.

No typer here: the fast path of ``image show`` (cli/entry.py) prints through this module too.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from vdcmanage.textsafe import json_safe, visible, visible_lines

FORMATS = ("table", "json")


def cell(value: Any) -> str:
    """One value as the terminal shows it: on one line, control characters spelled out."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return visible(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Columns padded to their widest cell, two spaces apart, like Thor's print_table."""
    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    out = sys.stdout
    lines = [format_row(headers, widths)]
    lines.extend(format_row(row, widths) for row in text_rows)
    out.write("\n".join(lines) + "\n")


def format_row(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def print_record(pairs: Iterable[tuple[str, Any]]) -> None:
    """One ``Key: value`` line per field (a newline in a value shows as ``\\n``); a list value
    is printed one item a line, indented under its key."""
    lines = []
    for key, value in pairs:
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  {cell(item)}" for item in value)
        else:
            lines.append(f"{key}: {cell(value)}".rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def print_lines(lines: Iterable[Any]) -> None:
    """Free-form report lines (job logs, check results), each kept on its own line."""
    sys.stdout.write("".join(f"{cell(line)}\n" for line in lines))


def print_report(text: str) -> None:
    """A multi-line report (prepare, boot-check): its layout kept, every other control character shown."""
    sys.stdout.write(visible_lines(text))


def print_json(data: Any) -> None:
    sys.stdout.write(json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def when(value: dt.datetime | None) -> str:
    """A UTC timestamp for tables: to the second, no zone suffix (the README says times are UTC)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
