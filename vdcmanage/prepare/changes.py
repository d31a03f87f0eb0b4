"""The file changes a step plans: shown by ``--dry-run``, carried out by apply.

Each change knows how to describe itself (a unified diff for edited text files, one line for a
removal or a truncation) and how to make itself happen on a :class:`GuestRoot`. Steps only
compute changes; nothing here decides what a step wants.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from vdcmanage.prepare.root import GuestRoot, decode_text


class Change:
    """One planned modification of the guest tree."""

    path: str

    def describe(self) -> str:
        """What ``--dry-run`` prints for this change (a diff, or one line)."""
        raise NotImplementedError

    def summary(self) -> str:
        """A few words for the apply report."""
        raise NotImplementedError

    def apply(self, root: GuestRoot) -> None:
        raise NotImplementedError


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff of two versions of a guest file, with a/ and b/ prefixes like git's."""
    old_lines = [] if old is None else decode_text(old).splitlines(keepends=True)
    new_lines = [] if new is None else decode_text(new).splitlines(keepends=True)
    from_name = "/dev/null" if old is None else f"a/{path}"
    to_name = "/dev/null" if new is None else f"b/{path}"
    lines = []
    for line in difflib.unified_diff(old_lines, new_lines, from_name, to_name):
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


def looks_binary(data: bytes | None) -> bool:
    return data is not None and b"\0" in data[:8192]


@dataclass
class WriteFile(Change):
    """Create or replace a file (``path`` is already resolved inside the guest)."""

    path: str
    old: bytes | None
    new: bytes
    mode: int | None = None
    label: str = ""

    def describe(self) -> str:
        header = f"# {self.label}\n" if self.label else ""
        if looks_binary(self.old) or looks_binary(self.new):
            return f"{header}would replace binary file {self.path} ({len(self.new)} bytes)\n"
        mode_note = f"# mode {self.mode:04o}\n" if self.mode is not None else ""
        diff = unified_diff(self.path, self.old, self.new)
        return header + mode_note + (diff or f"(content of {self.path} unchanged)\n")

    def summary(self) -> str:
        return f"{'wrote' if self.old is not None else 'created'} {self.path}"

    def apply(self, root: GuestRoot) -> None:
        root.write_bytes(self.path, self.new, self.mode)


@dataclass
class Chmod(Change):
    path: str
    mode: int

    def describe(self) -> str:
        return f"would chmod {self.mode:04o} {self.path}\n"

    def summary(self) -> str:
        return f"chmod {self.mode:04o} {self.path}"

    def apply(self, root: GuestRoot) -> None:
        root.chmod(self.path, self.mode)


@dataclass
class RemovePath(Change):
    """Remove a file or a symlink (the link, not what it points to)."""

    path: str

    def describe(self) -> str:
        return f"would remove {self.path}\n"

    def summary(self) -> str:
        return f"removed {self.path}"

    def apply(self, root: GuestRoot) -> None:
        root.remove(self.path)


@dataclass
class TruncateFile(Change):
    path: str
    size: int

    def describe(self) -> str:
        return f"would truncate {self.path} ({self.size} bytes)\n"

    def summary(self) -> str:
        return f"truncated {self.path}"

    def apply(self, root: GuestRoot) -> None:
        root.truncate(self.path)


@dataclass
class MakeSymlink(Change):
    """Make ``path`` a symlink to ``target``, replacing what was there (``old``: its content, for the diff)."""

    path: str
    target: str
    old: bytes | None = None

    def describe(self) -> str:
        removed = unified_diff(self.path, self.old, None) if self.old else ""
        return f"{removed}would make {self.path} a link to {self.target}\n"

    def summary(self) -> str:
        return f"linked {self.path} -> {self.target}"

    def apply(self, root: GuestRoot) -> None:
        root.symlink(self.path, self.target)


class MakeDirs(Change):
    """Create a guest directory (and missing parents), 0755."""

    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"would create directory {self.path}\n"

    def summary(self) -> str:
        return f"created {self.path}/"

    def apply(self, root: GuestRoot) -> None:
        parts = self.path.split("/")
        for end in range(1, len(parts) + 1):
            partial = "/".join(parts[:end])
            if not root.is_dir(partial):
                os.mkdir(root.host_path(partial), 0o755)


@dataclass
class RunAction(Change):
    """Something other than a file edit (a command in a chroot), done by ``action``."""

    path: str
    description: str
    action: Callable[[GuestRoot], None] = field(repr=False)

    def describe(self) -> str:
        return f"would {self.description}\n"

    def summary(self) -> str:
        return self.description

    def apply(self, root: GuestRoot) -> None:
        self.action(root)
