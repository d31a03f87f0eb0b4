"""What an upload saves to be resumed: the local file's identity and the chunks verified on the host.

The saved form is JSON-compatible (the job runner stores it in the catalog). Verified chunks are
kept as ``[first, end)`` ranges: an image of 100 GiB has 6400 chunks, usually a handful of ranges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from vdcmanage.images.reader import FileIdentity
from vdcmanage.remote.transfer.source import CHUNK

STATE_VERSION = 1
CHECKSUM = "cksum"


@dataclass
class UploadState:
    identity: FileIdentity
    remote_path: str
    remote_size: int
    verified: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "local": asdict(self.identity),
            "remote_path": self.remote_path,
            "remote_size": self.remote_size,
            "chunk_size": CHUNK,
            "checksum": CHECKSUM,
            "verified": to_ranges(self.verified),
        }

    @classmethod
    def restore(
        cls, saved: dict[str, Any] | None, identity: FileIdentity, remote_path: str, remote_size: int
    ) -> tuple[UploadState, str | None]:
        """The state to continue from, and why a saved one was not used (None: resumed, or nothing saved)."""
        fresh = cls(identity, remote_path, remote_size)
        if not saved:
            return fresh, None
        reason = mismatch(saved, identity, remote_path, remote_size)
        if reason is not None:
            return fresh, f"{reason}: starting the upload over"
        try:
            verified = from_ranges(saved.get("verified", []))
        except (TypeError, ValueError):
            return fresh, "the saved upload state is unreadable: starting the upload over"
        chunks = -(-remote_size // CHUNK)
        return cls(identity, remote_path, remote_size, {c for c in verified if 0 <= c < chunks}), None


def mismatch(saved: dict[str, Any], identity: FileIdentity, remote_path: str, remote_size: int) -> str | None:
    if saved.get("version") != STATE_VERSION or saved.get("chunk_size") != CHUNK or saved.get("checksum") != CHECKSUM:
        return "the saved upload state is from another version of vdc-manage"
    local = saved.get("local")
    if not isinstance(local, dict):
        return "the saved upload state is unreadable"
    if local != asdict(identity):
        changes = [name for name, value in asdict(identity).items() if local.get(name) != value]
        return f"the local file changed since the last attempt ({', '.join(changes)} differ)"
    if saved.get("remote_path") != remote_path:
        return "the saved upload went to another staging path"
    if saved.get("remote_size") != remote_size:
        return "the saved upload had another remote size"
    return None


def to_ranges(chunks: Iterable[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for chunk in sorted(chunks):
        if ranges and ranges[-1][1] == chunk:
            ranges[-1][1] = chunk + 1
        else:
            ranges.append([chunk, chunk + 1])
    return ranges


def from_ranges(ranges: Any) -> set[int]:
    chunks: set[int] = set()
    for first, end in ranges:
        if not (isinstance(first, int) and isinstance(end, int)) or first < 0 or end < first:
            raise ValueError(f"bad range {first!r}..{end!r}")
        chunks.update(range(first, end))
    return chunks
