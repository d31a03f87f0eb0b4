"""The serial console log, read as qemu writes it, each line stamped with when it appeared.

Milestones are the first line matching one of their patterns; the times are this machine's
(seconds since qemu started), not the guest's, so they include everything the guest waited for.
Lines systemd prints as ``[FAILED] Failed to start ...`` and the metadata script's own lines
(its unit writes to the console too) are kept as findings.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.1
STALE_PARTIAL_S = 0.5
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KERNEL_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")

# milestone -> patterns; the earliest line matching any of them
PATTERNS: dict[str, tuple[str, ...]] = {
    "kernel": (r"Linux version \d",),
    "root": (
        r"EXT4-fs \([^)]+\): mounted filesystem",
        r"XFS \([^)]+\): Ending clean mount",
        r"BTRFS info \([^)]+\): .*enabling",
        r"Welcome to .*!",
        r"INIT: version",
    ),
    "network": (r"Reached target .*Network is Online", r"Reached target network-online"),
    "login-prompt": (r"(^|\s)\S+ login:( |$)",),  # "debian12-template login: ", often with kernel lines after it
    "metadata-gave-up": (r"vdc-metadata: .*unreachable after",),
    "ssh-started": (r"Started .*OpenBSD Secure Shell server", r"Started .*OpenSSH server daemon"),
    "panic": (r"Kernel panic - not syncing", r"VFS: Unable to mount root fs"),
}
FAILED = re.compile(r"\[FAILED\] (Failed to start .*)")
METADATA_LINE = re.compile(r"vdc-metadata: (.*)")


@dataclass(frozen=True)
class Line:
    at: float  # time.monotonic() when it was read
    text: str


class ConsoleWatcher:
    """Follows a log file from a thread until :meth:`stop`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[Line] = []
        self.partial: Line | None = None  # the last line, still without its newline
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.follow, name="serial-console", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def follow(self) -> None:
        offset, pending, pending_at = 0, b"", 0.0
        while True:
            stopping = self.stopping.is_set()
            try:
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            now = time.monotonic()
            if data:
                offset += len(data)
                lines = []
                if pending and now - pending_at > STALE_PARTIAL_S:
                    # getty's "login: " waits for a newline until the next console output, which is
                    # another message: the prompt is a line of its own, timed when it appeared
                    lines.append(Line(pending_at, clean(pending)))
                    pending = b""
                pending_at = pending_at if pending else now
                *complete, pending = (pending + data).split(b"\n")
                lines += [Line(pending_at if index == 0 else now, clean(raw)) for index, raw in enumerate(complete)]
                pending_at = now if complete else pending_at
                with self.lock:
                    self.lines += lines
                    self.partial = Line(pending_at, clean(pending)) if pending else None
            if stopping:
                return
            time.sleep(POLL_S)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def snapshot(self) -> list[Line]:
        with self.lock:
            return [*self.lines, self.partial] if self.partial else list(self.lines)

    def first(self, milestone: str) -> Line | None:
        patterns = [re.compile(p) for p in PATTERNS[milestone]]
        return next((line for line in self.snapshot() if any(p.search(line.text) for p in patterns)), None)

    def failures(self) -> list[str]:
        return [m.group(1).strip() for line in self.snapshot() if (m := FAILED.search(line.text))]

    def metadata_lines(self) -> list[Line]:
        return [Line(line.at, m.group(1).strip()) for line in self.snapshot() if (m := METADATA_LINE.search(line.text))]


def without_kernel_time(text: str) -> str:
    return KERNEL_TIME.sub("", text)


def clean(raw: bytes) -> str:
    """A console line as text: colours and carriage returns gone."""
    return ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "").rstrip()
