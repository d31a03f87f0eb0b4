"""The cloud image steps (the Wakame-vdc guide).

nameserver    a nameserver line in etc/resolv.conf (only with --nameserver)
mac           forget the MAC: 70-persistent-net.rules -> /dev/null, HWADDR= commented in ifcfg-eth*
ssh-host-keys remove etc/ssh/ssh_host* (each instance makes its own at first boot)
acpiphp       acpiphp in etc/modules, once (and where Red Hat loads modules from)
logs          delete var/log/**.gz, truncate every other file under var/log
metadata      install the metadata init script and call it from rc.local
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from vdcmanage.errors import VdcError
from vdcmanage.prepare.changes import Change, Chmod, MakeDirs, MakeSymlink, RemovePath, TruncateFile, WriteFile
from vdcmanage.prepare.root import GuestRoot, encode_text
from vdcmanage.prepare.steps import Context, Options, Plan, Step, done, needed, not_applicable
from vdcmanage.prepare.xen import with_line

PURPOSE = "cloud"
RESOLV_CONF = "etc/resolv.conf"
UDEV_RULES_DIR = "etc/udev/rules.d"
NET_RULES = f"{UDEV_RULES_DIR}/70-persistent-net.rules"
NETWORK_SCRIPTS = "etc/sysconfig/network-scripts"
IFCFG_ETH = re.compile(r"^ifcfg-eth\d+$")
HWADDR = re.compile(r"^(\s*)(HWADDR=.*)$", re.DOTALL)
SSH_DIR = "etc/ssh"
MODULES = "etc/modules"
REDHAT_MODULES = "etc/sysconfig/modules/acpiphp.modules"
REDHAT_MODULES_SCRIPT = (
    "#!/bin/sh\n# Written by vdc-manage image prepare: PCI hotplug for the cloud's ACPI\n"
    "/sbin/modprobe acpiphp >/dev/null 2>&1\n"
)
LOG_DIR = "var/log"
METADATA_SCRIPT = "usr/local/sbin/vdc-metadata"
METADATA_CALL = "/usr/local/sbin/vdc-metadata || true  # vdc-manage: host name, SSH key, host keys"
RC_LOCAL_CREATED = "#!/bin/sh -e\n# rc.local, created by vdc-manage image prepare\n\n{call}\n\nexit 0\n"
SHARE_ENV = "VDC_MANAGE_SHARE"


class NameserverStep(Step):
    name = "nameserver"
    purpose = PURPOSE
    title = "a nameserver line in etc/resolv.conf (chosen with --nameserver; none by default)"

    def wanted(self, options: Options) -> bool:
        return bool(options.nameservers)

    def plan(self, ctx: Context) -> Plan:
        servers = ctx.options.nameservers
        if not servers:
            return not_applicable("no --nameserver given")
        path = ctx.root.resolve(RESOLV_CONF)
        old = ctx.root.read_text(path)
        new = old or ""
        for server in servers:
            new = with_nameserver(new, server)
        if new == old:
            return done(f"{RESOLV_CONF} has nameserver {', '.join(servers)}")
        change = WriteFile(path, None if old is None else encode_text(old), encode_text(new), label="nameserver")
        return needed(f"add nameserver {', '.join(servers)} to {RESOLV_CONF}", [change])


def with_nameserver(text: str, server: str) -> str:
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and fields[1] == server:
            return text
    return with_line(text, f"nameserver {server}")


def commented_hwaddr(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        match = HWADDR.match(line)
        lines.append(f"{match.group(1)}#{match.group(2)}" if match else line)
    return "".join(lines)


class MacStep(Step):
    name = "mac"
    purpose = PURPOSE
    title = "forget the MAC address: 70-persistent-net.rules -> /dev/null, HWADDR= commented out in ifcfg-eth*"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        changes: list[Change] = []
        applicable = False
        if root.is_dir(UDEV_RULES_DIR):
            applicable = True
            if not (root.is_symlink(NET_RULES) and root.readlink(NET_RULES) == "/dev/null"):
                old = root.read_bytes(NET_RULES) if root.is_file(NET_RULES) else None
                changes.append(MakeSymlink(root.resolve(NET_RULES, follow_last=False), "/dev/null", old))
        for name in root.listdir(NETWORK_SCRIPTS):
            if not IFCFG_ETH.match(name):
                continue
            applicable = True
            path = root.resolve(f"{NETWORK_SCRIPTS}/{name}")
            old_text = root.read_text(path) or ""
            new_text = commented_hwaddr(old_text)
            if new_text != old_text:
                changes.append(WriteFile(path, encode_text(old_text), encode_text(new_text), label="mac"))
        if not applicable:
            return not_applicable(f"no {UDEV_RULES_DIR} and no ifcfg-eth* in the guest")
        if changes:
            return needed("clear " + ", ".join(change.path for change in changes), changes)
        return done("no persistent MAC (udev rules link to /dev/null, no active HWADDR=)")


class SshHostKeysStep(Step):
    name = "ssh-host-keys"
    purpose = PURPOSE
    title = "remove the SSH host keys etc/ssh/ssh_host* (the metadata script makes new ones at boot)"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not root.is_dir(SSH_DIR):
            return not_applicable(f"no {SSH_DIR} in the guest")
        ssh_dir = root.resolve(SSH_DIR)
        keys = [f"{ssh_dir}/{name}" for name in root.listdir(ssh_dir) if name.startswith("ssh_host")]
        keys = [path for path in keys if not root.is_dir(path) or root.is_symlink(path)]
        if not keys:
            return done(f"no host keys in {SSH_DIR}")
        return needed(f"remove {len(keys)} host key files", [RemovePath(path) for path in keys])


class AcpiphpStep(Step):
    name = "acpiphp"
    purpose = PURPOSE
    title = "load acpiphp at boot: a line in etc/modules, once (Red Hat also etc/sysconfig/modules/)"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        changes: list[Change] = []
        modules_path = root.resolve(MODULES)
        modules = root.read_text(modules_path)
        if modules is None or with_line(modules, "acpiphp") != modules:
            old = None if modules is None else encode_text(modules)
            new = with_line(modules or "", "acpiphp")
            changes.append(WriteFile(modules_path, old, encode_text(new), label="acpiphp"))
        if ctx.family == "redhat" and root.is_dir("etc/sysconfig"):
            changes += self.redhat_changes(root)
        if not changes:
            return done(f"{MODULES} loads acpiphp")
        return needed("load acpiphp: " + ", ".join(change.path for change in changes), changes)

    def redhat_changes(self, root: GuestRoot) -> list[Change]:
        """Red Hat's rc.sysinit does not read etc/modules; it runs etc/sysconfig/modules/*.modules."""
        path = root.resolve(REDHAT_MODULES)
        old = root.read_bytes(path)
        new = REDHAT_MODULES_SCRIPT.encode()
        if old == new:
            st = root.stat(path)
            return [] if st and st.st_mode & 0o111 else [Chmod(path, 0o755)]
        if not root.is_dir(os.path.dirname(path)):
            return []  # no modules directory in this release: etc/modules is all we can do
        return [WriteFile(path, old, new, mode=0o755, label="acpiphp (Red Hat)")]


class LogsStep(Step):
    name = "logs"
    purpose = PURPOSE
    title = "clean logs: delete var/log/**.gz, truncate every other file under var/log"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not root.is_dir(LOG_DIR):
            return not_applicable(f"no {LOG_DIR} in the guest")
        changes: list[Change] = []
        for path, st in root.walk_files(LOG_DIR):
            if path.endswith(".gz"):
                changes.append(RemovePath(path))
            elif stat.S_ISREG(st.st_mode) and st.st_size > 0:
                changes.append(TruncateFile(path, st.st_size))
        if not changes:
            return done(f"{LOG_DIR} holds only empty files")
        removed = sum(isinstance(change, RemovePath) for change in changes)
        return needed(f"delete {removed} compressed logs, truncate {len(changes) - removed} files", changes)


def share_dir() -> Path:
    """Where the files shipped for guests are: $VDC_MANAGE_SHARE, the source tree, or the install prefix."""
    import sys

    candidates = [os.environ.get(SHARE_ENV)]
    candidates.append(str(Path(__file__).resolve().parents[2] / "share"))
    candidates.append(os.path.join(sys.prefix, "share", "vdc-manage"))
    for candidate in candidates:
        if candidate and os.path.isfile(os.path.join(candidate, "metadata", "vdc-metadata.sh")):
            return Path(candidate)
    raise VdcError(f"The metadata init script is missing (share/metadata/vdc-metadata.sh); set {SHARE_ENV}")


def metadata_script() -> bytes:
    return (share_dir() / "metadata" / "vdc-metadata.sh").read_bytes()


def rc_local_path(ctx: Context) -> str | None:
    """The guest's rc.local: Red Hat keeps it in etc/rc.d/ (etc/rc.local links there)."""
    if ctx.family == "redhat" or ctx.root.is_dir("etc/rc.d"):
        return "etc/rc.d/rc.local"
    if ctx.family == "debian" or ctx.root.exists("etc/rc.local"):
        return "etc/rc.local"
    return None


def with_metadata_call(text: str) -> str:
    """rc.local calling the script: before a final ``exit 0`` (Debian's), else at the end."""
    if any(line.strip() == METADATA_CALL for line in text.splitlines()):
        return text
    lines = text.splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if not stripped:
            continue
        if stripped == "exit 0":
            lines.insert(index, METADATA_CALL + "\n")
            return "".join(lines)
        break
    return with_line(text, METADATA_CALL)


class MetadataStep(Step):
    name = "metadata"
    purpose = PURPOSE
    title = "install the metadata init script (usr/local/sbin/vdc-metadata) and call it from rc.local"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        rc_local = rc_local_path(ctx)
        if rc_local is None:
            return needed(
                "no rc.local and unknown distribution family",
                [],
                manual=f"install share/metadata/vdc-metadata.sh as /{METADATA_SCRIPT} and run it at boot",
            )
        changes = self.script_changes(root) + self.rc_local_changes(root, rc_local)
        if not changes:
            return done(f"/{METADATA_SCRIPT} installed and called from {rc_local}")
        return needed("install the metadata script: " + ", ".join(change.path for change in changes), changes)

    def script_changes(self, root: GuestRoot) -> list[Change]:
        wanted = metadata_script()
        path = root.resolve(METADATA_SCRIPT)
        current = root.read_bytes(path)
        if current == wanted:
            st = root.stat(path)
            return [] if st and stat.S_IMODE(st.st_mode) == 0o755 else [Chmod(path, 0o755)]
        if not root.is_dir(os.path.dirname(path)):
            return [MakeDirs(os.path.dirname(path)), WriteFile(path, current, wanted, mode=0o755, label="metadata")]
        return [WriteFile(path, current, wanted, mode=0o755, label="metadata")]

    def rc_local_changes(self, root: GuestRoot, rc_local: str) -> list[Change]:
        path = root.resolve(rc_local)
        current = root.read_text(path)
        if current is None:
            text = RC_LOCAL_CREATED.format(call=METADATA_CALL)
            return [WriteFile(path, None, encode_text(text), mode=0o755, label="metadata: rc.local")]
        new = with_metadata_call(current)
        st = root.stat(path)
        executable = st is not None and st.st_mode & 0o100
        if new == current:
            return [] if executable else [Chmod(path, 0o755)]
        mode = None if executable else 0o755  # rc.local only runs when executable
        return [WriteFile(path, encode_text(current), encode_text(new), mode=mode, label="metadata: rc.local")]


CLOUD_STEPS: list[Step] = [NameserverStep(), MacStep(), SshHostKeysStep(), AcpiphpStep(), LogsStep(), MetadataStep()]
