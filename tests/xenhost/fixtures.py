"""pytest fixtures for the XenServer test host and other real sshd servers (loaded by tests/conftest.py).

API (see tests/xenhost/README.md):

- ``ssh_keys``: session-scoped client keys: ``authorized`` (ed25519, no passphrase), ``encrypted``
  (authorized, passphrase ``ssh_keys.passphrase``), ``stranger`` (never authorized).
- ``xen_sshd``: the session's XenServer test host: one real sshd with the ``xe`` double on its PATH.
- ``xen_host``: per test, that host reset to a fresh state: a :class:`XenHost` (address, port, user,
  key file, known_hosts line, SR uuids by role, state dir, helpers). Personality and SR sizes via
  ``@pytest.mark.xen(personality="xenserver-6.2", sr_sizes={"ext": 64 * MiB}, size_parser="old")``
  or ``xen_host.configure(...)``.
- ``ssh_server_factory``: makes more sshd servers for a test (a web server to publish to, a host with a
  changed key ...); all are stopped after the test.
- ``web_server``: a plain sshd (no xe) with a ``www`` directory, for publishing tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.xenhost import xedouble
from tests.xenhost.sshd import SshServer, keygen, public_line

HERE = Path(__file__).resolve().parent
XE_DOUBLE = HERE / "bin" / "xe"
REMOTE_SR_MOUNT = "/var/run/sr-mount"
MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the SSH test servers need root (unshare, mounts, sshd); CI runs the tests as root")


@dataclass
class SshKeys:
    directory: Path
    authorized: Path
    encrypted: Path
    stranger: Path
    passphrase: str = "correct horse battery staple"

    @property
    def authorized_lines(self) -> list[str]:
        return [public_line(self.authorized), public_line(self.encrypted)]


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> SshKeys:
    directory = tmp_path_factory.mktemp("ssh-keys")
    keys = SshKeys(directory, directory / "id_test", directory / "id_encrypted", directory / "id_stranger")
    keygen(keys.authorized)
    keygen(keys.encrypted, passphrase=keys.passphrase)
    keygen(keys.stranger)
    return keys


@dataclass
class XenSshd:
    """The session's XenServer test host: sshd + where the double keeps its world."""

    server: SshServer
    root: Path
    state_dir: Path
    sr_mount: Path  # seen as /var/run/sr-mount by remote commands
    bin_dir: Path  # on the remote PATH; holds the `xe` link


@pytest.fixture(scope="session")
def xen_sshd(tmp_path_factory: pytest.TempPathFactory, ssh_keys: SshKeys) -> Iterator[XenSshd]:
    require_root()
    root = tmp_path_factory.mktemp("xenhost")
    state_dir, sr_mount, bin_dir = root / "state", root / "sr-mount", root / "bin"
    for directory in (state_dir, sr_mount, bin_dir):
        directory.mkdir()
    server = SshServer(
        root / "sshd",
        authorized_keys=ssh_keys.authorized_lines,
        env={"PATH": f"{bin_dir}:{DEFAULT_PATH}", "XE_DOUBLE_STATE": str(state_dir)},
        sr_mount=sr_mount,
    )
    with server:
        check_login(server, ssh_keys.authorized)
        yield XenSshd(server, root, state_dir, sr_mount, bin_dir)


def check_login(server: SshServer, key: Path) -> None:
    """Fail early and clearly if this machine's sshd refuses root (e.g. a "!"-locked root account,
    which sshd without PAM treats as locked)."""
    known = server.root / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    proc = subprocess.run(
        ["ssh", "-F", "none", "-i", str(key), "-p", str(server.port), "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", f"root@{server.address}", "true"],
        capture_output=True, text=True, timeout=30,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot log in to the test sshd as root: {proc.stderr.strip()}\nsshd log:\n{server.log()[-2000:]}")


@dataclass
class XenHost:
    """The test host as one test sees it. Remote paths are what commands over SSH see."""

    sshd: XenSshd
    keys: SshKeys
    user: str = "root"

    # -- connection facts ----------------------------------------------------------------------------

    @property
    def server(self) -> SshServer:
        return self.sshd.server

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def key_file(self) -> Path:
        return self.keys.authorized

    @property
    def known_hosts_line(self) -> str:
        return self.server.known_hosts_line

    @property
    def state_dir(self) -> Path:
        return self.sshd.state_dir

    def trust(self) -> None:
        """Put the host's key into the (test's isolated) ~/.ssh/known_hosts."""
        ssh_dir = Path.home() / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        with open(ssh_dir / "known_hosts", "a") as known:
            known.write(self.known_hosts_line + "\n")

    # -- the double's world --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def update_state(self, change: Callable[[dict[str, Any]], None]) -> None:
        with xedouble.locked(str(self.state_dir)) as state:
            change(state)

    def sr(self, role: str = "ext") -> dict[str, Any]:
        return next(sr for sr in self.state()["srs"] if sr["role"] == role)

    def sr_uuid(self, role: str = "ext") -> str:
        return str(self.sr(role)["uuid"])

    @property
    def srs(self) -> dict[str, str]:
        return {sr["role"]: sr["uuid"] for sr in self.state()["srs"]}

    def sr_path(self, role: str = "ext") -> Path:
        """Where the SR's files are, seen from the test process."""
        return self.sshd.sr_mount / self.sr_uuid(role)

    def remote_sr_path(self, role: str = "ext") -> str:
        return f"{REMOTE_SR_MOUNT}/{self.sr_uuid(role)}"

    def vdi(self, uuid: str) -> dict[str, Any]:
        return next(v for v in self.state()["vdis"] if v["uuid"] == uuid)

    def vdi_path(self, uuid: str) -> Path:
        vdi = self.vdi(uuid)
        role = next(sr["role"] for sr in self.state()["srs"] if sr["uuid"] == vdi["sr"])
        return self.sr_path(role) / vdi["file"]

    def calls(self) -> list[dict[str, Any]]:
        """Every xe call so far: ``{"argv": [...], "cwd": ..., "time": ...}``."""
        path = self.state_dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def reset(
        self,
        personality: str = xedouble.DEFAULT_PERSONALITY,
        *,
        size_parser: str | None = None,
        sr_sizes: dict[str, int] | None = None,
    ) -> None:
        """A fresh world: no VDIs, empty SRs, an empty call log, xe installed, xapi up."""
        for directory in (self.sshd.sr_mount, self.state_dir, self.sshd.bin_dir):
            for child in directory.iterdir():  # keep the directories: sr-mount is bind-mounted
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        (self.sshd.bin_dir / "xe").symlink_to(XE_DOUBLE)
        state = xedouble.make_state(
            personality=personality, size_parser=size_parser, sr_mount=REMOTE_SR_MOUNT, sr_sizes=sr_sizes
        )
        xedouble.write_state(str(self.state_dir), state, sr_mount_here=str(self.sshd.sr_mount))

    def configure(
        self,
        *,
        personality: str | None = None,
        size_parser: str | None = None,
        sr_sizes: dict[str, int] | None = None,
        xapi_down: bool | None = None,
        xe_installed: bool | None = None,
        faults: dict[str, str] | None = None,
    ) -> None:
        """``faults``: xe commands that fail with the given error text (exit 1) instead of running,
        until configured again; ``inject_fault`` fails one a number of times."""

        def change(state: dict[str, Any]) -> None:
            if faults is not None:
                state["faults"] = {command: {"text": text, "times": None} for command, text in faults.items()}
            if personality is not None:
                state["personality"] = personality
                state["size_parser"] = size_parser or xedouble.PERSONALITIES[personality]["size_parser"]
            if size_parser is not None:
                state["size_parser"] = size_parser
            for sr in state["srs"]:
                if sr_sizes and sr["role"] in sr_sizes:
                    sr["physical-size"] = sr_sizes[sr["role"]]
            if xapi_down is not None:
                state["xapi_down"] = xapi_down

        self.update_state(change)
        link = self.sshd.bin_dir / "xe"
        if xe_installed is False:
            link.unlink(missing_ok=True)
        elif xe_installed and not link.exists():
            link.symlink_to(XE_DOUBLE)

    def inject_fault(self, command: str, text: str, times: int = 1) -> None:
        """The next ``times`` runs of ``xe <command>`` fail with ``text`` on stderr, exit 1."""

        def change(state: dict[str, Any]) -> None:
            state.setdefault("faults", {})[command] = {"text": text, "times": times}

        self.update_state(change)

    # -- using it --------------------------------------------------------------------------------------

    def ssh(self, *command: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command line on the host with OpenSSH's own client (independent of our code)."""
        known = self.state_dir.parent / "openssh_known_hosts"
        known.write_text(self.known_hosts_line + "\n")
        argv = [
            "ssh", "-F", "none", "-i", str(self.key_file), "-p", str(self.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", f"{self.user}@{self.address}", "--", *command,
        ]
        return subprocess.run(argv, input=input, capture_output=True, check=check, timeout=120)

    def target(self, **overrides: Any) -> Any:
        from vdcmanage.remote.ssh import SshTarget

        fields: dict[str, Any] = {"address": self.address, "port": self.port, "user": self.user,
                                  "key_file": str(self.key_file)}
        fields.update(overrides)
        return SshTarget(**fields)

    def connect(self, **options: Any) -> Any:
        """An open Connection (the host key trusted through known_hosts first)."""
        from vdcmanage.remote.ssh import Connection

        self.trust()
        return Connection(self.target(), **options).open()

    def host_add_args(self, name: str = "xen1", *, sr_role: str | None = "ext") -> list[str]:
        """``vdc-manage host add`` arguments for this host (call :meth:`trust` or add --accept-new-host-key)."""
        args = ["host", "add", name, "--address", self.address, "--port", str(self.port),
                "--user", self.user, "--key-file", str(self.key_file)]
        if sr_role is not None:
            args += ["--sr-uuid", self.sr_uuid(sr_role)]
        return args

    def add_to_catalog(self, name: str = "xen1", *, sr_role: str | None = "ext", trust: bool = True) -> Any:
        """Register this host in the open catalog (the ``catalog`` fixture) and return the Host record."""
        from vdcmanage.catalog import hosts

        if trust:
            self.trust()
        return hosts.add_host(
            name, self.address, port=self.port, user=self.user, key_file=str(self.key_file),
            sr_uuid=self.sr_uuid(sr_role) if sr_role else None,
        )


@pytest.fixture
def xen_host(request: pytest.FixtureRequest, xen_sshd: XenSshd, ssh_keys: SshKeys) -> XenHost:
    host = XenHost(xen_sshd, ssh_keys)
    marker = request.node.get_closest_marker("xen")
    host.reset(**(marker.kwargs if marker else {}))
    return host


@pytest.fixture
def ssh_server_factory(tmp_path: Path, ssh_keys: SshKeys) -> Iterator[Callable[..., SshServer]]:
    """``make(name, **SshServer options)`` -> a started server (authorized for ``ssh_keys`` by default)."""
    require_root()
    servers: list[SshServer] = []

    def make(name: str = "sshd", **options: Any) -> SshServer:
        options.setdefault("authorized_keys", ssh_keys.authorized_lines)
        server = SshServer(tmp_path / name, **options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@dataclass
class WebServer:
    server: SshServer
    www: Path  # the template directory published files go to
    key_file: Path


@pytest.fixture
def web_server(ssh_server_factory: Callable[..., SshServer], ssh_keys: SshKeys, tmp_path: Path) -> WebServer:
    server = ssh_server_factory("web")
    www = tmp_path / "www"
    www.mkdir()
    return WebServer(server, www, ssh_keys.authorized)
