"""A guest's init system, and enabling systemd units offline as ``systemctl --root`` would.

A guest boots with systemd when its ``/sbin/init`` is systemd (Debian 8+, Ubuntu 15.04+, RHEL 7+)
and with SysV init (or upstart) otherwise; the first-boot steps differ between the two worlds.
Enabling a unit means the symlinks its ``[Install]`` section asks for: ``WantedBy=T`` links it
into ``T.wants/``, ``RequiredBy=`` into ``.requires/``, ``Alias=`` names it again, ``Also=``
enables other units with it. Nothing runs in the guest.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from vdcmanage.prepare.changes import Change, MakeDirs, MakeSymlink
from vdcmanage.prepare.root import GuestRoot

SYSTEM_DIR = "etc/systemd/system"
UNIT_DIRS = (SYSTEM_DIR, "usr/lib/systemd/system", "lib/systemd/system")
SYSTEMD_BINARIES = ("usr/lib/systemd/systemd", "lib/systemd/systemd")
MAX_ALSO_DEPTH = 4


def is_systemd(root: GuestRoot) -> bool:
    """The guest's /sbin/init is systemd (or, without /sbin/init, systemd is installed and there is no inittab)."""
    for init in ("sbin/init", "usr/sbin/init"):
        if root.is_symlink(init) or root.lexists(init):
            target = root.resolve(init)
            return any(target == root.resolve(binary) for binary in SYSTEMD_BINARIES)
    return any(root.is_file(b) for b in SYSTEMD_BINARIES) and not root.exists("etc/inittab")


def unit_path(root: GuestRoot, name: str) -> str | None:
    """The guest path of a unit file, looked up as systemd does (etc first)."""
    for directory in UNIT_DIRS:
        path = f"{directory}/{name}"
        if root.lexists(path):
            return path
    return None


@dataclass(frozen=True)
class InstallSection:
    wanted_by: tuple[str, ...] = ()
    required_by: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    also: tuple[str, ...] = ()


def install_section(text: str) -> InstallSection:
    values: dict[str, list[str]] = {"WantedBy": [], "RequiredBy": [], "Alias": [], "Also": []}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Install" and "=" in line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            if key in values:
                values[key] += value.split()
    return InstallSection(*(tuple(values[k]) for k in ("WantedBy", "RequiredBy", "Alias", "Also")))


def unit_links(root: GuestRoot, name: str, text: str | None = None) -> list[tuple[str, str]]:
    """(link path, target) pairs enabling a unit (and its Also= units); ``text``: the unit's content
    when it is not in the guest yet (about to be installed in etc/systemd/system)."""
    links: list[tuple[str, str]] = []
    pending, seen = [(name, text, 0)], set()
    while pending:
        unit, content, depth = pending.pop()
        if unit in seen or "@" in unit or depth > MAX_ALSO_DEPTH:
            continue
        seen.add(unit)
        path = f"{SYSTEM_DIR}/{unit}" if content is not None else unit_path(root, unit)
        if path is None:
            continue
        if content is None:  # a masked unit links to /dev/null: no [Install] to follow
            content = root.read_text(path) if root.is_file(path) else ""
        content = content or ""
        install = install_section(content)
        target = "/" + path
        links += [(f"{SYSTEM_DIR}/{t}.wants/{unit}", target) for t in install.wanted_by]
        links += [(f"{SYSTEM_DIR}/{t}.requires/{unit}", target) for t in install.required_by]
        links += [(f"{SYSTEM_DIR}/{alias}", target) for alias in install.aliases]
        pending += [(also, None, depth + 1) for also in install.also]
    return links


def is_enabled(root: GuestRoot, name: str) -> bool:
    """Some ``.wants``/``.requires`` link of etc/systemd/system names the unit."""
    for directory in root.listdir(SYSTEM_DIR):
        if directory.endswith((".wants", ".requires")) and root.lexists(f"{SYSTEM_DIR}/{directory}/{name}"):
            return True
    return False


def enable_changes(root: GuestRoot, name: str, text: str | None = None) -> list[Change]:
    """The links still missing to enable a unit, and the directories they need."""
    changes: list[Change] = []
    made: set[str] = set()
    for link, target in unit_links(root, name, text):
        if root.is_symlink(link) and root.readlink(link) == target:
            continue
        parent = posixpath.dirname(link)
        if not root.is_dir(parent) and parent not in made:
            changes.append(MakeDirs(parent))
            made.add(parent)
        changes.append(MakeSymlink(link, target))
    return changes
