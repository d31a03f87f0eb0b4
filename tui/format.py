"""Text for table cells and detail lines: short sizes, UTC times, durations and progress bars.

Everything here is plain text that stays legible without colour (NO_COLOR, ``TERM=screen``):
what needs attention says so in words, not only in red.
"""

from __future__ import annotations

import datetime as dt

UNITS = ("B", "K", "M", "G", "T", "P")


def short_size(size: int | None) -> str:
    """At most 5 characters below 1000 PiB: ``512B``, ``9.5M``, ``1023M``, ``10.0G``, ``150G``."""
    if size is None:
        return ""
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 99.95 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{size}B"


def long_size(size: int | None) -> str:
    """``10737418240 bytes (10.0 GiB)``, for detail views."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in UNITS[1:]:
        value /= 1024
        if value < 1024 or unit == UNITS[-1]:
            break
    return f"{value:.1f} {unit}iB ({size:,} bytes)"


def short_time(value: dt.datetime | str | None, *, with_time: bool = True) -> str:
    """A UTC time to the minute (the README says the catalog's times are UTC)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.rstrip("Z"))
        except ValueError:
            return str(value)
    return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def duration(seconds: float | None) -> str:
    """``42s``, ``12:34`` (minutes), ``3h05m``."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m"


def rate(bytes_per_second: float | None) -> str:
    if not bytes_per_second:
        return ""
    return f"{short_size(int(bytes_per_second))}/s"


def bar(done: int, total: int, width: int) -> str:
    """A bar of ``width`` cells: ``█`` for done, ``░`` for what is left (readable in monochrome)."""
    if width <= 0:
        return ""
    if total <= 0:
        return "░" * width
    filled = min(width, max(0, done * width // total))
    return "█" * filled + "░" * (width - filled)


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def one_line(text: str | None) -> str:
    """Multi-line text (a description) flattened for a table cell."""
    return "" if text is None else " ".join(text.split())
