"""Progress on stderr: a redrawn line on a terminal, occasional plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from vdcmanage.cli.output import human_size
from vdcmanage.textsafe import visible


class ProgressPrinter:
    """Call with (done, total) as often as you like; it redraws at most a few times a second.

    On a terminal it redraws one line with ``\\r``; when stderr is a file or pipe it prints a
    plain line every ``plain_interval`` seconds (never, if ``plain_interval`` is None), so logs
    of scripted runs stay readable.
    """

    def __init__(
        self, label: str, stream: TextIO | None = None, plain_interval: float | None = 10.0, min_interval: float = 0.2
    ) -> None:
        self.label = visible(label)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.plain_interval = plain_interval
        self.min_interval = min_interval if self.tty else (plain_interval or 0.0)
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty and self.plain_interval is None:
            return
        if now - self.last_draw < self.min_interval and done < total:
            return
        self.last_draw = now
        line = self.describe(done, total, now - self.started)
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def describe(self, done: int, total: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.label, f"{human_size(done)} / {human_size(total)}"]
        if total:
            parts.append(f"{100 * done // total}%")
        if rate:
            parts.append(f"{human_size(int(rate))}/s")
            if total and done < total:
                parts.append(f"ETA {format_duration((total - done) / rate)}")
        return "  ".join(parts)

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
