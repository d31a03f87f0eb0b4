"""Shared fixtures: an isolated home for every test, and fresh catalogs on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run on every machine of this kind (127.0.0.1:5432 trust, 127.0.0.1:3306 root).
Each test session creates its own database on each (``vdc_test_<pid>_<random>``) so that parallel
runs never share tables, and drops it at the end. When ``CI`` is set, a server that cannot be
reached fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The XenServer test host (real sshd + the xe double) and other sshd servers: tests/xenhost/README.md.
pytest_plugins = ["tests.xenhost.fixtures"]

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("VDC_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MYSQL_ADMIN_URL = os.environ.get("VDC_TEST_MYSQL", "mysql://root@127.0.0.1:3306")
BACKENDS = ("sqlite", "postgresql", "mysql")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never read or write the real ~/.ssh, ~/.config or catalog."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("VDC_MANAGE_CONFIG", str(home / "no-config.toml"))
    monkeypatch.delenv("VDC_MANAGE_DB", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def server_unavailable(name: str, exc: BaseException) -> None:
    message = f"{name} is not reachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class ServerDatabase:
    backend: str
    url: str


def create_server_database(backend: str) -> tuple[str, object]:
    """Create a private database on the local server; return its URL and a connection to drop it later."""
    name = f"vdc_test_{os.getpid()}_{secrets.token_hex(3)}"
    if backend == "postgresql":
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        return f"{PG_ADMIN_URL}/{name}", conn
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5, autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return f"{MYSQL_ADMIN_URL}/{name}", conn


def drop_server_database(backend: str, url: str, conn: object) -> None:
    name = url.rsplit("/", 1)[1]
    cur = conn.cursor()  # type: ignore[attr-defined]
    if backend == "postgresql":
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, object]]:
    """One database per server for the whole session, created on first use."""
    made: dict[str, object] = {}
    yield made
    for backend, (url, conn) in made.items():  # type: ignore[misc]
        drop_server_database(backend, url, conn)


def server_database_url(backend: str, made: dict[str, object]) -> str:
    if backend not in made:
        try:
            made[backend] = create_server_database(backend)
        except Exception as exc:
            server_unavailable(backend, exc)
    return made[backend][0]  # type: ignore[index,no-any-return]


def reset_tables(url: str) -> None:
    from vdcmanage.catalog.db import make_database, parse_catalog_url

    db = make_database(parse_catalog_url(url))
    db.connect()
    tables = db.get_tables()
    if tables:
        if db.__class__.__name__.startswith("MySQL"):
            db.execute_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in tables:
                db.execute_sql(f"DROP TABLE `{table}`")
        else:
            db.execute_sql("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    db.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/catalog.db"


@pytest.fixture(params=BACKENDS)
def any_catalog_url(request: pytest.FixtureRequest, tmp_path: Path, server_databases: dict[str, object]) -> str:
    """An empty catalog URL on each backend in turn (tables dropped before the test)."""
    backend = request.param
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/catalog.db"
    url = server_database_url(backend, server_databases)
    reset_tables(url)
    return url


@pytest.fixture
def catalog(sqlite_url: str) -> Iterator[str]:
    """An open SQLite catalog (the default backend), closed after the test."""
    from vdcmanage.catalog.db import close_catalog, open_catalog

    open_catalog(sqlite_url)
    yield sqlite_url
    close_catalog()


@pytest.fixture
def any_catalog(any_catalog_url: str) -> Iterator[str]:
    """An open catalog on each backend in turn."""
    from vdcmanage.catalog.db import close_catalog, open_catalog

    open_catalog(any_catalog_url)
    yield any_catalog_url
    close_catalog()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(sqlite_url: str):  # type: ignore[no-untyped-def]
    """Run ``vdc-manage ARGS`` as a real process against the test's catalog."""

    def run(*args: str, db: str | None = None, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        full_env = {**os.environ, "VDC_MANAGE_DB": db or sqlite_url, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "vdcmanage", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
