"""Versioned schema: a new catalog gets the current schema, an older one is upgraded in place.

``vdc_schema_version`` holds one row per applied version. A brand-new catalog is created from
the current models plus what the upgrades add beyond them (the uniqueness rules of
:mod:`vdcmanage.catalog.unique`) and stamped with ``LATEST``; a catalog at version k gets ``UPGRADES[k+1:]``
applied in order, each in its own transaction where the database allows DDL in one. Several
processes may open a new catalog at once, so creation and upgrades run under a database-wide
lock and re-check the version once they hold it.

To change the schema: change the models, add an upgrade function below that brings a catalog of
the previous version to the new one (playhouse.migrate), and add the new version's dump as
tests/data/schema/sqlite-v<N>.sql. tests/catalog/test_schema.py checks that a fresh catalog is
exactly the dump of LATEST and opens the dumps of older versions, so an upgrade starts from the
real old catalog; postgresql-v1.sql and mysql-v1.sql (the statements version 1 sent) let it check
on the servers that an upgraded catalog is exactly a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import peewee

from vdcmanage.catalog.models import ALL_MODELS, SHARED_ACCOUNT_ID, Account, BaseModel, utcnow
from vdcmanage.catalog.unique import enforce_unique_live_names
from vdcmanage.errors import CatalogError


class SchemaVersion(BaseModel):
    version = peewee.IntegerField(primary_key=True)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "vdc_schema_version"


Upgrade = Callable[[peewee.Database], None]

# UPGRADES[n] brings a catalog from version n to n + 1. Version 1 is the first released schema.
# 2: names unique among live records, enforced by the database; binary ids and names on MariaDB.
UPGRADES: dict[int, Upgrade] = {1: enforce_unique_live_names}
LATEST = 1 + len(UPGRADES)
MIGRATION_LOCK_ID = 0x7664636D  # "vdcm": the PostgreSQL advisory lock key
MIGRATION_LOCK_TIMEOUT_S = 120


def current_version(db: peewee.Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    value = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()
    return int(value or 0)


def ensure_schema(db: peewee.Database, label: str) -> int:
    """Create or upgrade the catalog's schema; return the version it is at afterwards."""
    try:
        version = current_version(db)
        if version == LATEST:
            return version
        check_not_newer(version, label)
        with migration_lock(db):
            version = current_version(db)
            check_not_newer(version, label)
            if version == 0:
                create_fresh_schema(db)
            else:
                upgrade_schema(db, version)
    except peewee.DatabaseError as exc:
        raise CatalogError(f"Cannot prepare catalog {label}: {str(exc).strip()}") from exc
    return LATEST


def check_not_newer(version: int, label: str) -> None:
    if version > LATEST:
        raise CatalogError(
            f"Catalog {label} has schema version {version}, newer than this vdc-manage knows ({LATEST}); "
            "upgrade vdc-manage"
        )


def create_fresh_schema(db: peewee.Database) -> None:
    with db.atomic():
        db.create_tables([*ALL_MODELS, SchemaVersion])
        add_search_indexes(db)
        enforce_unique_live_names(db)
        ensure_shared_account()
        SchemaVersion.create(version=LATEST)


SEARCHED_IMAGE_COLUMNS = ("id", "display_name", "description", "account_id")


def add_search_indexes(db: peewee.Database) -> None:
    """PostgreSQL: trigram indexes for the dashboard's "contains" filter, which otherwise reads every
    image for a word that matches none (~210 ms at 100,000 images). pg_trgm is a trusted extension
    (PostgreSQL 13+); where the catalog's user may not create it, searches still work, by scanning."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return
    try:
        with db.atomic():  # a savepoint: a refusal here must not undo the catalog's creation
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # type: ignore[no-untyped-call]
            for column in SEARCHED_IMAGE_COLUMNS:
                db.execute_sql(  # type: ignore[no-untyped-call]
                    f'CREATE INDEX IF NOT EXISTS "image_{column}_trgm" ON "image" USING gin ("{column}" gin_trgm_ops)'
                )
    except peewee.DatabaseError:
        pass


def upgrade_schema(db: peewee.Database, version: int) -> None:
    for step in range(version, LATEST):
        with db.atomic():
            UPGRADES[step](db)
            SchemaVersion.create(version=step + 1)
    with db.atomic():
        ensure_shared_account()


def ensure_shared_account() -> None:
    if Account.get_or_none(Account.id == SHARED_ACCOUNT_ID) is None:
        Account.create(id=SHARED_ACCOUNT_ID, name="shared", description="Shared system account")


@contextlib.contextmanager
def migration_lock(db: peewee.Database) -> Iterator[None]:
    """Hold a lock that only one process creating or upgrading the catalog can have."""
    if isinstance(db, peewee.SqliteDatabase):
        with db.atomic("IMMEDIATE"):  # the write lock; DDL is transactional in SQLite
            yield
    elif isinstance(db, peewee.PostgresqlDatabase):
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]
            yield
    else:  # MySQL/MariaDB: DDL commits implicitly, so a named session lock serialises creators
        sql = "SELECT GET_LOCK(%s, %s)"
        got = db.execute_sql(sql, ("vdc_manage_schema", MIGRATION_LOCK_TIMEOUT_S)).fetchone()  # type: ignore[no-untyped-call]
        if not got or got[0] != 1:
            raise CatalogError("Timed out waiting for another process to finish preparing the catalog")
        try:
            yield
        finally:
            db.execute_sql("SELECT RELEASE_LOCK(%s)", ("vdc_manage_schema",))  # type: ignore[no-untyped-call]
