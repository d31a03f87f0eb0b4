"""Helpers every record type shares: inserting under a new id, finding by id or unique name,
and JSON-ready values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.ids import is_valid_id, new_id
from vdcmanage.errors import AlreadyExists, CatalogError, InvalidArgument, NotFound

M = TypeVar("M", bound=peewee.Model)


def iso(value: dt.datetime | None) -> str | None:
    """UTC timestamps as ISO 8601 with a Z, for JSON and displays."""
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


# With n records of a kind, a drawn id (8 characters of 36) is taken with probability n / 36^8, about
# n / 2.8e12: five taken draws in a row mean something else is wrong.
NEW_ID_ATTEMPTS = 5


def insert_new(
    model: type[M], kind: str, chosen_id: str | None, check_name_free: Callable[[], None], create: Callable[[str], M]
) -> M:
    """Insert a record under ``chosen_id`` or a fresh generated one, in one write transaction.

    ``check_name_free`` raises :class:`AlreadyExists` if a live record has the new one's name.
    Two processes can both pass that check before either inserts: the database's unique indexes
    (schema version 2) then refuse the second insert, and the loser is told who won, as if it had
    come second. A generated id that is already taken is replaced by another, unseen.
    """
    for _attempt in range(NEW_ID_ATTEMPTS):
        record_id = chosen_id if chosen_id is not None else new_id(kind)
        try:
            with transaction(write=True):
                check_name_free()
                if not id_taken(model, record_id):
                    return create(record_id)
        except peewee.IntegrityError:
            with transaction():  # a fresh look: the winner has committed by the time our insert failed
                check_name_free()
                if not id_taken(model, record_id):
                    raise  # neither the name nor the id: a real failure
        if chosen_id is not None:
            raise AlreadyExists(f"{kind.capitalize()} {record_id} already exists")
    raise CatalogError(f"No free {kind} id after {NEW_ID_ATTEMPTS} attempts")


def id_taken(model: type[peewee.Model], record_id: str) -> bool:
    return model.select().where(model._meta.primary_key == record_id).exists()


def refuse_taken_id(model: type[peewee.Model], kind: str, chosen_id: str | None) -> None:
    """Refuse early, before slow work, an id the operator chose that a record (deleted or not) has."""
    if chosen_id is not None and id_taken(model, chosen_id):
        raise AlreadyExists(f"{kind.capitalize()} {chosen_id} already exists")


def find_live(model: type[M], kind: str, key: str, name_field: Any | None = None) -> M:
    """A record by canonical id, or by its unique name among records not deleted.

    ``key`` that is neither an id nor a name is refused with "Unknown <kind> id"; a name shared
    by several live records is refused with the ids to choose from.
    """
    if not key:
        raise InvalidArgument(f"The {kind} id must not be empty")
    id_field = model._meta.primary_key
    if is_valid_id(kind, key):
        record = model.get_or_none(id_field == key)
        if record is not None:
            return record
    if name_field is not None:
        live = model._meta.fields["deleted_at"].is_null()
        matches = list(model.select().where(name_field == key, live).limit(10))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(str(m.__data__["id"]) for m in matches)
            raise InvalidArgument(f"Several {kind}s are named {key!r} ({ids}); use the id")
    raise NotFound(f"Unknown {kind} id: {key}")
