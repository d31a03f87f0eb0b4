"""Reading and setting two sshd settings in the guest: PermitRootLogin and PasswordAuthentication.

sshd keeps the first value it reads for a keyword, reading ``Include`` files where they appear
and applying ``Match`` blocks only to matching connections. So the effective global value is
the first occurrence before any ``Match``, includes followed in order; setting a value replaces
that occurrence in sshd_config, or puts a new line before the first Include/Match (or at the end).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass

from vdcmanage.prepare.root import GuestRoot

SSHD_CONFIG = "etc/ssh/sshd_config"
KEYWORDS = ("PermitRootLogin", "PasswordAuthentication")
PERMIT_ROOT_LOGIN_VALUES = ("yes", "no", "prohibit-password", "without-password", "forced-commands-only")
YES_NO = ("yes", "no")
MAX_INCLUDE_DEPTH = 8
TOKEN = re.compile(r"^\s*([A-Za-z]+)(?:\s*=\s*|\s+)(\S+)")


@dataclass(frozen=True)
class Setting:
    keyword: str
    value: str | None  # None: not set, sshd's built-in default applies
    where: str | None  # "etc/ssh/sshd_config:12"

    def describe(self) -> str:
        if self.value is None:
            return f"{self.keyword} not set (sshd default)"
        return f"{self.keyword} {self.value} ({self.where})"


def directive(line: str) -> tuple[str, str] | None:
    """(lower-case keyword, first argument) of a config line, None for blanks and comments."""
    if line.lstrip().startswith("#"):
        return None
    match = TOKEN.match(line)
    return (match.group(1).lower(), match.group(2)) if match else None


def include_paths(root: GuestRoot, pattern: str) -> list[str]:
    """Guest files an Include pattern names (relative patterns are under /etc/ssh), sorted like sshd."""
    full = pattern if pattern.startswith("/") else f"/etc/ssh/{pattern}"
    directory, name = posixpath.split(full)
    return [f"{directory}/{entry}".lstrip("/") for entry in root.listdir(directory) if fnmatch.fnmatch(entry, name)]


def find_setting(root: GuestRoot, keyword: str, path: str = SSHD_CONFIG, depth: int = 0) -> Setting | None:
    """The first global occurrence of keyword in path and its includes; None if none before a Match."""
    text = root.read_text(path) or ""
    for number, line in enumerate(text.splitlines(), 1):
        parsed = directive(line)
        if parsed is None:
            continue
        key, value = parsed
        if key == "match":
            return Setting(keyword, None, None)  # a Match block ends the global section
        if key == "include" and depth < MAX_INCLUDE_DEPTH:
            for included in include_paths(root, value):
                found = find_setting(root, keyword, included, depth + 1)
                if found is not None:
                    return found
        if key == keyword.lower():
            return Setting(keyword, value, f"{path}:{number}")
    return None


def effective_setting(root: GuestRoot, keyword: str) -> Setting:
    found = find_setting(root, keyword)
    return Setting(keyword, None, None) if found is None or found.value is None else found


def with_setting(text: str, keyword: str, value: str) -> str:
    """sshd_config text where the global value of keyword is value (the rest untouched)."""
    lines = text.splitlines(keepends=True)
    new_line = f"{keyword} {value}\n"
    for index, line in enumerate(lines):
        parsed = directive(line)
        if parsed is None:
            continue
        if parsed[0] == keyword.lower():
            lines[index] = new_line
            return "".join(lines)
        if parsed[0] in ("match", "include"):
            lines.insert(index, new_line)
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join([*lines, new_line])
