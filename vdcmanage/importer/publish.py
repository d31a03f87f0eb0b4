"""Publishing a template to a backup storage, streamed from the host through the admin host.

The XenServer host never needs credentials for the web server: we read the compressed file from
the host over one SSH channel and write it to the storage (a local directory, or a web server over
SSH), hashing as it passes. It lands in a fresh private temporary (``safefiles``, ``remote/files``:
a random name nobody can plant a link at) and is renamed only once its checksum where it landed
matches what was sent, so the published name never shows a partial or altered file; on any failure
the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vdcmanage.catalog.models import BackupStorage
from vdcmanage.errors import ChecksumMismatch, Refused, VdcError
from vdcmanage.remote import files as remote_files
from vdcmanage.remote.ssh import Connection, ExecChannel
from vdcmanage.safefiles import create_temporary, remove_temporaries

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Published:
    file_name: str
    size: int
    md5: str
    sha256: str


class Destination(Protocol):
    label: str

    def begin(self, file_name: str) -> None:
        """Create a fresh private temporary for ``file_name`` (never one anyone could plant in advance)."""

    def write(self, data: bytes) -> None: ...

    def commit(self, sha256: str) -> None:
        """Check the temporary holds ``sha256``, then make it the published file (an atomic rename)."""

    def abort(self) -> None:
        """Remove the temporary file; never raises."""

    def sha256(self, file_name: str) -> str:
        """The checksum of the published file, computed where it landed."""

    def remove(self, file_name: str) -> None:
        """Remove the published file and any temporary an interrupted run left for it."""


PUBLISHED_MODE = 0o644  # served to the world by the web server; 0600 until complete


class LocalDestination:
    """A directory on the admin host, served by a web server."""

    def __init__(self, storage: BackupStorage) -> None:
        self.directory = Path(storage.path)
        self.label = f"backup storage {storage.id} ({storage.path})"
        self.file_name = ""
        self.handle: int | None = None
        self.temporary: Path | None = None

    def begin(self, file_name: str) -> None:
        self.file_name = file_name
        try:
            self.handle, self.temporary = create_temporary(self.directory, file_name)
        except OSError as exc:
            raise Refused(f"Cannot write to {self.label}: {exc.strerror or exc}") from exc

    def write(self, data: bytes) -> None:
        assert self.handle is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.handle, view) :]
        except OSError as exc:
            raise storage_error(self.label, exc) from exc

    def commit(self, sha256: str) -> None:
        from vdcmanage.images.checksum import hash_descriptor

        assert self.handle is not None and self.temporary is not None
        try:
            os.fsync(self.handle)
            os.lseek(self.handle, 0, os.SEEK_SET)
            landed = hash_descriptor(self.handle, os.fstat(self.handle).st_size, None, str(self.temporary)).sha256
            check_landed(self.label, sha256, landed)
            os.fchmod(self.handle, PUBLISHED_MODE)
        except OSError as exc:
            raise storage_error(self.label, exc) from exc
        os.close(self.handle)
        self.handle = None
        os.replace(self.temporary, self.directory / self.file_name)
        self.temporary = None

    def abort(self) -> None:
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                self.temporary.unlink()
            self.temporary = None

    def sha256(self, file_name: str) -> str:
        from vdcmanage.images.checksum import file_digests

        digest: str = file_digests(self.directory / file_name).sha256
        return digest

    def remove(self, file_name: str) -> None:
        (self.directory / file_name).unlink(missing_ok=True)
        remove_temporaries(self.directory, file_name)


def check_landed(label: str, sent: str, landed: str) -> None:
    if landed != sent:
        raise ChecksumMismatch(
            f"The template written to {label} differs from what was sent: sha256 {sent} sent, {landed} "
            "written; nothing was published"
        )


def storage_error(label: str, exc: OSError) -> VdcError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Refused(f"{label} is full ({exc.strerror}); nothing was published")
    return VdcError(f"Writing to {label} failed: {exc.strerror}")


class SshDestination:
    """A directory on a web server reached over SSH."""

    def __init__(self, storage: BackupStorage, conn: Connection) -> None:
        self.conn = conn
        self.directory = storage.path
        self.label = f"backup storage {storage.id} ({conn.where}:{storage.path})"
        self.file_name = ""
        self.stream: ExecChannel | None = None
        self.temporary: str | None = None

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def begin(self, file_name: str) -> None:
        self.file_name = file_name
        self.temporary = remote_files.create_temporary(self.conn, self.path(file_name))
        self.stream = self.conn.open_exec(remote_files.write_into(self.temporary))

    def write(self, data: bytes) -> None:
        assert self.stream is not None
        self.stream.write(data)

    def commit(self, sha256: str) -> None:
        assert self.stream is not None and self.temporary is not None
        stream, self.stream = self.stream, None
        result = stream.finish(check=False)
        if result.exit_status != 0:
            detail = result.stderr_text.strip()
            if "No space left" in detail or "Disk quota" in detail:
                raise Refused(f"{self.label} is full ({detail}); nothing was published")
            raise VdcError(f"Writing to {self.label} failed: {detail or f'exit {result.exit_status}'}")
        check_landed(self.label, sha256, self.digest_at(self.temporary))
        remote_files.rename_into_place(self.conn, self.temporary, self.path(self.file_name), f"{PUBLISHED_MODE:o}")
        self.temporary = None

    def abort(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.temporary is not None:
            with contextlib.suppress(Exception):  # best effort: the failure being reported matters more
                self.conn.run(["rm", "-f", "--", self.temporary])
            self.temporary = None

    def digest_at(self, path: str) -> str:
        result = self.conn.run(["sha256sum", "--", path], timeout=None)
        return result.stdout_text.split()[0]

    def sha256(self, file_name: str) -> str:
        return self.digest_at(self.path(file_name))

    def remove(self, file_name: str) -> None:
        remote_files.remove_with_temporaries(self.conn, self.path(file_name))


def stream_to(
    host: Connection,
    source: str,
    destination: Destination,
    file_name: str,
    total: int,
    progress: Callable[[int, int], None],
) -> Published:
    """Copy the host's ``source`` to ``destination`` as ``file_name``, hashing on the way."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    destination.begin(file_name)
    reader = host.open_exec(["cat", "--", source])
    try:
        reader.close_input()
        while True:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            destination.write(chunk)
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
            progress(size, total)
        result = reader.finish(check=False)
        if result.exit_status != 0:
            raise VdcError(f"Reading {shlex.quote(source)} on {host.where} failed: {result.stderr_text.strip()}")
        if size != total:
            raise VdcError(f"Read {size} bytes of {source} on {host.where}, expected {total}")
        destination.commit(sha256.hexdigest())
    except BaseException:
        reader.close()
        destination.abort()
        raise
    return Published(file_name, size, md5.hexdigest(), sha256.hexdigest())
