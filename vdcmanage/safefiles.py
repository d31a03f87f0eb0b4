"""Files written where someone else may reach: temporaries that cannot be planted in advance.

A predictable temporary name (``x.part``) opened with ``O_TRUNC`` in a directory another user can
write lets that user plant ``x.part -> /etc/passwd`` and have us overwrite its target. Every
temporary we write next to a published or staged file is therefore created here: a fresh random
name, ``O_CREAT|O_EXCL|O_NOFOLLOW`` (the open fails on anything already there, a symlink included),
mode 0600 until it is complete, then renamed into place (``rename`` replaces a planted link at
the final name instead of following it). ``remote/files.py`` does the same on another machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PART = ".part."  # "<name>.part.<random>": the temporaries of <name>, found again by that prefix
CREATE_ATTEMPTS = 100


def temporary_prefix(file_name: str) -> str:
    """What every temporary of ``file_name`` starts with (hidden: a web server's index skips it)."""
    return f".{file_name}{PART}"


def create_temporary(directory: Path, file_name: str) -> tuple[int, Path]:
    """A new, empty, private (0600) file for ``file_name`` in ``directory``, open read-write.

    Raises OSError (e.g. EACCES, ENOSPC) when the directory takes no new file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(CREATE_ATTEMPTS):
        path = directory / (temporary_prefix(file_name) + secrets.token_hex(8))
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:  # someone got there first (or planted something): another name
            continue
        os.fchmod(fd, 0o600)  # whatever the umask: nobody else reads it while it is being written
        return fd, path
    raise FileExistsError(f"no free temporary name in {directory} after {CREATE_ATTEMPTS} tries")


def remove_temporaries(directory: Path, file_name: str) -> None:
    """Remove what an interrupted run left behind (unlink never follows a link)."""
    with contextlib.suppress(OSError):
        for leftover in directory.glob(glob_escape(temporary_prefix(file_name)) + "*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
