"""Who else has an image file open: a running qemu or VM, a copy, another tool.

Read from /proc: every process's open files (``/proc/PID/fd``) that are this file (same device
and inode, whatever the path they opened), and how (``flags`` in ``/proc/PID/fdinfo``). qemu
opens its disks read-write (read-only for a snapshot's backing file) and keeps them open as
long as the VM runs, so this finds it as surely as its image locks would. Only root sees every
process; preparing an image file needs root anyway.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.errors import InUse

PROC = Path("/proc")
ACCESS_MODE = 0o3  # O_ACCMODE: 0 read-only, 1 write-only, 2 read-write


@dataclass(frozen=True)
class Opener:
    pid: int
    command: str
    writing: bool

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command}) {'for writing' if self.writing else 'for reading'}"


def fd_writes(pid: str, fd: str) -> bool:
    try:
        for line in (PROC / pid / "fdinfo" / fd).read_text().splitlines():
            if line.startswith("flags:"):
                return int(line.split()[1], 8) & ACCESS_MODE != 0
    except (OSError, ValueError):
        pass
    return False


def command_of(pid: str) -> str:
    try:
        return (PROC / pid / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def openers(path: Path) -> list[Opener]:
    """Other processes holding the file open, one entry per process (writing if any fd writes)."""
    target = os.stat(path)
    found: dict[int, Opener] = {}
    me = os.getpid()
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(PROC / entry.name / "fd"):
                with contextlib.suppress(OSError):
                    st = os.stat(PROC / entry.name / "fd" / fd)
                    if (st.st_dev, st.st_ino) != (target.st_dev, target.st_ino):
                        continue
                    pid = int(entry.name)
                    writing = fd_writes(entry.name, fd) or (pid in found and found[pid].writing)
                    found[pid] = Opener(pid, command_of(entry.name), writing)
    return sorted(found.values(), key=lambda opener: opener.pid)


def refuse_if_in_use(path: Path, *, changing: bool) -> None:
    """Refuse an image another process writes (its filesystem is live: any view of it is torn), and,
    before changing it, one another process reads (a VM booted from it, a copy under way)."""
    others = openers(path)
    blocking = others if changing else [opener for opener in others if opener.writing]
    if blocking:
        who = ", ".join(opener.describe() for opener in blocking)
        raise InUse(
            f"{path} is open by {who}: a running VM or tool is using it. Stop it (or wait until it is "
            "closed) and try again; nothing was changed"
        )
