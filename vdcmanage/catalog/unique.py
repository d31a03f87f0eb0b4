"""Uniqueness the database itself enforces (schema version 2), the same on every backend.

A deleted record keeps its row (``deleted_at``), so a "unique name" is unique among live rows only:
deleting host ``xen1`` frees the name for a new host. Checking before inserting is not enough when
two admins (or two admin hosts on one PostgreSQL/MariaDB catalog) add the same name at once; the
database must refuse the second insert. SQLite and PostgreSQL get a partial unique index
(``WHERE deleted_at IS NULL``); MariaDB has no partial indexes, so each table gets a virtual column
that holds the name while the row is live and NULL once it is deleted (a unique index admits any
number of NULLs), with a unique index on it.

MariaDB also compares text by the database's default collation, case- and accent-insensitively
(``Alpha`` = ``alpha``, ``é`` = ``e``, and ``a`` = ``a `` with PAD SPACE collations), where SQLite and
PostgreSQL compare exactly. Ids and names get ``utf8mb4_nopad_bin`` there: byte-exact, no padding.
New catalogs are created so (models.py); the upgrade from version 1 changes the columns in place.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import peewee

from vdcmanage.catalog.models import (
    ALL_MODELS,
    MYSQL_BINARY_COLLATION,
    BaseModel,
    IdField,
    IdForeignKeyField,
    NameField,
)
from vdcmanage.errors import Refused

BINARY_COLLATION = MYSQL_BINARY_COLLATION


@dataclass(frozen=True)
class LiveName:
    table: str
    column: str
    label: str  # how the message to the operator calls it
    delete_command: str

    @property
    def index(self) -> str:
        return f"{self.table}_{self.column}_live"

    @property
    def live_column(self) -> str:  # MariaDB's generated column
        return f"{self.column}_live"


LIVE_NAMES = (
    LiveName("account", "name", "account name", "vdc-manage account del"),
    LiveName("host", "name", "host name", "vdc-manage host del"),
    LiveName("backup_storage", "display_name", "backup storage display name", "vdc-manage backupstorage del"),
)
def is_mysql(db: peewee.Database) -> bool:
    return isinstance(db, peewee.MySQLDatabase)


def enforce_unique_live_names(db: peewee.Database) -> None:
    """Bring a catalog's tables to the uniqueness rules of version 2. Safe to run again after an
    interruption (MariaDB commits each DDL statement on its own)."""
    refuse_duplicate_live_names(db)
    try:
        if is_mysql(db):
            use_binary_collation(db)
            for name in LIVE_NAMES:
                add_live_column_index(db, name)
        else:
            for name in LIVE_NAMES:
                db.execute_sql(  # type: ignore[no-untyped-call]
                    f'CREATE UNIQUE INDEX IF NOT EXISTS "{name.index}" ON "{name.table}" ("{name.column}")'
                    ' WHERE "deleted_at" IS NULL'
                )
    except peewee.IntegrityError:
        # An older vdc-manage added a duplicate since the check above: say which, as the check would.
        refuse_duplicate_live_names(db)
        raise


def refuse_duplicate_live_names(db: peewee.Database) -> None:
    """Refuse, changing nothing, when live records already share a name; list them all.

    The rows are compared in Python, byte for byte, because MariaDB's old collation would call
    ``Xen1`` and ``xen1`` equal where the new rule keeps both."""
    problems = []
    for name in LIVE_NAMES:
        table = peewee.Table(name.table).bind(db)
        record_id, column, deleted_at = (peewee.Column(table, c) for c in ("id", name.column, "deleted_at"))
        rows = table.select(record_id, column).where(deleted_at.is_null() & column.is_null(False)).tuples()
        ids_by_name: dict[str, list[str]] = defaultdict(list)
        for record_id, value in rows:
            ids_by_name[value].append(record_id)
        for value, ids in sorted(ids_by_name.items()):
            if len(ids) > 1:
                problems.append((name, value, sorted(ids)))
    if problems:
        raise Refused(duplicates_message(problems))


def duplicates_message(problems: list[tuple[LiveName, str, list[str]]]) -> str:
    listed = "; ".join(f"{name.label} {value!r}: {', '.join(ids)}" for name, value, ids in problems)
    name, _value, ids = problems[0]
    return (
        "The catalog cannot be upgraded to schema version 2, which makes names unique among live records:"
        f" these live records share a name: {listed}. Nothing was changed. Delete or rename all but one of"
        f" each with the vdc-manage that made the catalog (e.g. `{name.delete_command} {ids[-1]}`), then"
        " run this command again"
    )


# --- MariaDB ---------------------------------------------------------------------------------


def use_binary_collation(db: peewee.Database) -> None:
    """Give ids and names the binary collation (new catalogs are created with it: nothing to do).

    MariaDB refuses to change a column a foreign key uses (even with foreign_key_checks off), so the
    foreign keys are dropped first and added back from the models, which also repairs a run that
    was interrupted in between."""
    done = binary_now(db)
    pending = {
        model: [field for field in binary_fields(model) if (model._meta.table_name, field.column_name) not in done]
        for model in ALL_MODELS
    }
    foreign_keys = {table: foreign_key_names(db, table) for table in foreign_key_tables()}
    wanted_keys = sum(len(model._meta.refs) for model in ALL_MODELS)
    if not any(pending.values()) and sum(map(len, foreign_keys.values())) == wanted_keys:
        return
    for table, constraints in foreign_keys.items():
        for constraint in constraints:
            db.execute_sql(f"ALTER TABLE `{table}` DROP FOREIGN KEY `{constraint}`")  # type: ignore[no-untyped-call]
    for model, fields in pending.items():
        if fields:
            changes = ", ".join(modify_to_binary(field) for field in fields)
            db.execute_sql(f"ALTER TABLE `{model._meta.table_name}` {changes}")  # type: ignore[no-untyped-call]
    for model in ALL_MODELS:
        for field in model._meta.refs:
            db.execute_sql(  # type: ignore[no-untyped-call]
                f"ALTER TABLE `{model._meta.table_name}` ADD FOREIGN KEY (`{field.column_name}`)"
                f" REFERENCES `{field.rel_model._meta.table_name}` (`{field.rel_field.column_name}`)"
                f" ON DELETE {field.on_delete}"
            )


def binary_now(db: peewee.Database) -> set[tuple[str, str]]:
    rows = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND collation_name = %s",
        (BINARY_COLLATION,),
    ).fetchall()
    return {(table, column) for table, column in rows}


def binary_fields(model: type[BaseModel]) -> list[peewee.Field]:
    """The id, reference and name columns (models.py declares them binary for new catalogs)."""
    return [f for f in model._meta.sorted_fields if isinstance(f, (IdField, IdForeignKeyField, NameField))]


def modify_to_binary(field: peewee.Field) -> str:
    target = field.rel_field if isinstance(field, peewee.ForeignKeyField) else field
    assert isinstance(target, peewee.CharField)
    nullable = "NULL" if field.null else "NOT NULL"
    return (
        f"MODIFY `{field.column_name}` VARCHAR({target.max_length}) CHARACTER SET utf8mb4"
        f" COLLATE {BINARY_COLLATION} {nullable}"
    )


def foreign_key_tables() -> list[str]:
    return [model._meta.table_name for model in ALL_MODELS if model._meta.refs]


def foreign_key_names(db: peewee.Database, table: str) -> list[str]:
    rows = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT constraint_name FROM information_schema.referential_constraints"
        " WHERE constraint_schema = DATABASE() AND table_name = %s ORDER BY constraint_name",
        (table,),
    ).fetchall()
    return [row[0] for row in rows]


def add_live_column_index(db: peewee.Database, name: LiveName) -> None:
    changes = []
    if name.live_column not in {column.name for column in db.get_columns(name.table)}:
        changes.append(
            f"ADD COLUMN `{name.live_column}` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {BINARY_COLLATION}"
            f" AS (IF(`deleted_at` IS NULL, `{name.column}`, NULL)) VIRTUAL"
        )
    if name.index not in {index.name for index in db.get_indexes(name.table)}:
        changes.append(f"ADD UNIQUE INDEX `{name.index}` (`{name.live_column}`)")
    if changes:  # one statement: MariaDB rebuilds the table once
        db.execute_sql(f"ALTER TABLE `{name.table}` " + ", ".join(changes))  # type: ignore[no-untyped-call]
