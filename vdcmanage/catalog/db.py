"""Open the catalog database from a URL and run commands in transactions.

Models are bound to ``database``, a proxy initialised once per process by :func:`open_catalog`
(the peewee pattern of ``Database(None)`` + ``init``), so the same models serve SQLite,
PostgreSQL and MySQL/MariaDB. Every write goes through :func:`transaction` so that SQLite takes
its write lock up front (``BEGIN IMMEDIATE``): a deferred transaction that reads first and then
writes gets "database is locked" at once when another writer got in between, whatever the busy
timeout, which is exactly what eight concurrent ``image add`` processes would hit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee

from vdcmanage.catalog.drivers import load_mysql_driver, load_postgresql_driver
from vdcmanage.errors import CatalogError, InvalidArgument

database = peewee.DatabaseProxy()

SQLITE_BUSY_TIMEOUT_S = 60.0
SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers never block the writer: the worker, the CLI and the TUI share one file
    "foreign_keys": 1,
    "synchronous": "normal",  # safe with WAL; a power cut may lose the last commit, never corrupt
}
# MySQL's DATETIME drops fractions unless asked; job heartbeats and ordering want microseconds.
MYSQL_FIELD_TYPES = {"DATETIME": "DATETIME(6)"}


@dataclass(frozen=True)
class CatalogURL:
    """A parsed catalog URL. ``params`` never leaves this module with the password in a message."""

    scheme: str  # sqlite | postgresql | mysql
    path: str  # SQLite file path or database name
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite://{self.path}"
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{auth}{self.host or ''}{port}/{self.path}"


SCHEME_ALIASES = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
}


def parse_catalog_url(url: str) -> CatalogURL:
    """``sqlite:///abs/path`` (or a plain path), ``postgresql://u:p@h:port/db``, ``mysql://u@h/db``."""
    if "://" not in url:
        if url.startswith(("sqlite:", "postgresql:", "mysql:")):
            raise InvalidArgument(f"Catalog URL needs '://': {url.split(':', 1)[0]}://...")
        return CatalogURL("sqlite", os.path.abspath(os.path.expanduser(url)))
    parts = urlsplit(url)
    scheme = SCHEME_ALIASES.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidArgument(f"Unsupported catalog URL scheme '{parts.scheme}' (use sqlite, postgresql or mysql)")
    if scheme == "sqlite":
        return parse_sqlite_url(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise InvalidArgument(f"Catalog URL names no database: {scheme}://HOST/DATABASE")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"Catalog URL has a bad port: {exc}") from exc
    return CatalogURL(
        scheme,
        name,
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_sqlite_url(url: str) -> CatalogURL:
    rest = url.split("://", 1)[1]
    if rest in ("", ":memory:", "/:memory:"):
        return CatalogURL("sqlite", ":memory:")
    path = unquote(rest)
    if not path.startswith("/"):
        raise InvalidArgument(f"SQLite catalog path must be absolute: sqlite:///ABSOLUTE/PATH, not {url}")
    return CatalogURL("sqlite", os.path.normpath("/" + path.lstrip("/")))


def prepare_private_file(path: Path) -> None:
    """Create the SQLite file 0600 (and a missing directory 0700) before SQLite does with the umask;
    an existing one (and its -wal, -shm) open to others is tightened, one of another user's refused.

    SQLite gives its -wal and -shm files the main file's permission bits, so new ones stay private too.
    """
    from vdcmanage.privatefiles import create_private, ensure_private_catalog

    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # exactly, whatever the umask took away
    create_private(path)
    ensure_private_catalog(path)


def make_database(url: CatalogURL) -> peewee.Database:
    if url.scheme == "sqlite":
        if url.path != ":memory:":
            path = Path(url.path)
            if path.is_dir():
                raise InvalidArgument(f"SQLite catalog path is a directory: {path}")
            try:
                prepare_private_file(path)
            except OSError as exc:
                raise CatalogError(f"Cannot create catalog {path}: {exc.strerror}") from exc
        return peewee.SqliteDatabase(url.path, pragmas=SQLITE_PRAGMAS, timeout=SQLITE_BUSY_TIMEOUT_S)
    connect_params: dict[str, Any] = {"host": url.host}
    if url.port:
        connect_params["port"] = url.port
    if url.user:
        connect_params["user"] = url.user
    if url.password:
        connect_params["password"] = url.password
    if url.scheme == "postgresql":
        require_driver("psycopg2", "postgresql")
        load_postgresql_driver()
        return peewee.PostgresqlDatabase(url.path, **connect_params)
    require_driver("pymysql", "mysql")
    load_mysql_driver()
    connect_params.update(charset="utf8mb4", field_types=MYSQL_FIELD_TYPES)
    return peewee.MySQLDatabase(url.path, **connect_params)


def require_driver(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise CatalogError(f"The {extra} catalog needs the {module} driver: pip install 'vdc-manage[{extra}]'")


def open_catalog(url: str, *, migrate: bool = True) -> peewee.Database:
    """Bind the models to the catalog at ``url``, connect, and bring its schema up to date."""
    parsed = parse_catalog_url(url)
    db = make_database(parsed)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise CatalogError(f"Cannot open catalog {parsed.redacted()}: {first_line(exc)}") from exc
    if migrate:
        from vdcmanage.catalog.migrations import ensure_schema

        ensure_schema(db, parsed.redacted())
    return db


def close_catalog() -> None:
    obj = database.obj
    if obj is not None and not obj.is_closed():
        obj.close()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


@contextlib.contextmanager
def transaction(*, write: bool = False) -> Iterator[None]:
    """One catalog transaction; nested calls become savepoints of the outer one.

    ``write=True`` on SQLite starts with ``BEGIN IMMEDIATE`` so the write lock is taken (waiting
    up to the busy timeout) before anything is read.
    """
    db = database.obj
    if db is None:
        raise CatalogError("The catalog is not open")
    if db.in_transaction() or not (write and is_sqlite()):
        with db.atomic():
            yield
        return
    with db.atomic("IMMEDIATE"):
        yield
