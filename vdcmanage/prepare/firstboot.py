"""The cloud steps that decide whether an instance is reachable on its first boot.

ssh-host-keys remove etc/ssh/ssh_host*, and make sure the guest makes new ones before sshd starts:
              a oneshot unit ordered Before=ssh.service on systemd guests (unless the distribution's
              own sshd-keygen does it), the metadata script from rc.local on SysV guests
metadata      the metadata script: a systemd unit After=network-online.target that nothing waits
              for (SysV: called from rc.local); the guest needs an HTTP client for it
machine-id    etc/machine-id emptied (systemd makes a new one at boot), random seeds removed

On a systemd guest sshd starts long before rc.local: without host keys it fails, hits its start
limit, and the instance is unreachable. And rc-local.service runs after network-online.target
with getty waiting behind it, so nothing that waits for the network belongs there.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from vdcmanage.errors import VdcError
from vdcmanage.prepare import systemd
from vdcmanage.prepare.changes import Change, Chmod, MakeDirs, RemovePath, TruncateFile, WriteFile
from vdcmanage.prepare.root import GuestRoot, encode_text
from vdcmanage.prepare.steps import Context, Plan, Step, done, needed, not_applicable

PURPOSE = "cloud"
SSH_DIR = "etc/ssh"
METADATA_SCRIPT = "usr/local/sbin/vdc-metadata"
METADATA_CALL = "/usr/local/sbin/vdc-metadata || true  # vdc-manage: host name, SSH key, host keys"
RC_LOCAL_CREATED = "#!/bin/sh -e\n# rc.local, created by vdc-manage image prepare\n\n{call}\n\nexit 0\n"
SHARE_ENV = "VDC_MANAGE_SHARE"
KEYS_UNIT = "vdc-ssh-host-keys.service"
METADATA_UNIT = "vdc-metadata.service"
DISTRIBUTION_KEYGEN_UNITS = ("sshd-keygen.service", "sshd-keygen@.service", "sshd-keygen.target")
SSHD_BINARIES = ("usr/sbin/sshd", "sbin/sshd")
OPENSSH_VERSION = re.compile(rb"OpenSSH_(\d+)\.(\d+)")
HTTP_CLIENTS = ("curl", "wget", "busybox", "python3", "python", "python2")
BIN_DIRS = ("usr/local/bin", "usr/bin", "bin", "usr/local/sbin", "usr/sbin", "sbin")
MACHINE_ID = "etc/machine-id"
DBUS_MACHINE_ID = "var/lib/dbus/machine-id"
RANDOM_SEEDS = ("var/lib/systemd/random-seed", "var/lib/urandom/random-seed", "var/lib/random-seed")


# -- files shipped for guests ----------------------------------------------------------------


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


def shipped(name: str) -> bytes:
    return (share_dir() / "metadata" / name).read_bytes()


def metadata_script() -> bytes:
    return shipped("vdc-metadata.sh")


def script_changes(root: GuestRoot) -> list[Change]:
    """Install the metadata script as usr/local/sbin/vdc-metadata, 0755."""
    wanted = metadata_script()
    path = root.resolve(METADATA_SCRIPT)
    current = root.read_bytes(path)
    if current == wanted:
        st = root.stat(path)
        return [] if st and stat.S_IMODE(st.st_mode) == 0o755 else [Chmod(path, 0o755)]
    write = WriteFile(path, current, wanted, mode=0o755, label="metadata script")
    return [write] if root.is_dir(os.path.dirname(path)) else [MakeDirs(os.path.dirname(path)), write]


def unit_changes(root: GuestRoot, name: str) -> list[Change]:
    """Install one of our units in etc/systemd/system and enable it."""
    wanted = shipped(name)
    path = root.resolve(f"{systemd.SYSTEM_DIR}/{name}")
    current = root.read_bytes(path)
    changes: list[Change] = []
    if current != wanted:
        if not root.is_dir(systemd.SYSTEM_DIR):
            changes.append(MakeDirs(systemd.SYSTEM_DIR))
        changes.append(WriteFile(path, current, wanted, mode=0o644, label=name))
    return changes + systemd.enable_changes(root, name, wanted.decode())


def is_systemd_guest(ctx: Context) -> bool:
    if "systemd" not in ctx.cache:
        ctx.cache["systemd"] = systemd.is_systemd(ctx.root)
    return bool(ctx.cache["systemd"])


# -- ssh-host-keys ---------------------------------------------------------------------------


def openssh_version(root: GuestRoot) -> tuple[int, int] | None:
    """The guest's OpenSSH version, read from its sshd binary."""
    for path in SSHD_BINARIES:
        if root.is_file(path):
            match = OPENSSH_VERSION.search(root.read_bytes(path) or b"")
            if match:
                return int(match.group(1)), int(match.group(2))
    return None


def key_types(version: tuple[int, int] | None) -> str:
    """What ``ssh-keygen -A`` of that OpenSSH makes (DSA is gone from 7.0 on)."""
    if version is None:
        return "the types its ssh-keygen -A makes"
    if version >= (7, 0):
        return "rsa, ecdsa, ed25519"
    if version >= (6, 5):
        return "rsa, dsa, ecdsa, ed25519"
    return "rsa, dsa, ecdsa" if version >= (5, 7) else "rsa, dsa"


class SshHostKeysStep(Step):
    name = "ssh-host-keys"
    purpose = PURPOSE
    title = (
        "remove the SSH host keys etc/ssh/ssh_host*; new ones are made before sshd starts (systemd: "
        "vdc-ssh-host-keys.service; SysV: the metadata script)"
    )

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not root.is_dir(SSH_DIR):
            return not_applicable(f"no {SSH_DIR} in the guest")
        ssh_dir = root.resolve(SSH_DIR)
        keys = [f"{ssh_dir}/{name}" for name in root.listdir(ssh_dir) if name.startswith("ssh_host")]
        keys = [path for path in keys if not root.is_dir(path) or root.is_symlink(path)]
        changes: list[Change] = [RemovePath(path) for path in keys]
        maker = "the metadata script at boot"
        if is_systemd_guest(ctx):
            maker, more = self.systemd_maker(root)
            changes += more
        if not changes:
            return done(f"no host keys in {SSH_DIR}; {maker} makes new ones")
        removal = f"remove {len(keys)} host key files; " if keys else ""
        return needed(f"{removal}{maker} makes new ones", changes)

    def systemd_maker(self, root: GuestRoot) -> tuple[str, list[Change]]:
        version = openssh_version(root)
        name = f"OpenSSH {version[0]}.{version[1]}" if version else "OpenSSH"
        for unit in DISTRIBUTION_KEYGEN_UNITS:
            if systemd.unit_path(root, unit):
                return f"the distribution's {unit} (before sshd, {name})", []
        maker = f"{KEYS_UNIT} (before sshd: ssh-keygen -A of {name}: {key_types(version)})"
        return maker, script_changes(root) + unit_changes(root, KEYS_UNIT)


# -- metadata --------------------------------------------------------------------------------


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
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return f"{prefix}{METADATA_CALL}\n"


def without_metadata_call(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() != METADATA_CALL)


def http_clients(root: GuestRoot) -> list[str]:
    """The programs the metadata script can fetch with, found in the guest."""
    found = []
    for name in HTTP_CLIENTS:
        if any(root.is_file(f"{directory}/{name}") for directory in BIN_DIRS):
            found.append(name)
    return found


class MetadataStep(Step):
    name = "metadata"
    purpose = PURPOSE
    title = (
        "install the metadata script (usr/local/sbin/vdc-metadata): systemd guests run it from "
        "vdc-metadata.service after network-online.target, SysV guests from rc.local"
    )

    def plan(self, ctx: Context) -> Plan:
        clients = http_clients(ctx.root)
        plan = self.plan_systemd(ctx) if is_systemd_guest(ctx) else self.plan_rc_local(ctx)
        if clients or plan.manual:
            return plan
        manual = "install curl or wget in the guest (or busybox, or python): the script fetches with one of them"
        return needed(f"the guest has no HTTP client; {plan.detail}", plan.changes, manual=manual)

    def plan_systemd(self, ctx: Context) -> Plan:
        root = ctx.root
        changes = script_changes(root) + unit_changes(root, METADATA_UNIT)
        rc_local = rc_local_path(ctx)
        current = root.read_text(rc_local) if rc_local and root.is_file(rc_local) else None
        if current is not None and without_metadata_call(current) != current:
            path = root.resolve(rc_local or "")  # an earlier prepare called it there: getty would wait behind it
            changes.append(WriteFile(path, encode_text(current), encode_text(without_metadata_call(current))))
        where = f"/{METADATA_SCRIPT} run by {METADATA_UNIT} after network-online.target"
        if not changes:
            return done(f"{where} ({', '.join(http_clients(root)) or 'no HTTP client'})")
        return needed(f"install {where}", changes)

    def plan_rc_local(self, ctx: Context) -> Plan:
        root = ctx.root
        rc_local = rc_local_path(ctx)
        if rc_local is None:
            return needed(
                "no rc.local and unknown distribution family",
                [],
                manual=f"install share/metadata/vdc-metadata.sh as /{METADATA_SCRIPT} and run it at boot",
            )
        changes = script_changes(root) + self.rc_local_changes(root, rc_local)
        if not changes:
            return done(f"/{METADATA_SCRIPT} installed and called from {rc_local}")
        return needed("install the metadata script: " + ", ".join(change.path for change in changes), changes)

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


# -- machine-id ------------------------------------------------------------------------------


class MachineIdStep(Step):
    name = "machine-id"
    purpose = PURPOSE
    title = "empty etc/machine-id (systemd makes a new one at boot) and remove the random seeds"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        changes: list[Change] = []
        if root.is_file(MACHINE_ID) and not root.is_symlink(MACHINE_ID):
            content = (root.read_text(MACHINE_ID) or "").strip()
            if content and content != "uninitialized":
                changes.append(TruncateFile(root.resolve(MACHINE_ID), len(content) + 1))
        if root.is_file(DBUS_MACHINE_ID) and not root.is_symlink(DBUS_MACHINE_ID):
            changes.append(RemovePath(root.resolve(DBUS_MACHINE_ID, follow_last=False)))
        seeds = [path for path in RANDOM_SEEDS if root.lexists(path)]
        changes += [RemovePath(root.resolve(path, follow_last=False)) for path in seeds]
        if changes:
            return needed("forget this machine: " + ", ".join(change.path for change in changes), changes)
        if not root.lexists(MACHINE_ID):
            return not_applicable(f"no {MACHINE_ID} and no random seed in the guest")
        return done(f"{MACHINE_ID} is empty (a new one is made at boot), no random seed")


FIRST_BOOT_STEPS: list[Step] = [SshHostKeysStep(), MetadataStep(), MachineIdStep()]
