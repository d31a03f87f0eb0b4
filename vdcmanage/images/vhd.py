"""VHD (QEMU's "vpc"): fixed disks (footer at the end only) and dynamic disks (footer copies at both
ends, a dynamic header and a block allocation table), as Microsoft's VHD Image Format Specification
(2006) defines them. All fields are big-endian.

Virtual size: we report what QEMU reports, because that is what a KVM guest sees and what
``qemu-img convert`` produces. QEMU takes the CHS geometry (cylinders x heads x sectors) for images
written by Virtual PC and by QEMU's own default (creator "vpc ", "qemu", ...), and the footer's
current size for Hyper-V, disk2vhd, XenServer and XenConverter images (creator "win ", "d2v ",
"tap\\0", "CTXS"), for QEMU's ``force_size`` images ("qem2"), and whenever the geometry is the maximum
one (the size then does not fit CHS).

Limits: at most 2040 GiB, the largest VHD Hyper-V, XenServer and QEMU accept (QEMU refuses larger
ones); dynamic block sizes must be powers of two from 512 B (QEMU's minimum) to 256 MiB (the spec's
default is 2 MiB and no tool we know writes anything else); the block allocation table may describe
at most 2 TiB (XenServer's ``vhd-util -S`` preallocates it for up to that) in at most 4 Mi entries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vdcmanage.images.reader import SECTOR, GiB, ImageFile, MiB, TiB, ceil_div, human, is_power_of_two, uint_array

FOOTER_COOKIE = b"conectix"
DYNAMIC_COOKIE = b"cxsparse"
FOOTER = struct.Struct(">8sIIQI4sIIQQHBBII16sB427s")  # 512 bytes
DYNAMIC_HEADER = struct.Struct(">8sQQIIII16sI4s512s192s256s")  # 1024 bytes
FOOTER_CHECKSUM_AT = 64
DYNAMIC_CHECKSUM_AT = 36
FORMAT_VERSION = 0x0001_0000
FIXED_DATA_OFFSET = 0xFFFF_FFFF_FFFF_FFFF
UNUSED_BLOCK = 0xFFFF_FFFF

DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING = 2, 3, 4
CURRENT_SIZE_CREATORS = (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0")
MAX_GEOMETRY_SECTORS = 65535 * 16 * 255
MAX_VIRTUAL_SIZE = 2040 * GiB
MIN_BLOCK, MAX_BLOCK = SECTOR, 256 * MiB
MAX_TABLE_COVERAGE = 2 * TiB
MAX_TABLE_ENTRIES = 4 << 20  # a 16 MiB table: 2 TiB of 512 KiB blocks, far more than any real VHD has


@dataclass(frozen=True)
class Footer:
    data_offset: int
    creator_app: bytes
    current_size: int
    cylinders: int
    heads: int
    sectors_per_track: int
    disk_type: int
    unique_id: bytes

    @property
    def geometry_sectors(self) -> int:
        return self.cylinders * self.heads * self.sectors_per_track


def vhd_checksum(block: bytes, checksum_at: int) -> int:
    """One's complement of the byte sum, with the checksum field itself counted as zero."""
    total = sum(block) - sum(block[checksum_at : checksum_at + 4])
    return ~total & 0xFFFF_FFFF


def parse_footer(f: ImageFile, offset: int, where: str) -> Footer:
    raw = f.read(offset, FOOTER.size, f"vhd footer {where}")
    (cookie, _features, version, data_offset, _timestamp, creator_app, _creator_version, _creator_os,
     _original_size, current_size, cylinders, heads, spt, disk_type, checksum, unique_id, _saved, _reserved,
     ) = FOOTER.unpack(raw)
    if cookie != FOOTER_COOKIE:
        raise f.invalid(f"vhd footer {where} is missing (no 'conectix' cookie at byte {offset})")
    computed = vhd_checksum(raw, FOOTER_CHECKSUM_AT)
    if checksum != computed:
        raise f.invalid(f"vhd footer checksum mismatch {where} (stored 0x{checksum:08x}, computed 0x{computed:08x})")
    if version != FORMAT_VERSION:
        raise f.invalid(f"unsupported vhd format version 0x{version:08x} (only 0x00010000 exists)")
    return Footer(data_offset, creator_app, current_size, cylinders, heads, spt, disk_type, unique_id)


def inspect_vhd_dynamic(f: ImageFile) -> tuple[int, str]:
    """A file that starts with a footer copy: a dynamic (or differencing) VHD."""
    footer = parse_footer(f, 0, "at the start of the file")
    if footer.disk_type == DISK_DIFFERENCING:
        raise f.invalid(
            f"vhd differencing image{parent_name(f, footer)}: it depends on its parent disk; "
            "merge or convert it to a standalone image first"
        )
    if footer.disk_type == DISK_FIXED:
        raise f.invalid("vhd footer at the start of the file describes a fixed disk, whose only footer is at the end")
    check_disk_type(f, footer, DISK_DYNAMIC)
    check_trailing_copy(f, footer)
    size = virtual_size(f, footer)
    check_dynamic_structures(f, footer, size)
    return size, "dynamic"


def inspect_vhd_fixed(f: ImageFile) -> tuple[int, str]:
    """A file whose last 512 bytes are a footer and that has none at the start: a fixed VHD."""
    footer = parse_footer(f, f.size - FOOTER.size, "at the end of the file")
    if footer.disk_type in (DISK_DYNAMIC, DISK_DIFFERENCING):
        raise f.invalid("vhd image has lost the footer copy at the start of the file (its end footer says dynamic)")
    check_disk_type(f, footer, DISK_FIXED)
    size = virtual_size(f, footer)
    data_bytes = f.size - FOOTER.size
    if footer.current_size != data_bytes:
        raise f.invalid(
            f"vhd fixed image holds {human(data_bytes)} of disk data before its footer, but the footer says "
            f"{human(footer.current_size)}" + (" (the file is truncated)" if data_bytes < footer.current_size else "")
        )
    return size, "fixed"


def refuse_cut_footer(f: ImageFile) -> None:
    """A fixed VHD cut short inside its footer: the cookie is there, but less than 512 bytes follow it."""
    tail_size = min(f.size, 2 * FOOTER.size - 1)
    found = f.pread(f.size - tail_size, tail_size).rfind(FOOTER_COOKIE)
    if found < 0:
        return
    footer_at = f.size - tail_size + found
    kept = f.size - footer_at
    if kept == FOOTER.size - 1:
        raise f.invalid(
            f"vhd footer at byte {footer_at} is 511 bytes long: the file is truncated, or was written by "
            "Virtual PC before 2004 (not supported)"
        )
    raise f.invalid(f"vhd fixed image is truncated: its footer at byte {footer_at} has {kept} of its 512 bytes")


def check_disk_type(f: ImageFile, footer: Footer, expected: int) -> None:
    if footer.disk_type != expected:
        raise f.invalid(f"vhd footer has unknown disk type {footer.disk_type} (2 fixed, 3 dynamic, 4 differencing)")


def virtual_size(f: ImageFile, footer: Footer) -> int:
    if footer.current_size % SECTOR:
        raise f.invalid(f"vhd footer size {footer.current_size} is not a whole number of 512-byte sectors")
    geometry_size = footer.geometry_sectors * SECTOR
    use_current = (
        footer.creator_app in CURRENT_SIZE_CREATORS or footer.geometry_sectors == MAX_GEOMETRY_SECTORS
    )
    size = footer.current_size if use_current else geometry_size
    if size == 0:
        source = "current size" if use_current else "disk geometry"
        raise f.invalid(f"vhd footer {source} gives a virtual size of 0 bytes: an empty disk")
    if size > MAX_VIRTUAL_SIZE:
        raise f.invalid(f"vhd virtual size {human(size)} is larger than 2040 GiB, the largest VHD any hypervisor opens")
    if size > footer.current_size:
        raise f.invalid(
            f"vhd disk geometry ({footer.cylinders}/{footer.heads}/{footer.sectors_per_track}) gives "
            f"{human(size)}, more than the footer's current size {human(footer.current_size)}"
        )
    return size


def check_trailing_copy(f: ImageFile, front: Footer) -> None:
    """A dynamic disk ends with a second footer copy; a file cut short has lost it."""
    end = f.size - FOOTER.size
    if end < FOOTER.size or f.pread(end, 8) != FOOTER_COOKIE:
        raise f.invalid("vhd dynamic image is truncated: the footer copy at the end of the file is missing")
    back = parse_footer(f, end, "at the end of the file")
    if (back.disk_type, back.current_size, back.unique_id) != (front.disk_type, front.current_size, front.unique_id):
        raise f.invalid("the two vhd footer copies (at the start and at the end of the file) disagree")


@dataclass(frozen=True)
class DynamicHeader:
    table_offset: int
    max_table_entries: int
    block_size: int


def parse_dynamic_header(f: ImageFile, footer: Footer) -> DynamicHeader:
    offset = footer.data_offset
    if offset < FOOTER.size or offset == FIXED_DATA_OFFSET:
        raise f.invalid(f"vhd footer gives an impossible dynamic header offset {offset}")
    require_before_end_footer(f, offset, DYNAMIC_HEADER.size, "vhd dynamic header")
    raw = f.read(offset, DYNAMIC_HEADER.size, "vhd dynamic header")
    cookie, _data, table_offset, version, entries, block_size, checksum = DYNAMIC_HEADER.unpack(raw)[:7]
    if cookie != DYNAMIC_COOKIE:
        raise f.invalid(f"vhd dynamic header is missing (no 'cxsparse' cookie at byte {offset})")
    computed = vhd_checksum(raw, DYNAMIC_CHECKSUM_AT)
    if checksum != computed:
        raise f.invalid(f"vhd dynamic header checksum mismatch (stored 0x{checksum:08x}, computed 0x{computed:08x})")
    if version != FORMAT_VERSION:
        raise f.invalid(f"unsupported vhd dynamic header version 0x{version:08x} (only 0x00010000 exists)")
    return DynamicHeader(table_offset, entries, block_size)


def require_before_end_footer(f: ImageFile, offset: int, length: int, what: str) -> None:
    """Like ``ImageFile.require``, for structures that must also leave room for the end footer."""
    f.require(offset, length, what)
    if offset + length > f.size - FOOTER.size:
        raise f.invalid(
            f"{what} is truncated (it needs bytes {offset}..{offset + length} and the end footer after them, "
            f"the file has {f.size} bytes)"
        )


def check_dynamic_structures(f: ImageFile, footer: Footer, size: int) -> None:
    header = parse_dynamic_header(f, footer)
    block = header.block_size
    if not (is_power_of_two(block) and MIN_BLOCK <= block <= MAX_BLOCK):
        raise f.invalid(f"vhd block size {block} is not a power of two from 512 B to 256 MiB")
    needed = ceil_div(size, block)
    if header.max_table_entries < needed:
        raise f.invalid(
            f"vhd block allocation table has {header.max_table_entries} entries but the virtual size "
            f"{human(size)} needs {needed}"
        )
    if header.max_table_entries * block > MAX_TABLE_COVERAGE or header.max_table_entries > MAX_TABLE_ENTRIES:
        raise f.invalid(
            f"vhd block allocation table has {header.max_table_entries} entries of {block} bytes, more than "
            "any VHD (at most 2 TiB, in at most 4 Mi blocks) needs"
        )
    check_blocks(f, footer, header)


def check_blocks(f: ImageFile, footer: Footer, header: DynamicHeader) -> None:
    """Every allocated block (its bitmap and data) lies after the metadata and before the end footer."""
    table_bytes = header.max_table_entries * 4
    data_end = f.size - FOOTER.size
    require_before_end_footer(f, header.table_offset, table_bytes, "vhd block allocation table")
    bitmap = ceil_div(header.block_size // (8 * SECTOR), SECTOR) * SECTOR
    metadata_end = max(footer.data_offset + DYNAMIC_HEADER.size, header.table_offset + table_bytes)
    for start, chunk in f.table_chunks(header.table_offset, table_bytes, "vhd block allocation table", 4):
        used = [(i, s) for i, s in enumerate(uint_array(chunk, 4, big_endian=True), start // 4) if s != UNUSED_BLOCK]
        if not used:
            continue
        first_index, first = min(used, key=lambda entry: entry[1])
        last_index, last = max(used, key=lambda entry: entry[1])
        if first * SECTOR < metadata_end:
            raise f.invalid(f"vhd block {first_index} points into the image's own headers (byte {first * SECTOR})")
        block_end = last * SECTOR + bitmap + header.block_size
        if block_end > data_end:
            raise f.invalid(
                f"vhd image is truncated: block {last_index} ends at byte {block_end} but the disk data ends "
                f"at byte {data_end}"
            )


def parent_name(f: ImageFile, footer: Footer) -> str:
    """`` of NAME`` from the dynamic header of a differencing disk, when it can be read; else nothing."""
    offset = footer.data_offset
    if not FOOTER.size <= offset <= f.size - DYNAMIC_HEADER.size:
        return ""
    raw = f.pread(offset, DYNAMIC_HEADER.size)
    if raw[:8] != DYNAMIC_COOKIE:
        return ""
    name = raw[64:576].decode("utf-16-be", "replace").split("\0", 1)[0].strip()
    return f" (parent: {name})" if name else ""
