"""A source image read once: its format, size and checksums all from one open descriptor.

Inspecting and hashing by name would let someone swap the file between the passes and pair one
file's checksums with another's format or contents. Here both passes read the same descriptor,
which is then checked to be the file the path still names, unchanged (device, inode, size,
mtime); later passes by name (a conversion, an upload) check the same identity before they start.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.images.checksum import Digests, Progress, file_digests
from vdcmanage.images.inspect import ImageInfo, inspect_image
from vdcmanage.images.reader import FileIdentity, GiB, check_unchanged, display_path, open_regular_file

# The one-pass hash runs at md5's pace (checksum.py): ~1 GB/s on this machine kind (design.md). Used
# to decide whether to warn; the estimate shown is from a short measurement on this machine.
DOCUMENTED_HASH_RATE = 1.0e9
LONG_HASH_S = 60.0  # a sparse file whose hashing takes longer than this is worth a question first
SPARSE_BELOW = 0.5  # "sparse": less than half of its length holds data
MEASURE_BYTES = 16 << 20
MEASURE_TIMES = 3


@dataclass(frozen=True)
class ReadSource:
    info: ImageInfo
    digests: Digests
    identity: FileIdentity


def inspect_and_hash(path: Path, progress: Progress | None = None) -> ReadSource:
    fd, opened = open_regular_file(path)
    try:
        identity = FileIdentity.of(opened)
        info = inspect_image(path, fd)
        digests = file_digests(path, progress=progress, fd=fd)
        check_unchanged(path, identity, fd)
    finally:
        os.close(fd)
    return ReadSource(info, digests, identity)


@dataclass(frozen=True)
class LongHash:
    """A sparse source whose hashing reads far more than it holds (every hole is read as zeros)."""

    path: str
    size: int
    allocated: int
    rate: float  # bytes per second, measured here

    @property
    def seconds(self) -> float:
        return self.size / self.rate

    def message(self) -> str:
        return (
            f"{self.path} is a sparse file of {self.size / GiB:.1f} GiB holding {self.allocated / GiB:.1f} GiB of "
            f"data: hashing reads all of it, about {duration_text(self.seconds)} at the "
            f"{self.rate / 1e9:.1f} GB/s measured here"
        )


def long_hash(path: str | os.PathLike[str]) -> LongHash | None:
    """What hashing ``path`` will cost, if it is a sparse file that takes more than a minute; None
    otherwise (and for anything that is not a regular file: the command's own checks name it)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    allocated = info.st_blocks * 512
    if not stat.S_ISREG(info.st_mode) or allocated >= info.st_size * SPARSE_BELOW:
        return None
    if info.st_size / DOCUMENTED_HASH_RATE < LONG_HASH_S:
        return None
    return LongHash(display_path(path), info.st_size, allocated, measured_hash_rate())


def measured_hash_rate() -> float:
    """md5 over 16 MiB, best of three (~50 ms): the pace of the one-pass hash on this machine now."""
    block = bytes(MEASURE_BYTES)
    fastest = float("inf")
    for _ in range(MEASURE_TIMES):
        started = time.perf_counter()
        hashlib.md5(block, usedforsecurity=False).hexdigest()
        fastest = min(fastest, time.perf_counter() - started)
    return MEASURE_BYTES / max(fastest, 1e-6)


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds)} seconds"
