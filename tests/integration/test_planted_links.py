"""Temporaries nobody can plant: a link put in advance at any name we used to write is never followed.

Real directories with real symlinks; the SSH backup storage and the XenServer host are the real sshd
test servers. Each case plants ``<name>.part`` (the old predictable temporary), the final name and
the names the staging and compression used, all pointing at a victim file, and proves the victim
is untouched and the artifact published correctly.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vdcmanage.errors import ChecksumMismatch
from vdcmanage.safefiles import create_temporary, remove_temporaries

VICTIM_TEXT = b"root:x:0:0:root:/root:/bin/sh\n"
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
NAME = "wmi-planted1.vhd.bz2"


def plant(directory: Path, victim: Path, *names: str) -> None:
    for name in names:
        (directory / name).symlink_to(victim)


def victim_file(tmp_path: Path) -> Path:
    victim = tmp_path / "passwd"
    victim.write_bytes(VICTIM_TEXT)
    victim.chmod(0o644)
    return victim


def publish(destination: Any, data: bytes, sha256: str | None = None) -> None:
    destination.begin(NAME)
    try:
        for start in range(0, len(data), 1024 * 1024):
            destination.write(data[start : start + 1024 * 1024])
        destination.commit(sha256 or hashlib.sha256(data).hexdigest())
    except BaseException:
        destination.abort()
        raise


def assert_published(directory: Path, victim: Path) -> None:
    final = directory / NAME
    assert not final.is_symlink() and final.read_bytes() == PAYLOAD
    assert oct(final.stat().st_mode & 0o777) == "0o644"
    assert victim.read_bytes() == VICTIM_TEXT and oct(victim.stat().st_mode & 0o777) == "0o644"


def test_create_temporary_is_private_random_and_never_follows(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        fd, path = create_temporary(tmp_path, NAME)
        os.close(fd)
    finally:
        os.umask(old_umask)
    assert path.parent == tmp_path and path.name.startswith(f".{NAME}.part.") and not path.is_symlink()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    fd, second = create_temporary(tmp_path, NAME)
    os.close(fd)
    assert second != path
    remove_temporaries(tmp_path, NAME)
    assert list(tmp_path.iterdir()) == []


def test_local_storage_ignores_planted_links(tmp_path: Path) -> None:
    from vdcmanage.importer.publish import LocalDestination

    victim = victim_file(tmp_path)
    www = tmp_path / "www"
    www.mkdir(mode=0o777)
    plant(www, victim, f".{NAME}.part", f"{NAME}.part", NAME)
    destination = LocalDestination(SimpleNamespace(id="bkst-local", path=str(www)))  # type: ignore[arg-type]
    publish(destination, PAYLOAD)
    assert_published(www, victim)
    assert sorted(p.name for p in www.iterdir()) == sorted([f".{NAME}.part", f"{NAME}.part", NAME])
    destination.remove(NAME)
    assert victim.read_bytes() == VICTIM_TEXT


def test_local_storage_publishes_nothing_when_the_checksum_fails(tmp_path: Path) -> None:
    from vdcmanage.importer.publish import LocalDestination

    www = tmp_path / "www"
    www.mkdir()
    destination = LocalDestination(SimpleNamespace(id="bkst-local", path=str(www)))  # type: ignore[arg-type]
    with pytest.raises(ChecksumMismatch, match="nothing was published"):
        publish(destination, PAYLOAD, sha256="0" * 64)
    assert list(www.iterdir()) == []


def test_ssh_storage_ignores_planted_links(tmp_path: Path, web_server: Any) -> None:
    from vdcmanage.importer.publish import SshDestination
    from vdcmanage.remote.ssh import Connection, SshTarget

    victim = victim_file(tmp_path)
    plant(web_server.www, victim, f".{NAME}.part", f"{NAME}.part", NAME)
    known = Path.home() / ".ssh" / "known_hosts"
    known.parent.mkdir(mode=0o700, exist_ok=True)
    with open(known, "a") as f:
        f.write(web_server.server.known_hosts_line + "\n")
    server = web_server.server
    target = SshTarget(server.address, port=server.port, user="root", key_file=str(web_server.key_file))
    storage = SimpleNamespace(id="bkst-web", path=str(web_server.www))
    with Connection(target).open() as conn:
        destination = SshDestination(storage, conn)  # type: ignore[arg-type]
        publish(destination, PAYLOAD)
        assert_published(web_server.www, victim)
        with pytest.raises(ChecksumMismatch):
            publish(destination, PAYLOAD, sha256="0" * 64)
        assert_published(web_server.www, victim)  # the failed second run left the first one alone
        assert sorted(p.name for p in web_server.www.iterdir()) == sorted([f".{NAME}.part", f"{NAME}.part", NAME])
        leftover = web_server.www / f".{NAME}.part.leftover1234"
        leftover.write_bytes(b"from a crashed run")
        destination.remove(NAME)
    assert not leftover.exists() and not (web_server.www / NAME).exists()
    assert victim.read_bytes() == VICTIM_TEXT
