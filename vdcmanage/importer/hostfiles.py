"""Files on the XenServer host: staging names, sizes, checksums, removal, compression with progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vdcmanage.remote import files as remote_files
from vdcmanage.remote.ssh import Connection, failure_message

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


# The VHD is compressed in chunks (config.COMPRESS_CHUNK_MIB, 256 MiB), each into a bzip2 stream of its
# own appended to the temporary: a concatenation of bzip2 streams is a valid .bz2 that bunzip2 reads
# whole, so a dropped connection costs at most one chunk. Chunks are whole multiples of DD_BLOCK.
DD_BLOCK = 1024 * 1024
# $1 the VHD, $2 the compressor, $3 the temporary, $4 dd's block size, $5 first block, $6 blocks.
# The temporary must still be the regular file mktemp made (>> would create a planted name anew); a
# failed dd is said on stderr (no pipefail in the sh of old dom0s); the temporary's length comes back.
# The pipeline runs in the background so that the SIGTERM of a closed channel (ssh.KILL_WHEN_CLOSED)
# kills the compressor too: one left running would append to the temporary after it was cut back.
CHUNK_SCRIPT = (
    '[ -f "$3" ] && [ ! -L "$3" ] || { echo "vdc-manage: the temporary $3 is gone" >&2; exit 3; }; '
    'trap \'kill "$last" 2>/dev/null; exit 143\' TERM; '
    '{ dd if="$1" bs="$4" skip="$5" count="$6" 2>/dev/null || echo "vdc-manage-dd-failed" >&2; } '
    '| "$2" -c >> "$3" & last=$!; '
    'wait "$last" && stat -c %s -- "$3"'
)
RESUME_SCRIPT = '[ -f "$1" ] && [ ! -L "$1" ] && stat -c %s -- "$1"'


@dataclass
class CompressJob:
    """One compression of ``source`` (``total`` bytes) into ``dest`` on the host. ``saved`` is what an
    earlier, interrupted run recorded (``temporary``, ``chunks`` done, the temporary's ``length`` then);
    ``save`` records it after every chunk; ``progress`` gets bytes of the VHD done; ``check`` (a
    cancelled job) runs twice a second while a chunk compresses and kills it."""

    compressor: str
    source: str
    dest: str
    total: int
    saved: dict[str, Any] | None
    save: Callable[[dict[str, Any]], None]
    progress: Callable[[int, int], None]
    check: Callable[[], None]
    log: Callable[[str], None]
    chunk_bytes: int


def chunk_count(total: int, chunk_bytes: int) -> int:
    return max(1, -(-total // chunk_bytes))


def compress(conn: Connection, job: CompressJob) -> None:
    """Compress chunk after chunk into a temporary renamed into place when complete (remote/files.py:
    nothing at a guessable name is opened for writing), going on from the chunks an earlier run recorded."""
    count = chunk_count(job.total, job.chunk_bytes)
    if finished_before(conn, job, count):
        return
    temporary, done, length = resume_point(conn, job)
    job.progress(min(done * job.chunk_bytes, job.total), job.total)
    blocks = job.chunk_bytes // DD_BLOCK
    for chunk in range(done, count):
        job.check()
        length = compress_chunk(conn, job, temporary, chunk * blocks, blocks)
        job.save({"temporary": temporary, "chunks": chunk + 1, "length": length, "chunk_bytes": job.chunk_bytes})
        job.progress(min((chunk + 1) * job.chunk_bytes, job.total), job.total)
    remote_files.rename_into_place(conn, temporary, job.dest)


def finished_before(conn: Connection, job: CompressJob, count: int) -> bool:
    """Renamed into place by a run whose connection dropped before the step could say so."""
    saved = job.saved or {}
    return saved.get("chunks") == count and file_size(conn, job.dest) == saved.get("length")


def resume_point(conn: Connection, job: CompressJob) -> tuple[str, int, int]:
    """The temporary to append to, the chunks it holds and its length: the recorded ones, cut back to
    the recorded length (a chunk half-appended when the connection broke), or a new empty temporary."""
    saved = job.saved or {}
    temporary, length = saved.get("temporary"), int(saved.get("length", 0))
    if temporary:
        if saved.get("chunk_bytes") == job.chunk_bytes and holds_at_least(conn, temporary, length):
            conn.run(["truncate", "-s", str(length), "--", temporary])
            job.log(f"compress: resuming after chunk {saved['chunks']} of {chunk_count(job.total, job.chunk_bytes)} "
                    f"({length} compressed bytes kept in {temporary})")
            return temporary, int(saved["chunks"]), length
        job.log(f"compress: the temporary {temporary} is gone, shorter than recorded or of another chunk size: "
                "starting over")
        conn.run(["rm", "-f", "--", temporary])
    temporary = remote_files.create_temporary(conn, job.dest)
    job.save({"temporary": temporary, "chunks": 0, "length": 0, "chunk_bytes": job.chunk_bytes})
    return temporary, 0, 0


def holds_at_least(conn: Connection, temporary: str, length: int) -> bool:
    """``temporary`` is still a regular file (not a link planted in its place) of ``length`` bytes or more."""
    now = conn.run(["sh", "-c", RESUME_SCRIPT, "sh", temporary], check=False).stdout_text.strip()
    return now.isdigit() and int(now) >= length


def compress_chunk(conn: Connection, job: CompressJob, temporary: str, skip: int, blocks: int) -> int:
    """Append the compressed chunk to ``temporary``; return the temporary's new length."""
    argv = ["sh", "-c", CHUNK_SCRIPT, "sh", job.source, job.compressor, temporary, str(DD_BLOCK), str(skip),
            str(blocks)]
    result = conn.run(argv, check=False, timeout=None, on_poll=job.check)
    length = result.stdout_text.strip()
    if result.exit_status != 0 or b"vdc-manage-dd-failed" in result.stderr or not length.isdigit():
        from vdcmanage.remote.errors import RemoteCommandFailed

        raise RemoteCommandFailed(failure_message(result, conn.where), result)
    return int(length)
