"""VDI (VirtualBox) version 1.1 images, dynamic and fixed. Header fields are little-endian.

Reference: VirtualBox's VDICore.h and QEMU's block/vdi.c (there is no published spec). QEMU, like
VirtualBox, only handles 1 MiB blocks, 512-byte sectors and sector-aligned block map and data
offsets; we require the same. The virtual size is the header's disk size rounded up to a whole
sector, as QEMU reports it (``VBoxManage convert`` can write sizes that are not).

Limits: at most 16 TiB, so that the block map we check (4 bytes per 1 MiB block) stays within the
64 MiB of tables any format check reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vdcmanage.images.reader import MAX_TABLE_BYTES, SECTOR, ImageFile, MiB, human, round_up, uint_array

SIGNATURE = 0xBEDA107F
SIGNATURE_AT = 64
HEADER = struct.Struct("<64sIIIII256sIIIIIIIQIIII16s16s16s16s")  # 456 bytes
PRE_HEADER_SIZE = 72  # text, signature, version: header_size counts the bytes after these
MIN_HEADER_SIZE = HEADER.size - PRE_HEADER_SIZE  # every field we read lies inside the declared header
VERSION_1_1 = 0x0001_0001
TYPE_DYNAMIC, TYPE_FIXED, TYPE_UNDO, TYPE_DIFF = 1, 2, 3, 4
BLOCK_SIZE = 1 * MiB
BLOCK_FREE, BLOCK_ZERO = 0xFFFF_FFFF, 0xFFFF_FFFE
MAX_BLOCKS = MAX_TABLE_BYTES // 4
NULL_UUID = bytes(16)


@dataclass(frozen=True)
class Header:
    version: int
    header_size: int
    image_type: int
    offset_bmap: int
    offset_data: int
    sector_size: int
    disk_size: int
    block_size: int
    block_extra: int
    blocks_in_image: int
    blocks_allocated: int
    uuid_link: bytes
    uuid_parent: bytes


def parse_header(f: ImageFile) -> Header:
    (_text, _signature, version, header_size, image_type, _flags, _description, offset_bmap, offset_data,
     _cylinders, _heads, _sectors, sector_size, _unused, disk_size, block_size, block_extra, blocks_in_image,
     blocks_allocated, _uuid_image, _uuid_snap, uuid_link, uuid_parent) = HEADER.unpack(f.read(0, HEADER.size,
                                                                                              "vdi header"))
    return Header(version, header_size, image_type, offset_bmap, offset_data, sector_size, disk_size, block_size,
                  block_extra, blocks_in_image, blocks_allocated, uuid_link, uuid_parent)


def inspect_vdi(f: ImageFile) -> tuple[int, str]:
    """The virtual size and subformat ("dynamic"/"fixed") of a VDI file, after checking it can be trusted."""
    h = parse_header(f)
    if h.version != VERSION_1_1:
        raise f.invalid(f"unsupported vdi version {h.version >> 16}.{h.version & 0xFFFF} (only 1.1 is supported)")
    refuse_dependent(f, h)
    check_geometry(f, h)
    size = round_up(h.disk_size, SECTOR)
    check_block_map(f, h)
    return size, "dynamic" if h.image_type == TYPE_DYNAMIC else "fixed"


def refuse_dependent(f: ImageFile, h: Header) -> None:
    if h.image_type in (TYPE_UNDO, TYPE_DIFF) or h.uuid_parent != NULL_UUID or h.uuid_link != NULL_UUID:
        kind = "undo" if h.image_type == TYPE_UNDO else "differencing"
        raise f.invalid(f"vdi {kind} image: it depends on its parent image; clone it to a standalone image first")
    if h.image_type not in (TYPE_DYNAMIC, TYPE_FIXED):
        raise f.invalid(f"vdi header has unknown image type {h.image_type} (1 dynamic, 2 fixed)")


def check_geometry(f: ImageFile, h: Header) -> None:
    if h.header_size < MIN_HEADER_SIZE or PRE_HEADER_SIZE + h.header_size > h.offset_bmap:
        raise f.invalid(
            f"vdi header size {h.header_size} is impossible (at least {MIN_HEADER_SIZE}, ending before the block "
            f"map at byte {h.offset_bmap})"
        )
    if h.offset_bmap % SECTOR or h.offset_data % SECTOR:
        raise f.invalid("vdi block map or data offset is not aligned to 512 bytes")
    if h.sector_size != SECTOR:
        raise f.invalid(f"vdi sector size {h.sector_size} is not 512")
    if h.block_size != BLOCK_SIZE or h.block_extra != 0:
        raise f.invalid(f"vdi block size {h.block_size} (+{h.block_extra} extra) is not 1 MiB, the only size in use")
    if h.disk_size == 0:
        raise f.invalid("vdi header gives a disk size of 0 bytes: an empty disk")
    if h.blocks_in_image > MAX_BLOCKS:
        raise f.invalid(f"vdi disk of {h.blocks_in_image} blocks is larger than the 16 TiB this program accepts")
    if round_up(h.disk_size, SECTOR) > h.blocks_in_image * BLOCK_SIZE:
        raise f.invalid(
            f"vdi disk size {human(h.disk_size)} is larger than its {h.blocks_in_image} blocks of 1 MiB can hold"
        )
    if h.blocks_allocated > h.blocks_in_image:
        raise f.invalid(f"vdi header claims {h.blocks_allocated} allocated blocks out of {h.blocks_in_image}")
    if h.offset_bmap + h.blocks_in_image * 4 > h.offset_data:
        raise f.invalid("vdi block map overlaps the data area")


def check_block_map(f: ImageFile, h: Header) -> None:
    """Each used block-map entry names an allocated block; every allocated block is in the file."""
    for start, chunk in f.table_chunks(h.offset_bmap, h.blocks_in_image * 4, "vdi block map", 4):
        entries = uint_array(chunk, 4, big_endian=False)
        highest = max((entry for entry in entries if entry < BLOCK_ZERO), default=-1)
        if highest >= h.blocks_allocated:
            index = start // 4 + entries.index(highest)
            raise f.invalid(
                f"vdi block map entry {index} names block {highest}, but the header says only "
                f"{h.blocks_allocated} blocks are allocated"
            )
    data_end = h.offset_data + h.blocks_allocated * BLOCK_SIZE
    if data_end > f.size:
        raise f.invalid(
            f"vdi image is truncated: its {h.blocks_allocated} allocated blocks end at byte {data_end}, "
            f"the file has {f.size} bytes"
        )
