"""A guest's root tree seen from the admin host, where every path stays inside the guest.

A guest's ``etc/fstab`` may be a symlink to ``/etc/fstab``; followed naively from the admin host,
that edits the admin host's own fstab. Here every guest path is resolved component by component:
``..`` never climbs above the root and an absolute symlink target restarts at the guest's root, as
the guest's kernel would resolve it once booted. Resolution uses ``lstat``/``readlink`` on paths
already proven free of symlinks, so no system call ever follows a guest symlink on its own.

The tree is offline (a mounted image or a directory nobody runs from), so nothing changes it
between the resolution and the use; that is the assumption this module relies on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from vdcmanage.errors import Refused

MAX_SYMLINKS = 40  # as Linux's own limit (ELOOP)
TEXT_ENCODING = "utf-8"
TEXT_ERRORS = "surrogateescape"  # config files with stray latin-1 bytes survive a read/write unchanged


class GuestPathError(Refused):
    """A guest path that cannot be used: a symlink loop, a directory where a file is expected ..."""


def split_guest_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def decode_text(data: bytes) -> str:
    return data.decode(TEXT_ENCODING, TEXT_ERRORS)


def encode_text(text: str) -> bytes:
    return text.encode(TEXT_ENCODING, TEXT_ERRORS)


class GuestRoot:
    """The root directory of a guest. Guest paths are relative (``etc/fstab``); a leading ``/`` is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.abspath(path))

    def __repr__(self) -> str:
        return f"GuestRoot({str(self.path)!r})"

    # -- resolution -------------------------------------------------------------------------

    def resolve(self, guest_path: str, *, follow_last: bool = True) -> str:
        """The guest path with every symlink replaced by its target, resolved inside the root.

        Returns a normalised relative path (``""`` for the root itself) whose components exist as
        real directories, except possibly the last one. Missing components are kept as they are.
        """
        pending = deque(split_guest_path(guest_path))
        resolved: list[str] = []
        links_followed = 0
        while pending:
            name = pending.popleft()
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            host = self.path.joinpath(*resolved, name)
            if (pending or follow_last) and host.is_symlink():
                links_followed += 1
                if links_followed > MAX_SYMLINKS:
                    raise GuestPathError(
                        f"{guest_path}: too many levels of symbolic links inside the guest "
                        f"({'/'.join([*resolved, name])} -> {os.readlink(host)})"
                    )
                target = os.readlink(host)
                if target.startswith("/"):
                    resolved = []
                pending.extendleft(reversed(split_guest_path(target)))
                continue
            resolved.append(name)
        return "/".join(resolved)

    def host_path(self, guest_path: str, *, follow_last: bool = True) -> Path:
        """Where the guest path lives on the admin host (inside the root, by construction)."""
        return self.path.joinpath(self.resolve(guest_path, follow_last=follow_last))

    def _lstat(self, guest_path: str, follow_last: bool = True) -> os.stat_result | None:
        try:
            return os.lstat(self.host_path(guest_path, follow_last=follow_last))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    # -- queries ----------------------------------------------------------------------------

    def lexists(self, guest_path: str) -> bool:
        return self._lstat(guest_path, follow_last=False) is not None

    def exists(self, guest_path: str) -> bool:
        return self._lstat(guest_path) is not None

    def is_dir(self, guest_path: str) -> bool:
        st = self._lstat(guest_path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def is_file(self, guest_path: str) -> bool:
        st = self._lstat(guest_path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_symlink(self, guest_path: str) -> bool:
        st = self._lstat(guest_path, follow_last=False)
        return st is not None and stat.S_ISLNK(st.st_mode)

    def readlink(self, guest_path: str) -> str:
        return os.readlink(self.host_path(guest_path, follow_last=False))

    def stat(self, guest_path: str) -> os.stat_result | None:
        return self._lstat(guest_path)

    def listdir(self, guest_path: str) -> list[str]:
        """Entry names of a guest directory, sorted; empty when it does not exist."""
        if not self.is_dir(guest_path):
            return []
        return sorted(os.listdir(self.host_path(guest_path)))

    def walk_files(self, guest_path: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every non-directory entry under a guest directory (symlinks not followed), depth first."""
        top = self.resolve(guest_path)
        if not self.is_dir(top):
            return
        stack = [top]
        while stack:
            current = stack.pop()
            with os.scandir(self.path.joinpath(current)) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    rel = f"{current}/{entry.name}" if current else entry.name
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(rel)
                    else:
                        yield rel, st

    # -- reading ----------------------------------------------------------------------------

    def read_bytes(self, guest_path: str) -> bytes | None:
        """The content of a regular file, or None when it does not exist."""
        host = self.host_path(guest_path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(guest_path, exc) from exc
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise GuestPathError(f"{guest_path} in the guest is not a regular file")
            return handle.read()

    def read_text(self, guest_path: str) -> str | None:
        data = self.read_bytes(guest_path)
        return None if data is None else decode_text(data)

    def read_head(self, guest_path: str, size: int) -> bytes:
        """The first ``size`` bytes of a file (fewer if it is shorter; empty if missing)."""
        try:
            fd = os.open(self.host_path(guest_path), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return b""
        with os.fdopen(fd, "rb") as handle:
            return handle.read(size)

    # -- writing ----------------------------------------------------------------------------

    def write_bytes(self, guest_path: str, data: bytes, mode: int | None = None) -> str:
        """Replace a file's content atomically (a temporary file renamed over it).

        An existing file keeps its permission bits and owner unless ``mode`` says otherwise; a
        new one gets ``mode`` (default 0644). Returns the resolved guest path written.
        """
        rel = self.resolve(guest_path)
        host = self.path.joinpath(rel)
        if not host.parent.is_dir():
            raise GuestPathError(
                f"Cannot write {guest_path}: its directory {host.parent.relative_to(self.path)} "
                "does not exist in the guest"
            )
        old = self._lstat(rel, follow_last=False)
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise GuestPathError(f"Cannot write {guest_path}: it is not a regular file in the guest")
        new_mode = mode if mode is not None else (stat.S_IMODE(old.st_mode) if old else 0o644)
        tmp = host.parent / f".{host.name}.vdc-prepare-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, new_mode)
            if old is not None and os.geteuid() == 0:
                os.chown(tmp, old.st_uid, old.st_gid)
            os.replace(tmp, host)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return rel

    def write_text(self, guest_path: str, text: str, mode: int | None = None) -> str:
        return self.write_bytes(guest_path, encode_text(text), mode)

    def chmod(self, guest_path: str, mode: int) -> None:
        os.chmod(self.host_path(guest_path), mode)

    def remove(self, guest_path: str) -> None:
        """Remove a file or symlink (the link itself, never its target)."""
        host = self.host_path(guest_path, follow_last=False)
        with contextlib.suppress(FileNotFoundError):
            host.unlink()

    def truncate(self, guest_path: str) -> None:
        fd = os.open(self.host_path(guest_path, follow_last=False), os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def symlink(self, guest_path: str, target: str) -> None:
        """Make ``guest_path`` a symlink to ``target`` (a path as the guest sees it), replacing a file."""
        host = self.host_path(guest_path, follow_last=False)
        tmp = host.parent / f".{host.name}.vdc-prepare-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        try:
            os.replace(tmp, host)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _error(self, guest_path: str, exc: OSError) -> GuestPathError:
        if exc.errno == errno.ELOOP:
            return GuestPathError(f"{guest_path} in the guest is a symbolic link loop")
        return GuestPathError(f"Cannot read {guest_path} in the guest: {exc.strerror}")


LINUX_ROOT_MARKERS = ("bin", "sbin", "usr/bin", "etc/passwd")


def is_linux_root(root: GuestRoot) -> bool:
    """A Linux root has ``etc/fstab`` (as the procedure defines it) and some of the usual system directories.

    ``etc/fstab`` counts even when it is a symlink, resolvable or not: the fstab step then says
    what is wrong with it, instead of the whole tree being refused as "not a root".
    """
    return (
        root.is_dir("etc") and root.lexists("etc/fstab") and any(root.lexists(marker) for marker in LINUX_ROOT_MARKERS)
    )
