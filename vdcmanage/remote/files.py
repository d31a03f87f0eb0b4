"""Temporaries on another machine (a web server, a XenServer host), as ``safefiles`` makes them here.

``mktemp`` creates the file with a random name, ``O_EXCL`` and mode 0600 (a planted symlink makes
it pick another name, never follow it); data goes in with ``1<>`` (open read-write, no ``O_TRUNC``
and no ``>`` onto a name anyone could guess); ``mv -T`` renames it into place, replacing whatever is
at the final name (a link, not its target) and never moving into a directory planted there.
``mktemp`` is on every dom0 (the mktemp package of CentOS 5, coreutils 7.1 and later) and web server.
"""

from __future__ import annotations

from vdcmanage.remote.ssh import Connection
from vdcmanage.safefiles import PART

MKTEMP = 'umask 077 && mktemp -- "$1"'
# $1 the temporary, $2 the final name, $3 the mode it is published with
PUBLISH = 'sync "$1" 2>/dev/null || sync; chmod -- "$3" "$1" && mv -f -T -- "$1" "$2"'
# each argument a final name, removed with its temporaries ".NAME.part.*"; rm never follows a link
REMOVE = 'for f; do rm -f -- "$f" "${f%/*}/.${f##*/}"' + f"'{PART}'" + '*; done'


def temporary_template(final_path: str) -> str:
    directory, _, name = final_path.rpartition("/")
    return f"{directory or '.'}/.{name}{PART}XXXXXXXXXX"


def create_temporary(conn: Connection, final_path: str) -> str:
    """A new private temporary for ``final_path``, in its directory; returns its path."""
    result = conn.run(["sh", "-c", MKTEMP, "sh", temporary_template(final_path)])
    return result.stdout_text.strip()


def write_into(temporary: str) -> list[str]:
    """The command that stores its stdin in ``temporary`` (made by :func:`create_temporary`)."""
    return ["sh", "-c", 'exec cat 1<> "$1"', "sh", temporary]


def rename_into_place(conn: Connection, temporary: str, final_path: str, mode: str = "600") -> None:
    conn.run(["sh", "-c", PUBLISH, "sh", temporary, final_path, mode], timeout=None)


def remove_with_temporaries(conn: Connection, *final_paths: str) -> None:
    """Remove ``final_paths`` and every temporary of theirs an interrupted run left behind."""
    conn.run(["sh", "-c", REMOVE, "sh", *final_paths])
