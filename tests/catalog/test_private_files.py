"""Catalog files and SSH key files stay private: loose ones are tightened with a warning, another
user's are refused (exit 100), new ones are 0600 whatever the umask. Real files, real processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vdcmanage.errors import Refused
from vdcmanage.privatefiles import ensure_private

NOBODY = 65534


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def vdc(db: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vdcmanage", "--db", f"sqlite://{db}", *args],
        capture_output=True, text=True, timeout=120,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def test_loose_file_is_tightened_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "key"
    path.write_text("secret")
    path.chmod(0o664)
    ensure_private(path, "SSH key file")
    assert mode(path) == "0o600"
    assert f"WARNING: SSH key file {path} was accessible to others (mode 0664); tightened to 0600" in capsys.readouterr().err
    ensure_private(path, "SSH key file")  # private already: nothing said
    assert capsys.readouterr().err == ""


def test_another_users_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("secret")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(Refused, match=f"belongs to uid {NOBODY}, not to you"):
        ensure_private(path, "SSH key file")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_a_new_catalog_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "new" / "catalog.db"
    result = vdc(db, "account", "add", "--name", "first", umask=umask)
    assert result.returncode == 0, result.stderr
    assert mode(db) == "0o600" and "WARNING" not in result.stderr


def test_loose_catalog_and_its_wal_and_shm_are_tightened(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    assert vdc(db, "account", "list").returncode == 0
    holder = sqlite3.connect(db)  # an open connection keeps the -wal and -shm files in place
    holder.execute("PRAGMA journal_mode=wal")
    holder.execute("CREATE TABLE IF NOT EXISTS keepalive (x)")
    holder.commit()
    files = [db, db.with_name("catalog.db-wal"), db.with_name("catalog.db-shm")]
    try:
        for path in files:
            assert path.exists()
            path.chmod(0o644)
        result = vdc(db, "account", "list")
        assert result.returncode == 0, result.stderr
        for path in files:
            assert mode(path) == "0o600"
            assert f"WARNING: Catalog file {path} was accessible to others (mode 0644)" in result.stderr
        assert "a-shpoolxx" in result.stdout
    finally:
        holder.close()


def test_another_users_catalog_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    assert vdc(db, "account", "list").returncode == 0
    os.chown(db, NOBODY, NOBODY)
    result = vdc(db, "account", "list")
    assert result.returncode == 100
    assert result.stderr == (
        f"ERROR: Catalog file {db} belongs to uid {NOBODY}, not to you (uid {os.geteuid()}): "
        "refusing to use a file another user controls\n"
    )


def test_host_add_tightens_or_refuses_the_key_file(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.chmod(0o644)
    added = vdc(db, "host", "add", "xen1", "--address", "192.0.2.1", "--key-file", str(key))
    assert added.returncode == 0, added.stderr
    assert mode(key) == "0o600" and f"WARNING: SSH key file {key} was accessible to others" in added.stderr
    os.chown(key, NOBODY, NOBODY)
    refused = vdc(db, "host", "add", "xen2", "--address", "192.0.2.1", "--key-file", str(key))
    assert refused.returncode == 100 and f"SSH key file {key} belongs to uid {NOBODY}" in refused.stderr


def test_connecting_tightens_a_loose_key_file(xen_host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "loose_key"
    key.write_bytes(Path(xen_host.key_file).read_bytes())
    key.chmod(0o640)
    with xen_host.connect() as conn:  # the fixture's own key: private already
        assert conn.run(["true"]).exit_status == 0
    from vdcmanage.remote.ssh import Connection

    with Connection(xen_host.target(key_file=str(key))).open() as conn:
        assert conn.run(["true"]).exit_status == 0
    assert mode(key) == "0o600"


def test_the_warning_spells_out_control_characters_of_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "evil\x1b[2J\nERROR: forged"
    directory.mkdir()
    db = directory / "catalog.db"
    assert vdc(db, "account", "list").returncode == 0
    db.chmod(0o644)
    result = vdc(db, "account", "list")
    assert result.returncode == 0
    assert result.stderr == (
        f"WARNING: Catalog file {tmp_path}/evil\\x1b[2J\\nERROR: forged/catalog.db was accessible to others "
        "(mode 0644); tightened to 0600\n"
    )
