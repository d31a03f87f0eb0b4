"""Catalog creation, privacy, concurrency of creation, and in-place upgrades, on every backend."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import peewee
import pytest

from vdcmanage.catalog import migrations
from vdcmanage.catalog.db import close_catalog, database, open_catalog
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Account, Image
from vdcmanage.errors import CatalogError


def test_new_catalog_has_schema_and_shared_account(any_catalog: str) -> None:
    assert migrations.current_version(database.obj) == migrations.LATEST
    shared = Account.get_by_id(SHARED_ACCOUNT_ID)
    assert shared.deleted_at is None


def test_reopening_keeps_data(any_catalog: str) -> None:
    Account.create(id="a-keepme")
    close_catalog()
    open_catalog(any_catalog)
    assert Account.get_or_none(Account.id == "a-keepme") is not None
    assert Account.select().where(Account.id == SHARED_ACCOUNT_ID).count() == 1


def test_sqlite_catalog_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "catalog.db"
    os.umask(0o022)
    open_catalog(f"sqlite://{path}")
    Account.create(id="a-wal")  # makes SQLite create its -wal and -shm files
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for sidecar in path.parent.iterdir():
            assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar
    finally:
        close_catalog()


def test_sqlite_pragmas(catalog: str) -> None:
    db = database.obj
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 30000


def test_catalog_newer_than_the_code_is_refused(any_catalog: str) -> None:
    migrations.SchemaVersion.create(version=migrations.LATEST + 1)
    close_catalog()
    with pytest.raises(CatalogError, match="newer than this vdc-manage"):
        open_catalog(any_catalog)


def test_unreachable_server_is_a_clear_catalog_error() -> None:
    with pytest.raises(CatalogError, match=re.escape("Cannot open catalog postgresql://vdc:***@127.0.0.1:1/x")):
        open_catalog("postgresql://vdc:topsecret@127.0.0.1:1/x")


def add_notes_column(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("image", "notes", peewee.TextField(null=True)))


def test_upgrade_applies_in_place_and_keeps_rows(any_catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog at the previous version gets the new upgrade step applied, rows intact.

    The step here is a test-only one (add a column), registered as if it were the next version,
    so the mechanism is exercised on each backend without inventing a schema history.
    """
    Account.create(id="a-before")
    close_catalog()
    monkeypatch.setitem(migrations.UPGRADES, migrations.LATEST, add_notes_column)
    monkeypatch.setattr(migrations, "LATEST", migrations.LATEST + 1)
    db = open_catalog(any_catalog)
    assert migrations.current_version(db) == migrations.LATEST
    assert "notes" in [c.name for c in db.get_columns("image")]
    assert Account.get_or_none(Account.id == "a-before") is not None


CONCURRENT_OPEN = """
import sys
from vdcmanage.catalog.db import open_catalog
from vdcmanage.catalog.models import Account
open_catalog(sys.argv[1])
print(Account.select().count())
"""


def test_many_processes_creating_one_catalog_at_once(any_catalog_url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_OPEN, any_catalog_url], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 6
    assert outputs == ["1"] * 6  # the shared account, created exactly once


def test_image_rows_need_a_real_account(any_catalog: str) -> None:
    with pytest.raises(peewee.IntegrityError):
        Image.create(
            id="wmi-orphan", account="a-nobody", source_uri="file:///x", arch="x86_64", state="available",
            file_format="raw", size=1, virtual_size=1, md5="0" * 32, sha256="0" * 64,
        )


SCHEMA_DUMPS = Path(__file__).resolve().parents[1] / "data" / "schema"


def sqlite_schema(path: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    return [r[0].strip() for r in rows]


def load_dump(path: Path, version: int) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMA_DUMPS / f"sqlite-v{version}.sql").read_text())


def test_the_models_are_the_frozen_schema_of_the_latest_version(tmp_path: Path) -> None:
    """Changing a model needs an upgrade step and a new dump: a catalog made by this code must be
    exactly what the dump of LATEST says, or older catalogs would be upgraded to something else."""
    fresh = tmp_path / "fresh.db"
    open_catalog(f"sqlite://{fresh}")
    close_catalog()
    frozen = tmp_path / "frozen.db"
    load_dump(frozen, migrations.LATEST)
    assert sqlite_schema(fresh) == sqlite_schema(frozen)


def test_a_catalog_made_by_version_1_opens_with_its_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v1.db"
    load_dump(path, 1)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO account (id, created_at, updated_at) VALUES ('a-old', '2026-01-01', '2026-01-01')")
        conn.execute(
            "INSERT INTO image (id, account_id, boot_type, source_uri, arch, is_public, state, file_format, size,"
            " virtual_size, md5, sha256, os_type, feature_virtio, feature_acpi, created_at, updated_at)"
            " VALUES ('wmi-old', 'a-old', 'local', 'file:///x', 'x86', 0, 'available', 'raw', 1, 1, ?, ?, 'linux',"
            " 0, 1, '2026-01-01', '2026-01-01')",
            ("0" * 32, "0" * 64),
        )
    db = open_catalog(f"sqlite://{path}")
    try:
        assert migrations.current_version(db) == migrations.LATEST
        assert Image.get_by_id("wmi-old").account_id == "a-old"
        assert Account.get_or_none(Account.id == SHARED_ACCOUNT_ID) is not None
    finally:
        close_catalog()
