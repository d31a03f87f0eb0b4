"""Helpers every record type shares: finding by id or unique name, and JSON-ready values."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import peewee

from vdcmanage.catalog.ids import is_valid_id
from vdcmanage.errors import InvalidArgument, NotFound

M = TypeVar("M", bound=peewee.Model)


def iso(value: dt.datetime | None) -> str | None:
    """UTC timestamps as ISO 8601 with a Z, for JSON and displays."""
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


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
