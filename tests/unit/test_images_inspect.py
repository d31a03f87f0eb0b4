"""inspect_image on real images written by qemu-img: format, subformat and virtual size as QEMU sees them."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagefactory import (
    VARIANTS,
    fix_vhd_checksums,
    make_ext4_raw,
    make_image,
    make_raw,
    patch_field,
    qemu_img,
    qemu_virtual_size,
    random_data,
)
from vdcmanage.errors import FileNotFound, InvalidArgument, InvalidImage, Refused
from vdcmanage.images import FORMATS, ImageInfo, inspect_image

# Sizes that are not multiples of a sector, a cluster, a grain or a MiB, a tiny one and a round one.
SIZES = (1, 1000, 65537, 3_000_000, 10 * 2**20 + 7)


def assert_matches_qemu(path: Path, fmt: str, subformat: str | None) -> ImageInfo:
    info = inspect_image(path)
    assert (info.format, info.subformat) == (fmt, subformat)
    assert info.virtual_size == qemu_virtual_size(path, fmt)
    assert info.file_size == path.stat().st_size
    return info


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("fmt", "subformat"), VARIANTS)
def test_every_variant_and_size_matches_qemu(tmp_path: Path, fmt: str, subformat: str | None, size: int) -> None:
    path = make_image(tmp_path, fmt, size, subformat=subformat, data=random_data(size))
    assert_matches_qemu(path, fmt, subformat)


@pytest.mark.parametrize(("fmt", "subformat"), VARIANTS)
def test_large_sparse_disk_matches_qemu(tmp_path: Path, fmt: str, subformat: str | None) -> None:
    size = 3 * 2**30 + 12345
    path = make_image(tmp_path, fmt, size, subformat=subformat, data={0: b"boot", 2**31: b"middle"})
    assert_matches_qemu(path, fmt, subformat)


def test_format_comes_from_content_not_name(tmp_path: Path) -> None:
    qcow2 = make_image(tmp_path, "qcow2", 2**20, name="disguised.raw")
    raw = make_image(tmp_path, "raw", 2**20, data=b"\x55" * 512, name="disguised.qcow2")
    assert inspect_image(qcow2).format == "qcow2"
    assert inspect_image(raw).format == "raw"
    assert set(FORMATS) == {"raw", "qcow2", "vhd", "vmdk", "vdi"}


def test_raw_sizes_round_up_to_a_sector_like_qemu(tmp_path: Path) -> None:
    for size in (1, 511, 513, 1000, 4096):
        path = make_raw(tmp_path / f"r{size}", size, os.urandom(size))
        info = inspect_image(path)
        assert info == ImageInfo("raw", qemu_virtual_size(path, "raw"), size, None)
        assert info.virtual_size == -(-size // 512) * 512


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.img"
    empty.touch()
    with pytest.raises(InvalidImage, match=r"empty.img: the file is empty \(0 bytes\)"):
        inspect_image(empty)


def test_ext4_raw_image_is_raw(tmp_path: Path) -> None:
    path = make_ext4_raw(tmp_path, 16 * 2**20, {"etc/hostname": b"guest\n", "boot/vmlinuz": os.urandom(5000)})
    assert inspect_image(path) == ImageInfo("raw", 16 * 2**20, 16 * 2**20, None)
    assert b"guest" in path.read_bytes()


def test_str_and_pathlike_paths(tmp_path: Path) -> None:
    path = make_image(tmp_path, "vdi", 2**20)
    assert inspect_image(str(path)) == inspect_image(path)


# --- qcow2 variants ---------------------------------------------------------------------------------

QCOW2_OPTIONS = (
    "cluster_size=512",
    "cluster_size=2M",
    "cluster_size=4k,refcount_bits=1",
    "refcount_bits=64",
    "lazy_refcounts=on",
    "extended_l2=on,cluster_size=128k",
    "preallocation=metadata",
    "preallocation=falloc",
    "compression_type=zstd",
)


@pytest.mark.parametrize("options", QCOW2_OPTIONS)
def test_qcow2_options(tmp_path: Path, options: str) -> None:
    size = 5 * 2**20 + 3 * 512
    path = make_image(tmp_path, "qcow2", size, data=random_data(size), options=(options,))
    assert_matches_qemu(path, "qcow2", "v3")


def test_compressed_qcow2(tmp_path: Path) -> None:
    source = make_image(tmp_path, "raw", 7 * 2**20 + 512, data=random_data(7 * 2**20, holes=True))
    target = tmp_path / "compressed.qcow2"
    qemu_img("convert", "-c", "-f", "raw", "-O", "qcow2", source, target)
    assert_matches_qemu(target, "qcow2", "v3")


def test_qcow2_partial_writes_with_subclusters(tmp_path: Path) -> None:
    """Extended L2 images allocate 4 KiB subclusters: the last cluster may legitimately be partial."""
    path = tmp_path / "sub.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", path, "5M")
    subprocess.run(["qemu-io", "-c", "write -P 7 1000 3000", str(path)], check=True, capture_output=True)
    assert path.stat().st_size % (128 << 10) != 0
    assert_matches_qemu(path, "qcow2", "v3")


def test_fresh_qcow2_created_empty(tmp_path: Path) -> None:
    path = tmp_path / "fresh.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "64T")
    assert_matches_qemu(path, "qcow2", "v3")


# --- VHD size rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_vhd_force_size_uses_current_size(tmp_path: Path, subformat: str) -> None:
    """Creator "qem2" (like Hyper-V's "win ") means the footer's current size, not the CHS geometry."""
    size = 12_345_678 // 512 * 512
    path = make_image(tmp_path, "vhd", size, subformat=subformat, options=("force_size=on",))
    info = assert_matches_qemu(path, "vhd", subformat)
    assert info.virtual_size == size


@pytest.mark.parametrize("creator", [b"win ", b"tap\0", b"CTXS", b"d2v ", b"qem2", b"vpc ", b"qemu"])
def test_vhd_creator_decides_between_geometry_and_current_size(tmp_path: Path, creator: bytes) -> None:
    """Give a dynamic VHD a current size 4 KiB beyond its CHS geometry: which one counts depends on the creator."""
    path = make_image(tmp_path, "vhd", 5 * 2**20, subformat="dynamic")
    footer = path.read_bytes()[:512]
    cylinders, heads, sectors = struct.unpack_from(">HBB", footer, 56)
    geometry_size = cylinders * heads * sectors * 512
    current_size = geometry_size + 4096
    assert current_size <= 3 * 2**21  # still covered by the block allocation table's 3 blocks of 2 MiB
    for footer_at in (0, -512):
        patch_field(path, footer_at + 28, ">4s", creator)
        patch_field(path, footer_at + 48, ">Q", current_size)
    fix_vhd_checksums(path)
    info = assert_matches_qemu(path, "vhd", "dynamic")
    uses_current = creator not in (b"vpc ", b"qemu")
    assert info.virtual_size == (current_size if uses_current else geometry_size)


# --- recognised variants that depend on other files, or that we do not support ---------------------


def expect_refusal(path: Path, *fragments: str) -> str:
    with pytest.raises(InvalidImage) as caught:
        inspect_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert caught.value.exit_code == 100
    return message


def test_qcow2_with_backing_file_is_refused(tmp_path: Path) -> None:
    base = make_image(tmp_path, "qcow2", 2**20, name="base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay)
    expect_refusal(overlay, "backing file", str(base), "depends on another image")


def test_qcow2_with_external_data_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'data.raw'}", path, "1M")
    expect_refusal(path, "external data file")


QCOW2_CRYPT_METHOD_OFFSET = 32  # be32 in the qcow2 header: 0 none, 1 AES, 2 LUKS


@pytest.mark.parametrize(("method", "name"), [(1, "AES"), (2, "LUKS"), (7, "unknown method 7")])
def test_encrypted_qcow2_is_refused(tmp_path: Path, method: int, name: str) -> None:
    # qemu-img's own LUKS create benchmarks PBKDF2 by thread CPU time and fails on machines whose
    # clock cannot measure it ("Unable to get accurate CPU usage", 7 runs in 10 here), so the
    # encrypted image is a real qcow2 with its crypt_method field set, which is what we read.
    path = tmp_path / "secret.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "1M")
    with open(path, "r+b") as f:
        f.seek(QCOW2_CRYPT_METHOD_OFFSET)
        f.write(struct.pack(">I", method))
    expect_refusal(path, f"encrypted ({name})")


def test_qcow_version_1_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.qcow"
    qemu_img("create", "-q", "-f", "qcow", path, "1M")
    expect_refusal(path, "qcow (version 1) images are not supported")


def test_vhd_differencing_is_refused(tmp_path: Path) -> None:
    """qemu-img cannot write a differencing VHD: turn a dynamic one into one, as Hyper-V would write it."""
    path = make_image(tmp_path, "vhd", 2**20, subformat="dynamic", name="child.vhd")
    for footer_at in (0, -512):
        patch_field(path, footer_at + 60, ">I", 4)
    patch_field(path, 512 + 64, ">20s", "parent.vhd".encode("utf-16-be"))
    fix_vhd_checksums(path)
    expect_refusal(path, "vhd differencing image (parent: parent.vhd)", "depends on its parent")


def test_vmdk_delta_is_refused(tmp_path: Path) -> None:
    base = make_image(tmp_path, "vmdk", 2**20, name="base.vmdk")
    delta = tmp_path / "delta.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", "-b", base, "-F", "vmdk", delta)
    expect_refusal(delta, "vmdk delta disk (parent: ", "depends on its parent")


@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_vmdk_descriptor_files_and_their_extents_are_refused(tmp_path: Path, subformat: str) -> None:
    path = tmp_path / "split.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", path, "3G")
    expect_refusal(path, f"vmdk descriptor file (createType {subformat})", "the disk data is in other files")
    for extent in sorted(tmp_path.glob("split-*.vmdk")):
        if subformat == "twoGbMaxExtentSparse":
            expect_refusal(extent, "vmdk sparse extent without an embedded descriptor", "split")
        else:
            assert inspect_image(extent).format == "raw"  # a flat extent is plain disk data


def test_vdi_differencing_is_refused(tmp_path: Path) -> None:
    path = make_image(tmp_path, "vdi", 2**20)
    patch_field(path, 440, "<16s", b"\x01" * 16)  # uuid_parent
    expect_refusal(path, "vdi differencing image", "depends on its parent")


@pytest.mark.parametrize(("qemu_format", "name"), [("vhdx", "VHDX"), ("qed", "QED"), ("parallels", "Parallels")])
def test_other_formats_are_refused_not_taken_for_raw(tmp_path: Path, qemu_format: str, name: str) -> None:
    path = tmp_path / f"disk.{qemu_format}"
    qemu_img("create", "-q", "-f", qemu_format, path, "8M")
    expect_refusal(path, name, "not supported")


# --- what is not an image file at all ---------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound, match=f"File not found: {tmp_path}/nope.img"):
        inspect_image(tmp_path / "nope.img")
    with pytest.raises(FileNotFound):
        inspect_image(make_raw(tmp_path / "file", 10) / "below")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is a directory, not a regular file"):
        inspect_image(tmp_path)


def test_fifo_socket_and_device_are_not_image_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgument, match="is a FIFO, not a regular file"):
        inspect_image(fifo)  # must not block waiting for a writer
    with pytest.raises(InvalidArgument, match="is a character device"):
        inspect_image("/dev/null")
    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises((InvalidArgument, Refused)):
            inspect_image(sock_path)


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InvalidArgument, match="symbolic links"):
        inspect_image(tmp_path / "a")


def test_non_utf8_path_is_shown_escaped(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad-\xff.img")
    path = make_raw(tmp_path / name, 512)
    assert inspect_image(path).format == "raw"
    with pytest.raises(FileNotFound) as caught:
        inspect_image(tmp_path / os.fsdecode(b"gone-\xfe.img"))
    assert "gone-\\xfe.img" in str(caught.value)
    str(caught.value).encode("utf-8")  # printable as is


def test_unreadable_file(tmp_path: Path) -> None:
    """Tests run as root, which reads anything: drop every capability in a child process instead."""
    path = make_image(tmp_path, "qcow2", 2**20)
    path.chmod(0)
    code = (
        "import sys\n"
        "from vdcmanage.images import inspect_image, file_digests\n"
        "from vdcmanage.errors import Refused\n"
        "for call in (inspect_image, file_digests):\n"
        "    try:\n"
        "        call(sys.argv[1])\n"
        "    except Refused as exc:\n"
        "        print(type(exc).__name__, exc.exit_code, exc)\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", code, str(path)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )
    expected = f"Refused 100 Cannot read {path}: permission denied"
    assert proc.stdout.splitlines() == [expected, expected], proc.stderr
