"""Real disk images for tests, made with the real ``qemu-img`` (and ``mkfs.ext4``), never faked.

Formats use vdc-manage's names ("vhd", not QEMU's "vpc"); ``subformat`` uses the names
``inspect_image`` reports. Typical use::

    path = make_image(tmp_path, "vmdk", 3_000_000, subformat="streamOptimized", data=b"boot")
    assert inspect_image(path).virtual_size == qemu_virtual_size(path, "vmdk")
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

QEMU_FORMAT = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc", "vmdk": "vmdk", "vdi": "vdi"}
SUBFORMAT_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("qcow2", "v2"): ("compat=0.10",),
    ("qcow2", "v3"): ("compat=1.1",),
    ("vhd", "dynamic"): ("subformat=dynamic",),
    ("vhd", "fixed"): ("subformat=fixed",),
    ("vmdk", "monolithicSparse"): ("subformat=monolithicSparse",),
    ("vmdk", "streamOptimized"): ("subformat=streamOptimized",),
    ("vdi", "dynamic"): ("static=off",),
    ("vdi", "fixed"): ("static=on",),
}
# Every (format, subformat) inspect_image must recognise, as qemu-img writes them.
VARIANTS: tuple[tuple[str, str | None], ...] = (("raw", None), *SUBFORMAT_OPTIONS)
DEFAULT_SUBFORMAT = {"qcow2": "v3", "vhd": "dynamic", "vmdk": "monolithicSparse", "vdi": "dynamic"}

Data = bytes | Mapping[int, bytes] | None


def qemu_img(*args: str | os.PathLike[str]) -> str:
    proc = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"qemu-img {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    return proc.stdout


def make_raw(path: Path, size: int, data: Data = None) -> Path:
    """A sparse raw file of ``size`` bytes with ``data`` at offset 0 (bytes) or at the given offsets."""
    chunks = {0: data} if isinstance(data, bytes) else dict(data or {})
    with open(path, "wb") as out:
        out.truncate(size)
        for offset, chunk in chunks.items():
            out.seek(offset)
            out.write(chunk[: max(0, size - offset)])
    return path


def make_image(
    directory: str | os.PathLike[str],
    fmt: str,
    virtual_size: int,
    *,
    data: Data = None,
    subformat: str | None = None,
    name: str | None = None,
    options: tuple[str, ...] = (),
) -> Path:
    """An image of format ``fmt`` holding a disk of ``virtual_size`` bytes (QEMU may round it up to its
    geometry) whose content is ``data``: converted by ``qemu-img convert`` from a raw file."""
    directory = Path(directory)
    sub = subformat or DEFAULT_SUBFORMAT.get(fmt)
    target = directory / (name or f"{fmt}-{sub or 'plain'}-{virtual_size}.{fmt}")
    if fmt == "raw":
        return make_raw(target, virtual_size, data)
    source = make_raw(directory / f".{target.name}.source", virtual_size, data)
    opts = [*SUBFORMAT_OPTIONS[(fmt, sub)], *options] if sub else list(options)
    try:
        qemu_img("convert", "-f", "raw", "-O", QEMU_FORMAT[fmt], *(["-o", ",".join(opts)] if opts else []),
                 source, target)
    finally:
        source.unlink()
    return target


def random_data(size: int, seed: int = 0, holes: bool = True) -> dict[int, bytes]:
    """Incompressible data spread over a disk of ``size`` bytes, with unwritten holes between the pieces
    (so that sparse formats have both allocated and unallocated clusters)."""
    rng = random.Random(seed)
    piece = 96 << 10
    step = piece * 3 if holes else piece
    return {offset: rng.randbytes(min(piece, size - offset)) for offset in range(0, size, step)}


def qemu_info(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, object]:
    """``qemu-img info --output=json``; ``fmt`` in vdc-manage's names forces the format (a fixed VHD
    is only recognised by QEMU when told: it probes the start of the file only)."""
    args = ["info", "--output=json", *(["-f", QEMU_FORMAT[fmt]] if fmt else []), path]
    return json.loads(qemu_img(*args))  # type: ignore[no-any-return]


def qemu_virtual_size(path: str | os.PathLike[str], fmt: str) -> int:
    return int(qemu_info(path, fmt)["virtual-size"])  # type: ignore[call-overload]


def qemu_accepts(path: str | os.PathLike[str], fmt: str) -> int | None:
    """The virtual size qemu-img reports for ``path`` read as ``fmt``, or None if qemu-img refuses it."""
    try:
        return qemu_virtual_size(path, fmt)
    except RuntimeError:
        return None


def make_ext4_raw(directory: str | os.PathLike[str], size: int, files: Mapping[str, bytes],
                  name: str = "ext4.raw") -> Path:
    """A raw image of ``size`` bytes holding an ext4 file system (no partition table) with ``files``
    (relative path -> content), built by ``mkfs.ext4 -d`` without mounting anything."""
    directory = Path(directory)
    tree = directory / f".{name}.tree"
    for relative, content in files.items():
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    tree.mkdir(exist_ok=True)
    image = make_raw(directory / name, size)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)], check=True, capture_output=True)
    finally:
        shutil.rmtree(tree)
    return image


# --- Damaging images on purpose (for tests of bad input) -------------------------------------------


def patch_bytes(path: str | os.PathLike[str], offset: int, data: bytes) -> None:
    """Overwrite ``data`` at ``offset`` (negative: from the end of the file)."""
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        f.write(data)


def patch_field(path: str | os.PathLike[str], offset: int, fmt: str, *values: int | bytes) -> None:
    """Overwrite a ``struct`` field, e.g. ``patch_field(p, 20, ">I", 63)`` for qcow2's cluster_bits."""
    import struct

    patch_bytes(path, offset, struct.pack(fmt, *values))


def truncate_copy(path: Path, size: int, directory: Path) -> Path:
    """A copy of the first ``size`` bytes of ``path``."""
    copy = directory / f"{path.name}.cut{size}"
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read(size))
    return copy


def vhd_checksum(block: bytes, checksum_at: int) -> int:
    total = sum(block) - sum(block[checksum_at : checksum_at + 4])
    return ~total & 0xFFFFFFFF


def fix_vhd_checksums(path: str | os.PathLike[str]) -> None:
    """Recompute the checksums of a VHD's footer copies and dynamic header, after a patch made them lie
    consistently (so that the checks behind the checksum are what a test exercises)."""
    import struct

    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for offset in (0, size - 512):
            f.seek(offset)
            footer = f.read(512)
            if footer[:8] != b"conectix":
                continue
            f.seek(offset + 64)
            f.write(struct.pack(">I", vhd_checksum(footer, 64)))
            (data_offset,) = struct.unpack_from(">Q", footer, 16)
            if offset == 0 and data_offset + 1024 <= size:
                f.seek(data_offset)
                header = f.read(1024)
                if header[:8] == b"cxsparse":
                    f.seek(data_offset + 36)
                    f.write(struct.pack(">I", vhd_checksum(header, 36)))
