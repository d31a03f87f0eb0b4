"""The commands that run on the host: prepare the staged file, then receive and verify chunks.

Everything here must run on the oldest dom0 we support: XenServer 6.2's CentOS 5 (bash 3.2,
coreutils 5.97). That rules out ``truncate`` (coreutils 7.0), ``dd iflag=fullblock``,
``oflag=seek_bytes`` and ``status=`` (all 7.x/8.x), so:

- the sparse file is made with ``dd if=/dev/null of=F bs=1 seek=SIZE``: dd truncates its output at
  the seek offset and, reading nothing, writes nothing (POSIX dd, instantaneous, no data blocks);
- every write starts on a 1 MiB boundary, so ``dd of=F bs=1048576 seek=N conv=notrunc`` places it
  with a block-count seek that any dd understands (``1048576`` rather than ``1M`` for BusyBox too);
- the exact length of a write comes from ``head -c LEN`` (exact on a pipe: it never reads past LEN),
  because ``dd count=`` on a pipe counts short reads as blocks and would lose data; dd itself copies
  short reads as they come and advances its output by what it wrote, so the data lands contiguously.
  Where dd has ``iflag=fullblock`` (coreutils 7.0+, XenServer 7 and later) a run of whole MiB is
  read by dd alone, which saves the host a process and a pipe copy (~0.4 CPU-s per GiB);
- checksums are ``cksum`` (POSIX CRC-32, see checksum.py for why) of ``dd if=F bs=1048576 skip=N
  count=M``: plain block reads of a regular file, which are never short before end of file.

One script (:data:`RECEIVE`) prepares the staged file and then receives into it, so that an upload
costs the host one SSH session per lane. It reads frames from its stdin, one line each, the ``w``
line followed by its payload:

    w SEEK LENGTH            LENGTH bytes follow; written at SEEK MiB
    v CHUNK S1 C1 [S2 C2...] checksum of blocks S1..S1+C1-1, then S2.., in that order; answered
                             by "v CHUNK <crc>" from a background job (the next chunk's data keeps
                             flowing while the host reads this one back)

At end of input it waits for the background checksums and prints ``done`` and the file's size. It
runs with ``LC_ALL=C``: dd's messages are then the same words on every host.
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCK = 1024 * 1024  # the unit of seek/skip in every remote dd; also the zero-detection granularity

# Exit codes of the receiver (ssh itself exits 255 for its own failures)
EXIT_WRITE_FAILED = 3  # dd could not write (disk full, I/O error); its message is on stderr
EXIT_TOOL_MISSING = 4  # the host lacks dd, head, cksum, ls, rm, mktemp or mv
EXIT_NO_DIRECTORY = 5  # the directory (or, attaching, the staged file) does not exist
EXIT_CANNOT_CREATE = 6  # the staged file cannot be created (permissions, read-only filesystem)

# $1 staged file, $2 its final size in bytes, $3 what to do first:
#   new     create it sparse at its full size (whatever was there is removed first)
#   resume  keep it if it exists with exactly that size, else create it as for "new"
#   attach  nothing: another lane of the same upload prepared it
# Then "ready new|resume|attach" (what it did), the frames, and at the end "done <size in bytes>".
RECEIVE = r"""
export LC_ALL=C
f=$1 size=$2 mode=$3
umask 077
for tool in dd head cksum ls rm mktemp mv; do
  type "$tool" >/dev/null 2>&1 || { echo "the host has no $tool command" >&2; exit 4; }
done
case $f in */*) dir=${f%/*} ;; *) dir=. ;; esac
[ -d "${dir:-/}" ] || { echo "the directory ${dir:-/} does not exist" >&2; exit 5; }
file_size() { (set -f; set -- $(ls -lnd -- "$f"); echo "$5"); }
ours() { [ -f "$f" ] && [ ! -L "$f" ]; }
if [ "$mode" = resume ] && ours && [ "$(file_size)" = "$size" ]; then
  :
elif [ "$mode" = attach ]; then
  ours || { echo "the staged file $f is gone" >&2; exit 5; }
else
  mode=new
  # a fresh random name (O_EXCL, 0600), renamed over whatever was planted at $f: never opened by name
  tmp=$(mktemp -- "$dir/.${f##*/}.part.XXXXXXXXXX") || exit 6
  err=$(dd if=/dev/null of="$tmp" bs=1 seek="$size" 2>&1) || { rm -f -- "$tmp"; printf '%s\n' "$err" >&2; exit 6; }
  mv -f -T -- "$tmp" "$f" || { rm -f -- "$tmp"; exit 6; }
fi
# dd iflag=fullblock (coreutils 7.0+) reads whole MiB runs exactly by itself: no head in between
if dd if=/dev/null of=/dev/null iflag=fullblock 2>/dev/null; then whole=yes; else whole=; fi
# oflag=nofollow (coreutils 5.3+): a link put in place of the staged file mid-upload is not written through
if dd if=/dev/null of=/dev/null oflag=nofollow 2>/dev/null; then nofollow=oflag=nofollow; else nofollow=; fi
echo "ready $mode"
while read -r op a b; do
  case $op in
  w)
    if [ -n "$whole" ] && [ $((b % 1048576)) -eq 0 ]; then
      dd of="$f" bs=1048576 seek="$a" count=$((b / 1048576)) iflag=fullblock $nofollow conv=notrunc || exit 3
    else
      head -c "$b" | dd of="$f" bs=1048576 seek="$a" $nofollow conv=notrunc || exit 3
    fi ;;
  v)
    case $b in
    *" "*" "*)
      (
        set -f
        set -- $b
        while [ $# -gt 1 ]; do
          dd if="$f" bs=1048576 skip="$1" count="$2" 2>/dev/null
          shift 2
        done | cksum | { read -r crc _; echo "v $a $crc"; }
      ) & ;;
    *)
      dd if="$f" bs=1048576 skip="${b% *}" count="${b#* }" 2>/dev/null |
        cksum | { read -r crc _; echo "v $a $crc"; } & ;;
    esac ;;
  esac
done
wait
echo "done $(file_size)"
"""

MODES = ("new", "resume", "attach")


def receive_argv(remote_path: str, remote_size: int, mode: str) -> list[str]:
    if mode not in MODES:
        raise ValueError(f"unknown receiver mode {mode!r}")
    return ["sh", "-c", RECEIVE, "vdc-receive", remote_path, str(remote_size), mode]


def write_header(seek_blocks: int, length: int) -> bytes:
    return b"w %d %d\n" % (seek_blocks, length)


def verify_frame(chunk: int, runs: Sequence[tuple[int, int]]) -> bytes:
    """Ask for the checksum of the blocks ``runs`` (first block, count) of ``chunk``, concatenated."""
    return b"v %d %s\n" % (chunk, " ".join(f"{start} {count}" for start, count in runs).encode("ascii"))


def parse_ready(line: bytes | None) -> str | None:
    """``ready MODE`` -> MODE (what the receiver did); anything else -> None."""
    fields = (line or b"").split()
    if len(fields) == 2 and fields[0] == b"ready" and fields[1].decode("ascii", "replace") in MODES:
        return fields[1].decode("ascii")
    return None


def parse_done(line: bytes) -> int | None:
    """``done SIZE`` -> SIZE; anything else -> None."""
    fields = line.split()
    if len(fields) == 2 and fields[0] == b"done" and fields[1].isdigit():
        return int(fields[1])
    return None


def parse_reply(line: bytes) -> tuple[int, str] | None:
    """``v CHUNK CRC`` -> (chunk, crc); anything else -> None."""
    fields = line.split()
    if len(fields) == 3 and fields[0] == b"v" and fields[1].isdigit():
        return int(fields[1]), fields[2].decode("ascii", errors="replace")
    return None
