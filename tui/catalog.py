"""The dashboard's side of the catalog: calls that run in worker threads, and errors as one line of text.

The UI thread never touches the database. A worker borrows a thread from the pool; peewee keeps
one connection per thread, so each call here releases its thread's connection when it is done:
a connection that broke (a database server that went away) is never handed to the next call, and
nothing stays open when the dashboard exits. Reopening costs ~0.3 ms on SQLite and a few ms on a
local PostgreSQL; the one long-lived worker (the change watcher) keeps its connection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

import peewee

from vdcmanage.catalog.db import database, first_line, open_catalog, parse_catalog_url
from vdcmanage.catalog.models import utcnow
from vdcmanage.errors import VdcError

T = TypeVar("T")
Clock = Callable[[], dt.datetime]  # naive UTC, like the catalog's times


def utc_clock() -> dt.datetime:
    return utcnow()


def error_text(exc: BaseException) -> str:
    """What the operator reads after ``ERROR:``, the same wording as the CLI's."""
    if isinstance(exc, VdcError):
        return exc.message
    if isinstance(exc, peewee.DatabaseError | peewee.InterfaceError):
        return f"Catalog error: {first_line(exc)}"
    return f"Unexpected failure: {type(exc).__name__}: {exc}"


def release_connection() -> None:
    """Close this thread's catalog connection, if any; a broken one may fail to close, which is fine."""
    db = database.obj
    if db is None:
        return
    try:
        if not db.is_closed():
            db.close()
    except Exception:  # noqa: S110 - the connection is gone either way
        pass


def call_catalog(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one catalog call in this (worker) thread and give the connection back."""
    try:
        return fn(*args, **kwargs)
    finally:
        release_connection()


def open_catalog_url(url: str) -> None:
    """Open (and if needed create or upgrade) the catalog; raises CatalogError with an actionable message."""
    call_catalog(open_catalog, url)


def catalog_label(url: str) -> str:
    """A short name for the catalog in the top bar: the SQLite file name, or host/database (no password)."""
    try:
        parsed = parse_catalog_url(url)
    except VdcError:
        return url
    if parsed.scheme == "sqlite":
        return parsed.path.rsplit("/", 1)[-1]
    return f"{parsed.host}/{parsed.path}"


def redacted_url(url: str) -> str:
    try:
        return parse_catalog_url(url).redacted()
    except VdcError:
        return url
