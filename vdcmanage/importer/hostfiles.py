"""Files on the XenServer host: staging names, sizes, checksums, removal, compression with progress."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

from vdcmanage.remote import files as remote_files
from vdcmanage.remote.ssh import Connection

PID_RE = re.compile(rb"vdc-manage-pid (\d+)")
POS_RE = re.compile(rb"^pos:\s*(\d+)", re.MULTILINE)
# The parallel compressors first: same .bz2 format, a core per block (lbzip2 is in Debian, pbzip2 in EPEL).
COMPRESSORS = ("lbzip2", "pbzip2", "bzip2")


def staging_path(sr_mount: str, job_id: str) -> str:
    """The uploaded image's name in the SR mount: no ``.vhd`` extension, so an SR scan never takes it for a VDI."""
    return f"{sr_mount}/vdc-manage-{job_id}.staging"


def compressed_path(sr_mount: str, job_id: str) -> str:
    return f"{sr_mount}/vdc-manage-{job_id}.vhd.bz2"


def file_size(conn: Connection, path: str) -> int | None:
    result = conn.run(["stat", "-c", "%s", "--", path], check=False)
    text = result.stdout_text.strip()
    return int(text) if result.exit_status == 0 and text.isdigit() else None


def remove(conn: Connection, *paths: str) -> None:
    """Remove ``paths`` and whatever temporaries of theirs an interrupted step left."""
    remote_files.remove_with_temporaries(conn, *paths)


def md5_of(conn: Connection, path: str, on_poll: Callable[[], None] | None = None) -> str:
    """md5sum is on every dom0 (coreutils 5.97 of XenServer 6.2 included)."""
    result = conn.run(["md5sum", "--", path], timeout=None, on_poll=on_poll)
    return result.stdout_text.split()[0]


def find_compressor(conn: Connection) -> str:
    script = 'for c in "$@"; do command -v "$c" >/dev/null 2>&1 && { echo "$c"; exit 0; }; done; exit 1'
    result = conn.run(["sh", "-c", script, "sh", *COMPRESSORS], check=False)
    if result.exit_status != 0:
        from vdcmanage.remote.errors import HostUnusable

        raise HostUnusable(f"{conn.where} has no bzip2 (looked for {', '.join(COMPRESSORS)})")
    return result.stdout_text.strip()


def compress(
    conn: Connection,
    compressor: str,
    source: str,
    dest: str,
    total: int,
    progress: Callable[[int, int], None],
    check: Callable[[], None],
) -> None:
    """``<compressor> -c < source`` into ``dest`` on the host, through a fresh temporary renamed into
    place when complete (remote/files.py: nothing at a guessable name is opened for writing).
    Progress is how far the compressor has read its input (``/proc/<pid>/fdinfo/0``), polled once a
    second; ``check`` runs twice a second and whatever it raises (a cancelled job) kills the compressor."""
    script = 'echo "vdc-manage-pid $$" >&2; exec "$1" -c < "$2" 1<> "$3"'
    temporary = remote_files.create_temporary(conn, dest)
    pid: list[int] = []
    last_poll = [0.0]

    def on_stderr(chunk: bytes) -> None:
        match = PID_RE.search(chunk)
        if match and not pid:
            pid.append(int(match.group(1)))

    def on_poll() -> None:
        check()
        now = time.monotonic()
        if pid and now - last_poll[0] >= 1.0:
            last_poll[0] = now
            done = read_position(conn, pid[0])
            if done is not None:
                progress(done, total)

    try:
        conn.run(["sh", "-c", script, "sh", compressor, source, temporary], timeout=None, on_stderr=on_stderr,
                 on_poll=on_poll)
        remote_files.rename_into_place(conn, temporary, dest)
    except BaseException:
        with contextlib.suppress(Exception):  # a dropped connection: the step's cleanup removes it later
            conn.run(["rm", "-f", "--", temporary], timeout=30)
        raise


def read_position(conn: Connection, pid: int) -> int | None:
    result = conn.run(["cat", f"/proc/{pid}/fdinfo/0"], check=False, timeout=10)
    match = POS_RE.search(result.stdout)
    return int(match.group(1)) if match else None
