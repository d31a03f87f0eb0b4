"""What qemu-img itself refuses to open, we refuse too: each header crafted from a real qemu-img image,
then checked with the real ``qemu-img info`` and with our inspector."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from vdcmanage.errors import InvalidImage
from vdcmanage.images.inspect import inspect_image

Craft = Callable[[Path], bytearray]


def created(directory: Path, fmt: str, options: str | None = None, size: str = "64M") -> bytearray:
    path = directory / f"base.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *(["-o", options] if options else []), str(path), size],
                   check=True)
    data = bytearray(path.read_bytes())
    path.unlink()
    return data


def qcow2_incompatible_bit(bit: int) -> Craft:
    def craft(directory: Path) -> bytearray:
        data = created(directory, "qcow2")
        (features,) = struct.unpack_from(">Q", data, 72)  # version 3 header: incompatible_features
        struct.pack_into(">Q", data, 72, features | 1 << bit)
        return data

    return craft


def vmdk_without_parent_cid(options: str | None) -> Craft:
    def craft(directory: Path) -> bytearray:
        data = created(directory, "vmdk", options)
        at = data.find(b"parentCID=")
        data[at : at + 1] = b"#"  # the line is now a comment: the descriptor has no parentCID
        return data

    return craft


def vhd_dynamic_field(offset: int, value: int) -> Craft:
    """A dynamic header field (28: max table entries, 32: block size), its checksum made right again."""

    def craft(directory: Path) -> bytearray:
        data = created(directory, "vpc", "subformat=dynamic")
        (header_at,) = struct.unpack_from(">Q", data, 16)
        struct.pack_into(">I", data, header_at + offset, value)
        struct.pack_into(">I", data, header_at + 36, 0)
        checksum = ~sum(data[header_at : header_at + 1024]) & 0xFFFF_FFFF
        struct.pack_into(">I", data, header_at + 36, checksum)
        return data

    return craft


def vdi_field(offset: int, fmt: str, value: int) -> Craft:
    def craft(directory: Path) -> bytearray:
        data = created(directory, "vdi")
        struct.pack_into(fmt, data, offset, value)
        return data

    return craft


QEMU_REFUSES: dict[str, tuple[Craft, str]] = {
    "qcow2 unknown incompatible bit 10": (qcow2_incompatible_bit(10), "incompatible features"),
    "qcow2 unknown incompatible bit 40": (qcow2_incompatible_bit(40), "incompatible features"),
    "vmdk monolithicSparse without parentCID": (vmdk_without_parent_cid(None), "no parentCID"),
    "vmdk streamOptimized without parentCID": (vmdk_without_parent_cid("subformat=streamOptimized"), "no parentCID"),
    "vhd block size 3 MiB": (vhd_dynamic_field(32, 3 << 20), "not a power of two"),
    "vhd block size 256 B": (vhd_dynamic_field(32, 256), "not a power of two"),
    "vhd block size 0": (vhd_dynamic_field(32, 0), "not a power of two"),
    "vhd table too small for the disk": (vhd_dynamic_field(28, 1), "block allocation table has 1 entries"),
    "vhd table of 2^30 entries": (vhd_dynamic_field(28, 1 << 30), "block allocation table has 1073741824"),
    "vhd table of 2^32-1 entries": (vhd_dynamic_field(28, 0xFFFF_FFFF), "block allocation table has 4294967295"),
    "vdi disk larger than its blocks": (vdi_field(368, "<Q", 1 << 40), "larger than its 64 blocks"),
    "vdi 2^30 blocks": (vdi_field(384, "<I", 1 << 30), "larger than the 16 TiB"),
    "vdi block map offset unaligned": (vdi_field(340, "<I", 513), "not aligned"),
    "vdi data offset unaligned": (vdi_field(344, "<I", 0x10_0001), "not aligned"),
    "vdi block size 2 MiB": (vdi_field(376, "<I", 2 << 20), "is not 1 MiB"),
    "vdi sector size 4096": (vdi_field(360, "<I", 4096), "sector size 4096"),
}

# Impossible metadata qemu-img happens to open anyway: we stay stricter (nothing downstream reads them).
WE_ALONE_REFUSE: dict[str, tuple[Craft, str]] = {
    "vdi header size 0": (vdi_field(72, "<I", 0), "vdi header size 0 is impossible"),
    "vdi header size 2^31-1": (vdi_field(72, "<I", 0x7FFF_FFFF), "vdi header size 2147483647 is impossible"),
    "vdi more blocks allocated than exist": (vdi_field(388, "<I", 1000), "claims 1000 allocated blocks out of 64"),
    "vdi block map overlapping the data": (vdi_field(340, "<I", 0x7FFF_0000), "block map overlaps the data"),
}


def qemu_opens(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", "info", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("case", list(QEMU_REFUSES))
def test_what_qemu_img_refuses_we_refuse(tmp_path: Path, case: str) -> None:
    craft, reason = QEMU_REFUSES[case]
    path = tmp_path / "crafted.img"
    path.write_bytes(craft(tmp_path))
    qemu = qemu_opens(path)
    assert qemu.returncode != 0 and "Could not open" in qemu.stderr, qemu.stdout
    with pytest.raises(InvalidImage, match=reason):
        inspect_image(path)


@pytest.mark.parametrize("case", list(WE_ALONE_REFUSE))
def test_impossible_metadata_qemu_img_tolerates_is_refused_too(tmp_path: Path, case: str) -> None:
    craft, reason = WE_ALONE_REFUSE[case]
    path = tmp_path / "crafted.img"
    path.write_bytes(craft(tmp_path))
    assert qemu_opens(path).returncode == 0  # if qemu-img starts refusing it, move the case up
    with pytest.raises(InvalidImage, match=reason):
        inspect_image(path)


def test_the_uncrafted_images_open_in_both(tmp_path: Path) -> None:
    for fmt, options in (("qcow2", None), ("vmdk", None), ("vmdk", "subformat=streamOptimized"),
                         ("vpc", "subformat=dynamic"), ("vdi", None)):
        path = tmp_path / "plain.img"
        path.write_bytes(created(tmp_path, fmt, options))
        assert qemu_opens(path).returncode == 0
        assert inspect_image(path).virtual_size == 64 << 20 or fmt == "vpc"
