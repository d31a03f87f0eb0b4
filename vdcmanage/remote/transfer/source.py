"""The local file being uploaded: its identity, its layout in chunks, and reading a chunk sparsely.

A chunk (16 MiB) is the unit of verification and resumption; a block (1 MiB) the unit of zero
detection and of remote seeks. Holes (``SEEK_DATA``/``SEEK_HOLE``) are not read at all, blocks that
read as zeros are not sent: the host's file was created sparse at its full size, so both are already
zeros there. Past the local end of file the remote file may be longer (``pad_to``): that padding is
zeros too, and reads as zeros here, so local and remote checksums cover the same bytes.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.errors import FileNotFound, InvalidArgument
from vdcmanage.images.reader import FileIdentity as FileIdentity
from vdcmanage.images.reader import check_regular, display_path
from vdcmanage.remote.transfer.receiver import BLOCK

# 32 MiB chunks: 32 checkpoints per GiB; each costs the host ~5 processes and us a save(), so fewer
# is cheaper, while a cancel still stops within one 1 MiB write and a drop loses little.
CHUNK_BLOCKS = 32
CHUNK = CHUNK_BLOCKS * BLOCK
ZERO_BLOCK = bytes(BLOCK)
ZEROS = memoryview(ZERO_BLOCK)  # slices of it are views, not copies


@dataclass(frozen=True)
class Layout:
    """How the remote file (``remote_size``, the local size rounded up to ``pad_to``) divides into chunks."""

    local_size: int
    remote_size: int

    @classmethod
    def for_size(cls, local_size: int, pad_to: int) -> Layout:
        if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1:
            raise InvalidArgument(f"pad_to must be a positive number of bytes, not {pad_to!r}")
        return cls(local_size, -(-local_size // pad_to) * pad_to)

    @property
    def chunks(self) -> int:
        return -(-self.remote_size // CHUNK)

    def span(self, chunk: int) -> tuple[int, int]:
        """(offset, length) of ``chunk`` in the remote file."""
        offset = chunk * CHUNK
        return offset, min(CHUNK, self.remote_size - offset)

    def local_length(self, chunk: int) -> int:
        """How many of the chunk's bytes are the local file's (the rest is padding)."""
        offset, length = self.span(chunk)
        return max(0, min(length, self.local_size - offset))


@dataclass(frozen=True)
class Run:
    """Consecutive non-zero blocks of a chunk: ``count`` blocks from ``first_block`` (file-wide), ``start``
    and ``length`` in bytes within the chunk's buffer."""

    first_block: int
    count: int
    start: int
    length: int


class Chunk:
    """One chunk read into a pooled buffer. Whoever holds a reference calls :meth:`release` when done."""

    def __init__(self, index: int, offset: int, length: int, buffer: bytearray, pool: BufferPool) -> None:
        self.index = index
        self.offset = offset
        self.length = length
        self.buffer = buffer
        self.view = memoryview(buffer)[:length]
        self.runs: list[Run] = []
        self.local_length = length  # bytes of the chunk that are the local file's (the rest: padding)
        self.resend = False
        self.lane_holds = False  # the lane reads the buffer (else it sends from the file: see Lane)
        self._pool = pool
        self._holders = 0
        self._lock = threading.Lock()

    @property
    def data_bytes(self) -> int:
        return sum(run.length for run in self.runs)

    @property
    def zero_bytes(self) -> int:
        return self.length - self.data_bytes

    def hold(self, holders: int) -> None:
        self._holders = holders
        if holders == 0:
            self._give_back()

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._give_back()

    def _give_back(self) -> None:
        self._pool.put(self.buffer)


class BufferPool:
    """At most ``count`` chunk buffers, made when first needed: what bounds memory whatever the file size."""

    def __init__(self, count: int) -> None:
        self._free: list[bytearray] = []
        self._unmade = count
        self._cond = threading.Condition()

    def get(self, stop: threading.Event, poll: float = 0.1) -> bytearray | None:
        """A free buffer, or None once ``stop`` is set."""
        with self._cond:
            while not self._free:
                if self._unmade:
                    self._unmade -= 1
                    return bytearray(CHUNK)
                if stop.is_set():
                    return None
                self._cond.wait(poll)
            return self._free.pop()

    def put(self, buffer: bytearray) -> None:
        with self._cond:
            self._free.append(buffer)
            self._cond.notify()


class LocalSource:
    """The open local file. Reads use ``pread``: the md5 pass and re-sends never share a file position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # O_NONBLOCK: a fifo given by mistake must not hang the open; cleared again below
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise FileNotFound(str(path)) from exc
        except PermissionError as exc:
            raise InvalidArgument(f"Cannot read {path}: permission denied") from exc
        st = os.fstat(self.fd)
        try:
            check_regular(st, display_path(path))
        except InvalidArgument:
            os.close(self.fd)
            raise
        os.set_blocking(self.fd, True)
        self.identity = FileIdentity.of(st)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def current_identity(self) -> FileIdentity:
        return FileIdentity.of(os.stat(self.path))

    def read_chunk(self, chunk: Chunk, layout: Layout) -> None:
        """Fill the chunk's buffer (zeros for holes and padding) and find its non-zero block runs."""
        chunk.local_length = layout.local_length(chunk.index)
        local_end = chunk.offset + chunk.local_length
        touched = self._read_data(chunk, local_end)
        chunk.runs = nonzero_runs(chunk, touched)

    def _read_data(self, chunk: Chunk, local_end: int) -> list[bool]:
        """Read the data extents of the chunk; return which blocks they touched (the others are zeros)."""
        blocks = -(-chunk.length // BLOCK)
        touched = [False] * blocks
        position = chunk.offset
        for start, end in self.data_extents(chunk.offset, local_end):
            self._zero(chunk, position, start)
            self._pread(chunk, start, end)
            for block in range((start - chunk.offset) // BLOCK, -(-(end - chunk.offset) // BLOCK)):
                touched[block] = True
            position = end
        self._zero(chunk, position, chunk.offset + chunk.length)
        return touched

    def data_extents(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) that hold data, by SEEK_DATA/SEEK_HOLE (all of it where unsupported)."""
        extents: list[tuple[int, int]] = []
        position = start
        while position < end:
            try:
                data = os.lseek(self.fd, position, os.SEEK_DATA)
                hole = os.lseek(self.fd, data, os.SEEK_HOLE)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after position: the rest is a hole
                    break
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                    return [(position, end)] if position == start else [*extents, (position, end)]
                raise
            if data >= end:
                break
            extents.append((data, min(hole, end)))
            position = hole
        return extents

    def _pread(self, chunk: Chunk, start: int, end: int) -> None:
        view = chunk.view
        position = start
        while position < end:
            got = os.preadv(self.fd, [view[position - chunk.offset : end - chunk.offset]], position)
            if got == 0:
                raise InvalidArgument(f"{self.path} became shorter while it was being uploaded")
            position += got

    @staticmethod
    def _zero(chunk: Chunk, start: int, end: int) -> None:
        position = start
        while position < end:
            step = min(BLOCK, end - position)
            chunk.view[position - chunk.offset : position - chunk.offset + step] = ZEROS[:step]
            position += step


def nonzero_runs(chunk: Chunk, touched: list[bool]) -> list[Run]:
    """Group the chunk's non-zero blocks into runs; untouched blocks are holes or padding (zeros)."""
    runs: list[Run] = []
    first_block = chunk.offset // BLOCK
    current: list[int] = []  # [start block index within chunk, count]
    for block, was_read in enumerate(touched):
        start = block * BLOCK
        length = min(BLOCK, chunk.length - start)
        if was_read and not chunk.buffer.startswith(ZEROS[:length], start):
            if current and current[0] + current[1] == block:
                current[1] += 1
            else:
                if current:
                    runs.append(make_run(chunk, first_block, current))
                current = [block, 1]
    if current:
        runs.append(make_run(chunk, first_block, current))
    return runs


def make_run(chunk: Chunk, first_block: int, current: list[int]) -> Run:
    start = current[0] * BLOCK
    end = min(chunk.length, (current[0] + current[1]) * BLOCK)
    return Run(first_block + current[0], current[1], start, end - start)
