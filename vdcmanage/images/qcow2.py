"""qcow2 (versions 2 and 3): header, L1 table and refcount structures, read as QEMU's spec defines them.

Reference: QEMU's docs/interop/qcow2.txt. All fields are big-endian. Limits, and where they come from:

- cluster_bits 9..21 (512 B .. 2 MiB): the spec's minimum, and QEMU's implementation maximum.
- virtual size at most 2**56 bytes (64 PiB): the spec's limit for populated clusters (L2 offsets are bits 9-55).
- L1 table at most 32 MiB (4 Mi entries) and refcount table at most 8 MiB: QEMU's limits
  (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE); QEMU refuses to open anything larger.
- L2 tables (8 bytes per data cluster) are read to find where the data ends when they total at most
  64 MiB; for larger images the refcount structures alone bound it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from functools import partial

from vdcmanage.images.reader import MAX_TABLE_BYTES, SECTOR, ImageFile, MiB, ceil_div, human, uint_array

MAGIC = b"QFI\xfb"
V2_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")  # 72 bytes
V3_FIELDS = struct.Struct(">QQQII")  # 32 more bytes: feature bits, refcount_order, header_length
V3_MIN_HEADER = V2_HEADER.size + V3_FIELDS.size  # 104

EXTENSION = struct.Struct(">II")  # type, length
EXTENSION_END = 0

MIN_CLUSTER_BITS, MAX_CLUSTER_BITS = 9, 21
MAX_VIRTUAL_SIZE = 1 << 56
MAX_L1_BYTES = 32 * MiB
MAX_REFTABLE_BYTES = 8 * MiB
MAX_SNAPSHOTS = 65536
SNAPSHOT_HEADER_MIN = 40  # fixed part of each snapshot table entry

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTENDED_L2 = 1 << 4
KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2

# Table entries: bits 9-55 hold a cluster offset; bit 63 is the "copied" flag; the rest are reserved.
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
COMPRESSED_BIT = 1 << 62
L1_RESERVED_MASK = 0x7F00_0000_0000_01FF
REFTABLE_RESERVED_MASK = 0x0000_0000_0000_01FF

CRYPT_METHODS = {1: "AES", 2: "LUKS"}


@dataclass(frozen=True)
class Header:
    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER.size

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits


def inspect_qcow2(f: ImageFile) -> tuple[int, str]:
    """The virtual size and subformat ("v2"/"v3") of a qcow2 file, after checking it can be trusted."""
    header = read_header(f)
    check_header(f, header)
    l2_tables = check_l1_table(f, header)
    check_refcounts(f, header)
    check_data_clusters(f, header, l2_tables)
    return header.size, f"v{header.version}"


def read_header(f: ImageFile) -> Header:
    _magic, version = struct.unpack(">4sI", f.read(0, 8, "qcow2 header"))
    if version == 1:
        raise f.invalid("qcow (version 1) images are not supported: convert it with qemu-img convert -O qcow2")
    if version not in (2, 3):
        raise f.invalid(f"unsupported qcow2 version {version} (only versions 2 and 3 exist)")
    raw = f.read(0, V2_HEADER.size if version == 2 else V3_MIN_HEADER, f"qcow2 version {version} header")
    (_magic, _version, backing_offset, backing_size, cluster_bits, size, crypt_method, l1_size, l1_offset,
     reftable_offset, reftable_clusters, nb_snapshots, snapshots_offset,
     ) = V2_HEADER.unpack_from(raw)
    header = Header(version, backing_offset, backing_size, cluster_bits, size, crypt_method, l1_size, l1_offset,
                    reftable_offset, reftable_clusters, nb_snapshots, snapshots_offset)
    if version == 2:
        return header
    incompatible, _compatible, _autoclear, refcount_order, header_length = V3_FIELDS.unpack_from(raw, V2_HEADER.size)
    return replace(header, incompatible=incompatible, refcount_order=refcount_order, header_length=header_length)


def check_header(f: ImageFile, h: Header) -> None:
    if not MIN_CLUSTER_BITS <= h.cluster_bits <= MAX_CLUSTER_BITS:
        raise f.invalid(
            f"qcow2 cluster_bits is {h.cluster_bits}; it must be {MIN_CLUSTER_BITS}..{MAX_CLUSTER_BITS} "
            "(clusters of 512 B to 2 MiB)"
        )
    if h.version == 3:
        check_v3_fields(f, h)
    refuse_dependent_or_encrypted(f, h)
    check_extensions(f, h)
    if h.size == 0:
        raise f.invalid("qcow2 header gives a virtual size of 0 bytes: an empty disk")
    if h.size % SECTOR:
        raise f.invalid(f"qcow2 virtual size {h.size} is not a whole number of 512-byte sectors")
    if h.size > MAX_VIRTUAL_SIZE:
        raise f.invalid(f"qcow2 virtual size {human(h.size)} is larger than the format's 64 PiB limit")
    check_snapshot_table(f, h)


def check_snapshot_table(f: ImageFile, h: Header) -> None:
    if h.nb_snapshots > MAX_SNAPSHOTS:
        raise f.invalid(f"qcow2 header claims {h.nb_snapshots} snapshots (at most {MAX_SNAPSHOTS} are possible)")
    check_cluster_aligned(f, h, h.snapshots_offset, "qcow2 snapshot table")  # QEMU checks it even when unused
    if h.nb_snapshots:
        if h.snapshots_offset == 0:
            raise f.invalid("qcow2 snapshot table offset is 0, which is the header's cluster")
        f.require(h.snapshots_offset, h.nb_snapshots * SNAPSHOT_HEADER_MIN, "qcow2 snapshot table")


def check_v3_fields(f: ImageFile, h: Header) -> None:
    if h.header_length < V3_MIN_HEADER:
        raise f.invalid(f"qcow2 version 3 header length {h.header_length} is shorter than the minimum 104 bytes")
    if h.header_length > h.cluster_size:
        raise f.invalid(f"qcow2 header length {h.header_length} is larger than a cluster ({h.cluster_size} bytes)")
    f.require(0, h.header_length, "qcow2 header")
    if h.refcount_order > 6:
        raise f.invalid(f"qcow2 refcount_order is {h.refcount_order}; it must be 0..6 (refcounts of 1 to 64 bits)")
    unknown = h.incompatible & ~KNOWN_INCOMPAT
    if unknown:
        raise f.invalid(f"qcow2 image uses incompatible features this program does not know (bits 0x{unknown:x})")
    if h.incompatible & INCOMPAT_CORRUPT:
        raise f.invalid("qcow2 image is marked corrupt; repair it with qemu-img check -r all first")
    if h.incompatible & INCOMPAT_EXTENDED_L2 and h.cluster_bits < 14:
        raise f.invalid("qcow2 image has extended L2 entries with clusters smaller than 16 KiB, which is not allowed")
    compression = f.read(V3_MIN_HEADER, 1, "qcow2 header")[0] if h.header_length > V3_MIN_HEADER else 0
    if compression > 1:
        raise f.invalid(f"qcow2 compression type {compression} is unknown (0 is zlib, 1 is zstd)")
    if compression and not h.incompatible & INCOMPAT_COMPRESSION:
        raise f.invalid("qcow2 image uses zstd compression without setting its incompatible feature bit")


def check_extensions(f: ImageFile, h: Header) -> None:
    """Header extensions (type, length, data padded to 8 bytes) follow the header, up to an end marker,
    inside the first cluster (and before the backing file name, when there is one)."""
    f.require(0, h.cluster_size, "qcow2 header cluster")
    limit = h.cluster_size
    if h.backing_file_offset:
        limit = min(limit, h.backing_file_offset)
    area = f.pread(h.header_length, max(0, limit - h.header_length))
    at = 0
    while True:
        if at + EXTENSION.size > len(area):
            raise f.invalid(f"qcow2 header extensions run past the header cluster (at byte {h.header_length + at})")
        kind, length = EXTENSION.unpack_from(area, at)
        at += EXTENSION.size
        if length > len(area) - at:  # QEMU checks this even for the end marker
            raise f.invalid(f"qcow2 header extension 0x{kind:08x} of {length} bytes runs past the header cluster")
        if kind == EXTENSION_END:
            return
        at += -(-length // 8) * 8


def refuse_dependent_or_encrypted(f: ImageFile, h: Header) -> None:
    """An image catalog cannot register a file whose content lives partly in another file, or is encrypted."""
    if h.backing_file_offset:
        raise f.invalid(
            f"qcow2 image has a backing file{backing_file_name(f, h)}: it is an overlay that depends on another "
            "image; make a standalone copy with qemu-img convert -O qcow2 first"
        )
    if h.incompatible & INCOMPAT_DATA_FILE:
        raise f.invalid("qcow2 image keeps its data in an external data file; convert it to a standalone image first")
    if h.crypt_method:
        method = CRYPT_METHODS.get(h.crypt_method, f"unknown method {h.crypt_method}")
        raise f.invalid(f"qcow2 image is encrypted ({method}); only unencrypted images can be registered")


def backing_file_name(f: ImageFile, h: Header) -> str:
    """ `` (name)`` when the name can be read, else nothing: the refusal stands either way."""
    if not 0 < h.backing_file_size <= 1023 or h.backing_file_offset + h.backing_file_size > min(f.size, 1 << 21):
        return ""
    raw = f.pread(h.backing_file_offset, h.backing_file_size)
    return " (" + raw.decode("utf-8", "backslashreplace") + ")"


def check_cluster_aligned(f: ImageFile, h: Header, offset: int, what: str) -> None:
    if offset >= MAX_VIRTUAL_SIZE:
        raise f.invalid(f"{what} offset {offset} is impossible (beyond the format's 64 PiB)")
    if offset % h.cluster_size:
        raise f.invalid(f"{what} offset {offset} is not aligned to the {h.cluster_size}-byte cluster size")


def required_l1_entries(h: Header) -> int:
    """How many L1 entries the virtual size needs: each covers one L2 table's worth of clusters."""
    l2_entry_bytes = 16 if h.incompatible & INCOMPAT_EXTENDED_L2 else 8
    bytes_per_l1_entry = h.cluster_size * (h.cluster_size // l2_entry_bytes)
    return ceil_div(h.size, bytes_per_l1_entry)


def check_l1_table(f: ImageFile, h: Header) -> list[int]:
    """Check the L1 table; return the offsets of the L2 tables it points to."""
    needed = required_l1_entries(h)
    if h.l1_size < needed:
        raise f.invalid(
            f"qcow2 L1 table has {h.l1_size} entries but the virtual size {human(h.size)} needs {needed}"
        )
    if h.l1_size * 8 > MAX_L1_BYTES:
        raise f.invalid(f"qcow2 L1 table has {h.l1_size} entries, more than the 32 MiB QEMU can open")
    check_cluster_aligned(f, h, h.l1_table_offset, "qcow2 L1 table")
    if h.l1_table_offset == 0:
        raise f.invalid("qcow2 L1 table offset is 0, which is the header's cluster")
    l2_tables = []
    for start, chunk in f.table_chunks(h.l1_table_offset, h.l1_size * 8, "qcow2 L1 table", 8):
        for index, entry in enumerate(uint_array(chunk, 8, big_endian=True), start // 8):
            if entry:
                check_table_entry(f, h, entry, L1_RESERVED_MASK, f"qcow2 L1 entry {index} (an L2 table)")
                l2_tables.append(entry & OFFSET_MASK)
    return [offset for offset in l2_tables if offset]


def check_table_entry(f: ImageFile, h: Header, entry: int, reserved: int, what: str) -> None:
    if entry & reserved:
        raise f.invalid(f"{what} has reserved bits set (0x{entry:016x})")
    offset = entry & OFFSET_MASK
    if offset == 0:
        return  # allowed in L1 (unallocated L2 with the copied bit clear is 0 anyway)
    check_cluster_aligned(f, h, offset, what)
    if offset >= f.size:
        raise f.invalid(f"{what} lies beyond the end of the file (offset {offset}, the file has {f.size} bytes)")


def check_refcounts(f: ImageFile, h: Header) -> None:
    """Check the refcount table, and that the last cluster it counts as in use starts inside the file.

    That last test is what catches a file cut short in its data clusters: every cluster QEMU
    allocates is counted before it is written, so a counted cluster past the end means lost data.
    """
    reftable_bytes = h.refcount_table_clusters * h.cluster_size
    if h.refcount_table_clusters == 0:
        raise f.invalid("qcow2 refcount table has 0 clusters")
    if reftable_bytes > MAX_REFTABLE_BYTES:
        raise f.invalid(f"qcow2 refcount table of {human(reftable_bytes)} is larger than the 8 MiB QEMU can open")
    check_cluster_aligned(f, h, h.refcount_table_offset, "qcow2 refcount table")
    if h.refcount_table_offset == 0:
        raise f.invalid("qcow2 refcount table offset is 0, which is the header's cluster")
    last_block = (-1, 0)
    for start, chunk in f.table_chunks(h.refcount_table_offset, reftable_bytes, "qcow2 refcount table", 8):
        for index, entry in enumerate(uint_array(chunk, 8, big_endian=True), start // 8):
            if entry:
                check_table_entry(f, h, entry, REFTABLE_RESERVED_MASK, f"qcow2 refcount table entry {index}")
                last_block = (index, entry & OFFSET_MASK)
    index, block_offset = last_block
    if index >= 0:
        check_last_allocated_cluster(f, h, index, block_offset)


def check_last_allocated_cluster(f: ImageFile, h: Header, block_index: int, block_offset: int) -> None:
    block = f.read(block_offset, h.cluster_size, f"qcow2 refcount block {block_index}")
    last_nonzero = len(block.rstrip(b"\0")) - 1
    if last_nonzero < 0:
        return
    refcount_bits = 1 << h.refcount_order
    # Entries narrower than a byte are packed from the least significant bit up, so the highest set
    # bit of the last non-zero byte belongs to the last non-zero entry, whatever the width.
    bit = last_nonzero * 8 + block[last_nonzero].bit_length() - 1
    entries_per_block = h.cluster_size * 8 // refcount_bits
    cluster = block_index * entries_per_block + bit // refcount_bits
    cluster_offset = cluster * h.cluster_size
    if cluster_offset >= f.size:
        raise f.invalid(
            f"qcow2 image is truncated: cluster {cluster} (at byte {cluster_offset}) is in use but the file "
            f"ends at byte {f.size}"
        )


def check_data_clusters(f: ImageFile, h: Header, l2_tables: list[int]) -> None:
    """Every L2 table, and every cluster its entries point to, lies wholly inside the file.

    This catches a file cut short inside its last data cluster, which the refcount check cannot.
    It reads every L2 table (8 bytes per cluster of data), so it is skipped for images whose L2
    tables total more than 64 MiB (512 GiB of data in 64 KiB clusters).
    """
    if len(l2_tables) * h.cluster_size > MAX_TABLE_BYTES:
        return
    data_end = 0
    for offset in sorted(set(l2_tables)):
        table = f.read(offset, h.cluster_size, f"qcow2 L2 table at byte {offset}")
        data_end = max(data_end, l2_data_end(h, bytearray(table)))
    if data_end > f.size:
        raise f.invalid(
            f"qcow2 image is truncated: its data clusters end at byte {data_end}, the file has {f.size} bytes"
        )


COMPRESSED_FLAG_BYTE = bytes(1 if byte & 0x40 else 0 for byte in range(256))


def l2_data_end(h: Header, table: bytearray) -> int:
    """The end of the furthest data an L2 table points to (0 if it points to none)."""
    if h.incompatible & INCOMPAT_EXTENDED_L2:
        entries = uint_array(bytes(table), 8, big_endian=True)
        return max(map(partial(subclustered_entry_end, h), entries[0::2], entries[1::2]), default=0)
    if not table[0::8].translate(COMPRESSED_FLAG_BYTE).strip(b"\0"):
        # No compressed clusters (the usual case): clear each entry's flag byte (bits 56-63) and take the
        # largest at C speed; what is left is the host offset plus the "reads as zero" flag bit.
        table[0::8] = bytes(len(table) // 8)
        last = max(uint_array(bytes(table), 8, big_endian=True), default=0) & OFFSET_MASK
        return last + h.cluster_size if last else 0
    return max(map(partial(entry_end, h), uint_array(bytes(table), 8, big_endian=True)), default=0)


def subclustered_entry_end(h: Header, entry: int, bitmap: int) -> int:
    """With extended L2 entries only the allocated subclusters (bits 0-31 of the bitmap) are written."""
    if entry & COMPRESSED_BIT:
        return entry_end(h, entry)
    offset = entry & OFFSET_MASK
    allocated = bitmap & 0xFFFF_FFFF
    if not offset or not allocated:
        return 0
    return offset + allocated.bit_length() * (h.cluster_size // 32)


def entry_end(h: Header, entry: int) -> int:
    if entry & COMPRESSED_BIT:
        # Compressed descriptor: the host byte offset in the low x bits, above it the number of 512-byte
        # sectors the data runs on beyond the first. The data ends somewhere inside the last sector.
        offset_bits = 62 - (h.cluster_bits - 8)
        offset = entry & ((1 << offset_bits) - 1)
        extra_sectors = (entry >> offset_bits) & ((1 << (62 - offset_bits)) - 1)
        return ((offset >> 9) + extra_sectors) * 512 + 1
    offset = entry & OFFSET_MASK
    return offset + h.cluster_size if offset else 0
