"""A sparse file of a huge size (2 TiB, no data) takes hours to hash: the operator is warned with the
time it will take and must confirm (a question on a terminal, else --yes); scripts get exit 100."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TiB = 1 << 40
WARNING = re.compile(
    r"WARNING: (?P<path>\S+) is a sparse file of 2048\.0 GiB holding 0\.0 GiB of data: hashing reads all of it, "
    r"about [\d.]+ (hours|minutes) at the [\d.]+ GB/s measured here\n"
)


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.raw"
    with open(path, "wb") as f:
        f.truncate(2 * TiB)
    return path


def add_args(path: Path, *extra: str) -> list[str]:
    return ["image", "add", "local", str(path), "--account-id", "a-shpoolxx", *extra]


def test_without_a_terminal_and_without_yes_it_is_refused(run_cli, huge: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(*add_args(huge))
    assert result.code == 100
    assert WARNING.match(result.err) and WARNING.match(result.err)["path"] == str(huge)
    assert result.err.splitlines()[1].startswith("ERROR: ") and result.err.endswith("; pass --yes to hash it anyway\n")
    assert run_cli("image", "show", "-f", "json").out.strip() == "[]"


def test_import_asks_the_same(run_cli, huge: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("image", "import", "xen", str(huge), "--host", "xen1", "--account-id", "a-shpoolxx")
    assert result.code == 100 and WARNING.match(result.err) and "pass --yes" in result.err
    assert run_cli("job", "list", "-f", "json").out.strip() == "[]"


def started_hashing(argv: list[str], sqlite_url: str, stdin: int | None = None) -> tuple[int, str]:
    """Run until hashing has surely started, then Ctrl-C: exit 130 proves nothing refused it."""
    proc = subprocess.Popen([sys.executable, "-m", "vdcmanage", *argv], stdin=stdin, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env={**os.environ, "VDC_MANAGE_DB": sqlite_url})
    time.sleep(4)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_yes_hashes_without_asking(huge: Path, sqlite_url: str) -> None:
    code, err = started_hashing(add_args(huge, "--yes"), sqlite_url, stdin=subprocess.DEVNULL)
    assert code == 130 and WARNING.match(err) and "pass --yes" not in err


def in_terminal(argv: list[str], answer: bytes, sqlite_url: str) -> tuple[int, bytes]:
    """Run with a pseudo-terminal as stdin/stdout/stderr, answer the question, Ctrl-C after 4 s."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["VDC_MANAGE_DB"] = sqlite_url
        os.execv(sys.executable, [sys.executable, "-m", "vdcmanage", *argv])
    seen = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        seen += os.read(fd, 4096)
    os.write(fd, answer + b"\n")
    time.sleep(4)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:  # still hashing: Ctrl-C
        os.kill(pid, signal.SIGINT)
        status = os.waitpid(pid, 0)[1]
    try:
        while chunk := os.read(fd, 4096):
            seen += chunk
    except OSError:
        pass
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_on_a_terminal_it_asks(huge: Path, sqlite_url: str) -> None:
    code, screen = in_terminal(add_args(huge), b"n", sqlite_url)
    assert b"Hash it anyway? [y/N]" in screen and b"is a sparse file of 2048.0 GiB" in screen
    assert code == 100 and b"ERROR: Not confirmed: nothing was done" in screen
    code, screen = in_terminal(add_args(huge), b"y", sqlite_url)
    assert code == 130, screen  # it went on hashing until Ctrl-C


def test_a_small_sparse_file_is_not_questioned(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "small.raw"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    result = run_cli(*add_args(path))
    assert result.code == 0 and "WARNING" not in result.err, result.err
