"""The ``grub`` step: what pygrub will boot, and the kernel every Xen step works on.

- A guest with grub 2 (``boot/grub/grub.cfg``, which pygrub reads before any legacy file) boots
  what its default entry says: the step checks and reports that entry's kernel, initrd and root
  device, renames a SCSI/virtio root device (``root=/dev/sda1``) to its Xen name, and puts
  ``console=hvc0`` on the command line of pv-ops kernels (in grub.cfg and in etc/default/grub, so
  a later update-grub in the guest keeps it). It never writes a legacy file beside it.
- Other guests get ``boot/grub/grub.conf`` (or the ``menu.lst`` pygrub would read first) written
  for the Xen kernel, as the CloudStack procedure does.

The kernel is the one ``--kernel`` names; else the one the boot configuration already boots (a
grub 2 default entry, or a grub.conf this step wrote, which is how an earlier ``--kernel`` is
remembered); else the only Xen-capable kernel of the guest.
"""

from __future__ import annotations

import posixpath
import re

from vdcmanage.prepare import bootconf
from vdcmanage.prepare.bootconf import BootConfig, Entry
from vdcmanage.prepare.changes import Change, MakeDirs, WriteFile
from vdcmanage.prepare.kernels import Kernel, find_xen_kernel, is_pv_ops, list_kernels
from vdcmanage.prepare.root import encode_text
from vdcmanage.prepare.steps import Context, Plan, Step, done, needed

PURPOSE = "xen-pv"
GRUB_CONF = "boot/grub/grub.conf"
DEFAULT_GRUB = "etc/default/grub"
PV_CONSOLE = "console=hvc0"
DISK_DEVICE = re.compile(r"^/dev/(?:sd|hd|vd)([a-z])(\d*)$")  # SCSI, IDE and virtio names: not there under Xen
BUILD_HOST_DEVICE = re.compile(r"^/dev/(loop\d+|nbd\d+|mapper/loop\d+)")  # a chroot's update-grub writes these
ROOT_ARG = re.compile(r"(?<=\sroot=)(/dev/(?:sd|hd|vd)[a-z]\d*)(?=\s|$)")
CMDLINE_LINUX = re.compile(r"^(\s*GRUB_CMDLINE_LINUX=)([\"']?)(.*?)\2\s*$")


def xen_device(device: str, device_layout: str) -> str:
    """The Xen PV name of a disk device; the AMI's sda1 is the whole xvda disk."""
    match = DISK_DEVICE.match(device)
    if not match:
        return device
    letter, number = match.groups()
    if device_layout != "partition" and letter == "a" and number == "1":
        return "/dev/xvda"
    return f"/dev/xvd{letter}{number}"


def boot_config(ctx: Context) -> BootConfig | None:
    if "boot_config" not in ctx.cache:
        ctx.cache["boot_config"] = bootconf.read_boot_config(ctx.root)
    config: BootConfig | None = ctx.cache["boot_config"]
    return config


def remembered_kernel(ctx: Context) -> Kernel | None:
    """The complete kernel the guest's boot configuration boots, when it is grub 2's or ours."""
    config = boot_config(ctx)
    if config is None or config.default is None or not (config.kind == "grub2" or config.written_by_us):
        return None
    version = config.default.version()
    return next((k for k in list_kernels(ctx.root) if k.version == version and k.complete), None)


def xen_kernel(ctx: Context) -> Kernel:
    if "kernel" not in ctx.cache:
        wanted = ctx.options.kernel
        chosen = find_xen_kernel(ctx.root, wanted) if wanted else remembered_kernel(ctx)
        ctx.cache["kernel"] = chosen or find_xen_kernel(ctx.root)
    kernel: Kernel = ctx.cache["kernel"]
    return kernel


class GrubStep(Step):
    name = "grub"
    purpose = PURPOSE
    title = (
        "what pygrub boots: grub 2's grub.cfg checked (default entry, root device, console=hvc0 for pv-ops "
        "kernels), else boot/grub/grub.conf written for the Xen kernel on xvda"
    )

    def plan(self, ctx: Context) -> Plan:
        config = boot_config(ctx)
        if config is not None and config.kind == "grub2":
            return Grub2Check(ctx, config).plan()
        return self.plan_legacy(ctx, config)

    def plan_legacy(self, ctx: Context, config: BootConfig | None) -> Plan:
        kernel = xen_kernel(ctx)
        wanted = encode_text(self.grub_conf(ctx, kernel))
        target = config.path if config is not None else GRUB_CONF
        current = ctx.root.read_bytes(target)
        if current == wanted:
            console = f" with {PV_CONSOLE}" if is_pv_ops(kernel.version) else ""
            return done(f"{target} boots {kernel.version}{console}")
        path = ctx.root.resolve(target)
        changes: list[Change] = [] if ctx.root.is_dir(posixpath.dirname(path)) else [MakeDirs(posixpath.dirname(path))]
        changes.append(WriteFile(path, current, wanted, label=f"grub: boot {kernel.version}"))
        return needed(f"write {target} for kernel {kernel.version}", changes)

    def grub_conf(self, ctx: Context, kernel: Kernel) -> str:
        partition = (ctx.layout.partition or 1) - 1 if ctx.layout.kind == "partition" else 0
        console = f" {PV_CONSOLE}" if is_pv_ops(kernel.version) else ""
        return (
            f"{bootconf.WRITTEN_BY_US} --for xen-pv\n"
            "default=0\n"
            "timeout=5\n"
            "hiddenmenu\n"
            f"title {ctx.distribution_name} ({kernel.version})\n"
            f"\troot (hd0,{partition})\n"
            f"\tkernel /{kernel.vmlinuz} ro root={ctx.root_device()}{console}\n"
            f"\tinitrd /{kernel.initrd}\n"
        )


class Grub2Check:
    """Checks a grub 2 guest's default entry; changes only its root device name and console."""

    def __init__(self, ctx: Context, config: BootConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.problems: list[str] = []

    def plan(self) -> Plan:
        entry = self.config.default
        where = f"{self.config.path} (pygrub reads it first)"
        if entry is None or entry.kernel is None:
            what = self.config.describe_default() if entry is None else f"entry {entry.title!r} has no linux line"
            return needed(f"{where}: {what}", [], manual=f"give {self.config.path} a default entry that boots a kernel")
        version = entry.version() or entry.kernel
        self.check_files(entry)
        self.check_chosen_kernel(version)
        root_note = self.root_note(entry)
        console = PV_CONSOLE in entry.args or not is_pv_ops(version)
        changes = self.changes(entry, add_console=not console)
        detail = f"{where}: {self.config.describe_default()} boots {version}, {root_note}"
        detail += f", {PV_CONSOLE}" if console else f", needs {PV_CONSOLE}"
        detail += self.ignored_legacy_files()
        if self.problems:
            return needed(detail, changes, manual="; ".join(self.problems))
        return needed(detail, changes) if changes else done(detail)

    def check_files(self, entry: Entry) -> None:
        for label, path in (("kernel", entry.kernel), ("initrd", entry.initrd)):
            if path and bootconf.guest_file(self.ctx.root, path) is None:
                self.problems.append(f"its {label} {path} is not in the guest")

    def check_chosen_kernel(self, version: str) -> None:
        wanted = self.ctx.options.kernel
        if wanted and wanted != version:
            self.problems.append(
                f"the default entry boots {version}, not --kernel {wanted}: make {wanted}'s entry the default "
                "(GRUB_DEFAULT in /etc/default/grub, then update-grub in the guest)"
            )

    def root_note(self, entry: Entry) -> str:
        root = entry.arg("root")
        if root is None:
            self.problems.append("its command line has no root=")
            return "no root="
        uuid = self.ctx.layout.uuid
        if root.startswith("UUID=") and uuid:
            if root[5:].lower() == uuid.lower():
                return f"root={root} (this filesystem)"
            self.problems.append(f"root={root} is not this image's root filesystem (UUID={uuid})")
        if DISK_DEVICE.match(root):
            return f"root={root} (becomes {xen_device(root, self.ctx.device_layout())})"
        if BUILD_HOST_DEVICE.match(root):
            self.problems.append(
                f"root={root} names a device of the machine the image was built on: make it root=UUID= "
                "(GRUB_DISABLE_LINUX_UUID unset and /dev/disk/by-uuid present when update-grub runs)"
            )
        return f"root={root}"

    def changes(self, entry: Entry, *, add_console: bool) -> list[Change]:
        root = entry.arg("root") or ""
        if not add_console and not DISK_DEVICE.match(root):
            return []
        changes: list[Change] = []
        cfg_path = self.ctx.root.resolve(self.config.path)
        old = self.ctx.root.read_text(cfg_path) or ""
        new = "".join(self.linux_line(line, add_console) for line in old.splitlines(keepends=True))
        if new != old:
            changes.append(WriteFile(cfg_path, encode_text(old), encode_text(new), label="grub: grub.cfg"))
        if add_console and self.ctx.root.is_file(DEFAULT_GRUB):
            default_path = self.ctx.root.resolve(DEFAULT_GRUB)
            text = self.ctx.root.read_text(default_path) or ""
            edited = with_default_cmdline_arg(text, PV_CONSOLE)
            if edited != text:
                changes.append(WriteFile(default_path, encode_text(text), encode_text(edited), label="grub: defaults"))
        return changes

    def linux_line(self, line: str, add_console: bool) -> str:
        words = line.split()
        if not words or words[0] not in bootconf.LINUX_COMMANDS:
            return line
        layout = self.ctx.device_layout()
        line = ROOT_ARG.sub(lambda match: xen_device(match.group(1), layout), line)
        return bootconf.with_kernel_arg(line, PV_CONSOLE) if add_console else line

    def ignored_legacy_files(self) -> str:
        ignored = [path for path in bootconf.LEGACY_PATHS if self.ctx.root.is_file(path)]
        return f" ({', '.join(ignored)} not read: grub.cfg comes first)" if ignored else ""


def with_default_cmdline_arg(text: str, arg: str) -> str:
    """etc/default/grub with ``arg`` in GRUB_CMDLINE_LINUX (added when the variable is missing)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = CMDLINE_LINUX.match(line.rstrip("\n"))
        if match:
            prefix, _quote, value = match.groups()
            if arg in value.split():
                return text
            value = f"{value} {arg}".strip()
            lines[index] = f'{prefix}"{value}"' + ("\n" if line.endswith("\n") else "")
            return "".join(lines)
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return f'{prefix}GRUB_CMDLINE_LINUX="{arg}"\n'
