"""The cloud image steps (the Wakame-vdc guide).

nameserver    the nameserver lines of etc/resolv.conf (only with --nameserver)
mac           forget the MAC: 70-persistent-net.rules -> /dev/null, HWADDR= commented in ifcfg-eth*
network       the first Ethernet NIC comes up whatever its name (network.py)
ssh-host-keys remove etc/ssh/ssh_host*; new ones before sshd starts (firstboot.py)
machine-id    empty etc/machine-id, remove random seeds (firstboot.py)
acpiphp       acpiphp in etc/modules, once (and where Red Hat loads modules from)
logs          remove compressed and rotated logs and the journal, truncate every other file under var/log
metadata      install the metadata script: a systemd unit, or called from rc.local (firstboot.py)
"""

from __future__ import annotations

import os
import re
import stat

from vdcmanage.errors import Refused
from vdcmanage.prepare.changes import Change, Chmod, MakeSymlink, RemovePath, TruncateFile, WriteFile
from vdcmanage.prepare.firstboot import MachineIdStep, MetadataStep, SshHostKeysStep
from vdcmanage.prepare.network import NetworkStep
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
MODULES = "etc/modules"
REDHAT_MODULES = "etc/sysconfig/modules/acpiphp.modules"
REDHAT_MODULES_SCRIPT = (
    "#!/bin/sh\n# Written by vdc-manage image prepare: PCI hotplug for the cloud's ACPI\n"
    "/sbin/modprobe acpiphp >/dev/null 2>&1\n"
)
LOG_DIR = "var/log"


class NameserverStep(Step):
    name = "nameserver"
    purpose = PURPOSE
    title = "the nameserver lines of etc/resolv.conf become the --nameserver ones (none by default)"

    def wanted(self, options: Options) -> bool:
        return bool(options.nameservers)

    def plan(self, ctx: Context) -> Plan:
        servers = ctx.options.nameservers
        if not servers:
            return not_applicable("no --nameserver given")
        refuse_generated_resolv_conf(ctx.root)
        path = ctx.root.resolve(RESOLV_CONF)
        old = ctx.root.read_text(path)
        new = with_nameservers(old or "", servers)
        if new == old:
            return done(f"{RESOLV_CONF} has nameserver {', '.join(servers)}")
        change = WriteFile(path, None if old is None else encode_text(old), encode_text(new), label="nameserver")
        return needed(f"set nameserver {', '.join(servers)} in {RESOLV_CONF}", [change])


def refuse_generated_resolv_conf(root: GuestRoot) -> None:
    """A resolv.conf linked into /run is written at every boot (systemd-resolved, resolvconf): not ours to edit."""
    if not root.is_symlink(RESOLV_CONF):
        return
    target = root.readlink(RESOLV_CONF)
    resolved = root.resolve(RESOLV_CONF)
    if resolved.startswith(("run/", "var/run/")) or not root.is_file(resolved):
        raise Refused(
            f"{RESOLV_CONF} is a link to {target}, which the guest's resolver writes at boot "
            "(systemd-resolved or resolvconf): it is not overwritten. Give the nameserver to the guest's "
            "network configuration instead (DNS= in etc/systemd/resolved.conf or a .network file), "
            "or leave out --nameserver"
        )


def with_nameservers(text: str, servers: list[str]) -> str:
    """resolv.conf with exactly these nameservers, in this order, where the first old one was;
    every other line (search, options, comments) kept."""
    lines = text.splitlines(keepends=True)
    unique = list(dict.fromkeys(servers))
    current = [line.split()[1] for line in lines if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
    if current == unique:
        return text
    wanted = [f"nameserver {server}\n" for server in unique]
    kept: list[str] = []
    inserted = False
    for line in lines:
        if line.split()[:1] == ["nameserver"]:
            if not inserted:
                kept += wanted
                inserted = True
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    if not inserted:
        kept += wanted
    return "".join(kept)


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


COMPRESSED_LOG = re.compile(r"\.(gz|xz|zst|bz2|lz4|lzma|zip)$")
ROTATED_LOG = re.compile(r"(\.\d+|-\d{8}|\.old)(\.(gz|xz|zst|bz2|lz4|lzma|zip))?$")
JOURNAL_DIR = f"{LOG_DIR}/journal/"


def removed_log(path: str) -> bool:
    """Compressed and rotated logs and the journal are removed: truncated, they would be broken archives."""
    name = path.rsplit("/", 1)[-1]
    return bool(COMPRESSED_LOG.search(name) or ROTATED_LOG.search(name)) or path.startswith(JOURNAL_DIR)


class LogsStep(Step):
    name = "logs"
    purpose = PURPOSE
    title = (
        "clean logs: remove compressed (.gz .xz .zst .bz2 ...) and rotated (.1, -YYYYMMDD) logs and the "
        "journal, truncate every other file under var/log"
    )

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not root.is_dir(LOG_DIR):
            return not_applicable(f"no {LOG_DIR} in the guest")
        changes: list[Change] = []
        for path, st in root.walk_files(LOG_DIR):
            if removed_log(path) and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                changes.append(RemovePath(path))
            elif stat.S_ISREG(st.st_mode) and st.st_size > 0:
                changes.append(TruncateFile(path, st.st_size))
        if not changes:
            return done(f"{LOG_DIR} holds only empty files")
        removed = sum(isinstance(change, RemovePath) for change in changes)
        truncated = len(changes) - removed
        return needed(f"remove {removed} compressed, rotated or journal files, truncate {truncated}", changes)


CLOUD_STEPS: list[Step] = [
    NameserverStep(),
    MacStep(),
    NetworkStep(),
    SshHostKeysStep(),
    MachineIdStep(),
    AcpiphpStep(),
    LogsStep(),
    MetadataStep(),
]
