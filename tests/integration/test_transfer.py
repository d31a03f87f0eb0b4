"""upload_file against the real sshd test host: content, sparseness, verification, resumption, drops,
cancellation, bad input, and both data paths (the system's OpenSSH client and paramiko)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.xenhost.fixtures import SshKeys, XenHost
from tests.xenhost.sshd import SshServer
from vdcmanage.errors import ExitCode, FileNotFound, InvalidArgument
from vdcmanage.jobs.runner import JobCancelled
from vdcmanage.remote.errors import (
    ConnectionLost,
    RemoteNoSpace,
    RemotePathMissing,
    SourceChanged,
    UploadVerifyFailed,
)
from vdcmanage.remote.ssh import Connection, SshTarget
from vdcmanage.remote.transfer import UploadResult, remove_remote, upload_file
from vdcmanage.remote.transfer.source import CHUNK

MiB = 1024 * 1024
GiB = 1024 * MiB
PATHS = ["openssh", "paramiko"]
REPO = Path(__file__).resolve().parents[2]
CMP = shutil.which("cmp") or "cmp"  # found now: a test empties PATH


class Saved:
    """The ``save`` callback: keeps the last state (checked to be JSON) and counts the calls."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.calls = 0

    def __call__(self, state: dict[str, Any]) -> None:
        self.state = json.loads(json.dumps(state))
        self.calls += 1


class Upload:
    """Uploads to one host; keeps the saved state and the log lines across calls (as a job would)."""

    def __init__(self, target: SshTarget, known_hosts: list[Path] | None = None, **options: Any) -> None:
        self.target = target
        self.known_hosts = known_hosts
        self.options = options
        self.saved = Saved()
        self.log: list[str] = []
        self.connects = 0

    def connect(self) -> Connection:
        self.connects += 1
        return Connection(self.target, known_hosts_files=self.known_hosts, **self.options)

    def __call__(self, local: Path, remote: str, **kwargs: Any) -> UploadResult:
        kwargs.setdefault("state", self.saved.state)
        return upload_file(self.connect, local, remote, save=self.saved, log=self.log.append, **kwargs)


def host_upload(xen_host: XenHost, **options: Any) -> Upload:
    xen_host.trust()
    return Upload(xen_host.target(), **options)


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as out:
        for start in range(0, size, MiB):
            out.write(os.urandom(min(MiB, size - start)))
    return path


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as source:
        while block := source.read(16 * MiB):
            digest.update(block)
    return digest.hexdigest()


def same_content(a: Path, b: Path) -> bool:
    return subprocess.run([CMP, "-s", str(a), str(b)]).returncode == 0


def staging(xen_host: XenHost, name: str = "vdc-manage-job-test.staging") -> tuple[str, Path]:
    """The remote path of a staged file and where the test sees the same file."""
    return f"{xen_host.remote_sr_path()}/{name}", xen_host.sr_path() / name


def cancel_when(fraction: float, exception: Callable[[], BaseException]) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if done >= fraction * total:
            raise exception()

    return progress


class Crash(Exception):
    """Stands for a worker that died: nothing after it runs."""


# -- content -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_path", PATHS)
def test_a_file_arrives_identical_with_its_md5(xen_host: XenHost, tmp_path: Path, data_path: str) -> None:
    local = random_file(tmp_path / "disk.raw", 2 * CHUNK + 12345)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    result = upload(local, remote, data_path=data_path)
    assert same_content(local, seen)
    assert result.md5 == md5_of(local)
    assert result.data_path == data_path
    assert (result.bytes_total, result.remote_size) == (local.stat().st_size, local.stat().st_size)
    assert result.bytes_sent == local.stat().st_size and result.bytes_skipped_sparse == 0
    assert upload.saved.calls >= 4  # at the start, then after each of the 3 verified chunks
    assert upload.saved.state is not None and upload.saved.state["verified"] == [[0, 3]]
    assert (seen.stat().st_mode & 0o777) == 0o600


def test_auto_uses_the_openssh_client(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "disk.raw", 3 * MiB)
    result = host_upload(xen_host)(local, staging(xen_host)[0])
    assert result.data_path == "openssh"


def test_holes_and_zero_blocks_are_not_sent_and_stay_holes(xen_host: XenHost, tmp_path: Path) -> None:
    local = tmp_path / "sparse.raw"
    with open(local, "wb") as out:
        out.write(os.urandom(3 * MiB))  # data
        out.write(bytes(20 * MiB))  # written zeros: allocated here, not sent
        out.seek(150 * MiB)
        out.write(os.urandom(5 * MiB))
        out.seek(200 * MiB - 100)
        out.write(os.urandom(100))  # the last, partial block
    remote, seen = staging(xen_host)
    result = host_upload(xen_host)(local, remote)
    assert same_content(local, seen)
    assert result.bytes_sent == 9 * MiB  # 3 + 5 + the last block
    assert result.bytes_skipped_sparse == 200 * MiB - 9 * MiB
    allocated = seen.stat().st_blocks * 512
    assert allocated <= 9 * MiB + 64 * 1024, f"{allocated} bytes allocated on the host"
    assert result.md5 == md5_of(local)


def test_pad_to_rounds_the_staged_file_up_with_zeros(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "odd.raw", 1_000_003)
    remote, seen = staging(xen_host)
    result = host_upload(xen_host)(local, remote, pad_to=512)
    assert seen.stat().st_size == 1_000_448 == result.remote_size
    assert seen.read_bytes() == local.read_bytes() + bytes(445)
    assert result.bytes_total == 1_000_003 and result.md5 == md5_of(local)


def test_an_empty_file_is_staged_empty(xen_host: XenHost, tmp_path: Path) -> None:
    local = tmp_path / "empty.raw"
    local.write_bytes(b"")
    remote, seen = staging(xen_host)
    result = host_upload(xen_host)(local, remote)
    assert seen.exists() and seen.stat().st_size == 0
    assert result.md5 == hashlib.md5(b"").hexdigest() and result.bytes_sent == 0


@pytest.mark.parametrize("data_path", PATHS)
def test_hostile_remote_names_are_quoted(xen_host: XenHost, tmp_path: Path, data_path: str) -> None:
    local = random_file(tmp_path / "disk.raw", 2 * MiB + 5)
    name = "it's \"quoted\" $(touch pwned) `touch pwned2`; rm -rf x\nnew line & $HOME *"
    remote, seen = staging(xen_host, name)
    remote_home = Path(xen_host.ssh("pwd").stdout.decode().strip())  # where a pasted command would run
    host_upload(xen_host)(local, remote, data_path=data_path)
    assert same_content(local, seen)
    assert sorted(p.name for p in xen_host.sr_path().iterdir()) == [name]
    assert not (remote_home / "pwned").exists() and not (remote_home / "pwned2").exists()
    remove_remote(xen_host.connect(), remote)
    remove_remote(xen_host.connect(), remote)  # idempotent
    assert not seen.exists()


# -- bad input ------------------------------------------------------------------------------------------------


def test_a_missing_local_file_is_refused_before_connecting(xen_host: XenHost, tmp_path: Path) -> None:
    upload = host_upload(xen_host)
    with pytest.raises(FileNotFound, match=r"File not found: .*nope\.raw") as caught:
        upload(tmp_path / "nope.raw", staging(xen_host)[0])
    assert caught.value.exit_code == ExitCode.REFUSED
    with pytest.raises(InvalidArgument, match="is a directory"):
        upload(tmp_path, staging(xen_host)[0])
    assert upload.connects == 0


@pytest.mark.parametrize("remote", ["relative/path.raw", "/var/run/sr-mount/", "", "/with\0nul"])
def test_a_bad_remote_path_is_refused(xen_host: XenHost, tmp_path: Path, remote: str) -> None:
    local = random_file(tmp_path / "disk.raw", 1000)
    with pytest.raises(InvalidArgument, match="remote path"):
        host_upload(xen_host)(local, remote)


@pytest.mark.parametrize("data_path", PATHS)
def test_a_missing_remote_directory_is_named(xen_host: XenHost, tmp_path: Path, data_path: str) -> None:
    local = random_file(tmp_path / "disk.raw", MiB)
    remote = f"{xen_host.remote_sr_path()}/no-such-dir/x.staging"
    upload = host_upload(xen_host)
    with pytest.raises(RemotePathMissing) as caught:
        upload(local, remote, data_path=data_path)
    assert f"the directory {xen_host.remote_sr_path()}/no-such-dir does not exist" in str(caught.value)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert upload.log == []  # a real error, not a reason to switch data paths


@pytest.fixture
def small_remote_fs(xen_host: XenHost) -> Iterator[str]:
    """A 24 MiB tmpfs mounted inside the test host's own mount namespace (invisible to this machine)."""
    listener = xen_host.server.listener_pid
    assert listener is not None
    mount_point = f"/run/vdc-small-{os.getpid()}"
    enter = ["nsenter", "-t", str(listener), "-m", "--"]
    subprocess.run([*enter, "sh", "-c", f"mkdir -p {mount_point} && mount -t tmpfs -o size=24m vdc-small {mount_point}"],
                   check=True)
    yield mount_point
    subprocess.run([*enter, "sh", "-c", f"umount {mount_point} && rmdir {mount_point}"], check=True)


@pytest.mark.parametrize("data_path", PATHS)
def test_a_full_disk_on_the_host_fails_clearly(
    xen_host: XenHost, tmp_path: Path, small_remote_fs: str, data_path: str
) -> None:
    local = random_file(tmp_path / "disk.raw", 64 * MiB)
    upload = host_upload(xen_host)
    with pytest.raises(RemoteNoSpace, match=r"ran out of disk space.*No space left on device"):
        upload(local, f"{small_remote_fs}/big.staging", data_path=data_path, max_reconnects=1)
    assert upload.saved.state is not None  # what was verified stays recorded (and JSON)
    assert not any("reconnecting" in line for line in upload.log)  # no retry of a full disk


# -- resumption ----------------------------------------------------------------------------------------------


def test_a_new_call_with_the_saved_state_sends_only_what_is_missing(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "disk.raw", 8 * CHUNK)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    with pytest.raises(Crash):
        upload(local, remote, progress=cancel_when(0.6, Crash))
    assert upload.saved.state is not None
    result = upload(local, remote)
    assert result.bytes_sent < local.stat().st_size / 2
    assert result.chunks_resumed >= 5 and result.restart_reason is None
    assert same_content(local, seen) and result.md5 == md5_of(local)


def test_a_worker_killed_past_half_is_resumed_sending_less_than_half(xen_host: XenHost, tmp_path: Path) -> None:
    """A real SIGKILL of the uploading process; a new process continues from what it saved."""
    local = random_file(tmp_path / "disk.raw", 8 * CHUNK)
    remote, seen = staging(xen_host, "killed.staging")
    state_file = tmp_path / "state.json"
    xen_host.trust()
    child = subprocess.Popen([sys.executable, "-c", UPLOADER, json.dumps({
        "target": {"address": xen_host.address, "port": xen_host.port, "key_file": str(xen_host.key_file)},
        "local": str(local), "remote": remote, "state_file": str(state_file), "slow": 0.1,
    })], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp_path)})
    # (TMPDIR: a killed worker cannot remove its temporary known_hosts; this test's tmp_path takes it)
    try:
        deadline = time.monotonic() + 60
        while verified_chunks(state_file) < 5:  # past half of 8 chunks
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.kill()
    finally:
        child.kill()
        child.wait()
    saved = json.loads(state_file.read_text())
    assert verified_chunks(state_file) < 8
    upload = host_upload(xen_host)
    result = upload(local, remote, state=saved)
    assert result.bytes_sent < local.stat().st_size / 2
    assert same_content(local, seen) and result.md5 == md5_of(local)
    wait_gone(remote)  # the killed worker's ssh ended by itself (its input closed); nothing is left over


def verified_chunks(state_file: Path) -> int:
    try:
        ranges = json.loads(state_file.read_text())["verified"]
    except (OSError, ValueError):
        return 0
    return sum(end - first for first, end in ranges)


def wait_gone(marker: str, timeout: float = 15.0) -> None:
    """Until no process has ``marker`` on its command line."""
    deadline = time.monotonic() + timeout
    while True:
        holders = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if marker.encode() in (proc / "cmdline").read_bytes():
                        holders.append(proc.name)
                except OSError:
                    continue
        if not holders:
            return
        assert time.monotonic() < deadline, f"processes left over: {holders}"
        time.sleep(0.1)


# A worker process for the SIGKILL test: saves every state atomically to a file, slowly.
UPLOADER = """
import json, os, sys, time
from pathlib import Path
from vdcmanage.remote.ssh import Connection, SshTarget
from vdcmanage.remote.transfer import upload_file
args = json.loads(sys.argv[1])
target = SshTarget(**args["target"])
def save(state):
    tmp = args["state_file"] + ".tmp"
    Path(tmp).write_text(json.dumps(state))
    os.replace(tmp, args["state_file"])
    time.sleep(args["slow"])
upload_file(lambda: Connection(target), Path(args["local"]), args["remote"], state=None, save=save)
"""


def test_a_changed_local_file_starts_over_and_says_so(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "disk.raw", 4 * CHUNK)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    with pytest.raises(Crash):
        upload(local, remote, progress=cancel_when(0.5, Crash))
    random_file(local, 4 * CHUNK)  # rewritten: same size, new content and mtime
    result = upload(local, remote)
    assert result.restart_reason is not None and "local file changed" in result.restart_reason
    assert any("local file changed since the last attempt" in line for line in upload.log)
    assert result.bytes_sent == local.stat().st_size and result.chunks_resumed == 0
    assert same_content(local, seen)


def test_a_staged_file_that_vanished_starts_over(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "disk.raw", 4 * CHUNK)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    with pytest.raises(Crash):
        upload(local, remote, progress=cancel_when(0.5, Crash))
    seen.unlink()
    result = upload(local, remote)
    assert any("is missing or has another size: starting over" in line for line in upload.log)
    assert result.bytes_sent == local.stat().st_size
    assert same_content(local, seen)


# -- dropped connections ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_path", PATHS)
def test_a_dropped_connection_reconnects_and_sends_only_what_is_missing(
    xen_host: XenHost, tmp_path: Path, data_path: str
) -> None:
    local = random_file(tmp_path / "disk.raw", 6 * CHUNK)
    remote, seen = staging(xen_host)
    killed: list[int] = []
    verified_then: list[int] = []

    def progress(done: int, total: int) -> None:
        if not killed and done >= 0.3 * total:
            verified_then.append(done)
            killed.append(xen_host.server.kill_sessions())  # only this test host's sessions

    upload = host_upload(xen_host)
    result = upload(local, remote, data_path=data_path, progress=progress)
    assert killed and killed[0] > 0
    assert result.reconnects >= 1
    assert any("reconnecting in" in line for line in upload.log)
    size = local.stat().st_size
    assert result.bytes_sent <= size + (size - verified_then[0])  # what was verified is not sent again
    assert same_content(local, seen) and result.md5 == md5_of(local)


def test_a_host_that_stays_away_is_given_up_on_then_resumed(
    ssh_server_factory: Callable[..., SshServer], ssh_keys: SshKeys, tmp_path: Path
) -> None:
    server = ssh_server_factory("flaky")
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    upload = Upload(SshTarget(server.address, port=server.port, key_file=str(ssh_keys.authorized)), [known])
    local = random_file(tmp_path / "disk.raw", 8 * CHUNK)
    remote = tmp_path / "staged"
    stopped: list[bool] = []

    def progress(done: int, total: int) -> None:
        if not stopped and done >= 0.25 * total:
            server.stop()
            stopped.append(True)

    with pytest.raises(ConnectionLost, match=r"Gave up after 2 reconnects.*retrying resumes from there"):
        upload(local, str(remote), progress=progress, max_reconnects=2)
    assert sum("reconnecting in" in line for line in upload.log) == 2
    server.restart()
    known.write_text(server.known_hosts_line + "\n")
    result = upload(local, str(remote))
    assert result.bytes_sent < local.stat().st_size
    assert same_content(local, remote)


# -- cancellation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_path", PATHS)
def test_cancel_stops_within_a_second_and_leaves_a_resumable_state(
    xen_host: XenHost, tmp_path: Path, data_path: str
) -> None:
    local = random_file(tmp_path / "disk.raw", 6 * CHUNK)
    remote, seen = staging(xen_host, "cancelled.staging")
    raised_at: list[float] = []

    def progress(done: int, total: int) -> None:
        if done > 0:
            raised_at.append(time.monotonic())
            raise JobCancelled()

    upload = host_upload(xen_host)
    with pytest.raises(JobCancelled):
        upload(local, remote, data_path=data_path, progress=progress)
    stopped_in = time.monotonic() - raised_at[0]
    assert stopped_in < 1.0, f"took {stopped_in:.2f} s to stop"
    wait_gone(remote, timeout=2.0)  # our ssh process is gone
    deadline = time.monotonic() + 2.0
    while xen_host.server.session_pids():  # and every session on the host ended
        assert time.monotonic() < deadline, "sessions still open on the host after the cancel"
        time.sleep(0.05)
    result = upload(local, remote, data_path=data_path)
    assert result.chunks_resumed >= 1 and result.bytes_sent < local.stat().st_size
    assert same_content(local, seen)


def test_cancel_is_noticed_while_the_host_is_slow_to_start(xen_host: XenHost, tmp_path: Path) -> None:
    """A host that takes seconds to start the receiver (its dd's feature probe hangs) still stops at once."""
    slow_dd = xen_host.sshd.bin_dir / "dd"
    slow_dd.write_text('#!/bin/sh\ncase "$*" in *iflag=fullblock*) sleep 5 ;; esac\nexec /usr/bin/dd "$@"\n')
    slow_dd.chmod(0o755)
    local = random_file(tmp_path / "disk.raw", MiB)
    started = time.monotonic()
    raised_at: list[float] = []

    def progress(done: int, total: int) -> None:
        if time.monotonic() - started > 1.0:
            raised_at.append(time.monotonic())
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        host_upload(xen_host)(local, staging(xen_host)[0], progress=progress)
    assert time.monotonic() - raised_at[0] < 1.0
    assert time.monotonic() - started < 3.0  # well before the host would have said "ready"


# -- verification -------------------------------------------------------------------------------------------------


def fake_cksum(xen_host: XenHost, tmp_path: Path, *, lies: str) -> None:
    """A ``cksum`` on the host's PATH that lies (``once``: the first call only; ``always``): a failing disk."""
    marker = tmp_path / "lied"
    decide = f'mkdir {marker} 2>/dev/null' if lies == "once" else "true"
    script = xen_host.sshd.bin_dir / "cksum"
    script.write_text(
        "#!/bin/sh\n"
        f"if {decide}; then /usr/bin/cksum | {{ read -r crc len; echo \"$((crc ^ 1)) $len\"; }}\n"
        "else exec /usr/bin/cksum \"$@\"; fi\n"
    )
    script.chmod(0o755)


def test_a_chunk_the_host_checksums_differently_is_sent_again(xen_host: XenHost, tmp_path: Path) -> None:
    fake_cksum(xen_host, tmp_path, lies="once")
    local = random_file(tmp_path / "disk.raw", 3 * CHUNK)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    result = upload(local, remote)
    assert sum("checksum mismatch" in line for line in upload.log) == 1
    assert result.bytes_sent == local.stat().st_size + CHUNK
    assert same_content(local, seen)


def test_a_chunk_that_never_verifies_fails_clearly(xen_host: XenHost, tmp_path: Path) -> None:
    fake_cksum(xen_host, tmp_path, lies="always")
    local = random_file(tmp_path / "disk.raw", 2 * CHUNK)
    with pytest.raises(UploadVerifyFailed, match="still differs from ours after 3 re-sends"):
        host_upload(xen_host)(local, staging(xen_host)[0])


def test_a_local_file_changed_during_the_upload_is_refused(xen_host: XenHost, tmp_path: Path) -> None:
    local = random_file(tmp_path / "disk.raw", 3 * CHUNK)
    touched: list[bool] = []

    def progress(done: int, total: int) -> None:
        if not touched and done > 0:
            stat = local.stat()
            os.utime(local, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            touched.append(True)

    with pytest.raises(SourceChanged, match="changed while it was being uploaded"):
        host_upload(xen_host)(local, staging(xen_host)[0], progress=progress)


# -- the OpenSSH data path ------------------------------------------------------------------------------------------


def test_without_an_openssh_client_paramiko_carries_the_data(
    xen_host: XenHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    local = random_file(tmp_path / "disk.raw", 2 * MiB)
    remote, seen = staging(xen_host)
    upload = host_upload(xen_host)
    result = upload(local, remote)
    assert result.data_path == "paramiko" and same_content(local, seen)
    assert upload.log == ["no OpenSSH client (ssh) on this machine: uploading through paramiko"]
    with pytest.raises(InvalidArgument, match="OpenSSH client"):
        upload(local, remote, data_path="openssh", state=None)


def test_without_local_dd_and_cksum_the_checksums_are_computed_here(
    xen_host: XenHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_ssh = tmp_path / "only-ssh"
    only_ssh.mkdir()
    ssh = shutil.which("ssh")
    assert ssh is not None
    (only_ssh / "ssh").symlink_to(ssh)
    monkeypatch.setenv("PATH", str(only_ssh))
    local = random_file(tmp_path / "disk.raw", 2 * CHUNK + 3 * MiB)
    remote, seen = staging(xen_host)
    result = host_upload(xen_host)(local, remote, pad_to=4096)
    assert result.data_path == "openssh" and seen.read_bytes() == local.read_bytes()


def test_an_openssh_client_that_cannot_log_in_falls_back_to_paramiko(
    xen_host: XenHost, ssh_keys: SshKeys, tmp_path: Path
) -> None:
    """A passphrase-protected key unlocked by our prompt, not in an agent: ssh (BatchMode) cannot use it."""
    xen_host.trust()
    upload = Upload(xen_host.target(key_file=str(ssh_keys.encrypted)), passphrase_prompt=lambda _p: ssh_keys.passphrase)
    local = random_file(tmp_path / "disk.raw", 2 * MiB)
    remote, seen = staging(xen_host)
    result = upload(local, remote)
    assert result.data_path == "paramiko" and same_content(local, seen)
    assert len(upload.log) == 1 and "the OpenSSH client cannot be used here" in upload.log[0]
    assert "Permission denied" in upload.log[0]


def test_the_openssh_client_trusts_exactly_the_key_paramiko_verified(
    ssh_server_factory: Callable[..., SshServer], ssh_keys: SshKeys, tmp_path: Path
) -> None:
    from vdcmanage.remote.transfer.openssh import OpenSshAccess, find_ssh

    server = ssh_server_factory("pinned")
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    conn = Connection(SshTarget(server.address, port=server.port, key_file=str(ssh_keys.authorized)),
                      known_hosts_files=[known]).open()
    ssh = find_ssh()
    assert ssh is not None
    with OpenSshAccess(conn, ssh) as access:
        assert access.known_hosts.read_text() == f"vdc-manage-verified-host {server.host_key_line}\n"
        assert (access.known_hosts.stat().st_mode & 0o777) == 0o600
        assert (access.directory.stat().st_mode & 0o777) == 0o700
        argv = access.argv(["echo", "it's me"])
        assert not any(ssh_keys.passphrase in arg for arg in argv)
        ok = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert (ok.returncode, ok.stdout) == (0, "it's me\n"), ok.stderr
        server.new_host_key()  # an impostor on the same address and port
        refused = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    assert not access.directory.exists()
    conn.close()


# -- memory ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_stays_flat_for_a_large_sparse_file(xen_host: XenHost, tmp_path: Path) -> None:
    """8 GiB (virtual) with 256 MiB of data spread over it: peak RSS of the uploading process < 200 MiB."""
    local = tmp_path / "big.raw"
    with open(local, "wb") as out:
        out.truncate(8 * GiB)
        for index in range(8):
            out.seek(index * GiB + 100 * MiB)
            for _ in range(32):
                out.write(os.urandom(MiB))
    remote, seen = staging(xen_host, "big.staging")
    xen_host.trust()
    done = subprocess.run([sys.executable, "-c", MEASURED, json.dumps({
        "target": {"address": xen_host.address, "port": xen_host.port, "key_file": str(xen_host.key_file)},
        "local": str(local), "remote": remote,
    })], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sent"] == 256 * MiB
    assert report["peak_rss_mib"] < 200, report
    assert same_content(local, seen)
    assert seen.stat().st_blocks * 512 < 300 * MiB


MEASURED = """
import json, sys
from pathlib import Path
from vdcmanage.remote.ssh import Connection, SshTarget
from vdcmanage.remote.transfer import upload_file
args = json.loads(sys.argv[1])
target = SshTarget(**args["target"])
result = upload_file(lambda: Connection(target), Path(args["local"]), args["remote"], state=None, save=lambda s: None)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": peak / 1024, "sent": result.bytes_sent, "seconds": result.seconds}))
"""


def test_state_is_a_copy_not_shared(xen_host: XenHost, tmp_path: Path) -> None:
    """The state handed to save() is JSON-compatible and a caller may keep it (the runner merges it)."""
    local = random_file(tmp_path / "disk.raw", CHUNK + 1)
    upload = host_upload(xen_host)
    states: list[dict[str, Any]] = []
    upload_file(upload.connect, local, staging(xen_host)[0], state=None, save=lambda s: states.append(copy.deepcopy(s)))
    assert states[0]["verified"] == [] and states[-1]["verified"] == [[0, 2]]
    assert states[-1]["local"]["size"] == CHUNK + 1
