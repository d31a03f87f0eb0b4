"""The boot loader configuration pygrub reads, parsed as pygrub reads it.

XenServer boots a PV guest with pygrub: it opens the guest's disk, reads the first of
``boot/grub/grub.cfg``, ``grub/grub.cfg``, ``boot/grub2/grub.cfg``, ``grub2/grub.cfg`` (grub 2),
then ``boot/grub/menu.lst``, ``boot/grub/grub.conf``, ``grub/menu.lst``, ``grub/grub.conf``
(grub legacy), picks the default entry and hands its kernel, initrd and command line to Xen. So
a guest with grub 2 boots what its grub.cfg says, whatever a legacy grub.conf beside it says.

Only what pygrub uses is understood: ``menuentry``/``submenu`` blocks with their ``linux`` and
``initrd`` lines, ``set default=`` (a number, ``N>M`` into a submenu, a title or an id, or
``${saved_entry}`` from ``grubenv``); for grub legacy ``default``, ``title``, ``kernel``, ``initrd``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from vdcmanage.prepare.root import GuestRoot

GRUB2_PATHS = ("boot/grub/grub.cfg", "grub/grub.cfg", "boot/grub2/grub.cfg", "grub2/grub.cfg")
LEGACY_PATHS = ("boot/grub/menu.lst", "boot/grub/grub.conf", "grub/menu.lst", "grub/grub.conf")
DEVICE_PREFIX = re.compile(r"^\([^)]*\)")  # (hd0,msdos1)/boot/vmlinuz: grub's device part
LINUX_COMMANDS = ("linux", "linux16", "linuxefi")
INITRD_COMMANDS = ("initrd", "initrd16", "initrdefi")


@dataclass
class Entry:
    title: str
    entry_id: str | None = None
    kernel: str | None = None  # as written, device prefix removed: /boot/vmlinuz-6.1.0-28-amd64
    initrd: str | None = None  # the last initrd file (grub 2 may list the microcode first)
    args: list[str] = field(default_factory=list)  # the kernel command line, split

    @property
    def cmdline(self) -> str:
        return " ".join(self.args)

    def arg(self, key: str) -> str | None:
        """The value of the last ``key=value`` on the command line (the kernel uses the last)."""
        values = [a.split("=", 1)[1] for a in self.args if a.startswith(f"{key}=")]
        return values[-1] if values else None

    def version(self) -> str | None:
        """The kernel version from the kernel file's name (vmlinuz-<version>)."""
        if not self.kernel:
            return None
        name = self.kernel.rsplit("/", 1)[-1]
        return name.split("-", 1)[1] if name.startswith(("vmlinuz-", "vmlinux-", "kernel-")) else None


@dataclass
class BootConfig:
    path: str  # guest path of the file read
    kind: str  # grub2 | legacy
    entries: list[Entry]
    default_spec: str  # as written: "0", "1>2", a title, an id
    default: Entry | None
    written_by_us: bool = False

    def describe_default(self) -> str:
        if self.default is None:
            return f"no entry matches default {self.default_spec!r}"
        return f"default entry {self.default.title!r}"


# -- grub 2 --------------------------------------------------------------------------------


def words(line: str) -> list[str]:
    """A grub.cfg line split as its shell-like syntax does (quotes removed); [] when it does not split."""
    try:
        return shlex.split(line, comments=True, posix=True)
    except ValueError:
        return []


def strip_device(path: str) -> str:
    return DEVICE_PREFIX.sub("", path) or "/"


def parse_grub2(text: str, grubenv: str | None = None) -> tuple[list[tuple[str, list[Entry]]], str]:
    """The menu as (submenu title or "", entries) groups in order, and the default spec."""
    top: list[tuple[str, list[Entry]]] = []
    submenu: tuple[str, list[Entry]] | None = None
    entry: Entry | None = None
    default = "0"
    for raw in text.splitlines():
        line = raw.strip()
        if line == "}":
            if entry is not None:
                (submenu[1] if submenu else top_group(top)).append(entry)
                entry = None
            elif submenu is not None:
                top.append(submenu)
                submenu = None
            continue
        parts = words(line.rstrip("{").strip() if line.endswith("{") else line)
        if not parts:
            continue
        if parts[0] in ("menuentry", "submenu") and line.endswith("{"):
            title = parts[1] if len(parts) > 1 else ""
            entry_id = option_value(parts, "$menuentry_id_option") or option_value(parts, "--id")
            if parts[0] == "submenu":
                submenu = (title, [])
            else:
                entry = Entry(title, entry_id)
        elif entry is not None and parts[0] in LINUX_COMMANDS and len(parts) > 1:
            entry.kernel, entry.args = strip_device(parts[1]), parts[2:]
        elif entry is not None and parts[0] in INITRD_COMMANDS and len(parts) > 1:
            entry.initrd = strip_device(parts[-1])
        elif entry is None and parts[0] == "set" and len(parts) > 1 and parts[1].startswith("default="):
            default = chosen_default(parts[1].split("=", 1)[1], default, grubenv)
    return top, default


def top_group(top: list[tuple[str, list[Entry]]]) -> list[Entry]:
    """Top-level entries are kept one per group, in order, so numbering matches grub's."""
    top.append(("", []))
    return top[-1][1]


def option_value(parts: list[str], option: str) -> str | None:
    if option in parts:
        index = parts.index(option)
        return parts[index + 1] if index + 1 < len(parts) else None
    return None


def chosen_default(value: str, current: str, grubenv: str | None) -> str:
    """``set default=`` values pygrub can know: ``${next_entry}`` is a one-shot, ``${saved_entry}`` is in grubenv."""
    if "${next_entry}" in value or "$next_entry" in value:
        return current
    if value in ("${saved_entry}", "$saved_entry"):
        return grubenv_value(grubenv or "", "saved_entry") or "0"
    return value


def grubenv_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return None


def default_entry(groups: list[tuple[str, list[Entry]]], spec: str) -> Entry | None:
    """The entry ``set default`` names: an index (``1>0`` into a submenu), a title or an id."""
    parts = spec.split(">")
    if all(part.strip().isdigit() for part in parts):
        return entry_by_index(groups, [int(part) for part in parts])
    for submenu, entries in groups:
        for entry in entries:
            if spec in (entry.title, entry.entry_id, f"{submenu}>{entry.title}"):
                return entry
    return None


def entry_by_index(groups: list[tuple[str, list[Entry]]], path: list[int]) -> Entry | None:
    if not 0 <= path[0] < len(groups):
        return None
    submenu, entries = groups[path[0]]
    if not submenu:
        return entries[0] if len(path) == 1 else None
    index = path[1] if len(path) > 1 else 0
    return entries[index] if 0 <= index < len(entries) else None


# -- grub legacy ---------------------------------------------------------------------------


def parse_legacy(text: str) -> tuple[list[Entry], str]:
    entries: list[Entry] = []
    default = "0"
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, rest = legacy_split(line)
        if keyword == "title":
            entries.append(Entry(rest))
        elif keyword == "default" and not entries:
            default = rest.strip() or "0"
        elif entries and keyword == "kernel":
            fields = rest.split()
            if fields:
                entries[-1].kernel, entries[-1].args = strip_device(fields[0]), fields[1:]
        elif entries and keyword == "initrd":
            fields = rest.split()
            if fields:
                entries[-1].initrd = strip_device(fields[-1])
    return entries, default


def legacy_split(line: str) -> tuple[str, str]:
    """``keyword rest`` or ``keyword=rest`` (grub legacy accepts both)."""
    match = re.match(r"^([A-Za-z_]+)(?:\s*=\s*|\s+)(.*)$", line)
    return (match.group(1), match.group(2)) if match else (line, "")


# -- finding it in a guest -------------------------------------------------------------------


WRITTEN_BY_US = "# Written by vdc-manage image prepare"


def read_boot_config(root: GuestRoot) -> BootConfig | None:
    """The configuration pygrub would read in this guest, or None when it has none."""
    for path in GRUB2_PATHS:
        text = root.read_text(path) if root.is_file(path) else None
        if text is not None:
            env_path = path.rsplit("/", 1)[0] + "/grubenv"
            grubenv = root.read_text(env_path) if root.is_file(env_path) else None
            groups, spec = parse_grub2(text, grubenv)
            entries = [entry for _title, group in groups for entry in group]
            return BootConfig(path, "grub2", entries, spec, default_entry(groups, spec))
    for path in LEGACY_PATHS:
        text = root.read_text(path) if root.is_file(path) else None
        if text is not None:
            entries, spec = parse_legacy(text)
            index = int(spec) if spec.isdigit() else 0
            chosen = entries[index] if 0 <= index < len(entries) else None
            return BootConfig(path, "legacy", entries, spec, chosen, text.startswith(WRITTEN_BY_US))
    return None


def guest_file(root: GuestRoot, path: str) -> str | None:
    """Where a boot loader path lives in the root filesystem: as written, or under boot/ (a
    separate /boot partition names its files from its own root)."""
    relative = path.lstrip("/")
    for candidate in (relative, f"boot/{relative}"):
        if candidate and root.is_file(candidate):
            return candidate
    return None


def with_kernel_arg(line: str, arg: str) -> str:
    """A ``linux``/``kernel`` line (or a GRUB_CMDLINE value) with ``arg`` appended once."""
    if arg in line.split():
        return line
    stripped = line.rstrip("\n")
    newline = line[len(stripped) :]
    return f"{stripped} {arg}{newline}"
