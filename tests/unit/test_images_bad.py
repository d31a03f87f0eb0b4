"""inspect_image on damaged images: truncated, with broken checksums, with lying headers, or mutated at random.

The rule under test: a damaged image gives ``InvalidImage`` with a message that says what is wrong,
or (when the damage leaves a consistent image) a virtual size that qemu-img agrees with; never
another exception, and never a size qemu-img contradicts.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.imagefactory import (
    QEMU_FORMAT,
    VARIANTS,
    fix_vhd_checksums,
    make_image,
    patch_bytes,
    patch_field,
    qemu_accepts,
    random_data,
    truncate_copy,
)
from vdcmanage.errors import InvalidImage
from vdcmanage.images import ImageInfo, inspect_image

STREAM_WITH_FOOTER = ("vmdk", "streamOptimized with footer")
IMAGE_VARIANTS = [variant for variant in VARIANTS if variant[0] != "raw"]
DAMAGED_VARIANTS = [*IMAGE_VARIANTS, STREAM_WITH_FOOTER]
SIZE = 1_300_007
MAGIC_END = {"qcow2": 4, "vhd": 8, "vmdk": 4, "vdi": 68}
TRUNCATION_WORDS = ("truncated", "beyond the end of the file", "is missing")


def qemu_same_disk(path: Path, original: Path, fmt: str) -> bool:
    proc = subprocess.run(["qemu-img", "compare", "-f", QEMU_FORMAT[fmt], "-F", QEMU_FORMAT[fmt], str(path),
                           str(original)], capture_output=True, check=False)
    return proc.returncode == 0


def variant_id(variant: tuple[str, str | None]) -> str:
    return f"{variant[0]}-{variant[1]}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str | None], Path]:
    """One real image per variant, holding data with holes, shared read-only by the tests of this module."""
    directory = tmp_path_factory.mktemp("pristine")
    images = {
        (fmt, sub): make_image(directory, fmt, SIZE, subformat=sub, data=random_data(SIZE, seed=7))
        for fmt, sub in IMAGE_VARIANTS
    }
    images[STREAM_WITH_FOOTER] = add_stream_footer(images[("vmdk", "streamOptimized")])
    return images


def add_stream_footer(path: Path) -> Path:
    """Rewrite a streamOptimized VMDK the way VMware writes it: the header says "grain directory at the end"
    and a footer (marker, header copy with the real offset, end-of-stream marker) ends the file."""
    data = bytearray(path.read_bytes())
    assert data[-512:] == bytes(512)  # qemu-img ends the stream with an end-of-stream marker
    header = bytes(data[:512])
    data[-512:] = struct.pack("<QII", 1, 0, 3).ljust(512, b"\0") + header + bytes(512)
    struct.pack_into("<Q", data, 56, 0xFFFF_FFFF_FFFF_FFFF)
    target = path.with_name("footer-" + path.name)
    target.write_bytes(data)
    return target


def working_copy(pristine: dict[tuple[str, str | None], Path], variant: tuple[str, str | None], tmp: Path) -> Path:
    copy = tmp / pristine[variant].name
    shutil.copyfile(pristine[variant], copy)
    return copy


def refused(path: Path, *fragments: str) -> str:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- truncation -------------------------------------------------------------------------------------


def cut_points(size: int) -> list[int]:
    """Every byte of the first 2 KiB and the last 1.5 KiB (headers, footers), each sector boundary (where
    tables and data start and end) and the neighbours of each 4 KiB one: largest first, so that one file
    can be cut in place."""
    points = set(range(1, min(size, 2100)))
    points.update(range(max(1, size - 1600), size))
    points.update(range(512, size, 512))
    for boundary in range(4096, size, 4096):
        points.update((boundary - 1, boundary + 1))
    return sorted((p for p in points if 0 < p < size), reverse=True)


@pytest.mark.parametrize("variant", DAMAGED_VARIANTS, ids=variant_id)
def test_truncated_anywhere_is_refused(
    pristine: dict[tuple[str, str | None], Path], variant: tuple[str, str | None], tmp_path: Path
) -> None:
    fmt, subformat = variant
    path = working_copy(pristine, variant, tmp_path)
    path_size = path.stat().st_size
    kinds: Counter[str] = Counter()
    refused_cuts: list[int] = []
    accepted_cuts: list[int] = []
    for cut in cut_points(path_size):
        os.truncate(path, cut)
        footer_gone = fmt == "vhd" and subformat == "fixed" and cut < path_size - 512 + 8
        if footer_gone or cut < MAGIC_END[fmt]:
            # A fixed VHD whose footer is cut off, or an image whose magic is: what is left is plain data.
            assert inspect_image(path) == ImageInfo("raw", -(-cut // 512) * 512, cut, None)
            kinds["raw: what is left has no footer or magic"] += 1
            continue
        try:
            info = inspect_image(path)
        except InvalidImage as exc:
            problem = str(exc).split(": ", 1)[1]  # after the path, which holds the test's name
            assert any(word in problem for word in TRUNCATION_WORDS), f"cut at {cut}: {problem}"
            kinds[re.sub(r"\d+", "N", problem)] += 1
        else:
            assert not refused_cuts, f"{fmt} cut at {cut} bytes accepted ({info}), a longer one was refused"
            accepted_cuts.append(cut)
            continue
        refused_cuts.append(cut)
    print(f"{variant_id(variant)}: {dict(kinds)}, accepted {len(accepted_cuts)} cuts")
    assert len(refused_cuts) > 500
    if accepted_cuts:
        # Only cuts that lose nothing may pass: qemu's streamOptimized files end with the last compressed
        # grain padded to a sector, and a cut in the padding leaves a complete stream. The shortest such
        # copy holds the same disk, so every longer one does too.
        shortest = truncate_copy(pristine[variant], min(accepted_cuts), tmp_path)
        assert qemu_same_disk(shortest, pristine[variant], fmt), f"{fmt} cut at {min(accepted_cuts)} lost data"


# --- checksums --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subformat", "offset", "message"),
    [
        ("dynamic", 100, "vhd footer checksum mismatch at the start of the file"),
        ("dynamic", -400, "vhd footer checksum mismatch at the end of the file"),
        ("dynamic", 512 + 700, "vhd dynamic header checksum mismatch"),
        ("dynamic", 64, "vhd footer checksum mismatch at the start of the file"),  # the checksum itself
        ("fixed", -400, "vhd footer checksum mismatch at the end of the file"),
        ("fixed", -512 + 66, "vhd footer checksum mismatch at the end of the file"),
    ],
)
def test_flipped_vhd_checksum_bytes(
    pristine: dict[tuple[str, str | None], Path], tmp_path: Path, subformat: str, offset: int, message: str
) -> None:
    path = working_copy(pristine, ("vhd", subformat), tmp_path)
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x10]))
    refused(path, message, "(stored 0x", "computed 0x")


# --- header fields set to lies ----------------------------------------------------------------------

BQ, BI = ">Q", ">I"  # qcow2 and VHD are big-endian
LQ, LI, LH = "<Q", "<I", "<H"  # VMDK and VDI are little-endian
QCOW2_LIES = [
    (20, BI, 0, "qcow2 cluster_bits is 0"),
    (20, BI, 8, "qcow2 cluster_bits is 8"),
    (20, BI, 22, "qcow2 cluster_bits is 22"),
    (20, BI, 63, "qcow2 cluster_bits is 63"),
    (4, BI, 4, "unsupported qcow2 version 4"),
    (24, BQ, 0, "virtual size of 0 bytes"),
    (24, BQ, 1 << 62, "larger than the format's 64 PiB limit"),
    (24, BQ, 1 << 40, "qcow2 L1 table has 1 entries but the virtual size"),
    (36, BI, 1 << 31, "more than the 32 MiB QEMU can open"),
    (40, BQ, 1 << 40, "qcow2 L1 table lies beyond the end of the file"),
    (40, BQ, 0x30000 + 8, "qcow2 L1 table offset 196616 is not aligned"),
    (40, BQ, 0, "qcow2 L1 table offset is 0"),
    (48, BQ, 1 << 40, "qcow2 refcount table lies beyond the end of the file"),
    (56, BI, 1 << 20, "larger than the 8 MiB QEMU can open"),
    (56, BI, 0, "qcow2 refcount table has 0 clusters"),
    (32, BI, 1, "qcow2 image is encrypted (AES)"),
    (32, BI, 7, "qcow2 image is encrypted (unknown method 7)"),
    (8, BQ, 1 << 40, "qcow2 image has a backing file"),
    (60, BI, 1 << 20, "snapshots"),
    (60, BI, 1, "qcow2 snapshot table offset is 0"),
]
QCOW2_V3_LIES = [
    (72, BQ, 1 << 1, "qcow2 image is marked corrupt"),
    (72, BQ, 1 << 9, "incompatible features this program does not know (bits 0x200)"),
    (72, BQ, 1 << 2, "external data file"),
    (96, BI, 7, "qcow2 refcount_order is 7"),
    (100, BI, 50, "qcow2 version 3 header length 50 is shorter"),
    (100, BI, 1 << 20, "larger than a cluster"),
]
VHD_FOOTER_LIES = [
    (60, BI, 5, "vhd footer has unknown disk type 5"),
    (12, BI, 0x20000, "unsupported vhd format version 0x00020000"),
    (48, BQ, 12345, "not a whole number of 512-byte sectors"),
]
VHD_DYNAMIC_LIES = [
    (16, BQ, 1 << 40, "vhd dynamic header lies beyond the end of the file"),
    (16, BQ, 100, "impossible dynamic header offset 100"),
    (28, ">4s", b"win ", None),  # consistent: current size equals geometry for a qemu image; checked below
    (48, BQ, 3 << 40, None),  # with creator "qemu" the size comes from the geometry: qemu agrees, so do we
    (56, ">HBB", (65535, 16, 255), None),  # the maximum geometry means "use the current size": the same here
]
VHD_DYNHEADER_LIES = [
    (16, BQ, 1 << 40, "vhd block allocation table lies beyond the end of the file"),
    (28, BI, 0, "vhd block allocation table has 0 entries"),
    (28, BI, 1 << 30, "more than any VHD"),
    (32, BI, 3, "vhd block size 3 is not a power of two"),
    (32, BI, 0, "vhd block size 0 is not a power of two"),
    (32, BI, 1 << 31, "vhd block size 2147483648"),
    (24, BI, 0x20000, "unsupported vhd dynamic header version"),
    (0, ">8s", b"cxsparsX", "vhd dynamic header is missing"),
]
VMDK_LIES = [
    (4, LI, 4, "unsupported vmdk sparse extent version 4"),
    (12, LQ, 0, "capacity of 0 sectors"),
    (12, LQ, 1 << 40, "larger than 62 TiB"),
    (12, LQ, 5000, "vmdk descriptor gives"),
    (20, LQ, 0, "vmdk grain size 0 sectors"),
    (20, LQ, 3, "vmdk grain size 3 sectors"),
    (20, LQ, 1 << 20, "vmdk grain size 1048576 sectors"),
    (28, LQ, 0, "without an embedded descriptor"),
    (28, LQ, 1 << 30, "overlaps the grain data"),
    (36, LQ, 1 << 20, "implausibly large"),
    (44, LI, 0, "entries per grain table"),
    (44, LI, 1024, "entries per grain table"),
    (64, LQ, 1 << 30, "vmdk image is truncated: its metadata ends at byte"),
    (73, "4s", b"\n \n\n", "newline test"),
]
VMDK_SPARSE_LIES = [(56, LQ, 1 << 30, "vmdk grain directory lies beyond the end of the file")]
VMDK_STREAM_LIES = [
    (77, LH, 2, "vmdk compression algorithm 2 is unknown"),  # QEMU reads only the footer's; we check both
    (-1024 + 77, LH, 2, "vmdk compression algorithm 2 is unknown"),
    (-1024 + 56, LQ, 1 << 30, "vmdk grain directory lies beyond the end of the file"),
    (-1024 + 12, LQ, 1 << 20, "vmdk header and footer disagree"),
    (-1536 + 12, LI, 1, "footer and end-of-stream marker are missing"),
    (-512 + 12, LI, 3, "footer and end-of-stream marker are missing"),
    (-1024, "4s", b"KDMX", "vmdk footer header is missing"),
]
VDI_LIES = [
    (68, LI, 0x00010000, "unsupported vdi version 1.0"),
    (72, LI, 100, "vdi header size 100 is impossible"),
    (76, LI, 3, "vdi undo image"),
    (76, LI, 4, "vdi differencing image"),
    (76, LI, 9, "unknown image type 9"),
    (340, LI, 1 << 31, "vdi block map overlaps the data area"),
    (340, "<II", (1 << 30, (1 << 30) + 4096), "vdi block map lies beyond the end of the file"),
    (340, LI, 600, "vdi block map or data offset is not aligned"),
    (344, LI, 1000, "vdi block map or data offset is not aligned"),
    (344, LI, 1 << 31, "vdi image is truncated: its 2 allocated blocks end at byte"),
    (360, LI, 4096, "vdi sector size 4096 is not 512"),
    (368, LQ, 0, "vdi header gives a disk size of 0 bytes"),
    (368, LQ, 1 << 40, "is larger than its 2 blocks of 1 MiB can hold"),
    (376, LI, 2 << 20, "vdi block size 2097152 (+0 extra) is not 1 MiB"),
    (380, LI, 512, "is not 1 MiB"),
    (384, LI, 1 << 30, "larger than the 16 TiB"),
    (384, LI, 1 << 20, "vdi block map overlaps the data area"),
    (388, LI, 3, "vdi header claims 3 allocated blocks out of 2"),
    (424, "16s", b"\x07" * 16, "vdi differencing image"),
]


def lie_cases() -> list[tuple[tuple[str, str | None], int, str, object, str | None]]:
    cases = []
    for sub in ("v2", "v3"):
        cases += [(("qcow2", sub), *lie) for lie in QCOW2_LIES]
    cases += [(("qcow2", "v3"), *lie) for lie in QCOW2_V3_LIES]
    cases += [(("vhd", "dynamic"), *lie) for lie in VHD_FOOTER_LIES + VHD_DYNAMIC_LIES]
    cases += [(("vhd", "fixed"), offset - 512, fmt, value, message) for offset, fmt, value, message in VHD_FOOTER_LIES]
    cases += [(("vhd", "dynamic"), 512 + offset, fmt, value, msg) for offset, fmt, value, msg in VHD_DYNHEADER_LIES]
    for variant in (("vmdk", "monolithicSparse"), ("vmdk", "streamOptimized"), STREAM_WITH_FOOTER):
        cases += [(variant, *lie) for lie in VMDK_LIES]
    cases += [(("vmdk", "monolithicSparse"), *lie) for lie in VMDK_SPARSE_LIES]
    cases += [(STREAM_WITH_FOOTER, *lie) for lie in VMDK_STREAM_LIES]
    for sub in ("dynamic", "fixed"):
        cases += [(("vdi", sub), *lie) for lie in VDI_LIES]
    return cases


@pytest.mark.parametrize(
    ("variant", "offset", "fmt", "value", "message"),
    lie_cases(),
    ids=[f"{variant_id(c[0])}@{c[1]}={c[3]!r}"[:60] for c in lie_cases()],
)
def test_lying_header_field(
    pristine: dict[tuple[str, str | None], Path],
    tmp_path: Path,
    variant: tuple[str, str | None],
    offset: int,
    fmt: str,
    value: object,
    message: str | None,
) -> None:
    path = working_copy(pristine, variant, tmp_path)
    values = value if isinstance(value, tuple) else (value,)
    if variant[0] == "vhd" and offset < 512 and variant[1] == "dynamic":
        patch_field(path, offset - 512, fmt, *values)  # both footer copies lie the same way
    patch_field(path, offset, fmt, *values)
    if variant[0] == "vhd":
        fix_vhd_checksums(path)  # a consistent liar: only the checks behind the checksum can catch it
    if message is None:
        agreed = qemu_accepts(path, variant[0])
        assert agreed is not None and inspect_image(path).virtual_size == agreed
    else:
        refused(path, message)


def test_vhd_larger_than_2040_gib(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("vhd", "dynamic"), tmp_path)
    for footer_at in (0, -512):
        patch_field(path, footer_at + 28, ">4s", b"win ")
        patch_field(path, footer_at + 48, ">Q", 3 << 40)
    fix_vhd_checksums(path)
    refused(path, "is larger than 2040 GiB")


def test_snapshot_offset_lie(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("qcow2", "v3"), tmp_path)
    patch_field(path, 60, ">IQ", 1, 1 << 40)
    refused(path, "qcow2 snapshot table lies beyond the end of the file")
    patch_field(path, 64, ">Q", 4096)
    refused(path, "qcow2 snapshot table offset 4096 is not aligned")


def qcow2_l1_offset(path: Path) -> int:
    return int(struct.unpack_from(">Q", path.read_bytes(), 40)[0])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((1 << 63) | (1 << 40), "qcow2 L1 entry 0 (an L2 table) lies beyond the end of the file"),
        ((1 << 63) | 0x50000 | 1, "qcow2 L1 entry 0 (an L2 table) has reserved bits set"),
        ((1 << 63) | 0x50200, "is not aligned to the 65536-byte cluster size"),
    ],
)
def test_qcow2_l1_entry_lies(
    pristine: dict[tuple[str, str | None], Path], tmp_path: Path, entry: int, message: str
) -> None:
    path = working_copy(pristine, ("qcow2", "v3"), tmp_path)
    patch_field(path, qcow2_l1_offset(path), ">Q", entry)
    refused(path, message)


def test_qcow2_l2_entry_past_end_means_truncated(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("qcow2", "v3"), tmp_path)
    data = path.read_bytes()
    l2_offset = struct.unpack_from(">Q", data, qcow2_l1_offset(path))[0] & 0x00FF_FFFF_FFFF_FE00
    patch_field(path, l2_offset + 8, ">Q", (1 << 63) | (len(data) // 65536 * 65536 + 65536))
    refused(path, "qcow2 image is truncated: its data clusters end at byte")


def test_vhd_bat_entry_lies(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("vhd", "dynamic"), tmp_path)
    patch_field(path, 1536, ">I", (1 << 31) // 512)
    refused(path, "vhd image is truncated: block 0 ends at byte")
    patch_field(path, 1536, ">I", 1)
    refused(path, "vhd block 0 points into the image's own headers")


def test_vhd_footer_copies_disagree(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("vhd", "dynamic"), tmp_path)
    patch_field(path, -512 + 68, ">16s", b"another disk....")
    fix_vhd_checksums(path)
    refused(path, "the two vhd footer copies")


def test_vmdk_grain_table_entry_past_end(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("vmdk", "monolithicSparse"), tmp_path)
    data = path.read_bytes()
    gd_sector = struct.unpack_from("<Q", data, 56)[0]
    gt_sector = struct.unpack_from("<I", data, gd_sector * 512)[0]
    patch_field(path, gt_sector * 512 + 4 * 7, "<I", 1 << 30)
    refused(path, "vmdk image is truncated: a grain at byte")
    patch_field(path, gd_sector * 512, "<I", 1 << 30)
    refused(path, "vmdk grain table lies beyond the end of the file")


def test_vdi_block_map_lies(pristine: dict[tuple[str, str | None], Path], tmp_path: Path) -> None:
    path = working_copy(pristine, ("vdi", "dynamic"), tmp_path)
    bmap = struct.unpack_from("<I", path.read_bytes(), 340)[0]
    patch_field(path, bmap, "<I", 5)
    refused(path, "vdi block map entry 0 names block 5, but the header says only 2 blocks are allocated")


# --- files that merely start like an image ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"QFI\xfb", "qcow2 header is truncated (it needs bytes 0..8, the file has 4 bytes)"),
        (b"QFI\xfb\0\0\0\x03" + bytes(64), "qcow2 version 3 header is truncated (it needs bytes 0..104"),
        (b"QFI\xfb\0\0\0\x02" + bytes(2**20), "qcow2 cluster_bits is 0"),
        (b"conectix", "vhd footer at the start of the file is truncated"),
        (b"conectix" + bytes(2**20), "vhd footer checksum mismatch at the start of the file"),
        (b"KDMV", "vmdk sparse header is truncated"),
        (b"KDMV" + bytes(2**20), "unsupported vmdk sparse extent version 0"),
        (bytes(64) + b"\x7f\x10\xda\xbe", "vdi header is truncated"),
        (bytes(64) + b"\x7f\x10\xda\xbe" + bytes(2**20), "unsupported vdi version 0.0"),
        (b"COWD" + bytes(1000), "COWD"),
        (b"# Disk DescriptorFile\n", "vmdk descriptor file"),
        (b"vhdxfile" + bytes(100), "VHDX"),
        (os.urandom(4096) + b"conectix" + bytes(504), "vhd footer checksum mismatch at the end of the file"),
        (os.urandom(4095) + b"conectix" + bytes(503), "is 511 bytes long: the file is truncated, or was written by"),
        (os.urandom(4095) + b"conectix" + bytes(300), "vhd fixed image is truncated: its footer at byte 4095 has 308"),
    ],
)
def test_file_that_merely_starts_with_a_magic(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fake.img"
    path.write_bytes(content)
    refused(path, message)


# --- random mutations ------------------------------------------------------------------------------

MUTATIONS_PER_VARIANT = 150
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 1 << 31, 1 << 40, 1 << 62)


# Where each format's header fields are (the rest of the first sectors is mostly padding).
HEADER_FIELDS = {"qcow2": range(0, 112), "vhd": range(0, 512 + 40), "vmdk": range(0, 80), "vdi": range(64, 456)}


def table_regions(path: Path, fmt: str) -> list[range]:
    """Where the pristine image's first metadata tables are (L1/L2/refcount, BAT, grain directory and
    table, block map), read with plain struct calls so that the test does not trust the code under test."""
    data = path.read_bytes()

    def u(fmt_: str, offset: int) -> int:
        return int(struct.unpack_from(fmt_, data, offset)[0])

    if fmt == "qcow2":
        l1 = u(">Q", 40)
        l2 = u(">Q", l1) & 0x00FF_FFFF_FFFF_FE00
        return [range(l1, l1 + 8 * u(">I", 36)), range(u(">Q", 48), u(">Q", 48) + 64), range(l2, l2 + 512)]
    if fmt == "vhd":
        if data[:8] != b"conectix":
            return []
        bat = u(">Q", 512 + 16)
        return [range(bat, bat + 4 * u(">I", 512 + 28))]
    if fmt == "vmdk":
        header = len(data) - 1024 if u("<Q", 56) == 0xFFFF_FFFF_FFFF_FFFF else 0
        gd = u("<Q", header + 56) * 512
        gt = u("<I", gd) * 512
        return [range(gd, gd + 64), range(gt, gt + 2048)]
    return [range(u("<I", 340), u("<I", 340) + 4 * u("<I", 384))]  # vdi block map


def mutation_offset(rng: random.Random, fmt: str, subformat: str | None, tables: list[range], size: int) -> int:
    """Mostly a header field; else a metadata table, a footer, or anywhere in the first 2 KiB."""
    roll = rng.random()
    if roll < 0.5:
        if subformat == "fixed" and fmt == "vhd":
            return rng.randrange(size - 512, size)  # a fixed VHD's only header is its footer
        return rng.choice(HEADER_FIELDS[fmt])
    if roll < 0.7 and tables:
        return rng.choice(rng.choice(tables))
    if roll < 0.85 and (fmt == "vhd" or subformat == STREAM_WITH_FOOTER[1]):
        return rng.randrange(size - 1536, size)
    return rng.randrange(0, 2048)


def mutate(path: Path, rng: random.Random, fmt: str, subformat: str | None, tables: list[range]) -> str:
    offset = mutation_offset(rng, fmt, subformat, tables, path.stat().st_size)
    kind = rng.randrange(3)
    if kind == 0:
        patch_bytes(path, offset, bytes([rng.randrange(256)]))
    elif kind == 1:
        width = rng.choice((2, 4, 8))
        value = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
        patch_bytes(path, offset, value.to_bytes(width, rng.choice(("big", "little"))))
    else:
        patch_bytes(path, offset, rng.randbytes(rng.randrange(1, 9)))
    if fmt == "vhd" and rng.random() < 0.7:
        fix_vhd_checksums(path)  # otherwise nearly every VHD mutation stops at the checksum
    return f"offset {offset} kind {kind}"


@pytest.mark.parametrize("variant", DAMAGED_VARIANTS, ids=variant_id)
def test_random_header_mutations(
    pristine: dict[tuple[str, str | None], Path], variant: tuple[str, str | None], tmp_path: Path
) -> None:
    fmt, subformat = variant
    rng = random.Random(f"mutations-{fmt}-{subformat}")
    outcomes: Counter[str] = Counter()
    tables = table_regions(pristine[variant], fmt)
    for round_number in range(MUTATIONS_PER_VARIANT):
        path = working_copy(pristine, variant, tmp_path)
        what = mutate(path, rng, fmt, subformat, tables)
        if rng.random() < 0.5:
            what += ", " + mutate(path, rng, fmt, subformat, tables)
        try:
            info = inspect_image(path)
        except InvalidImage:
            outcomes["refused"] += 1
            continue
        agreed = qemu_accepts(path, info.format)
        if agreed is None:
            outcomes["accepted, qemu-img refuses"] += 1  # allowed: we are not stricter than we must be
            print(f"round {round_number} ({what}): we accept {info}, qemu-img refuses")
            continue
        assert info.virtual_size == agreed, f"round {round_number} ({what}): {info} but qemu-img says {agreed}"
        outcomes["accepted, qemu-img agrees"] += 1
    print(f"{fmt}/{subformat}: {dict(outcomes)}")
    assert outcomes["refused"] > 0
