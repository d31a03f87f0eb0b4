"""The upload's parts on their own: cksum arithmetic against the real cksum, chunk layout, resume state,
sparse reading of real sparse files, and the receiver script run by real dash and bash with coreutils."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from vdcmanage.errors import FileNotFound, InvalidArgument
from vdcmanage.remote.transfer import receiver
from vdcmanage.remote.transfer.checksum import Cksum, local_tools, start_block_sum
from vdcmanage.remote.transfer.source import BLOCK, CHUNK, BufferPool, Chunk, FileIdentity, Layout, LocalSource
from vdcmanage.remote.transfer.state import UploadState, from_ranges, to_ranges

MiB = 1024 * 1024


def real_cksum(data: bytes) -> str:
    return subprocess.run(["cksum"], input=data, capture_output=True, check=True).stdout.split()[0].decode()


# -- checksum ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65536 + 3, 3 * MiB + 7])
def test_cksum_matches_coreutils(size: int) -> None:
    data = os.urandom(size)
    digest = Cksum()
    digest.update(data)
    assert digest.hexdigest() == real_cksum(data)


def test_cksum_in_pieces_equals_cksum_of_the_concatenation() -> None:
    pieces = [os.urandom(n) for n in (5, MiB + 1, 0, 77)]
    digest = Cksum()
    for piece in pieces:
        digest.update(memoryview(piece))
    assert digest.hexdigest() == real_cksum(b"".join(pieces))
    assert digest.length == sum(map(len, pieces))


def test_cksum_of_zeros_differs_by_length() -> None:
    """cksum includes the length: two runs of zeros of different sizes must not look alike."""
    short, long = Cksum(), Cksum()
    short.update(bytes(100))
    long.update(bytes(200))
    assert short.hexdigest() != long.hexdigest()
    assert long.hexdigest() == real_cksum(bytes(200))


def test_the_local_block_sum_is_the_hosts_command_on_the_local_file(tmp_path: Path) -> None:
    path = tmp_path / "it's a $(file)"
    data = os.urandom(5 * BLOCK)
    path.write_bytes(data)
    tools = local_tools()
    assert tools is not None
    pending = start_block_sum(tools, str(path), [(0, 2), (3, 2)])
    assert pending.result() == real_cksum(data[: 2 * BLOCK] + data[3 * BLOCK :])
    pending.close()


def test_without_the_tools_there_is_no_local_block_sum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert local_tools() is None


# -- layout ------------------------------------------------------------------------------------------------


def test_layout_pads_and_splits_into_chunks() -> None:
    layout = Layout.for_size(CHUNK * 2 + 1000, pad_to=512)
    assert layout.remote_size == CHUNK * 2 + 1024
    assert layout.chunks == 3
    assert layout.span(2) == (2 * CHUNK, 1024)
    assert layout.local_length(2) == 1000
    assert layout.local_length(0) == CHUNK


@pytest.mark.parametrize("pad_to", [0, -512, 1.5, True, "512"])
def test_layout_refuses_a_bad_pad_to(pad_to: object) -> None:
    with pytest.raises(InvalidArgument, match="pad_to"):
        Layout.for_size(1000, pad_to)  # type: ignore[arg-type]


def test_empty_file_has_no_chunks() -> None:
    assert Layout.for_size(0, 512).chunks == 0


# -- resume state --------------------------------------------------------------------------------------------


SIZE = 6 * CHUNK + 100  # 7 chunks
IDENTITY = FileIdentity(size=SIZE, mtime_ns=123, inode=45, device=6)


def test_ranges_round_trip() -> None:
    chunks = {0, 1, 2, 5, 7, 8}
    assert to_ranges(chunks) == [[0, 3], [5, 6], [7, 9]]
    assert from_ranges(to_ranges(chunks)) == chunks


def test_state_round_trips_through_json() -> None:
    state = UploadState(IDENTITY, "/sr/x", SIZE, {0, 1, 4})
    saved = json.loads(json.dumps(state.to_dict()))
    restored, reason = UploadState.restore(saved, IDENTITY, "/sr/x", SIZE)
    assert reason is None
    assert restored.verified == {0, 1, 4}


def test_no_saved_state_is_a_fresh_start_without_a_reason() -> None:
    state, reason = UploadState.restore(None, IDENTITY, "/sr/x", SIZE)
    assert reason is None and state.verified == set()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s["local"].update(mtime_ns=999), "local file changed since the last attempt (mtime_ns differ)"),
        (lambda s: s["local"].update(size=1, inode=2), "(size, inode differ)"),
        (lambda s: s.update(remote_path="/sr/other"), "another staging path"),
        (lambda s: s.update(version=99), "another version"),
        (lambda s: s.update(chunk_size=CHUNK * 2), "another version"),
        (lambda s: s.update(verified=[["a", 2]]), "unreadable"),
        (lambda s: s.update(verified=[[3, 1]]), "unreadable"),
        (lambda s: s.update(local="nonsense"), "unreadable"),
    ],
)
def test_a_saved_state_that_does_not_fit_restarts_and_says_why(change: object, words: str) -> None:
    saved = UploadState(IDENTITY, "/sr/x", SIZE, {0, 1}).to_dict()
    change(saved)  # type: ignore[operator]
    state, reason = UploadState.restore(saved, IDENTITY, "/sr/x", SIZE)
    assert state.verified == set()
    assert reason is not None and words in reason and reason.endswith("starting the upload over")


def test_restored_chunks_outside_the_file_are_dropped() -> None:
    saved = UploadState(IDENTITY, "/sr/x", SIZE, {0, 6, 7, 500}).to_dict()
    state, _ = UploadState.restore(saved, IDENTITY, "/sr/x", SIZE)
    assert state.verified == {0, 6}  # 100 MiB = 7 chunks of 16 MiB


# -- reading the local file ----------------------------------------------------------------------------------


def sparse_file(path: Path) -> dict[str, bytes]:
    """Chunk 0: data in blocks 0-1, written zeros in 2-3, a hole in 4-9, data in block 10 (partial),
    hole to the end of the chunk. Chunk 1: a hole. Chunk 2: 1000 bytes of data (file end)."""
    data_a, data_b, tail = os.urandom(2 * BLOCK), os.urandom(BLOCK // 2), os.urandom(1000)
    with open(path, "wb") as out:
        out.write(data_a)
        out.write(bytes(2 * BLOCK))
        out.seek(10 * BLOCK)
        out.write(data_b)
        out.seek(2 * CHUNK)
        out.write(tail)
    return {"a": data_a, "b": data_b, "tail": tail}


def read(source: LocalSource, layout: Layout, index: int) -> Chunk:
    pool = BufferPool(1)
    buffer = pool.get(threading.Event())
    assert buffer is not None
    chunk = Chunk(index, *layout.span(index), buffer, pool)
    source.read_chunk(chunk, layout)
    return chunk


def test_holes_and_zero_blocks_are_not_in_the_runs(tmp_path: Path) -> None:
    path = tmp_path / "sparse.img"
    parts = sparse_file(path)
    source = LocalSource(path)
    layout = Layout.for_size(path.stat().st_size, 512)
    try:
        first = read(source, layout, 0)
        assert [(r.first_block, r.count, r.start, r.length) for r in first.runs] == [
            (0, 2, 0, 2 * BLOCK),
            (10, 1, 10 * BLOCK, BLOCK),
        ]
        assert bytes(first.view) == path.read_bytes()[:CHUNK]  # holes read as zeros
        assert first.data_bytes == 3 * BLOCK
        assert read(source, layout, 1).runs == []
        last = read(source, layout, 2)
        assert last.length == 1024 and last.local_length == 1000  # padded to 512
        assert bytes(last.view) == parts["tail"] + bytes(24)
        assert [(r.first_block, r.count, r.length) for r in last.runs] == [(2 * CHUNK // BLOCK, 1, 1024)]
    finally:
        source.close()


def test_the_extents_come_from_seek_data(tmp_path: Path) -> None:
    path = tmp_path / "sparse.img"
    sparse_file(path)
    source = LocalSource(path)
    try:
        extents = source.data_extents(0, path.stat().st_size)
    finally:
        source.close()
    # written zeros are data to the filesystem; the holes are not (4 KiB pages at least)
    assert extents[0][0] == 0 and extents[0][1] >= 4 * BLOCK
    assert any(start <= 10 * BLOCK < end for start, end in extents)
    assert not any(start < 8 * BLOCK and end > 5 * BLOCK for start, end in extents)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound, match="File not found"):
        LocalSource(tmp_path / "nope.img")


def test_a_directory_or_a_fifo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is a directory"):
        LocalSource(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgument, match="not a regular file"):
        LocalSource(fifo)  # at once: no waiting for a writer


# -- the receiver, run by real shells here ---------------------------------------------------------------------


SHELLS = ["dash", "bash"]


def receive(shell: str, path: Path, size: int, mode: str, frames: bytes) -> subprocess.CompletedProcess[bytes]:
    argv = receiver.receive_argv(str(path), size, mode)
    argv[0] = shell
    return subprocess.run(argv, input=frames, capture_output=True, timeout=60)


def lines(result: subprocess.CompletedProcess[bytes]) -> list[bytes]:
    return result.stdout.splitlines()


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_writes_runs_sparse_and_answers_checksums(shell: str, tmp_path: Path) -> None:
    path = tmp_path / "it's a \"staged\" $(touch pwned) `x`\nfile"
    first, last = os.urandom(2 * BLOCK), os.urandom(BLOCK // 2)  # the last run ends the file
    size = 6 * BLOCK + BLOCK // 2
    frames = (
        receiver.write_header(0, len(first)) + first
        + receiver.write_header(6, len(last)) + last
        + receiver.verify_frame(0, [(0, 2), (6, 1)])
        + receiver.verify_frame(1, [(6, 1)])
    )
    result = receive(shell, path, size, "new", frames)
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert out[0] == b"ready new" and out[-1] == f"done {size}".encode()
    replies = {receiver.parse_reply(line) for line in out[1:-1]}
    assert replies == {(0, real_cksum(first + last)), (1, real_cksum(last))}
    assert path.read_bytes() == first + bytes(4 * BLOCK) + last
    assert path.stat().st_blocks * 512 < 4 * BLOCK  # the zeros between are a hole
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.fixture
def old_dd(tmp_path: Path) -> dict[str, str]:
    """A PATH whose dd refuses iflag=fullblock, as coreutils 5.97 (XenServer 6.2's dom0) does."""
    bin_dir = tmp_path / "old-bin"
    bin_dir.mkdir()
    fake = bin_dir / "dd"
    fake.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *iflag=*) touch {bin_dir}/refused; echo "dd: invalid input flag" >&2; exit 1 ;; esac\n'
        'exec /usr/bin/dd "$@"\n'
    )
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_without_fullblock_uses_head(shell: str, tmp_path: Path, old_dd: dict[str, str]) -> None:
    path = tmp_path / "staged"
    data = os.urandom(3 * BLOCK)
    argv = receiver.receive_argv(str(path), 4 * BLOCK, "new")
    argv[0] = shell
    frames = receiver.write_header(1, len(data)) + data + receiver.verify_frame(0, [(1, 3)])
    result = subprocess.run(argv, input=frames, capture_output=True, timeout=60, env={**os.environ, **old_dd})
    assert result.returncode == 0, result.stderr
    assert receiver.parse_reply(lines(result)[1]) == (0, real_cksum(data))
    assert path.read_bytes() == bytes(BLOCK) + data
    assert (tmp_path / "old-bin" / "refused").exists()  # the old dd was asked, and said no


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_resumes_only_a_file_of_the_right_size(shell: str, tmp_path: Path) -> None:
    path = tmp_path / "staged"
    path.write_bytes(b"x" * 4096)
    assert lines(receive(shell, path, 4096, "resume", b""))[0] == b"ready resume"
    assert path.read_bytes() == b"x" * 4096
    assert lines(receive(shell, path, 8192, "resume", b""))[0] == b"ready new"
    assert path.read_bytes() == bytes(8192)
    path.unlink()
    assert lines(receive(shell, path, 100, "resume", b""))[0] == b"ready new"


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_attaches_only_to_an_existing_file(shell: str, tmp_path: Path) -> None:
    path = tmp_path / "staged"
    result = receive(shell, path, 100, "attach", b"")
    assert result.returncode == receiver.EXIT_NO_DIRECTORY and b"is gone" in result.stderr
    path.write_bytes(bytes(100))
    assert lines(receive(shell, path, 100, "attach", b""))[0] == b"ready attach"


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_names_a_missing_directory(shell: str, tmp_path: Path) -> None:
    result = receive(shell, tmp_path / "no-such-dir" / "staged", 100, "new", b"")
    assert result.returncode == receiver.EXIT_NO_DIRECTORY
    assert f"the directory {tmp_path}/no-such-dir does not exist".encode() in result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_cannot_replace_a_directory(shell: str, tmp_path: Path) -> None:
    (tmp_path / "staged").mkdir()
    result = receive(shell, tmp_path / "staged", 100, "new", b"")
    assert result.returncode == receiver.EXIT_CANNOT_CREATE


def test_protocol_lines_parse_strictly() -> None:
    assert receiver.parse_ready(b"ready new") == "new"
    assert receiver.parse_ready(b"ready sideways") is None
    assert receiver.parse_ready(None) is None
    assert receiver.parse_done(b"done 1024") == 1024
    assert receiver.parse_done(b"done ") is None
    assert receiver.parse_reply(b"v 12 3456") == (12, "3456")
    assert receiver.parse_reply(b"v x 3456") is None
    with pytest.raises(ValueError, match="mode"):
        receiver.receive_argv("/x", 1, "overwrite")


@pytest.mark.parametrize("mode", ["new", "resume"])
@pytest.mark.parametrize("shell", SHELLS)
def test_receiver_never_writes_through_a_planted_link(shell: str, mode: str, tmp_path: Path) -> None:
    victim = tmp_path / "passwd"
    victim.write_bytes(b"x" * (2 * BLOCK))  # the staged size: "resume" would take it if it followed links
    path = tmp_path / "staged"
    path.symlink_to(victim)
    (tmp_path / ".staged.part").symlink_to(victim)  # an old-style predictable temporary name, too
    data = os.urandom(BLOCK)
    result = receive(shell, path, 2 * BLOCK, mode, receiver.write_header(1, len(data)) + data)
    assert result.returncode == 0, result.stderr
    assert lines(result)[0] == b"ready new"
    assert victim.read_bytes() == b"x" * (2 * BLOCK)
    assert not path.is_symlink() and path.read_bytes() == bytes(BLOCK) + data
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staged.part", "passwd", "staged"]  # no temporary left
