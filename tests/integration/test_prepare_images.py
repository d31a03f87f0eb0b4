"""``image prepare`` on real raw images: loop devices, mounts, partitions, chroot, signals, catalog.

Images are built with mkfs.ext4 -d (and sfdisk for the partitioned disk), prepared through the
CLI's loop-mount path, then inspected through a read-only loop device of the test's own. Each
test checks that no loop device still points at its images and that nothing is mounted under
its private TMPDIR (where the CLI makes its mount points). Other programs on this machine use
loop devices too: the tests only ever detach devices they attached themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.guests import (
    CENTOS_XEN_KERNEL,
    SECTOR,
    bare_image,
    centos5_tree,
    initrd_image,
    partitioned_image,
    ubuntu1004_tree,
    write,
)
from vdcmanage.prepare.firstboot import METADATA_CALL
from vdcmanage.prepare.initrd import initrd_members, missing_xen_modules

ROOT_PARTITION_OFFSET = (2048 + 8 * 1024 * 1024 // SECTOR) * SECTOR  # see guests.partitioned_image


def loop_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "loop devices and mounts need root"
    if subprocess.run(["losetup", "--find"], capture_output=True).returncode != 0:
        return "no free loop device"
    return None


@pytest.fixture(autouse=True)
def loop_capable() -> None:
    reason = loop_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def mount_dir(tmp_path: Path) -> Iterator[Path]:
    """The CLI's TMPDIR: its mount points are made here, so leftovers are ours to see."""
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    assert not mounts_under(path), "a mount was left behind"
    assert not [p for p in path.iterdir() if p.name.startswith("vdc-prepare-")], "a mount point was left behind"


@pytest.fixture
def cli(run_cli, mount_dir: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object):  # type: ignore[no-untyped-def]
        env = {"TMPDIR": str(mount_dir), **kwargs.pop("env", {})}  # type: ignore[dict-item]
        return run_cli(*args, env=env, **kwargs)

    return run


def mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(path) in line]


def loops_of(image: Path) -> list[str]:
    out = subprocess.run(["losetup", "--associated", str(image)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def assert_released(*images: Path) -> None:
    for image in images:
        assert loops_of(image) == [], f"a loop device still points at {image}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def read_only_view(image: Path, offset: int = 0) -> Iterator[Path]:
    """Mount the filesystem at ``offset`` read-only on a loop device of our own, for inspection."""
    device = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", "--offset", str(offset), str(image)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    mount_point = image.parent / f"view-{image.name}"
    mount_point.mkdir(exist_ok=True)
    try:
        subprocess.run(["mount", "-o", "ro", device, str(mount_point)], check=True, capture_output=True)
        try:
            yield mount_point
        finally:
            subprocess.run(["umount", str(mount_point)], check=True)
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
        mount_point.rmdir()


def statuses(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("xen-pv", "cloud"):
            rows[parts[0]] = "not applicable" if parts[2] == "not" else parts[2]
    return rows


# -- the AMI case: a bare ext4 filesystem ---------------------------------------------------


def test_bare_centos_ami_check_dry_run_prepare_check_again(cli, tmp_path: Path) -> None:
    tree = centos5_tree(tmp_path / "tree", with_busybox=True)
    image = bare_image(tree, tmp_path / "centos5.img")
    pristine = sha256(image)

    check = cli("image", "prepare", str(image), "--for", "all", "--check")
    assert check.code == 1, check.err
    assert "(a bare filesystem image)" in check.out
    assert statuses(check.out)["initrd"] == "needed"
    dry = cli("image", "prepare", str(image), "--for", "all", "--dry-run", "--rebuild-initrd")
    assert dry.code == 0, dry.err
    assert "+/dev/xvda " in dry.out and "would remove etc/ssh/ssh_host_rsa_key" in dry.out
    assert "would rebuild /boot/initrd-2.6.18-194.el5xen.img with the guest's mkinitrd in a chroot" in dry.out
    assert sha256(image) == pristine  # --check and --dry-run use a read-only loop device

    result = cli("image", "prepare", str(image), "--for", "all", "--rebuild-initrd", "--nameserver", "192.0.2.53")
    assert result.code == 0, result.out + result.err
    assert "initrd: changed" in result.out
    assert_released(image)

    after = cli("image", "prepare", str(image), "--for", "all", "--check")
    assert after.code == 0, after.out
    assert set(statuses(after.out).values()) <= {"done", "not applicable"}
    prepared = sha256(image)
    again = cli("image", "prepare", str(image), "--for", "all", "--rebuild-initrd", "--nameserver", "192.0.2.53")
    assert again.code == 0 and "Prepared: 0 step(s) changed the guest; ready" in again.out
    assert sha256(image) == prepared  # nothing needed: never even mounted read-write

    with read_only_view(image) as root:
        grub = (root / "boot/grub/grub.conf").read_text()
        assert f"kernel /boot/vmlinuz-{CENTOS_XEN_KERNEL} ro root=/dev/xvda\n" in grub and "root (hd0,0)" in grub
        assert (root / "etc/fstab").read_text().splitlines()[0].split()[0] == "/dev/xvda"
        initrd = root / f"boot/initrd-{CENTOS_XEN_KERNEL}.img"
        assert missing_xen_modules(initrd_members(initrd.read_bytes()) or []) == []
        backup = root / f"boot/initrd-{CENTOS_XEN_KERNEL}.img.bak"
        assert backup.read_bytes() == initrd_image(["ehci-hcd", "ext3", "jbd"])  # the original, kept
        args = (root / "tmp/mkinitrd.args").read_text().split()
        assert args == ["-f", "--with=xennet", "--preload=xenblk", "--omit-scsi-modules",
                        f"/boot/initrd-{CENTOS_XEN_KERNEL}.img", CENTOS_XEN_KERNEL]  # fmt: skip
        assert "nameserver 192.0.2.53" in (root / "etc/resolv.conf").read_text()
        assert os.readlink(root / "etc/udev/rules.d/70-persistent-net.rules") == "/dev/null"
        assert not [p for p in (root / "etc/ssh").iterdir() if p.name.startswith("ssh_host")]
        assert not list((root / "var/log").rglob("*.gz"))
        assert METADATA_CALL in (root / "etc/rc.d/rc.local").read_text()
        assert not (root / "proc/self").exists()  # the chroot's /proc lived in its own namespace


def test_initrd_that_cannot_be_rebuilt_here_is_reported_with_instructions(cli, tmp_path: Path) -> None:
    image = bare_image(centos5_tree(tmp_path / "tree"), tmp_path / "centos5.img")  # guest mkinitrd for aarch64
    result = cli("image", "prepare", str(image), "--for", "xen-pv", "--rebuild-initrd")
    assert result.code == 1, result.err
    assert "ACTION NEEDED (initrd): cannot rebuild here: the guest's programs are for aarch64" in result.out
    assert "'/sbin/mkinitrd -f --with=xennet --preload=xenblk --omit-scsi-modules " in result.out
    assert "grub: changed" in result.out  # everything else was done
    with read_only_view(image) as root:
        assert not (root / f"boot/initrd-{CENTOS_XEN_KERNEL}.img.bak").exists()
    assert_released(image)


# -- a partitioned disk ---------------------------------------------------------------------


def test_partitioned_ubuntu_disk_for_the_cloud(cli, tmp_path: Path) -> None:
    image = partitioned_image(ubuntu1004_tree(tmp_path / "tree"), tmp_path / "ubuntu.img")
    check = cli("image", "prepare", str(image), "--for", "cloud", "--check")
    assert check.code == 1
    assert "(partition 2 of a partitioned disk)" in check.out
    result = cli("image", "prepare", str(image), "--for", "cloud")
    assert result.code == 0, result.out + result.err
    assert cli("image", "prepare", str(image), "--for", "cloud", "--check").code == 0
    assert_released(image)
    with read_only_view(image, ROOT_PARTITION_OFFSET) as root:
        assert (root / "etc/rc.local").read_text().endswith(f"{METADATA_CALL}\nexit 0\n")
        assert os.access(root / "usr/local/sbin/vdc-metadata", os.X_OK)
        assert (root / "etc/modules").read_text().splitlines()[-1] == "acpiphp"
        assert os.readlink(root / "etc/udev/rules.d/70-persistent-net.rules") == "/dev/null"
        assert not list((root / "etc/ssh").glob("ssh_host*"))
        assert (root / "var/log/syslog").stat().st_size == 0
    with read_only_view(image, 2048 * SECTOR) as data:
        assert (data / "README").read_text() == "a data partition, not a root\n"  # left alone


def test_partitioned_centos_disk_for_xen_uses_the_partition(cli, tmp_path: Path) -> None:
    tree = centos5_tree(tmp_path / "tree", root_device="/dev/sda2")
    image = partitioned_image(tree, tmp_path / "centos5-disk.img")
    before = cli("image", "prepare", str(image), "--for", "xen-pv", "--check")
    assert before.code == 1 and "(partition 2 of a partitioned disk)" in before.out
    result = cli("image", "prepare", str(image), "--for", "xen-pv", "--skip", "initrd")
    assert result.code == 0, result.out + result.err
    after = cli("image", "prepare", str(image), "--for", "xen-pv", "--check")
    assert after.code == 1  # the initrd still lacks the Xen drivers: the only step left
    assert [step for step, status in statuses(after.out).items() if status == "needed"] == ["initrd"]
    with read_only_view(image, ROOT_PARTITION_OFFSET) as root:
        grub = (root / "boot/grub/grub.conf").read_text()
        assert "\troot (hd0,1)\n" in grub and "ro root=/dev/xvda2\n" in grub
        assert (root / "etc/fstab").read_text().splitlines()[0].split()[0] == "/dev/xvda2"
    assert_released(image)


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("qcow2", "qcow2"), ("vpc", "vhd")])
def test_qcow2_and_vhd_are_refused_with_the_conversion(cli, tmp_path: Path, fmt: str, name: str) -> None:
    image = tmp_path / "guest.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(image), "64M"], check=True)
    result = cli("image", "prepare", str(image), "--for", "cloud")
    assert result.code == 100
    assert f"is a {name} image; prepare works on raw images only" in result.err
    assert f"qemu-img convert -O raw {image} {tmp_path / 'guest.raw'}" in result.err
    assert_released(image)


def test_images_without_a_root_are_refused(cli, tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.img"
    subprocess.run(["truncate", "-s", "32M", str(zeros)], check=True)
    empty_tree = tmp_path / "empty"
    write(empty_tree, "home/user/notes.txt", "no system here\n")
    not_root = bare_image(empty_tree, tmp_path / "data.img", 16)
    no_root_disk = partitioned_image(empty_tree, tmp_path / "disk.img", root_mib=16)
    swap = tmp_path / "swap.img"
    subprocess.run(["truncate", "-s", "16M", str(swap)], check=True)
    subprocess.run(["mkswap", "-q", str(swap)], check=True, capture_output=True)

    cases = {
        zeros: "holds neither a filesystem nor a partition table",
        not_root: "is a bare ext4 filesystem without etc/fstab: not a Linux root",
        no_root_disk: "No Linux root (a filesystem with etc/fstab) among the partitions",
        swap: "is a bare swap volume",
    }
    for image, message in cases.items():
        before = sha256(image)
        result = cli("image", "prepare", str(image), "--for", "cloud")
        assert result.code == 100, (image, result.err)
        assert message in result.err
        assert sha256(image) == before
    assert (
        "1: ext4 without etc/fstab; 2: ext4 without etc/fstab"
        in cli("image", "prepare", str(no_root_disk), "--for", "cloud", "--check").err
    )
    assert_released(*cases)


def test_an_image_attached_elsewhere_is_refused(cli, tmp_path: Path) -> None:
    image = bare_image(ubuntu1004_tree(tmp_path / "tree"), tmp_path / "busy.img")
    device = subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    try:
        result = cli("image", "prepare", str(image), "--for", "cloud")
        assert result.code == 100
        assert f"is already attached to {device}" in result.err
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
    assert_released(image)


def test_symlinked_fstab_in_an_image_never_reaches_the_hosts(cli, tmp_path: Path) -> None:
    host_before = sha256(Path("/etc/fstab"))
    tree = centos5_tree(tmp_path / "tree")
    (tree / "etc/fstab").unlink()
    os.symlink("/etc/fstab", tree / "etc/fstab")
    image = bare_image(tree, tmp_path / "evil.img")
    before = sha256(image)
    result = cli("image", "prepare", str(image), "--for", "all")
    assert result.code == 100
    assert "etc/fstab: too many levels of symbolic links inside the guest" in result.err
    assert sha256(image) == before
    assert sha256(Path("/etc/fstab")) == host_before
    assert_released(image)


# -- interruptions --------------------------------------------------------------------------


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def processes_rooted_under(path: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/root").startswith(str(path)):
                    found.append(int(entry))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stopping_a_run_leaves_no_mount_loop_device_or_process(
    sqlite_url: str, mount_dir: Path, tmp_path: Path, signum: int
) -> None:
    tree = centos5_tree(tmp_path / "tree", with_busybox=True)
    write(tree, "tmp/mkinitrd.sleep", "60\n")  # the guest's mkinitrd waits: we stop it meanwhile
    image = bare_image(tree, tmp_path / "centos5.img")
    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url, "TMPDIR": str(mount_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdcmanage", "image", "prepare", str(image), "--for", "xen-pv", "--rebuild-initrd"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a command in a terminal
    )  # fmt: skip
    try:
        wait_for(lambda: any(mount_dir.glob("vdc-prepare-*/tmp/mkinitrd.started")), 30, "mkinitrd to start")
        os.killpg(proc.pid, signum)  # what the terminal does on Ctrl-C, or a service manager / closed SSH session
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert ("Interrupted" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}") in err
    assert_released(image)
    assert not mounts_under(tmp_path)
    assert processes_rooted_under(mount_dir) == []
    with read_only_view(image) as root:
        initrd = (root / f"boot/initrd-{CENTOS_XEN_KERNEL}.img").read_bytes()
        assert initrd == initrd_image(["ehci-hcd", "ext3", "jbd"])  # the old initrd is back


# -- registered images ------------------------------------------------------------------------


def register(sqlite_url: str, image_id: str, path: Path, file_format: str = "raw") -> None:
    from vdcmanage.catalog.db import close_catalog, open_catalog, transaction
    from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Account, Image

    open_catalog(sqlite_url)
    try:
        with transaction(write=True):
            Account.get_or_create(id=SHARED_ACCOUNT_ID)
            Image.create(
                id=image_id, account=SHARED_ACCOUNT_ID, source_uri="file://" + quote(str(path)), arch="x86_64",
                state="available", display_name=image_id.upper(), file_format=file_format,
                size=path.stat().st_size, virtual_size=path.stat().st_size,
                md5=hashlib.md5(path.read_bytes()).hexdigest(), sha256=sha256(path),
            )  # fmt: skip
    finally:
        close_catalog()


def catalog_state(sqlite_url: str, image_id: str) -> tuple[str, str, list[tuple[str, str]]]:
    from vdcmanage.catalog.db import close_catalog, open_catalog
    from vdcmanage.catalog.models import Image, ImagePreparation

    open_catalog(sqlite_url)
    try:
        image = Image.get_by_id(image_id)
        rows = [(r.step, r.purpose) for r in ImagePreparation.select().where(ImagePreparation.image == image_id)]
        return image.md5, image.sha256, sorted(rows)
    finally:
        close_catalog()


def test_registered_image_gets_its_steps_and_new_checksums_recorded(cli, sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "images with space"
    folder.mkdir()
    image = bare_image(ubuntu1004_tree(tmp_path / "tree"), folder / "ubuntu 10.04.raw")
    register(sqlite_url, "wmi-lucid0", image)

    assert cli("image", "prepare", "wmi-lucid0", "--for", "cloud", "--check").code == 1
    result = cli("image", "prepare", "WMI-LUCID0", "--for", "cloud")  # by display name
    assert result.code == 0, result.out + result.err
    assert "Catalog: recorded the steps done on wmi-lucid0 and its new md5/sha256" in result.out
    md5, digest, rows = catalog_state(sqlite_url, "wmi-lucid0")
    assert (md5, digest) == (hashlib.md5(image.read_bytes()).hexdigest(), sha256(image))
    assert rows == sorted([(s, "cloud") for s in ("mac", "ssh-host-keys", "acpiphp", "logs", "metadata")])

    by_path = cli("image", "prepare", str(image), "--for", "all", "--kernel", "2.6.32-38-server")
    assert by_path.code == 0, by_path.out + by_path.err
    assert "recorded the steps done on wmi-lucid0" in by_path.out  # the file is that image's source
    md5, digest, rows = catalog_state(sqlite_url, "wmi-lucid0")
    assert digest == sha256(image)
    assert ("grub", "xen-pv") in rows and ("fstab", "xen-pv") in rows

    unchanged = cli("image", "prepare", "wmi-lucid0", "--for", "all", "--kernel", "2.6.32-38-server")
    assert unchanged.code == 0 and "Catalog:" not in unchanged.out
    assert catalog_state(sqlite_url, "wmi-lucid0")[2] == rows
    assert_released(image)
    shown = json.loads(cli("image", "show", "wmi-lucid0", "-f", "json").out)
    assert sorted((p["step"], p["purpose"]) for p in shown["preparations"]) == rows
    assert shown["md5"] == md5 and "Prepared:" in cli("image", "show", "wmi-lucid0").out


def test_registered_qcow2_is_refused(cli, sqlite_url: str, tmp_path: Path) -> None:
    image = tmp_path / "centos.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    register(sqlite_url, "wmi-qcow0001", image, file_format="qcow2")
    result = cli("image", "prepare", "wmi-qcow0001", "--for", "cloud")
    assert result.code == 100
    assert "is a qcow2 image; prepare works on raw images only. Convert it first: qemu-img convert -O raw" in result.err


def test_a_raw_image_needs_root(tmp_path: Path) -> None:
    """As an ordinary user: refused with what to do instead, before any loop device is tried."""
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="vdc-prepare-test-"))  # tmp_path is private to root
    try:
        shared.chmod(0o755)
        image = bare_image(ubuntu1004_tree(tmp_path / "tree"), shared / "ubuntu.img")
        image.chmod(0o644)
        env = {"PATH": os.environ["PATH"], "HOME": str(shared), "VDC_MANAGE_DB": f"sqlite://{shared}/catalog.db"}
        result = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             sys.executable, "-m", "vdcmanage", "image", "prepare", str(image), "--for", "cloud", "--check"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 100, result.stderr
        assert "needs root (loop devices and mounts)" in result.stderr
        assert_released(image)
    finally:
        shutil.rmtree(shared)
