"""Publishing a template to a backup storage, streamed from the host through the admin host.

The XenServer host never needs credentials for the web server: we read the compressed file from
the host over one SSH channel and write it to the storage (a local directory, or a web server over
SSH), hashing as it passes. It lands under a temporary name and is renamed only when complete, so
the published name never shows a partial file; on any failure the temporary file is removed.
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
from vdcmanage.errors import Refused, VdcError
from vdcmanage.remote.ssh import Connection, ExecChannel

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Published:
    file_name: str
    size: int
    md5: str
    sha256: str


class Destination(Protocol):
    label: str

    def begin(self, file_name: str) -> None: ...

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the temporary file the published one (an atomic rename)."""

    def abort(self) -> None:
        """Remove the temporary file; never raises."""

    def sha256(self, file_name: str) -> str:
        """The checksum of the published file, computed where it landed."""

    def remove(self, file_name: str) -> None: ...


def temporary_name(file_name: str) -> str:
    return f".{file_name}.part"


class LocalDestination:
    """A directory on the admin host, served by a web server."""

    def __init__(self, storage: BackupStorage) -> None:
        self.directory = Path(storage.path)
        self.label = f"backup storage {storage.id} ({storage.path})"
        self.file_name = ""
        self.handle: int | None = None

    def begin(self, file_name: str) -> None:
        self.file_name = file_name
        tmp = self.directory / temporary_name(file_name)
        try:
            self.handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # served to the world
        except OSError as exc:
            raise Refused(f"Cannot write to {self.label}: {exc.strerror}") from exc

    def write(self, data: bytes) -> None:
        assert self.handle is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.handle, view) :]
        except OSError as exc:
            raise storage_error(self.label, exc) from exc

    def commit(self) -> None:
        assert self.handle is not None
        try:
            os.fsync(self.handle)
        except OSError as exc:
            raise storage_error(self.label, exc) from exc
        os.close(self.handle)
        self.handle = None
        os.replace(self.directory / temporary_name(self.file_name), self.directory / self.file_name)

    def abort(self) -> None:
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None
        with contextlib.suppress(OSError):
            (self.directory / temporary_name(self.file_name)).unlink(missing_ok=True)

    def sha256(self, file_name: str) -> str:
        from vdcmanage.images.checksum import file_digests

        digest: str = file_digests(self.directory / file_name).sha256
        return digest

    def remove(self, file_name: str) -> None:
        for name in (file_name, temporary_name(file_name)):
            (self.directory / name).unlink(missing_ok=True)


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

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def begin(self, file_name: str) -> None:
        self.file_name = file_name
        # umask 022: the file is served by the web server
        script = 'umask 022 && exec cat > "$1"'
        self.stream = self.conn.open_exec(["sh", "-c", script, "sh", self.path(temporary_name(file_name))])

    def write(self, data: bytes) -> None:
        assert self.stream is not None
        self.stream.write(data)

    def commit(self) -> None:
        assert self.stream is not None
        stream, self.stream = self.stream, None
        result = stream.finish(check=False)
        if result.exit_status != 0:
            detail = result.stderr_text.strip()
            if "No space left" in detail or "Disk quota" in detail:
                raise Refused(f"{self.label} is full ({detail}); nothing was published")
            raise VdcError(f"Writing to {self.label} failed: {detail or f'exit {result.exit_status}'}")
        tmp, final = self.path(temporary_name(self.file_name)), self.path(self.file_name)
        self.conn.run(["sh", "-c", 'sync "$1" 2>/dev/null || sync; mv -f -- "$1" "$2"', "sh", tmp, final])

    def abort(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        with contextlib.suppress(Exception):  # best effort: the failure being reported matters more
            self.conn.run(["rm", "-f", "--", self.path(temporary_name(self.file_name))])

    def sha256(self, file_name: str) -> str:
        result = self.conn.run(["sha256sum", "--", self.path(file_name)], timeout=None)
        return result.stdout_text.split()[0]

    def remove(self, file_name: str) -> None:
        self.conn.run(["rm", "-f", "--", self.path(file_name), self.path(temporary_name(file_name))])


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
        destination.commit()
    except BaseException:
        reader.close()
        destination.abort()
        raise
    return Published(file_name, size, md5.hexdigest(), sha256.hexdigest())
