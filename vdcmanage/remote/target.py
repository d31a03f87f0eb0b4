"""Where to connect: a target as configured, resolved through ``~/.ssh/config`` into an endpoint.

Precedence, as with OpenSSH: explicit values (``--port``, ``--user``, ``--key-file``) win over
``~/.ssh/config`` (``Host`` blocks: HostName, Port, User, IdentityFile, UserKnownHostsFile,
HostKeyAlias), which wins over the defaults (port 22, user root, ``~/.ssh/id_*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdcmanage.errors import InvalidArgument
from vdcmanage.remote import known_hosts

DEFAULT_PORT = 22
DEFAULT_USER = "root"  # XenServer's dom0 is administered as root
# The key files OpenSSH tries when none is configured, in its order (minus key types paramiko lacks).
DEFAULT_IDENTITIES = ("id_rsa", "id_ecdsa", "id_ed25519")
SYSTEM_KNOWN_HOSTS = (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))


@dataclass(frozen=True)
class SshTarget:
    """Where to connect, as the operator configured it (a catalog host or backup storage)."""

    address: str  # a host name, an IP address, or a Host alias from ~/.ssh/config
    port: int | None = None  # None: ~/.ssh/config, else 22
    user: str | None = None  # None: ~/.ssh/config, else root
    key_file: str | None = None  # None: ~/.ssh/config IdentityFile, the agent, ~/.ssh/id_*
    host_key: str | None = None  # "<type> <base64>" recorded in the catalog
    label: str | None = None  # how messages name it, e.g. "host xen1 (hn-abc)"


@dataclass(frozen=True)
class Endpoint:
    """The target after ``~/.ssh/config``: what is actually connected to."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[Path, ...]
    explicit_identity: bool  # --key-file or IdentityFile given: try those first, skip the defaults
    known_hosts_files: tuple[Path, ...]
    host_key_alias: str | None = None

    @property
    def host_key_name(self) -> str:
        return known_hosts.host_key_name(self.host_key_alias or self.hostname, self.port)

    def describe(self) -> str:
        return f"{self.user}@{self.hostname} port {self.port}"


def ssh_config_path() -> Path:
    return Path.home() / ".ssh" / "config"


def default_known_hosts() -> tuple[Path, ...]:
    ssh_dir = Path.home() / ".ssh"
    return (ssh_dir / "known_hosts", ssh_dir / "known_hosts2")


def resolve_endpoint(
    target: SshTarget, *, config_path: Path | None = None, known_hosts_files: Sequence[Path] | None = None
) -> Endpoint:
    """Apply ``~/.ssh/config`` to ``target``: explicit values win over it, it wins over the defaults."""
    options = read_ssh_config(config_path or ssh_config_path(), target.address)
    for unsupported in ("proxyjump", "proxycommand"):
        if options.get(unsupported, "none").lower() != "none":
            raise InvalidArgument(
                f"~/.ssh/config sets {unsupported} for {target.address}: vdc-manage connects directly and does "
                f"not support jump hosts; give the host's reachable address instead"
            )
    port = target.port if target.port is not None else parse_port(options.get("port"), target.address)
    user = target.user or options.get("user") or DEFAULT_USER
    if target.key_file:
        identities: tuple[Path, ...] = (Path(target.key_file).expanduser(),)
    else:
        identities = tuple(Path(p).expanduser() for p in options.get("identityfile", []) if p.lower() != "none")
    explicit = bool(identities)
    if not explicit:
        identities = tuple(Path.home() / ".ssh" / name for name in DEFAULT_IDENTITIES)
    if known_hosts_files is None:
        configured = options.get("userknownhostsfile")
        user_files = tuple(Path(p).expanduser() for p in configured.split()) if configured else default_known_hosts()
        known_hosts_files = user_files + SYSTEM_KNOWN_HOSTS
    hostname = options.get("hostname") or target.address
    return Endpoint(
        hostname=strip_brackets(hostname),
        port=port,
        user=user,
        identity_files=identities,
        explicit_identity=explicit,
        known_hosts_files=tuple(known_hosts_files),
        host_key_alias=options.get("hostkeyalias"),
    )


def read_ssh_config(path: Path, alias: str) -> dict[str, Any]:
    """The ssh_config options for ``alias`` (paramiko's parser: Host/Match blocks, first value wins)."""
    if not path.is_file():
        return {}
    import paramiko  # ~140 ms, only when a connection is about to be made

    try:
        config = paramiko.SSHConfig.from_path(str(path))
        return dict(config.lookup(alias))
    except Exception as exc:  # a syntax paramiko cannot read; OpenSSH would refuse it too
        raise InvalidArgument(f"Cannot read {path}: {exc}") from exc


def parse_port(value: str | None, address: str) -> int:
    if value is None:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise InvalidArgument(f"~/.ssh/config gives {address} the port {value!r}, which is not a TCP port")
    return int(value)


def strip_brackets(hostname: str) -> str:
    return hostname[1:-1] if hostname.startswith("[") and hostname.endswith("]") else hostname


