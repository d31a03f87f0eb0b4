"""What pygrub would boot from an image, and the same boot as qemu can run it.

Read from the image mounted read-only: the boot loader configuration pygrub reads first, its
default entry's kernel and initrd (copied out for qemu's ``-kernel``/``-initrd``) and command
line, the SSH host keys the image carries (an instance must not present one of them), and the
fstab entries that name Xen disks other than the root.

Under qemu the disk is virtio (``vda``), not Xen's ``xvda``: a ``root=/dev/xvdXN`` on the command
line becomes ``/dev/vdXN``; ``root=UUID=`` and ``LABEL=`` are left as they are. qemu's serial port
is added as the last console (``console=ttyS0``) so the boot can be watched; the guest's own
``console=hvc0`` stays and reaches qemu's virtio console.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vdcmanage.errors import Refused
from vdcmanage.prepare import bootconf
from vdcmanage.prepare.root import GuestRoot

XEN_DISK = re.compile(r"^/dev/xvd([a-z])(\d*)$")
WATCH_ARGS = ("console=ttyS0,115200", "loglevel=7", "systemd.show_status=true")


@dataclass
class BootPlan:
    config: str  # the boot loader file pygrub reads: boot/grub/grub.cfg
    entry: str  # the default entry's title
    kernel: str  # guest path
    initrd: str | None
    cmdline: str  # as pygrub hands it to Xen
    qemu_cmdline: str = ""
    rewrites: list[str] = field(default_factory=list)  # what changed for qemu, in words
    host_keys: dict[str, str] = field(default_factory=dict)  # fingerprint -> file, in the image
    warnings: list[str] = field(default_factory=list)
    kernel_file: Path | None = None  # copies made for qemu
    initrd_file: Path | None = None


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def image_host_keys(root: GuestRoot) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name in root.listdir("etc/ssh"):
        if name.startswith("ssh_host_") and name.endswith(".pub"):
            fields = (root.read_text(f"etc/ssh/{name}") or "").split()
            if len(fields) >= 2:
                try:
                    keys[fingerprint(base64.b64decode(fields[1]))] = f"/etc/ssh/{name}"
                except ValueError:
                    continue
    return keys


def qemu_device(device: str) -> str:
    match = XEN_DISK.match(device)
    return f"/dev/vd{match.group(1)}{match.group(2)}" if match else device


def for_qemu(args: list[str]) -> tuple[str, list[str]]:
    """The command line qemu boots with, and what was changed, in words."""
    out: list[str] = []
    rewrites: list[str] = []
    for arg in args:
        if arg.startswith("root=") and XEN_DISK.match(arg[5:]):
            new = f"root={qemu_device(arg[5:])}"
            rewrites.append(f"{arg} -> {new} (qemu's disk is virtio, not Xen's)")
            arg = new
        out.append(arg)
    out += WATCH_ARGS
    rewrites.append(f"added {' '.join(WATCH_ARGS)} (to watch the boot on the serial console)")
    return " ".join(out), rewrites


def fstab_warnings(root: GuestRoot) -> list[str]:
    warnings = []
    for line in (root.read_text("etc/fstab") or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and not fields[0].startswith("#") and fields[1] != "/" and XEN_DISK.match(fields[0]):
            wait = "" if "nofail" in fields[3].split(",") else " (without nofail the boot waits for it)"
            warnings.append(f"fstab mounts {fields[0]} on {fields[1]}: no such disk in this check{wait}")
    return warnings


def read_boot_plan(root: GuestRoot, workdir: Path) -> BootPlan:
    """Read everything the boot needs from the mounted image; copy the kernel and initrd out."""
    config = bootconf.read_boot_config(root)
    if config is None:
        raise Refused(
            "The image has no boot loader configuration pygrub would read (boot/grub/grub.cfg, "
            "boot/grub/menu.lst, boot/grub/grub.conf): run 'vdc-manage image prepare TARGET --for xen-pv' first"
        )
    entry = config.default
    if entry is None or entry.kernel is None:
        raise Refused(f"{config.path}: {config.describe_default()}, or it boots no kernel: nothing pygrub could boot")
    kernel = bootconf.guest_file(root, entry.kernel)
    if kernel is None:
        raise Refused(f"{config.path}: the default entry's kernel {entry.kernel} is not in the image")
    initrd = bootconf.guest_file(root, entry.initrd) if entry.initrd else None
    if entry.initrd and initrd is None:
        raise Refused(f"{config.path}: the default entry's initrd {entry.initrd} is not in the image")
    plan = BootPlan(config.path, entry.title, kernel, initrd, entry.cmdline)
    plan.qemu_cmdline, plan.rewrites = for_qemu(entry.args)
    plan.kernel_file = copy_out(root, kernel, workdir / "kernel")
    plan.initrd_file = copy_out(root, initrd, workdir / "initrd") if initrd else None
    plan.host_keys = image_host_keys(root)
    plan.warnings = fstab_warnings(root)
    return plan


def copy_out(root: GuestRoot, guest_path: str, target: Path) -> Path:
    with root.host_path(guest_path).open("rb") as source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return target
