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
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Account, BackupStorage, Host, Image, utcnow
from vdcmanage.errors import AlreadyExists, CatalogError, Refused


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


# -- version 2: names unique among live records ----------------------------------------------------


def load_dump_into(url: str, version: int) -> None:
    """Make the catalog at ``url`` what vdc-manage at ``version`` made, from its frozen dump."""
    from vdcmanage.catalog.db import make_database, parse_catalog_url

    parsed = parse_catalog_url(url)
    if parsed.scheme == "sqlite":
        load_dump(Path(parsed.path), version)
        return
    db = make_database(parsed)
    db.connect()
    try:
        for line in (SCHEMA_DUMPS / f"{parsed.scheme}-v{version}.sql").read_text().splitlines():
            if line and not line.startswith("--"):
                db.execute_sql(line)
    finally:
        db.close()


SCHEMA_QUERIES = {
    "postgresql": [
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, collation_name"
        " FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2",
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2",
    ],
    "mysql": [
        "SELECT table_name, column_name, column_type, is_nullable, collation_name, generation_expression, extra"
        " FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY 1, 2",
        "SELECT table_name, index_name, seq_in_index, column_name, non_unique FROM information_schema.statistics"
        " WHERE table_schema = DATABASE() ORDER BY 1, 2, 3",
        "SELECT table_name, constraint_name, referenced_table_name, delete_rule"
        " FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE() ORDER BY 1, 2",
        "SELECT table_name, column_name, referenced_column_name FROM information_schema.key_column_usage"
        " WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL ORDER BY 1, 2",
    ],
    "sqlite": ["SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY 1"],
}


def schema_of(url: str) -> list[tuple[object, ...]]:
    """What the server says the catalog's tables, columns, collations, indexes and keys are."""
    from vdcmanage.catalog.db import parse_catalog_url

    db = open_catalog(url, migrate=False)
    try:
        return [tuple(row) for sql in SCHEMA_QUERIES[parse_catalog_url(url).scheme] for row in db.execute_sql(sql)]
    finally:
        close_catalog()


def add_host_row(host_id: str, name: str, deleted: bool = False) -> None:
    Host.create(id=host_id, name=name, address="127.0.0.1", deleted_at=utcnow() if deleted else None)


def test_a_version_1_catalog_is_upgraded_to_exactly_the_fresh_schema(any_catalog_url: str) -> None:
    from tests.conftest import reset_tables

    open_catalog(any_catalog_url)
    close_catalog()
    fresh = schema_of(any_catalog_url)
    if any_catalog_url.startswith("sqlite"):
        Path(any_catalog_url.split("://", 1)[1]).unlink()
    else:
        reset_tables(any_catalog_url)
    load_dump_into(any_catalog_url, 1)
    open_catalog(any_catalog_url, migrate=False)
    add_host_row("hn-old1", "xen1", deleted=True)
    for host_id, name in [("hn-live1", "xen1"), ("hn-upper", "Xen1"), ("hn-space", "xen1 "), ("hn-accent", "xén1")]:
        add_host_row(host_id, name)  # all distinct by the new rule, some equal by MariaDB's old collation
    BackupStorage.create(id="bkst-old", storage_type="local", base_uri="file:///x", path="/x", display_name="web")
    Account.create(id="a-team", name="team")
    close_catalog()
    assert schema_of(any_catalog_url) != fresh

    db = open_catalog(any_catalog_url)
    try:
        assert migrations.current_version(db) == 2
        assert sorted(h.id for h in Host.select()) == ["hn-accent", "hn-live1", "hn-old1", "hn-space", "hn-upper"]
        assert Image.select().count() == 0 and Account.get_by_id("a-team").name == "team"
        with pytest.raises(peewee.IntegrityError), db.atomic():
            add_host_row("hn-twin", "xen1")  # the database itself now refuses a second live xen1
        add_host_row("hn-again", "xen1", deleted=True)
    finally:
        close_catalog()
    assert schema_of(any_catalog_url) == fresh


def test_upgrade_refuses_duplicate_live_names_and_changes_nothing(any_catalog_url: str) -> None:
    load_dump_into(any_catalog_url, 1)
    open_catalog(any_catalog_url, migrate=False)
    add_host_row("hn-b", "xen1")
    add_host_row("hn-a", "xen1")
    add_host_row("hn-gone", "xen1", deleted=True)
    for storage_id in ("bkst-1", "bkst-2", "bkst-3"):
        BackupStorage.create(id=storage_id, storage_type="local", base_uri="file:///x", path="/x", display_name="web")
    close_catalog()
    before = schema_of(any_catalog_url)

    with pytest.raises(Refused) as refused:
        open_catalog(any_catalog_url)
    message = str(refused.value)
    assert "host name 'xen1': hn-a, hn-b;" in message and "hn-gone" not in message
    assert "backup storage display name 'web': bkst-1, bkst-2, bkst-3." in message
    assert "Nothing was changed" in message and "vdc-manage host del hn-b" in message
    assert schema_of(any_catalog_url) == before
    db = open_catalog(any_catalog_url, migrate=False)
    try:
        assert migrations.current_version(db) == 1
        assert Host.select().count() == 3 and BackupStorage.select().count() == 3
    finally:
        close_catalog()


def test_a_refused_upgrade_is_exit_100_with_the_list(run_cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    load_dump_into(sqlite_url, 1)
    open_catalog(sqlite_url, migrate=False)
    add_host_row("hn-one", "xen1")
    add_host_row("hn-two", "xen1")
    close_catalog()
    result = run_cli("host", "list")
    assert result.code == 100 and result.out == ""
    assert result.err.startswith("ERROR: The catalog cannot be upgraded to schema version 2")
    assert "host name 'xen1': hn-one, hn-two." in result.err and result.err.count("\n") == 1


def test_mariadb_ids_and_names_compare_byte_for_byte(server_databases: dict[str, object]) -> None:
    """MariaDB only: SQLite and PostgreSQL compare text exactly by default."""
    from tests.conftest import reset_tables, server_database_url

    url = server_database_url("mysql", server_databases)
    reset_tables(url)
    db = open_catalog(url)
    try:
        rows = db.execute_sql(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND (column_name LIKE '%%id' OR column_name LIKE '%%name%%')"
            " AND collation_name IS NOT NULL ORDER BY 1, 2"
        ).fetchall()
    finally:
        close_catalog()
    binary = {(table, column) for table, column, collation in rows if collation == "utf8mb4_nopad_bin"}
    assert {("host", "id"), ("host", "name"), ("host", "name_live"), ("image", "account_id"), ("image", "job_id"),
            ("image", "display_name"), ("account", "name"), ("backup_storage", "display_name"),
            ("job_step", "job_id"), ("image_preparation", "image_id")} <= binary
    assert ("job_step", "name") not in binary  # internal step names keep the default


# -- inserting races: what the database's refusal turns into -------------------------------------


def test_a_generated_id_taken_meanwhile_is_drawn_again(any_catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check saw the id free, then another process took it: the INSERT fails on the primary key
    and the record is inserted under a new id, unseen by the operator."""
    from vdcmanage.catalog import records
    from vdcmanage.catalog.hosts import add_host

    add_host_row("hn-taken", "other")
    drawn = iter(["hn-taken", "hn-fresh"])
    monkeypatch.setattr(records, "new_id", lambda kind: next(drawn))
    real_id_taken = records.id_taken
    checks = []

    def id_taken_missing_the_first_time(model: type[peewee.Model], record_id: str) -> bool:
        checks.append(record_id)
        return False if len(checks) == 1 else real_id_taken(model, record_id)

    monkeypatch.setattr(records, "id_taken", id_taken_missing_the_first_time)
    assert add_host("xen1", "127.0.0.1").id == "hn-fresh"
    assert Host.get_by_id("hn-taken").name == "other"


def test_a_name_taken_meanwhile_is_already_exists_naming_the_winner(any_catalog: str) -> None:
    from vdcmanage.catalog import records

    add_host_row("hn-winner", "xen1")
    looks = []

    def name_free_the_first_time() -> None:  # as if the winner had not yet committed when we checked
        looks.append(1)
        if len(looks) > 1:
            raise AlreadyExists("A host named 'xen1' already exists (hn-winner)")

    with pytest.raises(AlreadyExists, match=re.escape("(hn-winner)")):
        records.insert_new(Host, "host", None, name_free_the_first_time,
                           lambda host_id: Host.create(id=host_id, name="xen1", address="127.0.0.1"))
    assert [h.id for h in Host.select()] == ["hn-winner"]


def test_an_interrupted_mariadb_upgrade_completes_the_next_time(server_databases: dict[str, object]) -> None:
    """MariaDB commits each DDL statement: an upgrade stopped after its columns changed, but before
    the foreign keys were back, must still end with the foreign keys."""
    from tests.conftest import reset_tables, server_database_url
    from vdcmanage.catalog import unique
    from vdcmanage.catalog.models import ALL_MODELS

    url = server_database_url("mysql", server_databases)
    reset_tables(url)
    open_catalog(url)
    close_catalog()
    fresh = schema_of(url)
    reset_tables(url)
    load_dump_into(url, 1)
    db = open_catalog(url, migrate=False)
    for table in unique.foreign_key_tables():
        for constraint in unique.foreign_key_names(db, table):
            db.execute_sql(f"ALTER TABLE `{table}` DROP FOREIGN KEY `{constraint}`")
    for model in ALL_MODELS:
        for field in unique.binary_fields(model):
            db.execute_sql(f"ALTER TABLE `{model._meta.table_name}` {unique.modify_to_binary(field)}")
    close_catalog()
    assert migrations.current_version(open_catalog(url)) == 2
    close_catalog()
    assert schema_of(url) == fresh


def test_a_rename_onto_a_name_taken_meanwhile_is_already_exists(any_catalog: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """host modify checks the new name first; another admin can take it before the save, and then
    the unique index refuses the save: the operator reads "already exists", not a crash."""
    from vdcmanage.catalog import hosts

    add_host_row("hn-first", "xen1")
    add_host_row("hn-second", "xen2")
    monkeypatch.setattr(hosts, "refuse_taken_host_name", lambda name: None)  # the check saw it free
    with pytest.raises(AlreadyExists, match="'xen1' already exists"):
        hosts.modify_host("hn-second", hosts.HostChanges(name="xen1"))
    assert sorted((h.id, h.name) for h in Host.select()) == [("hn-first", "xen1"), ("hn-second", "xen2")]
