"""The SSH connection against a real OpenSSH sshd: commands, streams, host keys, login, failures."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.xenhost.fixtures import SshKeys, XenHost
from tests.xenhost.netns import BLACKHOLE, run_isolated
from tests.xenhost.sshd import SshServer, keygen, public_line
from vdcmanage.remote.errors import (
    AuthFailed,
    ConnectFailed,
    ConnectRefused,
    ConnectTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    RemoteCommandFailed,
    RemoteTimeout,
)
from vdcmanage.remote.known_hosts import PublicKey
from vdcmanage.remote.ssh import MAX_PACKET_SIZE, WINDOW_SIZE, Connection, SshTarget

MiB = 1024 * 1024
HOSTILE = [
    'x"; touch /tmp/pwned-vdc; echo "',
    "$(touch /tmp/pwned-vdc)",
    "`touch /tmp/pwned-vdc`",
    "a\nb; touch /tmp/pwned-vdc",
    "it's 'quoted' \"twice\"",
    "naïve ✓ 日本",
    "; rm -rf /tmp/pwned-vdc #",
    "$HOME ${PATH} !! * ? ~",
    "",
    "-s",
]


@pytest.fixture
def conn(xen_host: XenHost) -> Iterator[Connection]:
    with xen_host.connect() as connection:
        yield connection


def fingerprint(server: SshServer) -> str:
    return PublicKey.parse(server.host_key_line).fingerprint


# -- commands --------------------------------------------------------------------------------------------


def test_run_returns_stdout_stderr_and_status(conn: Connection) -> None:
    result = conn.run(["sh", "-c", "echo out; echo err >&2; exit 0"])
    assert (result.stdout, result.stderr, result.exit_status) == (b"out\n", b"err\n", 0)
    failed = conn.run(["sh", "-c", "echo nope >&2; exit 3"], check=False)
    assert failed.exit_status == 3 and failed.stderr == b"nope\n"
    with pytest.raises(RemoteCommandFailed) as raised:
        conn.run(["sh", "-c", "echo 'disk full' >&2; exit 4"])
    assert raised.value.exit_status == 4 and "disk full" in raised.value.message and "exit 4" in raised.value.message


def test_run_with_input_cwd_and_big_outputs(conn: Connection, tmp_path: Path) -> None:
    assert conn.run(["cat"], input=b"to stdin").stdout == b"to stdin"
    assert conn.run(["pwd"], cwd=str(tmp_path)).stdout_text.strip() == str(tmp_path)
    both = conn.run(["sh", "-c", "head -c 6000000 /dev/zero; head -c 5000000 /dev/zero >&2"])
    assert (len(both.stdout), len(both.stderr)) == (6_000_000, 5_000_000)
    data = os.urandom(8 * MiB)
    echoed = conn.run(["cat"], input=data, timeout=60)  # it prints while it reads: no deadlock
    assert echoed.stdout == data


def test_stdin_is_closed_when_there_is_no_input(conn: Connection) -> None:
    assert conn.run(["cat"], timeout=10).stdout == b""


def test_timeout_closes_the_command_and_keeps_the_connection(conn: Connection) -> None:
    started = time.monotonic()
    with pytest.raises(RemoteTimeout, match="timed out"):
        conn.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 3
    assert conn.run(["echo", "still here"]).stdout == b"still here\n"


@pytest.mark.parametrize("arg", HOSTILE)
def test_hostile_arguments_arrive_literally_and_nothing_runs(conn: Connection, arg: str) -> None:
    result = conn.run(["printf", "%s|", arg, "end"])
    assert result.stdout == f"{arg}|end|".encode()
    assert conn.run(["test", "-e", "/tmp/pwned-vdc"], check=False).exit_status == 1


def test_open_exec_streams_stdin_to_a_remote_command(conn: Connection, tmp_path: Path) -> None:
    target = tmp_path / "uploaded.bin"
    digest = hashlib.sha256()
    with conn.open_exec(["sh", "-c", 'cat > "$1"', "sh", str(target)]) as upload:
        for _ in range(32):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            upload.write(chunk)
        result = upload.finish(timeout=60)
    assert result.exit_status == 0 and upload.bytes_sent == 32 * MiB
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest.hexdigest()


def test_open_exec_reports_a_failing_command(conn: Connection, tmp_path: Path) -> None:
    with conn.open_exec(["sh", "-c", "cat > /nonexistent/dir/file"]) as upload, \
            pytest.raises(RemoteCommandFailed) as raised:
        for _ in range(64):
            upload.write(b"x" * MiB)
            time.sleep(0.01)
        upload.finish()
    assert raised.value.exit_status != 0 and "nonexistent" in raised.value.message


def test_transport_is_tuned_for_bulk_transfers(conn: Connection) -> None:
    transport = conn.transport()
    assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
    with conn.open_exec(["cat"]) as stream:
        assert stream.channel.in_window_size == WINDOW_SIZE
        assert stream.channel.in_max_packet_size == MAX_PACKET_SIZE
    assert transport.packetizer._Packetizer__keepalive_interval == 15  # type: ignore[attr-defined]


def test_sftp_is_lazy_and_closing_closes_everything(xen_host: XenHost, tmp_path: Path) -> None:
    conn = xen_host.connect()
    sftp = conn.sftp()
    assert conn.sftp() is sftp
    sftp.putfo(__import__("io").BytesIO(b"via sftp"), str(tmp_path / "f"))
    assert (tmp_path / "f").read_bytes() == b"via sftp"
    stream = conn.open_exec(["cat"])
    transport = conn.transport()
    conn.close()
    assert stream.channel.closed and sftp.sock.closed and not transport.is_active()
    conn.close()  # idempotent


def test_connection_opens_lazily(ssh_keys: SshKeys) -> None:
    closed_port = free_closed_port()
    connection = Connection(SshTarget("127.0.0.1", port=closed_port, key_file=str(ssh_keys.authorized)))
    with connection, pytest.raises(ConnectRefused):  # nothing happens until it is used
        connection.run(["true"])


# -- host keys -------------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(xen_host: XenHost) -> None:
    with pytest.raises(HostKeyUnknown) as raised:
        Connection(xen_host.target()).open()
    assert raised.value.fingerprint == fingerprint(xen_host.server)
    assert fingerprint(xen_host.server) in raised.value.message
    assert raised.value.exit_code == 100


def test_accept_new_records_the_key_through_the_callback(xen_host: XenHost) -> None:
    seen: list[str] = []
    with Connection(xen_host.target(), accept_new_host_key=True, on_new_host_key=seen.append) as conn:
        conn.run(["true"])
        assert conn.host_key is not None and conn.host_key.accepted_new
    assert seen == [xen_host.server.host_key_line]
    with Connection(xen_host.target(host_key=seen[0])) as conn:  # the recorded key is trusted from then on
        conn.run(["true"])
        assert conn.host_key is not None and conn.host_key.source == "the catalog"


def test_changed_host_key_is_refused_with_both_fingerprints(
    ssh_server_factory: Callable[..., SshServer], ssh_keys: SshKeys
) -> None:
    server = ssh_server_factory("changing")
    old = fingerprint(server)
    trust(server)
    target = SshTarget(server.address, port=server.port, key_file=str(ssh_keys.authorized))
    Connection(target).open().close()
    server.new_host_key()
    new = fingerprint(server)
    for options in ({}, {"accept_new_host_key": True}):
        with pytest.raises(HostKeyChanged) as raised:
            Connection(target, **options).open()
        assert old in raised.value.message and new in raised.value.message and "ssh-keygen -R" in raised.value.message
        assert raised.value.offered == new and raised.value.expected == [old]


def test_changed_against_the_catalog_key(xen_host: XenHost, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    with pytest.raises(HostKeyChanged, match="the catalog"):
        Connection(xen_host.target(host_key=public_line(other)), accept_new_host_key=True).open()


def test_known_type_is_negotiated_and_other_types_count_as_changed(
    ssh_server_factory: Callable[..., SshServer], ssh_keys: SshKeys, tmp_path: Path
) -> None:
    rsa = keygen(tmp_path / "ssh_host_rsa_key", "rsa")
    server = ssh_server_factory("two-keys", extra_config=[f"HostKey {rsa}"])
    target = SshTarget(server.address, port=server.port, key_file=str(ssh_keys.authorized))
    trust(server, f"{server.known_hosts_name} {public_line(rsa)}")  # only the RSA key is known
    with Connection(target) as conn:
        conn.run(["true"])
        assert conn.host_key is not None and conn.host_key.key.key_type == "ssh-rsa"
    lone = ssh_server_factory("ed25519-only")
    trust(lone, f"{lone.known_hosts_name} {public_line(rsa)}")
    with pytest.raises(HostKeyChanged):
        Connection(SshTarget(lone.address, port=lone.port, key_file=str(ssh_keys.authorized))).open()


def test_known_hosts2_hashed_entries_and_user_known_hosts_file(xen_host: XenHost, tmp_path: Path) -> None:
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    hashed = tmp_path / "hashed"
    hashed.write_text(xen_host.known_hosts_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert hashed.read_text().startswith("|1|")
    shutil.copy(hashed, ssh_dir / "known_hosts2")
    with Connection(xen_host.target()) as conn:
        conn.run(["true"])
        assert conn.host_key is not None and conn.host_key.source == f"{ssh_dir / 'known_hosts2'}:1"
    (ssh_dir / "known_hosts2").unlink()
    (ssh_dir / "config").write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'elsewhere'}\n")
    (tmp_path / "elsewhere").write_text(xen_host.known_hosts_line + "\n")
    with Connection(xen_host.target()) as conn:
        conn.run(["true"])


# -- login -----------------------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_naming_the_key(xen_host: XenHost, ssh_keys: SshKeys) -> None:
    xen_host.trust()
    with pytest.raises(AuthFailed) as raised:
        Connection(xen_host.target(key_file=str(ssh_keys.stranger))).open()
    assert "Authentication refused by root@127.0.0.1" in raised.value.message
    assert str(ssh_keys.stranger) in raised.value.message and raised.value.exit_code == 100


def test_missing_key_file_and_no_key_at_all(xen_host: XenHost, tmp_path: Path) -> None:
    xen_host.trust()
    with pytest.raises(AuthFailed, match="does not exist"):
        Connection(xen_host.target(key_file=str(tmp_path / "nope"))).open()
    with pytest.raises(AuthFailed, match="No SSH key to offer"):
        Connection(xen_host.target(key_file=None)).open()


def test_default_key_files_are_found(xen_host: XenHost) -> None:
    xen_host.trust()
    shutil.copy(xen_host.key_file, Path.home() / ".ssh" / "id_ed25519")
    with Connection(xen_host.target(key_file=None)) as conn:
        assert conn.run(["whoami"]).stdout == b"root\n"


def test_ssh_config_alias(xen_host: XenHost) -> None:
    xen_host.trust()
    (Path.home() / ".ssh" / "config").write_text(
        f"Host xentest\n  HostName {xen_host.address}\n  Port {xen_host.port}\n  User root\n"
        f"  IdentityFile {xen_host.key_file}\n"
    )
    with Connection(SshTarget("xentest")) as conn:
        assert conn.run(["whoami"]).stdout == b"root\n"
        assert conn.endpoint is not None and conn.endpoint.port == xen_host.port


def test_encrypted_key_needs_the_agent_or_a_prompt(xen_host: XenHost, ssh_keys: SshKeys) -> None:
    xen_host.trust()
    target = xen_host.target(key_file=str(ssh_keys.encrypted))
    with pytest.raises(AuthFailed, match="encrypted: load it into ssh-agent"):
        Connection(target).open()
    asked: list[str] = []

    def prompt(path: str) -> str:
        asked.append(path)
        return ssh_keys.passphrase

    with Connection(target, passphrase_prompt=prompt) as conn:
        conn.run(["true"])
    assert asked == [str(ssh_keys.encrypted)]
    with pytest.raises(AuthFailed, match="passphrase did not unlock"):
        Connection(target, passphrase_prompt=lambda path: "wrong").open()


def test_ssh_agent(xen_host: XenHost, ssh_keys: SshKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xen_host.trust()
    with ssh_agent(tmp_path, ssh_keys.encrypted, ssh_keys.passphrase) as socket_path:
        monkeypatch.setenv("SSH_AUTH_SOCK", socket_path)
        with Connection(xen_host.target(key_file=str(ssh_keys.encrypted))) as conn:  # the agent unlocks it
            conn.run(["true"])
        with Connection(xen_host.target(key_file=None)) as conn:  # agent keys are offered without a key file
            conn.run(["true"])


class ssh_agent:  # used as a context manager, like open()
    """A real ssh-agent holding ``key`` (added with its passphrase through SSH_ASKPASS), killed on exit."""

    def __init__(self, directory: Path, key: Path, passphrase: str) -> None:
        self.socket = str(directory / "agent.sock")
        self.askpass = directory / "askpass"
        self.askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
        self.askpass.chmod(0o700)
        self.key = key
        self.pid: int | None = None

    def __enter__(self) -> str:
        out = subprocess.run(["ssh-agent", "-s", "-a", self.socket], capture_output=True, text=True, check=True).stdout
        self.pid = int(out.split("SSH_AGENT_PID=")[1].split(";")[0])
        env = {**os.environ, "SSH_AUTH_SOCK": self.socket, "SSH_ASKPASS": str(self.askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", str(self.key)], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return self.socket

    def __exit__(self, *exc: object) -> None:
        if self.pid is not None:
            os.kill(self.pid, 15)


# -- unreachable -----------------------------------------------------------------------------------------


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port_is_connection_refused(ssh_keys: SshKeys) -> None:
    port = free_closed_port()
    started = time.monotonic()
    with pytest.raises(ConnectRefused) as raised:
        Connection(SshTarget("127.0.0.1", port=port, key_file=str(ssh_keys.authorized))).open()
    assert f"Connection refused by 127.0.0.1 port {port}" in raised.value.message
    assert time.monotonic() - started < 2 and raised.value.exit_code == 100


def test_a_silent_listener_times_out_within_the_bound(ssh_keys: SshKeys) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            Connection(SshTarget("127.0.0.1", port=port, key_file=str(ssh_keys.authorized)), connect_timeout=1.5).open()
        assert 1.4 < time.monotonic() - started < 4


def test_a_non_ssh_server_is_named_as_such(ssh_keys: SshKeys) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer() -> None:
            client, _ = listener.accept()
            client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            client.close()

        threading.Thread(target=answer, daemon=True).start()
        with pytest.raises(ConnectFailed, match="did not answer like an SSH server"):
            Connection(SshTarget("127.0.0.1", port=port, key_file=str(ssh_keys.authorized)), connect_timeout=5).open()


PROBE = textwrap.dedent(
    """
    import sys, time
    from vdcmanage.remote.ssh import Connection, SshTarget
    started = time.monotonic()
    try:
        Connection(SshTarget(sys.argv[1], port=22, key_file=sys.argv[2]), connect_timeout=float(sys.argv[3])).open()
    except Exception as exc:
        print(type(exc).__name__, round(time.monotonic() - started, 2), exc.exit_code, exc, sep="|")
    """
)


def test_blackholed_address_times_out_within_the_bound(ssh_keys: SshKeys) -> None:
    proc = run_isolated([sys.executable, "-c", PROBE, BLACKHOLE, str(ssh_keys.authorized), "2"])
    kind, elapsed, code, message = proc.stdout.strip().split("|", 3)
    assert (kind, code) == ("ConnectTimeout", "100"), proc.stderr
    assert 1.9 < float(elapsed) < 3.5
    assert message.startswith(f"Timed out after 2 s connecting to {BLACKHOLE} port 22")


def test_unresolvable_name(ssh_keys: SshKeys) -> None:
    proc = run_isolated([sys.executable, "-c", PROBE, "xen-does-not-exist.invalid", str(ssh_keys.authorized), "5"])
    kind, elapsed, code, message = proc.stdout.strip().split("|", 3)
    assert (kind, code) == ("HostUnresolved", "100"), proc.stderr
    assert message.startswith("Cannot resolve host name 'xen-does-not-exist.invalid'") and float(elapsed) < 5


def trust(server: SshServer, line: str | None = None) -> None:
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    with open(ssh_dir / "known_hosts", "a") as known:
        known.write((line or server.known_hosts_line) + "\n")
