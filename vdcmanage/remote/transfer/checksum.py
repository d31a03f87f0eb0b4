"""POSIX ``cksum`` computed locally with zlib, to compare with the host's ``cksum`` of what it wrote.

Why cksum and not md5sum/sha1sum per chunk: the host's check reads back every byte written. On a
2-core machine running both ends (the benchmark), ``dd | sha1sum`` costs 2.2 CPU-s per GiB and
``dd | cksum`` 0.5 (coreutils 9 vectorises the CRC); on an old dom0 both are plain table loops of
similar speed. The check guards against what SSH's own MAC cannot see: a write at the wrong offset,
a short or missing write, stale bytes from an earlier attempt, a failing disk. A 32-bit CRC of
each 16 MiB chunk plus its length catches those (all bursts up to 32 bits, anything else but one
case in 4 billion); it is not meant to resist an adversary, who would have to own the host anyway.
The whole file's md5 (the catalog's checksum) is computed separately.

Locally the same ``dd | cksum`` the host runs is used when this machine has the tools
(:func:`start_block_sum`); :class:`Cksum` computes the same number in Python otherwise, and for
a padded last chunk (padding exists only in our buffer, not in the local file).

``cksum`` is the MSB-first CRC-32 (polynomial 0x04C11DB7, initial value 0) of the data followed by
its length (least significant byte first, as few bytes as needed), complemented. zlib computes the
reflected CRC; reversing the bits of every input byte and of the result turns one into the other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import zlib

PIECE = 1024 * 1024
BIT_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def reverse32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


class Cksum:
    """Incremental ``cksum``: ``update`` with pieces of the data, then ``value()``."""

    def __init__(self) -> None:
        # zlib.crc32(data, v) runs its register from ~v and returns ~register: starting at 0xFFFFFFFF
        # runs a plain CRC from 0, as cksum does.
        self._crc = 0xFFFFFFFF
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE].tobytes().translate(BIT_REVERSED)
            self._crc = zlib.crc32(piece, self._crc)
        self.length += len(view)

    def value(self) -> int:
        length, suffix = self.length, bytearray()
        while length:
            suffix.append(length & 0xFF)
            length >>= 8
        crc = zlib.crc32(bytes(suffix).translate(BIT_REVERSED), self._crc)
        return reverse32(crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def hexdigest(self) -> str:
        """The decimal number ``cksum`` prints (named like hashlib's method for symmetry)."""
        return str(self.value())


# The host's checksum command, run here on the local file: the same blocks read by the same dd into
# the same cksum. A child process per chunk, started before the chunk is sent, finishes alongside the
# sending and costs this process nothing (the zlib way holds the GIL for the bit reversal).
BLOCK_SUM = (
    'f=$1; shift; while [ $# -gt 1 ]; do dd if="$f" bs=1048576 skip="$1" count="$2" 2>/dev/null; shift 2; done'
    " | cksum"
)


def local_tools() -> dict[str, str] | None:
    """Absolute paths of sh, dd and cksum here, or None if one is missing (then zlib does the work)."""
    tools = {name: shutil.which(name) for name in ("sh", "dd", "cksum")}
    if any(path is None for path in tools.values()):
        return None
    return {name: str(path) for name, path in tools.items()}


class PendingChecksum:
    """A chunk's local cksum being computed: by a child process, or already known."""

    def __init__(self, process: subprocess.Popen[bytes] | None = None, value: str | None = None) -> None:
        self._process = process
        self._value = value

    def result(self, timeout: float = 120.0) -> str:
        if self._value is None:
            assert self._process is not None
            out, _ = self._process.communicate(timeout=timeout)
            fields = out.split()
            if self._process.returncode != 0 or not fields or not fields[0].isdigit():
                raise OSError(f"cksum of the local file failed (exit {self._process.returncode})")
            self._value = fields[0].decode("ascii")
        return self._value

    def close(self) -> None:
        """Stop the child if it still runs (a cancelled send); always reap it."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.communicate(timeout=5)


def start_block_sum(tools: dict[str, str], path: str, runs: list[tuple[int, int]]) -> PendingChecksum:
    """cksum of the blocks ``runs`` (first block, count) of the file at ``path``, in a child process."""
    argv = [tools["sh"], "-c", BLOCK_SUM, "vdc-block-sum", path, *(str(n) for run in runs for n in run)]
    env = {"PATH": os.pathsep.join(sorted({os.path.dirname(p) for p in tools.values()})), "LC_ALL": "C"}
    return PendingChecksum(subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env))
