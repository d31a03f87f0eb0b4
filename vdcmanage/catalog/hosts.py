"""Host nodes: the XenServer/XCP-ng hosts images are imported through, reached over SSH.

A host record holds how to reach the host (address or ``~/.ssh/config`` alias, port, user, key
file path), the SR imports go to, and, if the operator accepted one, the host's public key. Never a
password, a passphrase or key material: keys stay in their files or the ssh-agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.ids import check_id
from vdcmanage.catalog.models import Host, utcnow
from vdcmanage.catalog.records import find_live, insert_new, iso, refuse_taken_id
from vdcmanage.catalog.validate import check_name, check_text
from vdcmanage.errors import AlreadyExists, InvalidArgument, NotFound
from vdcmanage.images.reader import check_regular
from vdcmanage.privatefiles import ensure_private

if TYPE_CHECKING:
    from vdcmanage.remote.check import HostCheck
    from vdcmanage.remote.ssh import ConnectOptions, SshTarget

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
ADDRESS_FORBIDDEN = set(" \t\r\n\0@/\\'\"`$;&|<>(){}*?!#")


def check_address(address: str) -> str:
    """A host name, an IP address (``[::1]`` brackets dropped) or a ``~/.ssh/config`` Host alias."""
    check_text("Address", address, max_length=255)
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if address.startswith("-") or ADDRESS_FORBIDDEN & set(address):
        hint = " (give the user with --user)" if "@" in address else ""
        raise InvalidArgument(
            f"Invalid address {address!r}: expected a host name, an IP address or an ssh_config alias{hint}"
        )
    return address


def check_port(port: int | None) -> int | None:
    if port is not None and not 0 < port < 65536:
        raise InvalidArgument(f"Invalid port {port}: expected 1 to 65535")
    return port


def check_user(user: str | None) -> str | None:
    if user is not None and not (USER_RE.fullmatch(user) and len(user) <= 64):
        raise InvalidArgument(f"Invalid user name {user!r}")
    return user


def check_key_file(path: str | None) -> str | None:
    """An existing private key file, stored as an absolute path (the worker may run elsewhere)."""
    if path is None:
        return None
    check_text("Key file", path, max_length=4096)
    resolved = Path(path).expanduser().absolute()
    if not resolved.is_file():
        if resolved.exists():  # a FIFO, a device, a directory: named for what it is, never read
            check_regular(resolved.stat(), str(resolved))
        raise NotFound(f"Key file not found: {resolved}")
    ensure_private(resolved, "SSH key file")
    try:
        head = resolved.read_bytes()[:64]
    except OSError as exc:
        raise InvalidArgument(f"Cannot read key file {resolved}: {exc.strerror}") from exc
    if head.startswith((b"ssh-", b"ecdsa-")):
        raise InvalidArgument(f"{resolved} is a public key; give the private key file (without .pub)")
    return str(resolved)


def check_sr_uuid(value: str | None) -> str | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if not UUID_RE.fullmatch(lowered):
        raise InvalidArgument(f"Invalid SR uuid {value!r}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex)")
    return lowered


def add_host(
    name: str,
    address: str,
    *,
    port: int | None = None,
    user: str | None = None,
    key_file: str | None = None,
    sr_uuid: str | None = None,
    uuid: str | None = None,
    accept_new_host_key: bool = False,
    connect: ConnectOptions | None = None,
) -> Host:
    """Record a host. With ``accept_new_host_key``, connect first and record the host's key if
    known_hosts does not know it (a changed key is refused); without it, nothing is contacted."""
    chosen_id = check_id("host", uuid) if uuid is not None else None
    fields: dict[str, Any] = {
        "name": check_name("Name", name),
        "address": check_address(address),
        "port": check_port(port),
        "user": check_user(user),
        "key_file": check_key_file(key_file),
        "sr_uuid": check_sr_uuid(sr_uuid),
    }

    def check_name_free() -> None:
        same = Host.get_or_none((Host.name == fields["name"]) & Host.deleted_at.is_null())
        if same is not None:
            raise AlreadyExists(f"A host named {fields['name']!r} already exists ({same.id})")

    with transaction():
        refuse_taken_id(Host, "host", chosen_id)
        check_name_free()
    if accept_new_host_key:
        fields["host_key"] = fetch_new_host_key(Host(id=chosen_id or "new", **fields), connect)
    return insert_new(Host, "host", chosen_id, check_name_free, lambda host_id: Host.create(id=host_id, **fields))


def fetch_new_host_key(host: Host, connect: ConnectOptions | None) -> str | None:
    return fetch_first_seen_key(ssh_target(host), connect)


def fetch_first_seen_key(target: SshTarget, connect: ConnectOptions | None) -> str | None:
    """Connect (no login needed) and return the server's key if it was first seen; None if known_hosts knows it."""
    import dataclasses

    from vdcmanage.remote.ssh import Connection, ConnectOptions

    options = dataclasses.replace(connect or ConnectOptions(), accept_new_host_key=True)
    with Connection(target, options) as conn:
        conn.open(authenticate=False)
        assert conn.host_key is not None
        return conn.host_key.line if conn.host_key.accepted_new else None


def get_host(key: str) -> Host:
    """A host by id or unique name, deleted ones included (for show)."""
    return find_live(Host, "host", key, Host.name)


def live_host(key: str) -> Host:
    host = get_host(key)
    if host.deleted_at is not None:
        raise NotFound(f"Host {host.id} is deleted")
    return host


def list_hosts(include_deleted: bool = False) -> list[Host]:
    query = Host.select().order_by(Host.created_at, Host.id)
    if not include_deleted:
        query = query.where(Host.deleted_at.is_null())
    return list(query)


def delete_host(key: str) -> Host:
    with transaction(write=True):
        host = live_host(key)
        host.deleted_at = host.updated_at = utcnow()
        host.save()
        return host


@dataclass
class HostChanges:
    """What ``host modify`` was asked to change; None (False) leaves a field as it is."""

    name: str | None = None
    address: str | None = None
    ssh_config_host: str | None = None  # an alias: address, and port/user/key file from ~/.ssh/config
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    sr_uuid: str | None = None
    clear_sr_uuid: bool = False

    def fields(self) -> dict[str, Any]:
        """The new values, checked as ``host add`` checks them."""
        if self.sr_uuid is not None and self.clear_sr_uuid:
            raise InvalidArgument("--sr-uuid and --clear-sr-uuid exclude each other")
        if self.address is not None and self.ssh_config_host is not None:
            raise InvalidArgument("--address and --ssh-config-host exclude each other")
        fields: dict[str, Any] = {}
        if self.ssh_config_host is not None:
            alias = check_address(self.ssh_config_host)
            if not ssh_config_knows(alias):
                raise NotFound(f"~/.ssh/config has no Host entry for {alias!r}")
            fields.update(address=alias, port=None, user=None, key_file=None)  # ~/.ssh/config gives them
        if self.name is not None:
            fields["name"] = check_name("Name", self.name)
        if self.address is not None:
            fields["address"] = check_address(self.address)
        if self.port is not None:
            fields["port"] = check_port(self.port)
        if self.user is not None:
            fields["user"] = check_user(self.user)
        if self.key_file is not None:
            fields["key_file"] = check_key_file(self.key_file)
        if self.sr_uuid is not None or self.clear_sr_uuid:
            fields["sr_uuid"] = check_sr_uuid(self.sr_uuid)
        if not fields:
            raise InvalidArgument(
                "Nothing to change: give --sr-uuid, --clear-sr-uuid, --address, --ssh-config-host, --port, --user, "
                "--key-file or --display-name"
            )
        return fields


def ssh_config_knows(alias: str) -> bool:
    from vdcmanage.remote.target import read_ssh_config, ssh_config_path

    options = read_ssh_config(ssh_config_path(), alias)
    return any(k != "hostname" for k in options) or options.get("hostname", alias) != alias


def modify_host(key: str, changes: HostChanges) -> tuple[Host, list[tuple[str, Any, Any]]]:
    """Change a live host's record in place (its id, and so its jobs, stay); return ``(field, old, new)``
    for each field whose value changed."""
    fields = changes.fields()
    with transaction(write=True):
        host = live_host(key)
        if "name" in fields and fields["name"] != host.name:
            refuse_taken_host_name(fields["name"])
        changed = [(k, getattr(host, k), v) for k, v in fields.items() if getattr(host, k) != v]
        for name, _old, new in changed:
            setattr(host, name, new)
        if changed:
            host.touch()
            try:
                host.save()
            except peewee.IntegrityError as e:  # another admin took the name since the check above
                raise AlreadyExists(f"A host named {fields['name']!r} already exists") from e
        return host, changed


def refuse_taken_host_name(name: str) -> None:
    same = Host.get_or_none((Host.name == name) & Host.deleted_at.is_null())
    if same is not None:
        raise AlreadyExists(f"A host named {name!r} already exists ({same.id})")


def record_host_key(host_id: str, key_line: str) -> None:
    """Remember a first-seen host key (``--accept-new-host-key``); an existing one is never replaced."""
    with transaction(write=True):
        host = Host.get_by_id(host_id)
        if host.host_key and host.host_key != key_line:
            raise InvalidArgument(f"Host {host_id} already has a different recorded key; delete and re-add it")
        host.host_key = key_line
        host.touch()
        host.save()


def ssh_target(host: Host) -> SshTarget:
    from vdcmanage.remote.ssh import SshTarget

    return SshTarget(
        address=host.address,
        port=host.port,
        user=host.user,
        key_file=host.key_file,
        host_key=host.host_key,
        label=f"host {host.name} ({host.id})",
    )


def check_host(key: str, connect: ConnectOptions | None = None) -> HostCheck:
    """Connect to a catalog host and report what works (see :func:`vdcmanage.remote.check.check_target`).

    A key accepted with ``connect.accept_new_host_key`` is recorded in the catalog.
    """
    import dataclasses

    from vdcmanage.remote.check import check_target
    from vdcmanage.remote.ssh import ConnectOptions

    host = live_host(key)
    options = connect or ConnectOptions()
    if options.accept_new_host_key:
        options = dataclasses.replace(options, on_new_host_key=lambda line: record_host_key(host.id, line))
    return check_target(ssh_target(host), host.sr_uuid, options)


def host_key_fingerprint(host: Host) -> str | None:
    from vdcmanage.remote.known_hosts import PublicKey

    if not host.host_key:
        return None
    try:
        return PublicKey.parse(host.host_key).label
    except ValueError:
        return "(unreadable)"


def host_dict(host: Host) -> dict[str, Any]:
    return {
        "id": host.id,
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": host.key_file,
        "sr_uuid": host.sr_uuid,
        "host_key": host.host_key,
        "host_key_fingerprint": host_key_fingerprint(host),
        "created_at": iso(host.created_at),
        "updated_at": iso(host.updated_at),
        "deleted_at": iso(host.deleted_at),
    }
