"""Two operators at once: eight real `vdc-manage` processes racing on one catalog, on every backend.

Each process has its own connection, as operators on several admin hosts would; the catalog is
created before the race so that the race is about the records, not the schema (which has its own
test in tests/catalog/test_schema.py).

Between a command's last check and its insert there are only a few milliseconds, which processes
that start a few hundred milliseconds apart seldom hit. On PostgreSQL and MariaDB the test therefore
holds a lock on the table that lets the racers read but not write: all eight pass their checks
("no host is named twin") and wait at their INSERT, and the lock is released only once the server
shows all eight waiting. What happens next is up to the database. SQLite needs no such help: its
writers take the write lock before checking, so they are serialised by design.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.images import raw_image

RACERS = 8


def vdc(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vdcmanage", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "VDC_MANAGE_DB": url},
    )


def race(url: str, commands: list[list[str]], table: str | None = None) -> list[tuple[int, str, str]]:
    """Start every command before waiting for any; return (exit code, stdout, stderr) of each.

    With ``table``, on PostgreSQL and MariaDB, the racers are held at their INSERT into it until
    all of them are there."""
    with writes_held(url, table) as wait_for_writers:
        procs = [vdc(url, *args) for args in commands]
        wait_for_writers(procs)
    return [(p.wait(timeout=180), *p.communicate()) for p in procs]


WAITING_WRITERS = {
    "postgresql": "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())",
    "mysql": "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE()"
    " AND state = 'Waiting for table metadata lock'",
}


@contextlib.contextmanager
def writes_held(url: str, table: str | None) -> Iterator[Any]:
    """Block writes (not reads) to ``table`` until the caller's processes are all waiting to write."""
    from vdcmanage.catalog.db import make_database, parse_catalog_url

    parsed = parse_catalog_url(url)
    if table is None or parsed.scheme == "sqlite":
        yield lambda procs: None
        return
    db = make_database(parsed)
    db.connect()
    try:
        with db.atomic():
            if parsed.scheme == "postgresql":
                db.execute_sql(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
            else:
                db.execute_sql(f"LOCK TABLES `{table}` READ")

            def wait_for_writers(procs: list[subprocess.Popen[str]]) -> None:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    waiting = db.execute_sql(WAITING_WRITERS[parsed.scheme]).fetchone()[0]
                    if waiting >= len(procs) or any(p.poll() is not None for p in procs):
                        return  # all at the INSERT, or one ended early (its output will tell)
                    time.sleep(0.05)
                raise AssertionError(f"only {waiting} of {len(procs)} racers reached the insert")

            yield wait_for_writers
            if parsed.scheme == "mysql":
                db.execute_sql("UNLOCK TABLES")
    finally:
        db.close()


def listed(url: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "vdcmanage", *args, "-f", "json"],
        capture_output=True, text=True, env={**os.environ, "VDC_MANAGE_DB": url}, check=True,
    ).stdout
    rows = json.loads(out)
    return rows if isinstance(rows, list) else [rows]


def prepare_catalog(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "vdcmanage", "account", "list"],
        env={**os.environ, "VDC_MANAGE_DB": url}, check=True, capture_output=True,
    )


def add_command(kind: str, name: str, storage_dir: Path) -> list[str]:
    if kind == "host":
        return ["host", "add", name, "--address", "127.0.0.1"]
    if kind == "backupstorage":
        return ["backupstorage", "add", "--storage-type", "local", "--base-uri", "http://web.example/t",
                "--path", str(storage_dir), "--display-name", name]
    return ["account", "add", "--name", name]


LIST_COMMAND = {"host": ("host", "list"), "backupstorage": ("backupstorage", "list"), "account": ("account", "list")}
TABLE = {"host": "host", "backupstorage": "backup_storage", "account": "account"}
NAME_FIELD = {"host": "name", "backupstorage": "display_name", "account": "name"}


@pytest.mark.parametrize("kind", ["host", "backupstorage", "account"])
def test_eight_adds_of_one_name_make_one_record(kind: str, any_catalog_url: str, tmp_path: Path) -> None:
    prepare_catalog(any_catalog_url)
    results = race(any_catalog_url, [add_command(kind, "twin", tmp_path)] * RACERS, TABLE[kind])
    winners = [out.strip() for code, out, _err in results if code == 0]
    losers = [(code, err) for code, _out, err in results if code != 0]
    assert len(winners) == 1, results
    assert len(losers) == RACERS - 1
    for code, err in losers:
        assert code == 100 and "already exists" in err and err.count("\n") == 1, err
        assert winners[0] in err  # the loser is told which record has the name
    rows = [r for r in listed(any_catalog_url, *LIST_COMMAND[kind]) if r[NAME_FIELD[kind]] == "twin"]
    assert [r["id"] for r in rows] == winners


def test_eight_adds_of_one_chosen_id_make_one_record(any_catalog_url: str, tmp_path: Path) -> None:
    prepare_catalog(any_catalog_url)
    images = [raw_image(tmp_path / f"img{i}.raw", size=1024 * 1024, fill=f"image {i}\n".encode()) for i in range(RACERS)]
    results = race(any_catalog_url, [["image", "add", "local", str(p), "-a", "a-shpoolxx", "--uuid", "wmi-same"]
                                     for p in images], "image")
    assert sorted(code for code, _out, _err in results) == [0] + [100] * (RACERS - 1), results
    assert sorted(err for _code, _out, err in results)[1:] == ["ERROR: Image wmi-same already exists\n"] * (RACERS - 1)
    assert [r["id"] for r in listed(any_catalog_url, "image", "list")] == ["wmi-same"]


def test_eight_concurrent_image_adds_all_succeed(tmp_path: Path, any_catalog_url: str) -> None:
    images = [raw_image(tmp_path / f"img{i}.raw", size=8 * 1024 * 1024, fill=f"image {i}\n".encode()) for i in range(RACERS)]
    results = race(any_catalog_url, [["image", "add", "local", str(p), "-a", "a-shpoolxx"] for p in images])
    assert [(code, err) for code, _out, err in results] == [(0, "")] * RACERS
    ids = [out.strip() for _code, out, _err in results]
    assert len(set(ids)) == RACERS
    rows = listed(any_catalog_url, "image", "list")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert sorted(r["source_uri"] for r in rows) == sorted(p.as_uri() for p in images)


NAMES_THAT_DIFFER = ["alpha", "Alpha", "ALPHA", "alpha ", "é", "e", "É", "e\u0301"]  # the last: e + combining acute


def test_names_differing_in_case_accent_or_spaces_are_distinct(any_catalog_url: str, tmp_path: Path) -> None:
    """MariaDB's default collation would call these equal; every backend keeps them apart."""
    prepare_catalog(any_catalog_url)
    added = {}
    for name in NAMES_THAT_DIFFER:
        (code, out, err), = race(any_catalog_url, [add_command("host", name, tmp_path)])
        assert (code, err) == (0, ""), name
        added[name] = out.strip()
    for name, host_id in added.items():
        assert listed(any_catalog_url, "host", "show", name)[0]["id"] == host_id, name
    (code, _out, err), = race(any_catalog_url, [add_command("host", "Alpha", tmp_path)])
    assert (code, err) == (100, f"ERROR: A host named 'Alpha' already exists ({added['Alpha']})\n")
