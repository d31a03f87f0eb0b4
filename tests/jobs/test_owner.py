"""Whether a job's owner process is gone: pid, start time and boot on this admin host, heartbeat elsewhere."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess

from vdcmanage.catalog.models import utcnow
from vdcmanage.jobs import owner

NOW = utcnow()
STALE_BEFORE = NOW - dt.timedelta(seconds=60)
FRESH = NOW - dt.timedelta(seconds=1)
OLD = NOW - dt.timedelta(seconds=600)


def name(pid: int, *, host: str | None = None, machine: str | None = None, boot: str | None = None,
         start: str | None = None) -> str:
    return ":".join([host or socket.gethostname(), str(pid), "1", machine or owner.machine_id(),
                     boot or owner.boot_id(), start if start is not None else owner.process_start(pid)])


def test_this_process_is_alive_whatever_its_heartbeat() -> None:
    assert owner.worker_name().split(":")[1] == str(os.getpid())
    assert owner.owner_gone(owner.worker_name(), OLD, STALE_BEFORE) is None


def test_an_ended_process_on_this_host_is_gone_at_once() -> None:
    child = subprocess.Popen(["sleep", "30"])
    worker = name(child.pid)
    assert owner.owner_gone(worker, FRESH, STALE_BEFORE) is None
    child.kill()
    child.wait()
    assert "has ended" in (owner.owner_gone(worker, FRESH, STALE_BEFORE) or "")


def test_a_reused_pid_is_not_the_owner() -> None:
    assert "has ended" in (owner.owner_gone(name(os.getpid(), start="1"), FRESH, STALE_BEFORE) or "")


def test_another_boot_of_this_host_is_gone() -> None:
    assert "rebooted" in (owner.owner_gone(name(os.getpid(), boot="0" * 12), FRESH, STALE_BEFORE) or "")


def test_another_admin_host_is_judged_by_its_heartbeat() -> None:
    elsewhere = name(1, host="admin2", machine="f" * 12)
    assert owner.owner_gone(elsewhere, FRESH, STALE_BEFORE) is None
    assert "no heartbeat" in (owner.owner_gone(elsewhere, OLD, STALE_BEFORE) or "")


def test_old_style_names_are_judged_by_heartbeat() -> None:
    assert owner.parse_owner("admin1:4242:1") is None
    assert owner.owner_gone("admin1:4242:1", FRESH, STALE_BEFORE) is None
    assert owner.owner_gone("admin1:4242:1", OLD, STALE_BEFORE) is not None
