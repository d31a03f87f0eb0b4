"""Who runs a job, and whether that process still exists.

A worker name is ``host:pid:thread:machine:boot:start``: the machine id and boot id (first 12
characters of ``/etc/machine-id`` and ``/proc/sys/kernel/random/boot_id``) and the process start
time (clock ticks since boot, from ``/proc/PID/stat``) tell, on the same admin host, whether the
owner is gone for certain: another boot, no such pid, or a pid reused by a later process. An owner on
another admin host can only be judged by its heartbeat's age. Names written by older versions
(``host:pid:thread``) are judged by heartbeat age too.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path


def read_id(path: str) -> str:
    try:
        return Path(path).read_text().strip().replace("-", "")[:12]
    except OSError:
        return ""


@cache
def machine_id() -> str:
    return read_id("/etc/machine-id") or read_id("/var/lib/dbus/machine-id")


def boot_id() -> str:
    return read_id("/proc/sys/kernel/random/boot_id")


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot; "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ")"
    return stat.rpartition(")")[2].split()[19]


def worker_name() -> str:
    pid = os.getpid()
    return ":".join(
        [socket.gethostname(), str(pid), str(threading.get_ident() % 100000), machine_id(), boot_id(),
         process_start(pid)]
    )


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    machine: str
    boot: str
    start: str


def parse_owner(worker: str | None) -> Owner | None:
    """The identity in a worker name; None for names that carry no machine, boot and start."""
    parts = (worker or "").split(":")
    if len(parts) != 6 or not parts[1].isdigit() or not all(parts[3:]):
        return None
    return Owner(parts[0], int(parts[1]), parts[3], parts[4], parts[5])


def owner_gone(worker: str | None, heartbeat_at: dt.datetime | None, stale_before: dt.datetime) -> str | None:
    """Why the job's owner is certainly gone, or None if it may still be running.

    On this admin host (same machine id and host name): another boot, or no process with that pid
    and start time. Elsewhere, or for an old-style name: a heartbeat older than ``stale_before``.
    """
    owner = parse_owner(worker)
    if owner is not None and owner.machine == machine_id() and owner.host == socket.gethostname():
        if owner.boot != boot_id():
            return f"its owner {worker} ran before this admin host rebooted"
        if process_start(owner.pid) != owner.start:
            return f"its owner, process {owner.pid} on this admin host, has ended"
        return None
    if heartbeat_at is None or heartbeat_at < stale_before:
        return f"its owner {worker} sent no heartbeat since {heartbeat_at or 'it started'}"
    return None
