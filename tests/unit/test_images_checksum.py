"""file_digests against coreutils md5sum/sha256sum on real files; progress; Ctrl-C; the md5 helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vdcmanage.errors import ChecksumMismatch, FileNotFound, InvalidArgument
from vdcmanage.images import Digests, check_md5, file_digests, parse_md5
from vdcmanage.images import checksum as checksum_module
from vdcmanage.images.checksum import BUFFER_SIZE, BUFFERS

REPO = Path(__file__).resolve().parents[2]
B = BUFFER_SIZE
SIZES = (0, 1, 511, B - 1, B, B + 1, 2 * B, 3 * B + 17, BUFFERS * B, BUFFERS * B + 1, 2 * BUFFERS * B + 4097)


def coreutils(tool: str, path: Path) -> str:
    return subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


@pytest.mark.parametrize("size", SIZES)
def test_digests_match_coreutils(tmp_path: Path, size: int) -> None:
    path = tmp_path / f"data-{size}"
    path.write_bytes(os.urandom(size))
    assert file_digests(path) == Digests(coreutils("md5sum", path), coreutils("sha256sum", path), size)


def test_sparse_file_and_str_path(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.truncate(64 * B + 3)
        f.seek(17 * B + 5)
        f.write(b"in the middle")
    digests = file_digests(str(path))
    assert (digests.md5, digests.sha256) == (coreutils("md5sum", path), coreutils("sha256sum", path))


def test_progress_reports_growing_totals_and_ends_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksum_module, "PROGRESS_INTERVAL", 0.0)  # a call per buffer, to see them all
    size = 5 * B + 123
    path = tmp_path / "data"
    path.write_bytes(os.urandom(size))
    calls: list[tuple[int, int]] = []
    file_digests(path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (size, size)
    assert len(calls) >= 5
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert all(total == size for _, total in calls)


def test_progress_rate_is_modest(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(os.urandom(40 * B))
    calls: list[tuple[int, int]] = []
    file_digests(path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (40 * B, 40 * B)
    assert len(calls) <= 3  # 40 MiB hash in well under a second: at most a couple of 0.2 s reports


def md5_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "md5"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_exception_from_progress_stops_the_pass_and_leaves_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    monkeypatch.setattr(checksum_module, "PROGRESS_INTERVAL", 0.0)
    path = tmp_path / "data"
    path.write_bytes(os.urandom(20 * B))
    before = threading.active_count()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise error()

    with pytest.raises(error):
        file_digests(path, progress=progress)
    assert len(calls) == 3
    assert md5_threads() == []
    assert threading.active_count() == before


def test_real_ctrl_c_stops_promptly(tmp_path: Path) -> None:
    """SIGINT to a process hashing a large file: it stops within a moment, with no thread left."""
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(64 << 30)  # sparse: reads fast, but takes far longer than the test waits
    code = (
        "import sys, threading, time\n"
        "from vdcmanage.images import file_digests\n"
        "print('started', flush=True)\n"
        "try:\n"
        "    file_digests(sys.argv[1])\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', threading.active_count(), flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2
    assert out.strip() == "interrupted 1"
    assert proc.returncode == 0


def test_refuses_what_is_not_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound, match="File not found"):
        file_digests(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="is a directory"):
        file_digests(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgument, match="is a FIFO"):
        file_digests(fifo)


# --- the operator's --md5sum -----------------------------------------------------------------------

MD5_OF_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"


def test_parse_md5_accepts_any_case_and_surrounding_blanks() -> None:
    assert parse_md5(MD5_OF_EMPTY.upper()) == MD5_OF_EMPTY
    assert parse_md5(f"  {MD5_OF_EMPTY}\n") == MD5_OF_EMPTY


@pytest.mark.parametrize("bad", ["", "abc", MD5_OF_EMPTY + "0", MD5_OF_EMPTY[:-1] + "g", "z" * 32, "é" * 32])
def test_parse_md5_refuses_anything_but_32_hex_digits(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="md5sum must be 32 hexadecimal digits") as caught:
        parse_md5(bad)
    assert caught.value.exit_code == 100


def test_check_md5(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    digests = file_digests(path)
    check_md5(MD5_OF_EMPTY.upper(), digests, path)
    wrong = "0123456789abcdef0123456789ABCDEF"
    with pytest.raises(ChecksumMismatch) as caught:
        check_md5(wrong, digests, path)
    assert str(caught.value) == (
        f"md5sum mismatch for {path}: expected {wrong.lower()}, the file has {MD5_OF_EMPTY}"
    )
    assert caught.value.exit_code == 100
