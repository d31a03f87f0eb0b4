"""VMDK hosted sparse extents ("KDMV"): monolithicSparse and streamOptimized single-file disks.

Reference: VMware's Virtual Disk Format 5.0 specification. Header fields are little-endian. Only
self-contained files are accepted: a sparse extent with its descriptor embedded, describing exactly
one SPARSE extent (itself) and no parent. Descriptor files (monolithicFlat, twoGbMaxExtent*, vmfs),
extents without an embedded descriptor (pieces of a split disk), delta disks and ESX "COWD" extents
are refused, saying what they are.

Limits: grain size a power of two from 8 sectors (4 KiB, the spec's minimum) to 2048 sectors (1 MiB;
VMware and QEMU write 64 KiB); 1..512 grain table entries per table (the spec: "512 in practice";
QEMU refuses more); capacity at most 62 TiB, the largest virtual disk VMware's products create; a
grain directory of at most 64 MiB. The grain tables (4 bytes per grain) are scanned for the last
grain, which catches a file cut short in its data, when they total at most 64 MiB (1 TiB of 64 KiB
grains); beyond that only the directory is checked, to keep inspection fast.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import NoReturn

from vdcmanage.images.reader import (
    MAX_TABLE_BYTES,
    SECTOR,
    TABLE_CHUNK,
    ImageFile,
    TiB,
    ceil_div,
    human,
    is_power_of_two,
    uint_array,
)

MAGIC = b"KDMV"
COWD_MAGIC = b"COWD"
DESCRIPTOR_FILE_START = b"# Disk DescriptorFile"
HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")  # 79 bytes of the 512-byte sector
MARKER = struct.Struct("<QII")
GRAIN_MARKER = struct.Struct("<QI")
GD_AT_END = 0xFFFF_FFFF_FFFF_FFFF
MARKER_EOS, MARKER_FOOTER = 0, 3

FLAG_NEWLINE_TEST = 1 << 0
FLAG_REDUNDANT_GD = 1 << 1
FLAG_ZERO_GRAIN = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
NEWLINE_CHARS = b"\n \r\n"
COMPRESS_DEFLATE = 1

MIN_GRAIN, MAX_GRAIN = 8, 2048  # sectors
MAX_GTES = 512
MAX_CAPACITY = 62 * TiB
MAX_DESCRIPTOR_SECTORS = 2048  # 1 MiB of text
SELF_CONTAINED_TYPES = ("monolithicSparse", "streamOptimized")


@dataclass(frozen=True)
class Header:
    version: int
    flags: int
    capacity: int  # sectors
    grain: int  # sectors
    descriptor_offset: int
    descriptor_size: int
    gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    line_chars: bytes
    compression: int


def parse_header(f: ImageFile, offset: int, what: str) -> Header:
    raw = f.read(offset, HEADER.size, what)
    (magic, version, flags, capacity, grain, desc_offset, desc_size, gtes, rgd, gd, overhead, _unclean, line_chars,
     compression) = HEADER.unpack(raw)
    if magic != MAGIC:
        raise f.invalid(f"{what} is missing (no 'KDMV' magic at byte {offset})")
    return Header(version, flags, capacity, grain, desc_offset, desc_size, gtes, rgd, gd, overhead, line_chars,
                  compression)


def inspect_vmdk(f: ImageFile) -> tuple[int, str]:
    """The virtual size and createType of a self-contained sparse VMDK, after checking it can be trusted."""
    header = parse_header(f, 0, "vmdk sparse header")
    check_fields(f, header)
    create_type = check_descriptor(f, header)
    if header.gd_offset == GD_AT_END:
        header = stream_footer_header(f, header)
    check_tables(f, header)
    return header.capacity * SECTOR, create_type


def check_fields(f: ImageFile, h: Header) -> None:
    if not 1 <= h.version <= 3:
        raise f.invalid(f"unsupported vmdk sparse extent version {h.version} (1 to 3 exist)")
    if h.flags & FLAG_NEWLINE_TEST and h.line_chars != NEWLINE_CHARS:
        raise f.invalid("vmdk header fails its newline test: the file was damaged by a text-mode transfer")
    if h.capacity == 0:
        raise f.invalid("vmdk header gives a capacity of 0 sectors: an empty disk")
    if h.capacity * SECTOR > MAX_CAPACITY:
        raise f.invalid(f"vmdk capacity {human(h.capacity * SECTOR)} is larger than 62 TiB, VMware's largest disk")
    if not (is_power_of_two(h.grain) and MIN_GRAIN <= h.grain <= MAX_GRAIN):
        raise f.invalid(f"vmdk grain size {h.grain} sectors is not a power of two from 8 to 2048 sectors")
    if not 1 <= h.gtes_per_gt <= MAX_GTES:
        raise f.invalid(f"vmdk header gives {h.gtes_per_gt} entries per grain table (1 to 512 are valid)")
    if h.flags & FLAG_COMPRESSED and h.compression != COMPRESS_DEFLATE:
        raise f.invalid(f"vmdk compression algorithm {h.compression} is unknown (1 is deflate)")
    if h.overhead * SECTOR > f.size:
        raise f.invalid(
            f"vmdk image is truncated: its metadata ends at byte {h.overhead * SECTOR}, the file has {f.size} bytes"
        )


@dataclass(frozen=True)
class Descriptor:
    create_type: str | None
    extents: list[tuple[str, int, str, str]]  # access, sectors, type, file name
    parent_cid: str | None
    parent_hint: str | None


EXTENT_LINE = re.compile(r'^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\S+)(?:\s+"([^"]*)")?', re.MULTILINE)


def parse_descriptor(text: str) -> Descriptor:
    def value(key: str) -> str | None:
        match = re.search(rf'^\s*{key}\s*=\s*"?([^"\r\n]*)"?\s*$', text, re.MULTILINE)
        return match.group(1).strip() if match else None

    extents = [(m[1], int(m[2]), m[3], m[4] or "") for m in EXTENT_LINE.finditer(text)]
    return Descriptor(value("createType"), extents, value("parentCID"), value("parentFileNameHint"))


def check_descriptor(f: ImageFile, h: Header) -> str:
    """The createType of the embedded descriptor, refusing anything that is not one self-contained extent."""
    if h.descriptor_offset == 0 or h.descriptor_size == 0:
        raise refuse_extent_piece(f)
    if h.descriptor_size > MAX_DESCRIPTOR_SECTORS:
        raise f.invalid(f"vmdk embedded descriptor of {h.descriptor_size} sectors is implausibly large")
    if h.descriptor_offset + h.descriptor_size > h.overhead:
        raise f.invalid("vmdk embedded descriptor overlaps the grain data (it ends after the header's overhead)")
    raw = f.read(h.descriptor_offset * SECTOR, h.descriptor_size * SECTOR, "vmdk embedded descriptor")
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    if not text.strip():
        raise refuse_extent_piece(f)
    desc = parse_descriptor(text)
    if desc.create_type is None:
        raise f.invalid("vmdk embedded descriptor has no createType")
    if desc.parent_cid is None:  # qemu-img refuses to open such a disk ("Invalid argument"): so do we
        raise f.invalid("vmdk embedded descriptor has no parentCID line (qemu-img cannot open such a disk)")
    if desc.create_type not in SELF_CONTAINED_TYPES:
        raise f.invalid(f"vmdk createType {desc.create_type!r} in a sparse extent is not a self-contained disk")
    refuse_delta(f, desc)
    if len(desc.extents) != 1 or desc.extents[0][2] != "SPARSE":
        listed = ", ".join(f"{kind} {sectors}" for _access, sectors, kind, _name in desc.extents) or "none"
        raise f.invalid(f"vmdk embedded descriptor must list exactly one SPARSE extent (it lists: {listed})")
    if desc.extents[0][1] != h.capacity:
        raise f.invalid(
            f"vmdk descriptor gives {desc.extents[0][1]} sectors but the sparse header gives {h.capacity} sectors"
        )
    return desc.create_type


def refuse_extent_piece(f: ImageFile) -> Exception:
    return f.invalid(
        "vmdk sparse extent without an embedded descriptor: it is one piece of a split or descriptor-based "
        "vmdk; convert the whole disk to a single file (qemu-img convert -O vmdk) first"
    )


def refuse_delta(f: ImageFile, desc: Descriptor) -> None:
    parent = desc.parent_cid is not None and desc.parent_cid.lower() != "ffffffff"
    if parent or desc.parent_hint:
        name = f" (parent: {desc.parent_hint})" if desc.parent_hint else ""
        raise f.invalid(
            f"vmdk delta disk{name}: it depends on its parent disk; convert it to a standalone image first"
        )


def stream_footer_header(f: ImageFile, h: Header) -> Header:
    """streamOptimized files put the grain directory offset in a footer: marker, header copy, end-of-stream."""
    start = f.size - 3 * SECTOR
    if start < SECTOR:
        raise f.invalid("vmdk streamOptimized image is truncated: it has no room for its footer")
    marker = MARKER.unpack(f.read(start, MARKER.size, "vmdk footer marker"))
    end_of_stream = MARKER.unpack(f.read(f.size - SECTOR, MARKER.size, "vmdk end-of-stream marker"))
    if marker[1:] != (0, MARKER_FOOTER) or end_of_stream != (0, 0, MARKER_EOS):
        raise f.invalid("vmdk streamOptimized image is truncated: its footer and end-of-stream marker are missing")
    footer = parse_header(f, f.size - 2 * SECTOR, "vmdk footer header")
    check_fields(f, footer)
    if footer.gd_offset == GD_AT_END:
        raise f.invalid("vmdk footer does not give the grain directory offset")
    if (footer.capacity, footer.grain, footer.gtes_per_gt) != (h.capacity, h.grain, h.gtes_per_gt):
        raise f.invalid("vmdk header and footer disagree on the disk's geometry (capacity, grain size or table size)")
    return footer


def check_tables(f: ImageFile, h: Header) -> None:
    """The grain directory, its tables, and every grain they point to lie inside the file."""
    gd_entries = ceil_div(h.capacity, h.gtes_per_gt * h.grain)
    if gd_entries * 4 > MAX_TABLE_BYTES:
        raise f.invalid(f"vmdk grain directory of {gd_entries} entries is larger than 64 MiB: grains too small")
    if h.flags & FLAG_REDUNDANT_GD:
        f.require(h.rgd_offset * SECTOR, gd_entries * 4, "vmdk redundant grain directory")
    tables: list[int] = []
    for _start, chunk in f.table_chunks(h.gd_offset * SECTOR, gd_entries * 4, "vmdk grain directory", 4):
        tables.extend(sector for sector in uint_array(chunk, 4, big_endian=False) if sector)
    table_bytes = h.gtes_per_gt * 4
    tables = sorted(set(tables))
    for sector in tables:
        f.require(sector * SECTOR, table_bytes, "vmdk grain table")
    if len(tables) * table_bytes > MAX_TABLE_BYTES:
        return
    last_grain = highest_grain(f, tables, table_bytes)
    zero_marker = 1 if h.flags & FLAG_ZERO_GRAIN else 0
    if last_grain <= zero_marker:
        return
    needed = grain_end(f, h, last_grain * SECTOR)
    if needed > f.size:
        raise f.invalid(
            f"vmdk image is truncated: a grain at byte {last_grain * SECTOR} lies beyond the end of the file "
            f"({f.size} bytes)"
        )


def grain_end(f: ImageFile, h: Header, offset: int) -> int:
    """Where the grain at ``offset`` ends: a whole grain, or for compressed grains with markers the
    12-byte marker (LBA, size) plus the deflated data it announces."""
    if not h.flags & FLAG_COMPRESSED:
        return offset + h.grain * SECTOR
    if not h.flags & FLAG_MARKERS:
        return offset + 1  # without a marker the compressed length is unknown: the grain must at least start
    if offset + GRAIN_MARKER.size > f.size:
        return offset + GRAIN_MARKER.size
    _lba, length = GRAIN_MARKER.unpack(f.pread(offset, GRAIN_MARKER.size))
    return offset + GRAIN_MARKER.size + int(length)


def highest_grain(f: ImageFile, table_sectors: list[int], table_bytes: int) -> int:
    """The largest grain sector any grain table holds, reading adjacent tables in one go."""
    highest = 0
    run_start = run_end = -1
    for sector in table_sectors:
        offset = sector * SECTOR
        if offset == run_end and run_end - run_start + table_bytes <= TABLE_CHUNK:
            run_end += table_bytes
            continue
        if run_start >= 0:
            highest = max(highest, max(uint_array(f.pread(run_start, run_end - run_start), 4, big_endian=False)))
        run_start, run_end = offset, offset + table_bytes
    if run_start >= 0:
        highest = max(highest, max(uint_array(f.pread(run_start, run_end - run_start), 4, big_endian=False)))
    return highest


def refuse_descriptor_file(f: ImageFile) -> NoReturn:
    """A text descriptor: the disk's data lives in other files, which a catalog entry cannot follow."""
    text = f.pread(0, min(f.size, 64 << 10)).split(b"\0", 1)[0].decode("utf-8", "replace")
    desc = parse_descriptor(text)
    kind = f" (createType {desc.create_type})" if desc.create_type else ""
    names = ", ".join(name for *_rest, name in desc.extents if name)
    where = f" ({names})" if names else ""
    raise f.invalid(
        f"vmdk descriptor file{kind}: the disk data is in other files{where}; "
        "convert the disk to a single file (qemu-img convert -O vmdk or -O qcow2) first"
    )


def refuse_cowd(f: ImageFile) -> NoReturn:
    raise f.invalid("VMware ESX sparse extent (COWD, vmfsSparse) is not supported: convert it with qemu-img first")
