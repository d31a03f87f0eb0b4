"""Room for an import, checked before the long work: on the SR and on the backup storage.

Estimates from what is known before anything is hashed or converted (the image's header and its
file's allocated blocks), each the most the import can take:

- the VDI: a raw import writes every block, so the image's virtual size (rounded as the SR rounds);
  a VHD import holds the image's allocated data plus the VHD's metadata;
- the staged upload, in the SR mount next to the VDI until the job's clean-up: the allocated data
  (holes are not sent), plus the VHD metadata when a VHD is uploaded;
- the compressed template, also in the SR mount, and then on the backup storage: bzip2 of data that
  does not compress is ~0.5 % larger than its input, so the allocated bytes plus 1 %.

Only what a run still has to write counts: on a retry, a step that is done has its file in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdcmanage.errors import Refused, VdcError
from vdcmanage.remote.ssh import Connection

VHD_BLOCK = 2 * 1024 * 1024  # dynamic VHD block size (qemu-img's vpc and xapi's), also the file SRs' rounding


class NoRoom(Refused):
    """The SR or the backup storage cannot hold what the import will write there."""


@dataclass(frozen=True)
class SourceSizes:
    virtual: int  # the disk's size as the guest sees it
    allocated: int  # bytes the image file really occupies (its data; holes excluded)


def source_sizes(path: Path, inspected: dict[str, Any]) -> SourceSizes:
    """From the file's header and its allocated blocks, never its data; from what inspect saved when
    the source is gone (a retry after convert)."""
    from vdcmanage.images.inspect import inspect_image

    if not path.exists() and "virtual_size" in inspected:
        return SourceSizes(int(inspected["virtual_size"]), int(inspected["source_size"]))
    virtual = int(inspected["virtual_size"]) if "virtual_size" in inspected else inspect_image(path).virtual_size
    stat = path.stat()
    return SourceSizes(virtual, min(stat.st_blocks * 512, stat.st_size))


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def vhd_metadata(virtual: int) -> int:
    """Footer copy, header and footer (512 + 1024 + 512), the block allocation table (4 bytes a block,
    in whole sectors) and one 512-byte sector bitmap per block."""
    blocks = -(-virtual // VHD_BLOCK)
    return 2048 + round_up(4 * blocks, 512) + 512 * blocks


@dataclass
class Needs:
    sr: dict[str, int] = field(default_factory=dict)  # what -> bytes, in the SR mount
    storage: int = 0  # on the backup storage

    @property
    def sr_total(self) -> int:
        return sum(self.sr.values())


def room_needed(sizes: SourceSizes, upload_format: str, still_to_do: set[str]) -> Needs:
    """What this run will still write, by the steps in ``still_to_do``."""
    vdi_size = round_up(sizes.virtual, VHD_BLOCK)
    data = min(sizes.allocated, vdi_size)
    metadata = vhd_metadata(vdi_size)
    compressed = data + data // 100 + 64 * 1024
    needs = Needs()
    if "stage" in still_to_do:
        needs.sr["staged upload"] = data + (metadata if upload_format == "vhd" else 0)
    if "vdi-import" in still_to_do:
        needs.sr["VDI"] = (vdi_size if upload_format == "raw" else data) + metadata
    if "compress" in still_to_do:
        needs.sr["compressed template"] = compressed
    if "publish" in still_to_do:
        needs.storage = compressed
    return needs


def size_words(size: int) -> str:
    """``1.2 GiB``: for messages an operator reads."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_sr_room(label: str, free: int | None, needs: Needs) -> str:
    """Raise NoRoom when the SR cannot hold what is still to come; return a line for the job log."""
    parts = ", ".join(f"{what} {size_words(size)}" for what, size in needs.sr.items())
    need = f"the image needs {size_words(needs.sr_total)}" + (f" ({parts})" if parts else "")
    if free is None:
        return f"{label}: free space unknown (xe gives no physical-size), {need}"
    if free < needs.sr_total:
        raise NoRoom(
            f"{label} has {size_words(free)} free, {need}; free space there or choose another SR "
            "(vdc-manage host modify HOST --sr-uuid SR), then 'vdc-manage job retry'"
        )
    return f"{label} has {size_words(free)} free, {need}"


def check_storage_room(label: str, free: int, need: int) -> str:
    text = f"the template needs up to {size_words(need)}"
    if free < need:
        raise NoRoom(f"{label} has {size_words(free)} free, {text}; free space there, then 'vdc-manage job retry'")
    return f"{label} has {size_words(free)} free, {text}"


def local_free(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise Refused(f"Cannot use the backup storage directory {path}: {exc.strerror}") from exc
    return st.f_bavail * st.f_frsize


def remote_free(conn: Connection, path: str) -> int:
    """``df -PB1``: POSIX output (one line per file system), sizes in bytes; column 4 is what is available."""
    result = conn.run(["df", "-PB1", "--", path], check=False)
    lines = result.stdout_text.strip().splitlines()
    fields = lines[-1].split() if result.exit_status == 0 and len(lines) >= 2 else []
    if len(fields) < 6 or not fields[3].isdigit():
        detail = result.stderr_text.strip() or result.stdout_text.strip()
        raise VdcError(f"Cannot read the free space of {path} on {conn.where} (df -PB1): {detail}")
    return int(fields[3])
