"""The instance from outside: its SSH port, its host key, a login with the handed-out key.

The SSH port is forwarded by qemu from 127.0.0.1; qemu accepts the connection even when nothing
listens in the guest yet, so "answering" means an SSH banner came back. The host key is read
in a key exchange without logging in (it is there even when no key was handed out), then the
login uses the key the metadata server handed out, and runs ``hostname``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

BANNER_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0


def ssh_banner(port: int) -> str | None:
    """The SSH server's identification line, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S) as sock:
            sock.settimeout(BANNER_TIMEOUT_S)
            data = sock.recv(256)
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    return line if line.startswith("SSH-") else None


@dataclass(frozen=True)
class HostKey:
    key_type: str
    fingerprint: str


def host_key(port: int) -> HostKey | None:
    """The host key the instance presents (a key exchange, no login), or None if it fails."""
    import paramiko

    from vdcmanage.bootcheck.guest import fingerprint

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=30)
                key = transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, paramiko.SSHException, EOFError):
        return None
    return HostKey(key.get_name(), fingerprint(key.asbytes()))


def new_key() -> paramiko.PKey:
    """The key pair the metadata server hands out: ECDSA P-256 (OpenSSH 5.7 and later accept it)."""
    import paramiko

    return paramiko.ECDSAKey.generate(bits=256)


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()} vdc-boot-check"


class LoginRefused(Exception):
    """The server answered but refused the key (it may not be installed yet)."""


def login_hostname(port: int, key: paramiko.PKey) -> str:
    """Log in as root with ``key`` and return what ``hostname`` prints. LoginRefused, or OSError
    / SSHException when the connection failed."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - a throw-away VM of ours
    try:
        try:
            client.connect(
                "127.0.0.1", port=port, username="root", pkey=key, allow_agent=False, look_for_keys=False,
                timeout=CONNECT_TIMEOUT_S, banner_timeout=30, auth_timeout=30,
            )  # fmt: skip
        except paramiko.AuthenticationException as exc:
            raise LoginRefused(str(exc)) from exc
        _stdin, stdout, _stderr = client.exec_command("hostname", timeout=30)
        output: bytes = stdout.read()
        return output.decode("utf-8", "replace").strip()
    finally:
        client.close()
