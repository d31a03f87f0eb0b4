"""A foreground import whose terminal goes away, or that is killed outright: `job retry` at once."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published
from tests.importer.test_import_faults import MiB, random_raw, uploaded_past, wait_for


class Terminal:
    """A real pseudo-terminal that is the controlling terminal of a new session, as an SSH login's is;
    :meth:`hang_up` closes its master side as sshd does when the connection drops."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.output = bytearray()
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self.drain, daemon=True)

    def drain(self) -> None:
        while not self.closing.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    return

    def start(self, world: ImportWorld, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdcmanage", *args],
            stdin=self.slave, stdout=self.slave, stderr=self.slave,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "VDC_MANAGE_DB": world.catalog_url},
        )
        os.close(self.slave)
        self.reader.start()
        return proc

    def hang_up(self) -> None:
        self.closing.set()
        self.reader.join()
        os.close(self.master)


def only_job_id(world: ImportWorld) -> str:
    found = wait_for(lambda: (world.cli("job", "list", "-f", "json").out.split('"id": "')[1:2] or [None])[0])
    return str(found).split('"')[0]


def killed_mid_upload(world: ImportWorld, source: Path, fraction: float = 0.2) -> str:
    """A foreground import SIGKILLed once ``fraction`` of its upload is verified; its job stays "running"."""
    proc = world.popen(*world.import_args(source))
    job_id = only_job_id(world)
    wait_for(lambda: uploaded_past(world, job_id, fraction), interval=0.02)
    proc.send_signal(signal.SIGKILL)  # nothing runs in it any more
    proc.communicate(timeout=60)
    assert world.job(job_id)["state"] == "running"
    return job_id


def log_lines(world: ImportWorld, job_id: str) -> list[str]:
    from vdcmanage.jobs.queue import log_tail

    return world.in_catalog(lambda: [row.message for row in log_tail(job_id, 10_000)])


def test_terminal_hang_up_mid_upload_then_retry_at_once(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 384 * MiB)
    terminal = Terminal()
    proc = terminal.start(world, *world.import_args(source))
    try:
        job_id = only_job_id(world)
        wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
        assert b"stage:" in terminal.output  # progress was drawn on the terminal
        terminal.hang_up()  # the kernel sends SIGHUP to the session's leader: our import
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job = world.job(job_id)
    assert job["state"] == "failed" and "Interrupted (terminal closed (SIGHUP)) during step stage" in job["error"]
    resumed = world.cli("job", "retry", job_id)  # at once: no worker, no stalled-takeover timeout
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)
    assert world.job(job_id)["attempts"] == 2


def test_killed_foreground_import_is_retried_at_once_on_the_same_host(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 384 * MiB)
    job_id = killed_mid_upload(world, source)
    resumed = world.cli("job", "retry", job_id)
    assert resumed.code == 0, resumed.err
    job = world.job(job_id)
    assert (job["state"], job["attempts"]) == ("succeeded", 2)
    assert any("on this admin host, has ended" in line for line in log_lines(world, job_id))
    check_published(world, resumed.out.strip(), source)


def test_retry_of_a_job_whose_owner_runs_is_refused(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 384 * MiB)
    proc = world.popen(*world.import_args(source))
    job_id = only_job_id(world)
    wait_for(lambda: uploaded_past(world, job_id, 0.1), interval=0.02)
    refused = world.cli("job", "retry", job_id)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert refused.code == 100
    assert f"Job {job_id} is running on " in refused.err and f"job cancel {job_id}" in refused.err


def test_sigterm_of_a_foreground_import_leaves_it_interrupted(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 256 * MiB)
    proc = world.popen(*world.import_args(source))
    job_id = only_job_id(world)
    wait_for(lambda: uploaded_past(world, job_id, 0.1), interval=0.02)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"Interrupted (terminated (SIGTERM)) during step stage; resume with: vdc-manage job retry {job_id}" in err
    assert world.job(job_id)["state"] == "failed"
