"""Finding the Xen kernel (the CloudStack example listing) and reading initrds."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.guests import CENTOS_XEN_KERNEL, centos5_tree, cpio_newc, fake_elf, initrd_image, write
from vdcmanage.prepare import initrd
from vdcmanage.prepare.kernels import KernelNotFound, find_xen_kernel, list_kernels
from vdcmanage.prepare.root import GuestRoot


@pytest.fixture
def centos(tmp_path: Path) -> GuestRoot:
    return GuestRoot(centos5_tree(tmp_path / "root"))


def test_the_one_complete_xen_kernel_is_chosen(centos: GuestRoot) -> None:
    kernel = find_xen_kernel(centos)
    assert kernel.version == CENTOS_XEN_KERNEL
    assert kernel.initrd == f"boot/initrd-{CENTOS_XEN_KERNEL}.img"
    described = {k.version: k.describe() for k in list_kernels(centos)}
    assert described["2.6.18-164.el5xen"] == "2.6.18-164.el5xen (missing lib/modules/2.6.18-164.el5xen)"


def test_several_qualifying_kernels_are_refused_until_one_is_chosen(centos: GuestRoot) -> None:
    (centos.path / "lib/modules/2.6.18-164.el5xen").mkdir()
    with pytest.raises(KernelNotFound, match=r"Several Xen kernels qualify: 2.6.18-164.el5xen, 2.6.18-194.el5xen"):
        find_xen_kernel(centos)
    assert find_xen_kernel(centos, "2.6.18-164.el5xen").version == "2.6.18-164.el5xen"


def test_no_xen_kernel_lists_what_was_found(centos: GuestRoot) -> None:
    os.remove(centos.path / f"boot/vmlinuz-{CENTOS_XEN_KERNEL}")
    with pytest.raises(KernelNotFound) as caught:
        find_xen_kernel(centos)
    message = str(caught.value)
    assert "No Xen kernel" in message
    assert "2.6.18-164.el5 (complete)" in message
    assert f"{CENTOS_XEN_KERNEL} (missing boot/vmlinuz-{CENTOS_XEN_KERNEL})" in message
    assert "--kernel" in message


def test_chosen_kernel_must_exist_and_be_complete(centos: GuestRoot) -> None:
    with pytest.raises(KernelNotFound, match=r"incomplete.*lib/modules/2\.6\.18-164\.el5xen"):
        find_xen_kernel(centos, "2.6.18-164.el5xen")
    with pytest.raises(KernelNotFound, match="not in the guest"):
        find_xen_kernel(centos, "9.9.9")


def test_initrd_members_through_each_compression() -> None:
    archive = cpio_newc({"init": b"#!/bin/nash\n", "lib/xenblk.ko": b"x" * 5, "lib/xennet.ko": b"y" * 7})
    for packed in (archive, gzip.compress(archive), lzma.compress(archive), bz2.compress(archive)):
        names = initrd.initrd_members(packed)
        assert names == ["init", "lib/xenblk.ko", "lib/xennet.ko"]
        assert initrd.missing_xen_modules(names) == []


def test_early_uncompressed_cpio_followed_by_a_compressed_one() -> None:
    early = cpio_newc({"kernel/x86/microcode/GenuineIntel.bin": b"ucode"})
    early += b"\0" * (-len(early) % 512)
    main = gzip.compress(cpio_newc({"init": b"", "lib/modules/xen-blkfront.ko": b""}))
    names = initrd.initrd_members(early + main)
    assert names == ["kernel/x86/microcode/GenuineIntel.bin", "init", "lib/modules/xen-blkfront.ko"]
    assert initrd.missing_xen_modules(names) == ["xennet"]


def test_unknown_or_corrupt_initrd_is_unreadable_not_empty() -> None:
    assert initrd.initrd_members(b"zstd?\x28\xb5\x2f\xfd") is None
    assert initrd.initrd_members(b"\x1f\x8b" + b"garbage") is None
    assert initrd.missing_xen_modules(initrd.initrd_members(initrd_image(["ext3"])) or []) == ["xenblk", "xennet"]


def test_elf_machine_and_script_interpreters(tmp_path: Path) -> None:
    root = GuestRoot(tmp_path)
    write(tmp_path, "bin/bash", fake_elf(62), 0o755)
    write(tmp_path, "sbin/mkinitrd", "#!/bin/bash -e\n", 0o755)
    os.symlink("bash", tmp_path / "bin/sh")
    write(tmp_path, "usr/bin/tool", "#!/bin/sh\n", 0o755)
    assert initrd.guest_program_machine(root, "sbin/mkinitrd") == "x86_64"
    assert initrd.guest_program_machine(root, "usr/bin/tool") == "x86_64"
    write(tmp_path, "bin/bash", fake_elf(183), 0o755)
    assert initrd.guest_program_machine(root, "sbin/mkinitrd") == "aarch64"
    assert initrd.can_run("i386", "x86_64") and not initrd.can_run("aarch64", "x86_64")


def test_rebuild_blockers_say_why(centos: GuestRoot) -> None:
    blocker = initrd.rebuild_blocker(centos)  # the CentOS fixture's bash is an aarch64 binary
    assert blocker is not None and "aarch64" in blocker
    os.remove(centos.path / "sbin/mkinitrd")
    assert initrd.rebuild_blocker(centos) == "the guest has no /sbin/mkinitrd"


def test_builtin_xen_drivers_count_as_done(tmp_path: Path) -> None:
    root = GuestRoot(tmp_path)
    write(tmp_path, "lib/modules/3.2.0/modules.builtin", "kernel/drivers/block/xen-blkfront.ko\n")
    assert not initrd.builtin_xen_drivers(root, "3.2.0")
    write(tmp_path, "lib/modules/3.2.0/modules.builtin",
          "kernel/drivers/block/xen-blkfront.ko\nkernel/drivers/net/xen-netfront.ko\n")  # fmt: skip
    assert initrd.builtin_xen_drivers(root, "3.2.0")


# -- initrds as today's distributions make them, with the real tools ----------------------------

# Each tool, as initramfs-tools and dracut call it (lz4 -l: the legacy frame the kernel reads).
COMPRESSORS = {
    "gzip": ["gzip", "-9", "-n"],
    "xz": ["xz", "--check=crc32", "-c"],
    "lzma": ["lzma", "-c"],
    "zstd": ["zstd", "-q", "-19", "-c"],
    "lz4": ["lz4", "-q", "-l", "-9", "-c"],
    "lzo": ["lzop", "-q", "-c"],
}


def real_cpio(tree: Path) -> bytes:
    """A newc archive of a directory made by GNU cpio, as mkinitramfs and dracut make them."""
    names = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
    return subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=names, capture_output=True, check=True
    ).stdout


def module_tree(tmp_path: Path, modules: list[str]) -> Path:
    tree = tmp_path / "initrd"
    write(tree, "init", "#!/bin/sh\n", 0o755)
    for module in modules:
        write(tree, f"usr/lib/modules/6.1.0-28-amd64/kernel/drivers/{module}", b"\x7fELF module")
    return tree


@pytest.mark.parametrize("fmt", list(COMPRESSORS))
def test_initrds_compressed_by_each_tool_are_read(tmp_path: Path, fmt: str) -> None:
    tool = COMPRESSORS[fmt]
    if shutil.which(tool[0]) is None:
        pytest.fail(f"{tool[0]} is not installed (.ci/apt-packages.txt)")
    archive = real_cpio(module_tree(tmp_path, ["block/xen-blkfront.ko", "net/xen-netfront.ko.zst"]))
    packed = subprocess.run(tool, input=archive, capture_output=True, check=True).stdout
    listing = initrd.initrd_listing(packed)
    assert listing.names is not None, listing.problem
    assert "usr/lib/modules/6.1.0-28-amd64/kernel/drivers/block/xen-blkfront.ko" in listing.names
    assert initrd.missing_xen_modules(listing.names) == []  # a .ko.zst module counts as the module
    assert listing.formats == [fmt]


def test_debian_style_initrd_early_microcode_then_zstd(tmp_path: Path) -> None:
    """What Debian 12's mkinitramfs writes: an uncompressed cpio with the CPU microcode, then the zstd archive."""
    early = tmp_path / "early"
    write(early, "kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 4096)
    write(early, "kernel/x86/microcode/AuthenticAMD.bin", b"\x02" * 1000)
    main = subprocess.run(
        COMPRESSORS["zstd"], input=real_cpio(module_tree(tmp_path, ["block/xen-blkfront.ko"])),
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    listing = initrd.initrd_listing(real_cpio(early) + main)
    assert listing.formats == ["cpio", "zstd"]
    assert listing.names is not None and "kernel/x86/microcode/GenuineIntel.bin" in listing.names
    assert initrd.missing_xen_modules(listing.names) == ["xennet"]


def test_missing_decompressor_is_named_not_taken_for_an_empty_initrd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = subprocess.run(COMPRESSORS["zstd"], input=real_cpio(module_tree(tmp_path, [])),
                            capture_output=True, check=True).stdout  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    listing = initrd.initrd_listing(packed)
    assert listing.names is None
    assert listing.problem == "zstd-compressed, and zstd is not installed on this machine (package zstd)"


def test_truncated_zstd_is_corrupt(tmp_path: Path) -> None:
    packed = subprocess.run(COMPRESSORS["zstd"], input=real_cpio(module_tree(tmp_path, ["block/xen-blkfront.ko"])),
                            capture_output=True, check=True).stdout  # fmt: skip
    assert initrd.initrd_listing(packed[:40]).problem == "corrupt zstd data"


def test_one_driver_built_in_the_other_in_the_initrd_is_enough(tmp_path: Path) -> None:
    root = GuestRoot(tmp_path)
    write(tmp_path, "lib/modules/6.1.0/modules.builtin", "kernel/drivers/block/xen-blkfront.ko\n")
    names = [*initrd.builtin_modules(root, "6.1.0"), "usr/lib/modules/6.1.0/kernel/drivers/net/xen-netfront.ko.xz"]
    assert initrd.missing_xen_modules(names) == []
