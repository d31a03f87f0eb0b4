"""Cell text and column fitting: what must hold at any width and for any value."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from tui import format as fmt
from tui.widgets.lazytable import Column, fit_columns, fit_text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, ""),
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0K"),
        (99 * 1024**2, "99.0M"),
        (int(99.97 * 1024**2), "100M"),
        (1023 * 1024**2, "1023M"),
        (10 * 1024**3, "10.0G"),
        (150 * 1024**3, "150G"),
        (3 * 1024**5, "3.0P"),
    ],
)
def test_short_sizes_fit_five_cells(size: int | None, text: str) -> None:
    assert fmt.short_size(size) == text
    assert len(text) <= 5


def test_long_sizes_keep_the_exact_bytes() -> None:
    assert fmt.long_size(512) == "512 bytes"
    assert fmt.long_size(10 * 1024**3) == "10.0 GiB (10,737,418,240 bytes)"


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, ""), (0.4, "0s"), (59.6, "1:00"), (145, "2:25"), (3600 * 3 + 300, "3h05m")]
)
def test_durations(seconds: float | None, text: str) -> None:
    assert fmt.duration(seconds) == text


def test_bars_are_exactly_their_width_and_never_overflow() -> None:
    assert fmt.bar(0, 100, 8) == "░" * 8
    assert fmt.bar(50, 100, 8) == "████░░░░"
    assert fmt.bar(150, 100, 8) == "█" * 8  # a step that reports more than its total
    assert fmt.bar(5, 0, 4) == "░░░░"
    assert fmt.bar(5, 10, 0) == ""


def test_times_and_text() -> None:
    assert fmt.short_time("2024-05-01T09:30:00Z") == "2024-05-01 09:30"
    assert fmt.short_time("not a time") == "not a time"
    assert fmt.one_line("two\nlines  and\tspaces") == "two lines and spaces"
    assert fmt.rate(None) == "" and fmt.rate(20 * 1024**2) == "20.0M/s"


def test_fit_text_cuts_visibly_and_pads_wide_characters() -> None:
    assert fit_text("Ubuntu 10.04 64bit", 10, "left") == "Ubuntu 10…"
    assert fit_text("612M", 6, "right") == "  612M"
    cut = fit_text("日本語のイメージ", 7, "left")
    assert cell_len(cut) == 7 and cut.endswith("…")


COLUMNS = [
    Column("id", "ID", 12),
    Column("name", "Name", 10, flex=True),
    Column("account", "Account", 10, drop=2),
    Column("created", "Created", 16, drop=3),
]


@pytest.mark.parametrize("width", [30, 45, 60, 79, 120])
def test_columns_fit_the_width_dropping_the_least_important_first(width: int) -> None:
    fitted = fit_columns(COLUMNS, width)
    used = sum(w for _, w in fitted) + len(fitted) - 1
    keys = [c.key for c, _ in fitted]
    assert keys[:2] == ["id", "name"]
    assert used <= width or keys == ["id", "name"]
    if "account" not in keys:
        assert "created" not in keys  # created goes before account
    if width >= 51:
        assert used == width  # the flexible column takes what is left
