"""A FIFO, a socket, a device or a directory given where a command takes an image PATH: named for what
it is (exit 100), at once (never a read that blocks on a FIFO), never "File not found"."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

COMMANDS = {
    "add": ["image", "add", "local", "{}", "--account-id", "a-shpoolxx"],
    "import": ["image", "import", "xen", "{}", "--host", "xen1", "--account-id", "a-shpoolxx"],
    "prepare": ["image", "prepare", "{}", "--for", "xen-pv", "--check"],
    "boot-check": ["image", "boot-check", "{}"],
}


def first_block_device() -> Path:
    for entry in sorted(Path("/dev").iterdir()):
        if stat.S_ISBLK(entry.stat().st_mode):
            return entry
    raise AssertionError("this machine has no block device in /dev (loop devices are expected)")


@pytest.fixture
def specials(tmp_path: Path) -> Iterator[dict[str, Path]]:
    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "image.sock"))
    linked = tmp_path / "link-to-fifo.raw"
    linked.symlink_to(fifo)
    yield {
        "a FIFO": fifo,
        "a socket": tmp_path / "image.sock",
        "a character device": Path("/dev/null"),
        "a block device": first_block_device(),
        "a FIFO (through a link)": linked,
    }
    sock.close()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_special_files_are_named_not_read(run_cli, specials: dict[str, Path], command: str) -> None:  # type: ignore[no-untyped-def]
    for kind, path in specials.items():
        args = [a.replace("{}", str(path)) for a in COMMANDS[command]]
        result = run_cli(*args)
        expected = kind.split(" (")[0]
        assert result.code == 100, (command, kind, result.err)
        assert f"{path} is {expected}, not a regular file" in result.err, (command, kind, result.err)
        assert "File not found" not in result.err


@pytest.mark.parametrize("command", ["add", "import", "boot-check"])
def test_a_directory_is_named(run_cli, tmp_path: Path, command: str) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "images"
    directory.mkdir()
    result = run_cli(*[a.replace("{}", str(directory)) for a in COMMANDS[command]])
    assert result.code == 100 and f"{directory} is a directory" in result.err, result.err
    assert "File not found" not in result.err


def test_a_dangling_link_is_file_not_found(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "gone.raw"
    link.symlink_to(tmp_path / "nothing")
    for command in COMMANDS:
        result = run_cli(*[a.replace("{}", str(link)) for a in COMMANDS[command]])
        assert result.code == 100 and "not found" in result.err.lower(), (command, result.err)


def test_a_key_file_that_is_a_fifo_is_named(run_cli, specials: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    fifo = specials["a FIFO"]
    result = run_cli("host", "add", "xen1", "--address", "192.0.2.1", "--key-file", str(fifo))
    assert result.code == 100 and f"{fifo} is a FIFO, not a regular file" in result.err, result.err
