"""Backup storages: where published templates go, and the URL they are served at.

``local`` is a directory on the admin host served by a web server at ``base_uri``; ``ssh`` is a
directory on a web server reached over SSH with the same rules as hosts (known host keys, key files
or the agent, never a password). Templates are streamed there through the admin host, so the
XenServer hosts need no credentials for the web server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.hosts import check_address, check_key_file, check_port, check_user, fetch_first_seen_key
from vdcmanage.catalog.ids import check_id
from vdcmanage.catalog.models import BackupStorage, utcnow
from vdcmanage.catalog.records import find_live, insert_new, iso, refuse_taken_id
from vdcmanage.catalog.validate import check_choice, check_name, check_text
from vdcmanage.errors import AlreadyExists, InvalidArgument, NotFound

if TYPE_CHECKING:
    from vdcmanage.remote.ssh import ConnectOptions, SshTarget

STORAGE_TYPES = ("local", "ssh")
URI_SCHEMES = ("http", "https", "ftp", "file")


def check_base_uri(value: str) -> str:
    check_text("Base URI", value, max_length=2048)
    parts = urlsplit(value)
    if parts.scheme not in URI_SCHEMES or (parts.scheme != "file" and not parts.netloc):
        raise InvalidArgument(f"Invalid base URI {value!r}: expected http(s)://HOST/PATH, ftp://… or file:///PATH")
    return value.rstrip("/")


def check_directory_path(value: str) -> str:
    check_text("Path", value, max_length=4096)
    if not value.startswith("/"):
        raise InvalidArgument(f"Path must be absolute: {value!r}")
    return os.path.normpath(value)


def check_local_directory(path: str) -> None:
    directory = Path(path)
    if not directory.is_dir():
        raise NotFound(f"Directory not found: {path}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidArgument(f"Directory {path} is not writable by this user")


def add_backup_storage(
    storage_type: str,
    base_uri: str,
    path: str,
    *,
    address: str | None = None,
    port: int | None = None,
    user: str | None = None,
    key_file: str | None = None,
    display_name: str | None = None,
    uuid: str | None = None,
    accept_new_host_key: bool = False,
    connect: ConnectOptions | None = None,
) -> BackupStorage:
    chosen_id = check_id("backup storage", uuid) if uuid is not None else None
    check_choice("storage type", storage_type, STORAGE_TYPES)
    fields: dict[str, Any] = {
        "storage_type": storage_type,
        "base_uri": check_base_uri(base_uri),
        "path": check_directory_path(path),
        "display_name": check_name("Display name", display_name),
    }
    if storage_type == "ssh":
        if not address:
            raise InvalidArgument("An ssh backup storage needs --address")
        fields.update(
            address=check_address(address), port=check_port(port), user=check_user(user),
            key_file=check_key_file(key_file),
        )
    else:
        if address or port or user or key_file:
            raise InvalidArgument("--address/--port/--user/--key-file are for ssh storages only")
        check_local_directory(fields["path"])

    def check_name_free() -> None:
        refuse_taken_display_name(fields["display_name"])

    with transaction():
        refuse_taken_id(BackupStorage, "backup storage", chosen_id)
        check_name_free()
    if storage_type == "ssh" and accept_new_host_key:
        fields["host_key"] = fetch_first_seen_key(ssh_target(BackupStorage(id=chosen_id or "new", **fields)), connect)
    return insert_new(
        BackupStorage, "backup storage", chosen_id, check_name_free,
        lambda storage_id: BackupStorage.create(id=storage_id, **fields),
    )


def refuse_taken_display_name(display_name: str | None) -> None:
    if display_name is not None:
        same = BackupStorage.get_or_none(
            (BackupStorage.display_name == display_name) & BackupStorage.deleted_at.is_null()
        )
        if same is not None:
            raise AlreadyExists(f"A backup storage named {display_name!r} already exists ({same.id})")


def get_backup_storage(key: str) -> BackupStorage:
    return find_live(BackupStorage, "backup storage", key, BackupStorage.display_name)


def live_backup_storage(key: str) -> BackupStorage:
    storage = get_backup_storage(key)
    if storage.deleted_at is not None:
        raise NotFound(f"Backup storage {storage.id} is deleted")
    return storage


def list_backup_storages(include_deleted: bool = False) -> list[BackupStorage]:
    query = BackupStorage.select().order_by(BackupStorage.created_at, BackupStorage.id)
    if not include_deleted:
        query = query.where(BackupStorage.deleted_at.is_null())
    return list(query)


def delete_backup_storage(key: str) -> BackupStorage:
    """Mark a storage deleted; templates already published there stay where they are."""
    with transaction(write=True):
        storage = live_backup_storage(key)
        storage.deleted_at = storage.updated_at = utcnow()
        storage.save()
        return storage


def ssh_target(storage: BackupStorage) -> SshTarget:
    from vdcmanage.remote.ssh import SshTarget

    if storage.storage_type != "ssh" or not storage.address:
        raise InvalidArgument(f"Backup storage {storage.id} is not reached over SSH")
    return SshTarget(
        address=storage.address,
        port=storage.port,
        user=storage.user,
        key_file=storage.key_file,
        host_key=storage.host_key,
        label=f"backup storage {storage.display_name or storage.id} ({storage.id})",
    )


def published_uri(storage: BackupStorage, file_name: str) -> str:
    return f"{storage.base_uri}/{quote(file_name)}"


def storage_dict(storage: BackupStorage) -> dict[str, Any]:
    return {
        "id": storage.id,
        "display_name": storage.display_name,
        "storage_type": storage.storage_type,
        "base_uri": storage.base_uri,
        "path": storage.path,
        "address": storage.address,
        "port": storage.port,
        "user": storage.user,
        "key_file": storage.key_file,
        "host_key": storage.host_key,
        "created_at": iso(storage.created_at),
        "updated_at": iso(storage.updated_at),
        "deleted_at": iso(storage.deleted_at),
    }
