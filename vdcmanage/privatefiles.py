"""Files only their owner may read: the SQLite catalog (with its ``-wal`` and ``-shm``) and SSH keys.

The catalog holds host addresses, users and key paths; a private key is a login. One found with
group or other access is tightened to 0600 with a warning on stderr (what OpenSSH would refuse, we
repair and say so); one owned by another user is refused, since we can neither trust its content
nor make it private. New ones are created 0600 whatever the umask.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from vdcmanage.errors import Refused

PRIVATE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def warn(message: str) -> None:
    """A warning an operator should see once, on stderr (stdout stays the command's result), its
    control characters spelled out as cli/failures.warn does (the core cannot import the CLI)."""
    from vdcmanage.textsafe import visible

    sys.stderr.write(f"WARNING: {visible(message)}\n")
    sys.stderr.flush()


def ensure_private(path: Path, what: str) -> None:
    """Refuse ``path`` if another user owns it; tighten it to 0600 (with a warning) if others may
    read or write it. A missing file is left for its creator."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        return  # not ours to judge here: the caller's own checks name what it is
    me = os.geteuid()
    if info.st_uid != me:
        raise Refused(
            f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {me}): refusing to use a file "
            "another user controls"
        )
    loose = stat.S_IMODE(info.st_mode)
    if loose & 0o077:
        os.chmod(path, PRIVATE_MODE)
        warn(f"{what} {path} was accessible to others (mode {loose:04o}); tightened to {PRIVATE_MODE:04o}")


def ensure_private_catalog(path: Path) -> None:
    """The SQLite file and whatever companions SQLite left next to it."""
    ensure_private(path, "Catalog file")
    for suffix in SQLITE_COMPANIONS:
        ensure_private(path.with_name(path.name + suffix), "Catalog file")


def create_private(path: Path) -> bool:
    """Create ``path`` empty and 0600 (exactly, whatever the umask); False if it already exists."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    return True
