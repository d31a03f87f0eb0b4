"""Typed messages that worker threads post back to the UI (the only way data reaches a widget)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


class CatalogOpened(Message):
    """The catalog answered and its schema is current: screens may load."""


@dataclass(eq=False)
class CatalogFailed(Message):
    """The catalog could not be opened at start (or on retry)."""

    error: str


@dataclass(eq=False)
class CatalogPolled(Message):
    """One round of the change watcher: whether the catalog answered, and which tables changed since."""

    ok: bool
    changed: frozenset[str]
    error: str | None = None
    jobs: list[Any] = field(default_factory=list)  # JobChange: jobs updated since the last round


@dataclass(eq=False)
class CatalogChanged(Message):
    """Tables (``images``, ``jobs``, ``inventory``) that another process (or this one) changed."""

    tables: frozenset[str]


@dataclass(eq=False)
class RowsLoaded(Message):
    """A fresh window of a paged table; ``total`` None while the count is still being made."""

    generation: int
    pages: dict[int, list[Any]]
    cursor: int
    total: int | None


@dataclass(eq=False)
class RowsCounted(Message):
    generation: int
    total: int


@dataclass(eq=False)
class RowsPage(Message):
    generation: int
    page: int
    rows: list[Any]


@dataclass(eq=False)
class RowsFailed(Message):
    generation: int
    error: str
    page: int | None = None


@dataclass(eq=False)
class ActionDone(Message):
    """An action on a record finished: ``error`` None means it was done, else why not (nothing changed).
    ``done`` says what was done, in the past tense, for the status line."""

    summary: str
    error: str | None = None
    done: str = ""


@dataclass(eq=False)
class DetailLoaded(Message):
    """Everything one record's detail view shows, read in one go."""

    data: dict[str, Any]


@dataclass(eq=False)
class ChoicesLoaded(Message):
    """What a form offers to choose from: live hosts, accounts and backup storages."""

    hosts: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    storages: list[dict[str, Any]]


@dataclass(eq=False)
class SrsListed(Message):
    """The SRs of the host chosen in the import form (a ``tui.hostcheck.SrListing``)."""

    host_id: str
    listing: Any


@dataclass(eq=False)
class InventoryLoaded(Message):
    """The hosts and backup storages the hosts view lists."""

    hosts: list[dict[str, Any]]
    storages: list[dict[str, Any]]


@dataclass(eq=False)
class HostChecked(Message):
    """A host check finished (``result`` has ``ok``, ``summary`` rows and ``error``)."""

    host_id: str
    result: Any
    finished_at: str


@dataclass(eq=False)
class ImageOfJob(Message):
    """The image a job makes and its state in the catalog (None: not registered yet), for ``g``."""

    job_id: str
    image_id: str | None
    state: str | None
