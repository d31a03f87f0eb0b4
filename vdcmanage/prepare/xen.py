"""The Xen paravirtual boot steps (the CloudStack AMI procedure).

grub          what pygrub boots: grub 2's grub.cfg checked, else boot/grub/grub.conf written (grub.py)
fstab         /dev/sda1 -> /dev/xvda, /dev/sdb -> /dev/xvdb (device column only; vd* and hd* too)
console       an agetty on xvc0 in etc/inittab, xvc0 in etc/securetty
initrd        the Xen kernel's initrd loads xenblk and xennet
root-password a SHA-512 crypt hash in etc/shadow (only when a password is given)
sshd          report PermitRootLogin / PasswordAuthentication; set them when asked
"""

from __future__ import annotations

import datetime as dt
import re

from vdcmanage.prepare import initrd, password, sshd, systemd
from vdcmanage.prepare.changes import RunAction, WriteFile
from vdcmanage.prepare.grub import GrubStep, xen_device, xen_kernel
from vdcmanage.prepare.root import GuestRoot, encode_text
from vdcmanage.prepare.steps import Context, Options, Plan, Step, done, needed, not_applicable

PURPOSE = "xen-pv"
FSTAB = "etc/fstab"
INITTAB = "etc/inittab"
SECURETTY = "etc/securetty"
SHADOW = "etc/shadow"
CONSOLE_LINE = "co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav"
CONSOLE_TTY = "xvc0"


def xen_fstab(text: str, device_layout: str) -> str:
    """fstab with SCSI device names changed to Xen ones; only the device field changes."""
    out = []
    for line in text.splitlines(keepends=True):
        match = re.match(r"^(\s*)(\S+)(.*)$", line, re.DOTALL)
        if match and not match.group(2).startswith("#"):
            indent, device, rest = match.groups()
            line = indent + xen_device(device, device_layout) + rest
        out.append(line)
    return "".join(out)


class FstabStep(Step):
    name = "fstab"
    purpose = PURPOSE
    title = "etc/fstab: /dev/sda1 -> /dev/xvda, /dev/sdb -> /dev/xvdb (device column only)"

    def plan(self, ctx: Context) -> Plan:
        path = ctx.root.resolve(FSTAB)
        current = ctx.root.read_bytes(path)
        if current is None:
            return not_applicable(f"no {FSTAB} in the guest")
        text = current.decode("utf-8", "surrogateescape")
        wanted = encode_text(xen_fstab(text, ctx.device_layout()))
        if wanted == current:
            return done(f"{FSTAB} names no SCSI (sd*) devices")
        via = f" (via the link {FSTAB})" if path != FSTAB else ""
        return needed(f"rename sd* devices to xvd* in {path}{via}", [WriteFile(path, current, wanted, label="fstab")])


def with_console_line(text: str) -> str:
    """inittab with the xvc0 agetty line: an existing ``co:`` entry is replaced, else one is added."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("co:"):
            lines[index] = CONSOLE_LINE + "\n"
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join([*lines, CONSOLE_LINE + "\n"])


def with_line(text: str, line: str) -> str:
    """text with ``line`` appended unless a line equal to it (ignoring spaces) is already there."""
    if any(existing.strip() == line for existing in text.splitlines()):
        return text
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return f"{prefix}{line}\n"


class ConsoleStep(Step):
    name = "console"
    purpose = PURPOSE
    title = "console on xvc0: agetty in etc/inittab and xvc0 in etc/securetty, added once"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        changes: list[WriteFile] = []
        notes = []
        inittab = root.read_text(INITTAB)
        if inittab is None and systemd.is_systemd(root):
            return done("systemd starts a getty on hvc0 by itself (console=hvc0 on the kernel command line: grub)")
        if inittab is None:
            notes.append("no etc/inittab (upstart guest: configure a getty on the Xen console there)")
        elif any(line.strip() == CONSOLE_LINE for line in inittab.splitlines()):
            notes.append("inittab has the xvc0 agetty")
        else:
            changes.append(self.write(root, INITTAB, inittab, with_console_line(inittab)))
        securetty = root.read_text(SECURETTY)
        if securetty is None:
            notes.append("no etc/securetty (root may log in on any terminal)")
        elif with_line(securetty, CONSOLE_TTY) == securetty:
            notes.append("securetty lists xvc0")
        else:
            changes.append(self.write(root, SECURETTY, securetty, with_line(securetty, CONSOLE_TTY)))
        if changes:
            return needed("add " + " and ".join(c.path for c in changes) + " entries for xvc0", list(changes))
        if inittab is None and securetty is None:
            return not_applicable("; ".join(notes))
        return done("; ".join(notes))

    def write(self, root: GuestRoot, path: str, old: str, new: str) -> WriteFile:
        return WriteFile(root.resolve(path), encode_text(old), encode_text(new), label="console")


class InitrdStep(Step):
    name = "initrd"
    purpose = PURPOSE
    title = "the Xen kernel's initrd loads xenblk and xennet (rebuilt in a chroot with --rebuild-initrd)"

    def plan(self, ctx: Context) -> Plan:
        kernel = xen_kernel(ctx)
        assert kernel.initrd is not None
        builtin = initrd.builtin_modules(ctx.root, kernel.version)
        if not initrd.missing_xen_modules(builtin):
            return done(f"kernel {kernel.version} has the Xen drivers built in")
        listing = initrd.initrd_listing(ctx.root.read_bytes(kernel.initrd) or b"")
        if listing.names is None:
            return needed(
                f"cannot read /{kernel.initrd} ({listing.problem}); make sure it loads xenblk and xennet",
                [],
                manual=initrd.manual_instructions(ctx.root, kernel),
            )
        missing = initrd.missing_xen_modules(listing.names + builtin)
        if not missing:
            built_in = sorted({"xenblk", "xennet"} - set(initrd.missing_xen_modules(builtin)))
            also = f"; {' and '.join(built_in)} built in" if built_in else ""
            return done(f"/{kernel.initrd} ({'+'.join(listing.formats)}) has xenblk and xennet{also}")
        detail = f"/{kernel.initrd} lacks {' and '.join(missing)}"
        blocker = initrd.rebuild_blocker(ctx.root)
        if ctx.options.rebuild_initrd and blocker is None:
            action = RunAction(
                kernel.initrd,
                f"rebuild /{kernel.initrd} with the guest's mkinitrd in a chroot "
                f"(old one kept as /{kernel.initrd}.bak): {' '.join(initrd.mkinitrd_argv(kernel))}",
                lambda root: initrd.rebuild_initrd(root, kernel),
            )
            return needed(detail, [action])
        why = f"cannot rebuild here: {blocker}; " if ctx.options.rebuild_initrd else ""
        return needed(detail, [], manual=why + initrd.manual_instructions(ctx.root, kernel))


def shadow_with_root_hash(text: str, hashed: str, today: int) -> str | None:
    """etc/shadow with root's password hash replaced (and its last-change day set); None: no root entry."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        fields = line.rstrip("\n").split(":")
        if fields[0] == "root" and len(fields) >= 2:
            fields[1] = hashed
            if len(fields) >= 3:
                fields[2] = str(today)
            lines[index] = ":".join(fields) + ("\n" if line.endswith("\n") else "")
            return "".join(lines)
    return None


def root_hash(text: str) -> str | None:
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) >= 2:
            return fields[1]
    return None


def days_since_epoch() -> int:
    return (dt.date.today() - dt.date(1970, 1, 1)).days


class RootPasswordStep(Step):
    name = "root-password"
    purpose = PURPOSE
    title = "set root's password (from a file or stdin) as a SHA-512 crypt hash in etc/shadow"

    def wanted(self, options: Options) -> bool:
        return options.root_password is not None

    def plan(self, ctx: Context) -> Plan:
        secret = ctx.options.root_password
        if secret is None:
            return not_applicable("no password given (--root-password-file / --root-password-stdin)")
        path = ctx.root.resolve(SHADOW)
        current = ctx.root.read_text(path)
        if current is None:
            return needed(f"no {SHADOW} in the guest", [], manual="the guest has no etc/shadow: set the password in it")
        existing = root_hash(current)
        if existing is None:
            return needed(f"{SHADOW} has no root entry", [], manual="the guest has no root entry in etc/shadow")
        if password.matches(secret, existing):
            return done("root's password is the one given (SHA-512)")
        new_text = shadow_with_root_hash(current, password.sha512_crypt(secret), days_since_epoch())
        assert new_text is not None
        change = WriteFile(path, encode_text(current), encode_text(new_text), label="root-password")
        return needed("set root's password (SHA-512 crypt)", [SecretWrite(change)])


class SecretWrite(WriteFile):
    """A write whose content must not be shown: --dry-run says what changes, not the hash."""

    def __init__(self, inner: WriteFile) -> None:
        super().__init__(inner.path, inner.old, inner.new, inner.mode, inner.label)

    def describe(self) -> str:
        return f"# {self.label}\nwould replace root's password hash in {self.path} (content not shown)\n"


class SshdStep(Step):
    name = "sshd"
    purpose = PURPOSE
    title = "report sshd's PermitRootLogin / PasswordAuthentication; set them when asked"

    def requested(self, options: Options) -> dict[str, str]:
        values = {
            "PermitRootLogin": options.sshd_permit_root_login,
            "PasswordAuthentication": options.sshd_password_authentication,
        }
        return {key: value for key, value in values.items() if value}

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not root.exists(sshd.SSHD_CONFIG):
            return not_applicable(f"no {sshd.SSHD_CONFIG} in the guest")
        current = {key: sshd.effective_setting(root, key) for key in sshd.KEYWORDS}
        report = "; ".join(setting.describe() for setting in current.values())
        requested = self.requested(ctx.options)
        if not requested:
            return not_applicable(f"{report} (set with --sshd-permit-root-login / --sshd-password-authentication)")
        to_set = {key: value for key, value in requested.items() if current[key].value != value}
        if not to_set:
            return done(report)
        path = root.resolve(sshd.SSHD_CONFIG)
        old = root.read_text(path) or ""
        new = old
        for key, value in to_set.items():
            new = sshd.with_setting(new, key, value)
        change = WriteFile(path, encode_text(old), encode_text(new), label="sshd")
        wanted_text = ", ".join(f"{key} {value}" for key, value in to_set.items())
        return needed(f"{report}; set {wanted_text}", [change])


XEN_STEPS: list[Step] = [GrubStep(), FstabStep(), ConsoleStep(), InitrdStep(), RootPasswordStep(), SshdStep()]
