"""The system OpenSSH client as the upload's data path, pinned to the host key paramiko verified.

paramiko authenticated the host first (known_hosts or the catalog, never "accept anything"). The
``ssh`` subprocess gets a temporary known_hosts file (0600, in a 0700 directory, removed afterwards)
holding exactly that key under a fixed ``HostKeyAlias``, with ``StrictHostKeyChecking=yes`` and
``HostKeyAlgorithms`` limited to that key's type: an impostor, or the same host presenting another
key, is refused by ssh itself. ``-F none`` keeps the operator's ssh_config out (what it says was
already applied by our resolution: address, port, user, identity files); ``BatchMode=yes`` means it
never prompts: an encrypted key that is not in the agent makes it fail, and the upload falls back to
paramiko. Nothing secret is on its command line: keys are file paths, passphrases live in the agent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from vdcmanage.remote.ssh import HOST_KEY_ALGORITHMS, quote_argv

if TYPE_CHECKING:
    from vdcmanage.remote.ssh import Connection

HOST_ALIAS = "vdc-manage-verified-host"
# AES-GCM first (AES-NI: the cheapest per byte), then what older servers have. A client too old to
# know one of these names refuses the list: then paramiko carries the data instead.
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
SERVER_ALIVE_S = 15  # with 4 missed answers: a dead peer is noticed within a minute


def find_ssh() -> str | None:
    return shutil.which("ssh")


class OpenSshAccess:
    """A temporary known_hosts for one connection's verified key; :meth:`argv` builds ssh command lines."""

    def __init__(self, conn: Connection, ssh: str) -> None:
        if conn.endpoint is None or conn.host_key is None:
            raise ValueError("the connection must be open (its host key verified) first")
        self.conn = conn
        self.ssh = ssh
        self.directory = Path(tempfile.mkdtemp(prefix="vdc-ssh-"))  # 0700
        self.known_hosts = self.directory / "known_hosts"
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as known:
            known.write(f"{HOST_ALIAS} {conn.host_key.line}\n")

    def __enter__(self) -> OpenSshAccess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)

    def argv(self, remote_argv: list[str]) -> list[str]:
        endpoint = self.conn.endpoint
        host_key = self.conn.host_key
        assert endpoint is not None and host_key is not None
        key_type = host_key.key.key_type
        options = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "HostKeyAlias": HOST_ALIAS,
            "HostKeyAlgorithms": ",".join(HOST_KEY_ALGORITHMS.get(key_type, (key_type,))),
            "CheckHostIP": "no",
            "UpdateHostKeys": "no",
            "Ciphers": CIPHERS,
            "Compression": "no",
            "ConnectTimeout": str(max(1, round(self.conn.options.connect_timeout))),
            "ServerAliveInterval": str(SERVER_ALIVE_S),
            "ServerAliveCountMax": "4",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "ClearAllForwardings": "yes",
            "ControlMaster": "no",
            "ControlPath": "none",
            "PermitLocalCommand": "no",
            "RequestTTY": "no",
            "LogLevel": "ERROR",
        }
        argv = [self.ssh, "-F", "none", "-e", "none", "-p", str(endpoint.port), "-l", endpoint.user]
        if endpoint.explicit_identity:
            options["IdentitiesOnly"] = "yes"  # like our login: these keys (and the agent's copies of them)
            for identity in endpoint.identity_files:
                argv += ["-i", str(identity)]
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        # "--": a host name can never be read as an option
        return [*argv, "--", endpoint.hostname, quote_argv(remote_argv)]
