"""Opening an image file safely and reading bounded pieces of it.

Every format parser reads through ``ImageFile``: a read that would run past the end of the file
becomes an ``InvalidImage`` that says which structure is cut off, never a short buffer that a
later ``struct.unpack`` trips over. Large tables are read in bounded chunks so that no header
value, however large, can make us allocate or read more than a few MiB at a time.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from vdcmanage.errors import FileNotFound, InvalidArgument, InvalidImage, Refused, VdcError

# The largest single read a parser may ask for; tables larger than this go through ``table_chunks``.
MAX_READ = 4 << 20
TABLE_CHUNK = 1 << 20
# The most table data (L1, BAT, grain directory, block map ...) any one check may read. It keeps a
# lying header in a large file from making us read much of that file; real images need far less.
MAX_TABLE_BYTES = 64 << 20

SECTOR = 512
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50


def display_path(path: str | os.PathLike[str]) -> str:
    """An absolute path fit to print: undecodable bytes (non-UTF-8 names) become ``\\xNN`` escapes."""
    text = os.path.abspath(os.fspath(path))
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def open_regular_file(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only; refuse, with a message an operator can act on, anything but a regular file.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; the type check on the opened descriptor
    (not on the name) leaves no window for the path to be swapped in between.
    """
    shown = display_path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFound(shown) from None
    except PermissionError:
        raise Refused(f"Cannot read {shown}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(f"Cannot open {shown}: too many levels of symbolic links") from None
        raise Refused(f"Cannot open {shown}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        check_regular(info, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def require_regular_file(path: str | os.PathLike[str]) -> os.stat_result:
    """The guard every command taking an image PATH runs first: a FIFO, a socket, a device or a
    directory is named for what it is (``stat`` opens nothing, so a FIFO cannot block us), a missing
    file is "File not found"."""
    shown = display_path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFound(shown) from None
    except PermissionError:
        raise Refused(f"Cannot read {shown}: permission denied") from None
    except OSError as exc:
        raise Refused(f"Cannot open {shown}: {exc.strerror}") from None
    check_regular(info, shown)
    return info


def file_kind(mode: int) -> str:
    """What a file of this mode is, as an error message names it."""
    kinds = (
        (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_regular(info: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise InvalidArgument(f"{shown} is {file_kind(info.st_mode)}, not a regular file")


@dataclass(frozen=True)
class FileIdentity:
    """What says "the same file as last time": a changed one makes a resume start over, and a
    source that changed between inspecting, hashing and converting is refused."""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


class SourceChanged(Refused):
    """The image file changed (replaced, or written to) between two passes over it."""


def check_unchanged(path: str | os.PathLike[str], expected: FileIdentity, fd: int | None = None) -> None:
    """Refuse unless ``path`` (and the open ``fd``, if given) is still the file first read: same
    device and inode (not swapped for another), same size and mtime (not written to)."""
    shown = display_path(path)
    try:
        named = FileIdentity.of(os.stat(path))
    except OSError:
        raise SourceChanged(f"{shown} disappeared while it was being read; nothing was registered") from None
    opened = FileIdentity.of(os.fstat(fd)) if fd is not None else named
    for now in (opened, named):
        if now != expected:
            fields = ("device", "inode", "size", "mtime_ns")
            what = [name for name in fields if getattr(now, name) != getattr(expected, name)]
            raise SourceChanged(
                f"{shown} changed while it was being read ({', '.join(what)} differ): its checksums and contents "
                "would not match; nothing was registered (run the command again on a file nobody is changing)"
            )


class ImageFile:
    """A read-only image file of known size, read only by bounded positional reads."""

    def __init__(self, path: str | os.PathLike[str], fd: int | None = None) -> None:
        """Open ``path``; or, given ``fd`` (a descriptor of it already open), read that one."""
        self.shown = display_path(path)
        if fd is None:
            self.fd, info = open_regular_file(path)
        else:
            self.fd, info = os.dup(fd), os.fstat(fd)
        self.size = info.st_size

    def __enter__(self) -> ImageFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        os.close(self.fd)

    def invalid(self, problem: str) -> InvalidImage:
        """The error for a file whose content is not a usable image; ``problem`` says what is wrong."""
        return InvalidImage(f"{self.shown}: {problem}")

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly ``length`` bytes at ``offset``, or an ``InvalidImage`` naming ``what`` is cut off."""
        if length > MAX_READ:
            raise AssertionError(f"read of {length} bytes for {what}: use table_chunks")  # a bug, not bad input
        self.require(offset, length, what)
        return self.pread(offset, length)

    def require(self, offset: int, length: int, what: str) -> None:
        """Refuse a structure at ``offset`` of ``length`` bytes that does not lie wholly inside the file."""
        if offset >= self.size and length > 0:
            raise self.invalid(
                f"{what} lies beyond the end of the file (it starts at byte {offset}, the file has {self.size} bytes)"
            )
        if offset + length > self.size:
            raise self.invalid(
                f"{what} is truncated (it needs bytes {offset}..{offset + length}, the file has {self.size} bytes)"
            )

    def table_chunks(self, offset: int, length: int, what: str, align: int) -> Iterator[tuple[int, bytes]]:
        """A table of ``length`` bytes in chunks of at most ``TABLE_CHUNK`` (a multiple of ``align``)."""
        self.require(offset, length, what)
        step = TABLE_CHUNK - TABLE_CHUNK % align
        for start in range(0, length, step):
            yield start, self.pread(offset + start, min(step, length - start))

    def pread(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        done = 0
        while done < length:
            try:
                piece = os.pread(self.fd, length - done, offset + done)
            except OSError as exc:
                raise VdcError(f"Cannot read {self.shown}: {exc.strerror}") from None
            if not piece:  # the file shrank while we read it
                raise self.invalid(f"the file ended at byte {offset + done} while it was being read")
            parts.append(piece)
            done += len(piece)
        return b"".join(parts)


def uint_array(data: bytes, width: int, big_endian: bool) -> array[int]:
    """Unsigned integers of ``width`` bytes (4 or 8) decoded at C speed, for scanning tables."""
    table = array("I" if width == 4 else "Q")
    if table.itemsize != width:  # pragma: no cover - every platform we run on has 4-byte I, 8-byte Q
        raise AssertionError("unexpected C integer sizes")
    table.frombytes(data[: len(data) - len(data) % width])
    if big_endian != (sys.byteorder == "big"):
        table.byteswap()
    return table


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round_up(value: int, multiple: int) -> int:
    return ceil_div(value, multiple) * multiple


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def human(size: int) -> str:
    """A byte count for messages: exact bytes plus a binary-unit figure."""
    for unit, scale in (("PiB", PiB), ("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size} bytes ({size / scale:.4g} {unit})"
    return f"{size} bytes"
