"""A real Debian 12 (bookworm) guest for the boot tests, built from nothing with debootstrap.

The root tree is debootstrapped from the Debian mirror this machine's apt uses, with a kernel,
systemd, OpenSSH, curl and grub 2, then cached outside the repository under a key made of
everything that goes into it (suite, mirror, package list, this file's recipe version): a cold
run builds it (a few minutes, mostly downloads), later runs reuse it. Images are made from the
cached tree each time, so every test starts from a pristine guest:

- ``bare_image``: the AMI case, the whole file one ext4 filesystem, no boot loader, fstab naming
  ``/dev/sda1`` as the AMI procedure's images do;
- ``partitioned_image``: an MBR disk with one ext4 partition, grub 2 installed in it by
  grub-install and update-grub run in the guest (grub.cfg with ``root=UUID=``), fstab by UUID.

Everything runs as root (debootstrap, loop devices, chroot); the callers skip or fail when the
machine cannot (tests/integration/test_boot_check.py says which).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUITE = "bookworm"
RECIPE = "3"  # bump when the recipe below changes what the tree holds
PACKAGES = (
    "systemd-sysv", "udev", "kmod", "linux-image-amd64", "initramfs-tools", "zstd",
    "openssh-server", "curl", "grub-pc", "ca-certificates",
)  # fmt: skip
IMAGE_MIB = 1536
SOURCES = ("/etc/apt/sources.list.d", "/etc/apt/sources.list")


def mirror() -> str:
    """The Debian mirror apt on this machine uses (the one the network lets us reach)."""
    texts = []
    for source in SOURCES:
        path = Path(source)
        files = sorted(path.glob("*")) if path.is_dir() else [path] if path.is_file() else []
        texts += [f.read_text(errors="replace") for f in files]
    for text in texts:
        match = re.search(r"(?:URIs:|deb)\s+(https?://\S*/debian)/?\s", text + "\n")
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def cache_root() -> Path:
    return Path(os.environ.get("VDC_TEST_CACHE", "/var/cache/vdc-manage-tests"))


def tree_key() -> str:
    recipe = "\n".join([SUITE, mirror(), RECIPE, *PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def missing_tools() -> list[str]:
    tools = ("debootstrap", "mkfs.ext4", "sfdisk", "losetup", "chroot", "mount")
    return [tool for tool in tools if shutil.which(tool) is None]


def run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return proc  # type: ignore[no-any-return]


def debian_tree() -> Path:
    """The cached debootstrapped root, built when missing (atomically: a half-built tree is never used)."""
    final = cache_root() / f"debian12-{tree_key()}"
    if (final / ".complete").exists():
        return final
    cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debian12-build-", dir=cache_root()))
    try:
        root = work / "root"
        run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror())
        customise(root)
        (root / ".complete").write_text(tree_key() + "\n")
        if final.exists():
            shutil.rmtree(final)
        root.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def customise(root: Path) -> None:
    """What an operator's Debian 12 template has beyond debootstrap: a host name, a root login by key
    only, no package cache; the kernel's initrd as Debian makes it (zstd, MODULES=most)."""
    (root / "etc/hostname").write_text("debian12-template\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian12-template\n")
    with chroot_mounts(root):
        run("chroot", str(root), "apt-get", "clean")
    for path in (root / "var/lib/apt/lists").glob("*_Packages"):
        path.unlink()


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """proc, sys and dev inside a chroot, for as long as the block runs."""
    mounted: list[Path] = []
    try:
        for fs_type, source, target in (("proc", "proc", "proc"), ("sysfs", "sys", "sys"), (None, "/dev", "dev")):
            point = root / target
            if fs_type:
                run("mount", "-t", fs_type, source, str(point))
            else:
                run("mount", "--bind", source, str(point))
            mounted.append(point)
        yield
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def copy_tree(tree: Path, into: Path) -> None:
    run("cp", "-a", "--", f"{tree}/.", str(into))
    (into / ".complete").unlink(missing_ok=True)


def bare_image(path: Path) -> Path:
    """The AMI case: one ext4 filesystem, fstab names /dev/sda1 (prepare makes it /dev/xvda)."""
    staging = path.parent / f"{path.name}.tree"
    staging.mkdir()
    try:
        copy_tree(debian_tree(), staging)
        (staging / "etc/fstab").write_text("/dev/sda1\t/\text4\terrors=remount-ro\t0\t1\n")
        run("truncate", "-s", f"{IMAGE_MIB}M", str(path))
        run("mkfs.ext4", "-q", "-F", "-L", "debian12", "-d", str(staging), str(path))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def partitioned_image(path: Path) -> Path:
    """An MBR disk, one ext4 partition from 1 MiB, grub 2 installed as the Debian installer leaves it."""
    run("truncate", "-s", f"{IMAGE_MIB + 2}M", str(path))
    run("sfdisk", "-q", str(path), input="label: dos\n2048,,83,*\n")
    device = run("losetup", "--find", "--show", "--partscan", str(path)).stdout.strip()
    mount_point = Path(tempfile.mkdtemp(prefix="debian12-disk-"))
    try:
        partition = partition_node(device)
        run("mkfs.ext4", "-q", "-F", "-L", "debian12", partition)
        run("mount", partition, str(mount_point))
        try:
            copy_tree(debian_tree(), mount_point)
            uuid = run("blkid", "-s", "UUID", "-o", "value", partition).stdout.strip()
            (mount_point / "etc/fstab").write_text(f"UUID={uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
            with chroot_mounts(mount_point), uuid_link(uuid, partition):
                run("chroot", str(mount_point), "grub-install", "--target=i386-pc", device)
                run("chroot", str(mount_point), "update-grub")
        finally:
            run("umount", str(mount_point))
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True)
        mount_point.rmdir()
    return path


@contextlib.contextmanager
def uuid_link(uuid: str, node: str) -> Iterator[None]:
    """/dev/disk/by-uuid/UUID, which udev would make: without it update-grub writes root=/dev/loopNpM."""
    link = Path("/dev/disk/by-uuid") / uuid
    made = not link.exists()
    if made:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(node)
    try:
        yield
    finally:
        if made:
            link.unlink(missing_ok=True)


def partition_node(device: str) -> str:
    node = f"{device}p1"
    if not Path(node).exists():
        subprocess.run(["partx", "--add", device], capture_output=True)
    for _ in range(100):
        if Path(node).exists():
            return node
        import time

        time.sleep(0.05)
    raise RuntimeError(f"{node} did not appear")


if __name__ == "__main__":  # build the cache ahead: python -m tests.debian_guest
    print(debian_tree())
