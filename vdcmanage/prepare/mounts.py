"""Raw image -> loop device -> mounted guest root, and back, whatever happens in between.

A :class:`LoopSession` remembers every loop device it attached and every directory it mounted,
and :meth:`LoopSession.close` undoes them in reverse order: on success, on error, on Ctrl-C, on
SIGTERM/SIGHUP (see :mod:`signals`). It only ever detaches devices it attached itself, and checks
that a device still points at its image before detaching it (other programs on this machine use
loop devices too).

A raw file is either a bare filesystem (the usual AMI: the whole file is the root filesystem) or
a partitioned disk, whose partitions come from ``losetup --partscan``. Some kernels, this test
machine's among them, do not scan partitions on attach; ``partx --add`` then reads the table
and adds them. The root is the partition holding ``etc/fstab``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.errors import InUse, InvalidImage, VdcError
from vdcmanage.prepare.root import GuestRoot, is_linux_root
from vdcmanage.prepare.signals import signals_held, stop_signals_raise
from vdcmanage.prepare.steps import Layout

MOUNT_PREFIX = "vdc-prepare-"
NOT_ROOT_TYPES = {"swap", "LVM2_member", "linux_raid_member", "crypto_LUKS"}
UMOUNT_ATTEMPTS = 20  # a process that just died in the chroot may hold the mount for a moment
RETRY_DELAY_S = 0.25
DEVICE_WAIT_S = 5.0
JOURNAL_SKIP = {"ext3": "noload", "ext4": "noload", "xfs": "norecovery"}
UNREPLAYED_NOTE = "its journal needs recovery: read as last written, without replaying it"


class MountError(VdcError):
    """A loop device or mount operation failed."""


class NoRootFound(InvalidImage):
    """The image holds no Linux root (no filesystem with etc/fstab)."""


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)


def tool_message(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or proc.stdout or "").strip()
    return text.splitlines()[-1] if text else f"exit {proc.returncode}"


def attached_devices(image: Path) -> list[str]:
    """Loop devices already backed by this file (by anyone)."""
    proc = run_tool(["losetup", "--associated", str(image)])
    return [line.split(":", 1)[0] for line in proc.stdout.splitlines() if line.strip()]


def backing_file(device: str) -> str | None:
    try:
        return Path(f"/sys/block/{os.path.basename(device)}/loop/backing_file").read_text().strip()
    except OSError:
        return None


def probe(device: str) -> dict[str, str]:
    """blkid's low-level probe: TYPE for a filesystem, PTTYPE for a partition table."""
    proc = run_tool(["blkid", "--probe", "--output", "export", device])
    pairs = (line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


class LoopSession:
    """The loop devices and mounts of one run; :meth:`close` undoes all of them."""

    def __init__(self) -> None:
        self.devices: list[tuple[str, str]] = []  # (device, real path of its image)
        self.mounts: list[Path] = []
        self.dirs: list[Path] = []
        self.unreplayed: set[Path] = set()  # mounted without replaying their journal

    def attach(self, image: Path, *, read_only: bool) -> str:
        argv = ["losetup", "--find", "--show", "--partscan", *(["--read-only"] if read_only else []), str(image)]
        with signals_held():  # no Ctrl-C between the attach and our note of the device
            proc = run_tool(argv)
            device = proc.stdout.strip()
            if proc.returncode == 0 and device:
                self.devices.append((device, os.path.realpath(image)))
        if proc.returncode != 0 or not device:
            raise MountError(f"Cannot attach {image} to a loop device: {tool_message(proc)}")
        return device

    def partitions(self, device: str) -> list[tuple[int, str]]:
        """(number, device) of each partition of an attached disk."""
        found = listed_partitions(device)
        if not found:
            with signals_held():
                proc = run_tool(["partx", "--add", device])
            if proc.returncode != 0:
                raise MountError(f"Cannot read the partition table of {device}: {tool_message(proc)}")
            found = listed_partitions(device)
        wait_for_nodes([node for _n, node in found])
        return found

    def mount(self, device: str, fs_type: str | None = None) -> Path:
        """Mount read-only (a clean filesystem mounted so is not written at all).

        A journal that needs recovery cannot be replayed on a read-only loop device (``--check``,
        ``--dry-run``): the filesystem is then read without replaying it (``noload`` for ext3/4,
        ``norecovery`` for XFS), as it was when last written, and :attr:`unreplayed` says so.
        """
        mount_point = Path(tempfile.mkdtemp(prefix=MOUNT_PREFIX))
        self.dirs.append(mount_point)
        proc = self.try_mount(device, mount_point, "ro,nosuid,nodev")
        skip_journal = JOURNAL_SKIP.get(fs_type or "")
        if proc.returncode != 0 and skip_journal and self.read_only(device):
            retry = self.try_mount(device, mount_point, f"ro,{skip_journal},nosuid,nodev")
            if retry.returncode == 0:
                self.unreplayed.add(mount_point)
                return mount_point
        if proc.returncode != 0:
            raise MountError(f"Cannot mount {device}: {tool_message(proc)}")
        return mount_point

    def try_mount(self, device: str, mount_point: Path, options: str) -> subprocess.CompletedProcess[str]:
        with signals_held():
            proc = run_tool(["mount", "-o", options, device, str(mount_point)])
            if proc.returncode == 0:
                self.mounts.append(mount_point)
        return proc

    def read_only(self, device: str) -> bool:
        name = os.path.basename(device)
        disk = re.sub(r"^(loop\d+)p\d+$", r"\1", name)  # a partition is read-only when its disk is
        try:
            return Path(f"/sys/block/{disk}/ro").read_text().strip() == "1"
        except OSError:
            return False

    def remount_read_only(self, mount_point: Path) -> None:
        subprocess.run(["sync", "-f", str(mount_point)], check=False, capture_output=True)
        proc = run_tool(["mount", "-o", "remount,ro,nosuid,nodev", str(mount_point)])
        if proc.returncode != 0:
            raise MountError(f"Cannot remount {mount_point} read-only: {tool_message(proc)}")

    def remount_writable(self, mount_point: Path) -> None:
        proc = run_tool(["mount", "-o", "remount,rw,nosuid,nodev", str(mount_point)])
        if proc.returncode != 0:
            raise MountError(f"Cannot remount {mount_point} read-write: {tool_message(proc)}")

    def unmount(self, mount_point: Path) -> None:
        with signals_held():
            unmount_with_retries(mount_point)
            self.mounts.remove(mount_point)
            remove_dir(mount_point)
            self.dirs.remove(mount_point)

    def close(self) -> None:
        """Unmount, detach and remove everything, in reverse order; raise listing what is left."""
        problems: list[str] = []
        with signals_held():
            for mount_point in reversed(self.mounts):
                try:
                    unmount_with_retries(mount_point)
                except MountError as exc:
                    problems.append(f"{exc} (run: umount {mount_point})")
            self.mounts.clear()
            for device, image in reversed(self.devices):
                problem = detach(device, image)
                if problem:
                    problems.append(problem)
            self.devices.clear()
            for directory in self.dirs:
                remove_dir(directory)
            self.dirs.clear()
        if problems:
            raise MountError("Clean-up incomplete: " + "; ".join(problems))


def listed_partitions(device: str) -> list[tuple[int, str]]:
    name = os.path.basename(device)
    try:
        entries = os.listdir(f"/sys/block/{name}")
    except OSError:
        return []
    prefix = f"{name}p"
    numbers = sorted(int(e[len(prefix) :]) for e in entries if e.startswith(prefix) and e[len(prefix) :].isdigit())
    return [(n, f"/dev/{prefix}{n}") for n in numbers]


def wait_for_nodes(nodes: list[str]) -> None:
    deadline = time.monotonic() + DEVICE_WAIT_S
    while not all(os.path.exists(node) for node in nodes):
        if time.monotonic() > deadline:
            missing = ", ".join(node for node in nodes if not os.path.exists(node))
            raise MountError(f"Partition devices did not appear: {missing}")
        time.sleep(0.05)


def unmount_with_retries(mount_point: Path) -> None:
    for attempt in range(UMOUNT_ATTEMPTS):
        proc = run_tool(["umount", str(mount_point)])
        if proc.returncode == 0 or not os.path.ismount(mount_point):
            return
        if attempt + 1 < UMOUNT_ATTEMPTS:
            time.sleep(RETRY_DELAY_S)
    raise MountError(f"Cannot unmount {mount_point}: {tool_message(proc)}")


def detach(device: str, image: str) -> str | None:
    """Detach one of our devices; a problem to report, or None."""
    current = backing_file(device)
    if current is None:
        return None  # already gone
    if os.path.realpath(current) != image:
        return None  # detached meanwhile and reused by someone else: not ours any more
    for attempt in range(UMOUNT_ATTEMPTS):
        proc = run_tool(["losetup", "--detach", device])
        if proc.returncode == 0 or backing_file(device) is None:
            return None
        if attempt + 1 < UMOUNT_ATTEMPTS:
            time.sleep(RETRY_DELAY_S)
    return f"cannot detach {device}: {tool_message(proc)} (run: losetup -d {device})"


def remove_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        if not os.path.ismount(directory):
            directory.rmdir()


@dataclass(frozen=True)
class MountedRoot:
    """The guest root, mounted read-only; :meth:`make_writable` remounts it read-write."""

    path: Path
    layout: Layout
    device: str
    session: LoopSession

    def make_writable(self) -> None:
        self.session.remount_writable(self.path)

    def zero_free(self) -> str:
        """Discard the filesystem's free blocks so nothing deleted can be read back from the file.

        ``fstrim`` through the loop device punches holes in the image file (it also gets sparser,
        and compresses smaller); where discard is not supported, ``zerofree`` (ext2/3/4) writes
        zeros over the free blocks of the filesystem remounted read-only.
        """
        self.make_writable()
        proc = run_tool(["fstrim", "--verbose", str(self.path)])
        if proc.returncode == 0:
            trimmed = proc.stdout.strip().split(": ", 1)[-1]
            return f"fstrim discarded the free blocks ({trimmed})"
        why = tool_message(proc)
        self.session.remount_read_only(self.path)
        zeroed = run_tool(["zerofree", self.device])
        if zeroed.returncode != 0:
            raise VdcError(
                f"Cannot clear the free blocks of {self.device}: fstrim: {why}; zerofree: {tool_message(zeroed)}"
            )
        return f"zerofree wrote zeros over the free blocks (fstrim: {why})"


@contextlib.contextmanager
def mounted_image_root(image: Path, *, writable: bool) -> Iterator[MountedRoot]:
    """Mount the Linux root inside a raw image; everything is undone when the block ends.

    The root is mounted read-only even when ``writable``: a run that finds every step done never
    mounts read-write, so the file keeps its exact bytes (and a registered image its checksums).
    Without ``writable`` the loop device itself is read-only: nothing can write to the file.
    """
    busy = attached_devices(image)
    if busy:
        raise InUse(
            f"{image} is already attached to {', '.join(busy)}: detach it first (losetup -d), "
            "or prepare the directory where it is mounted"
        )
    session = LoopSession()
    with stop_signals_raise():
        try:
            yield find_root(session, image, writable=writable)
        except BaseException as exc:
            close_after_error(session, exc)
            raise
        session.close()


def close_after_error(session: LoopSession, exc: BaseException) -> None:
    try:
        session.close()
    except MountError as cleanup_error:
        raise cleanup_error from exc


def find_root(session: LoopSession, image: Path, *, writable: bool) -> MountedRoot:
    device = session.attach(image, read_only=not writable)
    info = probe(device)
    fs_type = info.get("TYPE")
    if fs_type:
        if fs_type in NOT_ROOT_TYPES:
            raise NoRootFound(f"{image} is a bare {fs_type} volume, not a Linux root filesystem")
        mount_point = session.mount(device, fs_type)
        if is_linux_root(GuestRoot(mount_point)):
            note = UNREPLAYED_NOTE if mount_point in session.unreplayed else None
            return MountedRoot(mount_point, Layout("filesystem", uuid=info.get("UUID"), note=note), device, session)
        raise NoRootFound(f"{image} is a bare {fs_type} filesystem without etc/fstab: not a Linux root")
    if info.get("PTTYPE"):
        return find_root_partition(session, image, device)
    raise NoRootFound(f"{image} holds neither a filesystem nor a partition table: no Linux root to prepare")


def find_root_partition(session: LoopSession, image: Path, device: str) -> MountedRoot:
    looked: list[str] = []
    for number, node in session.partitions(device):
        info = probe(node)
        fs_type = info.get("TYPE")
        if not fs_type or fs_type in NOT_ROOT_TYPES:
            looked.append(f"{number}: {fs_type or 'no filesystem'}")
            continue
        try:
            mount_point = session.mount(node, fs_type)
        except MountError:
            looked.append(f"{number}: {fs_type} that does not mount")
            continue
        if is_linux_root(GuestRoot(mount_point)):
            note = UNREPLAYED_NOTE if mount_point in session.unreplayed else None
            return MountedRoot(mount_point, Layout("partition", number, info.get("UUID"), note), node, session)
        session.unmount(mount_point)
        looked.append(f"{number}: {fs_type} without etc/fstab")
    listing = "; ".join(looked) or "no partitions"
    raise NoRootFound(f"No Linux root (a filesystem with etc/fstab) among the partitions of {image}: {listing}")
