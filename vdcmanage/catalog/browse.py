"""Browsing the catalog at scale: text search, sorting and pages of images, and cheap change tokens.

The dashboard shows catalogs of 100,000 images without loading them: it asks for a count and
for pages (``LIMIT``/``OFFSET``) of one ordering, and polls a change token to learn when to ask
again. Sorting and filtering are done here by the database (``ORDER BY``/``WHERE``), with the
indexes declared on the models, so no caller ever holds more than a screenful of rows.

Every ordering ends with the id, so pages of one ordering never overlap or skip a row, and
:func:`image_position` finds a row's index in exactly the ordering the pages use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee

from vdcmanage.catalog.db import database
from vdcmanage.catalog.images import image_dict
from vdcmanage.catalog.models import Account, BackupStorage, Host, Image
from vdcmanage.catalog.records import iso
from vdcmanage.errors import InvalidArgument

SEARCH_MAX = 200  # characters of search text; longer is refused rather than silently cut
SEARCH_COLLATION = "utf8mb4_general_ci"  # MariaDB: what searches compared with before ids and names went binary
PAGE_MAX = 1000  # rows per page, at most

# sort key -> the column it orders by (the id breaks ties)
IMAGE_SORTS: dict[str, peewee.Field] = {
    "created": Image.created_at,
    "id": Image.id,
    "name": Image.display_name,
    "account": Image.account,
    "arch": Image.arch,
    "format": Image.file_format,
    "size": Image.size,
    "virtual_size": Image.virtual_size,
    "state": Image.state,
}


@dataclass(frozen=True)
class ImageSearch:
    """What the operator asked to see: words every image must contain somewhere, and an ordering.

    A word matches the id, the display name, the description, the account id or the account's name
    (case-insensitively for ASCII); every word must match for an image to be listed.
    """

    text: str = ""
    sort: str = "created"
    descending: bool = False
    include_deleted: bool = False

    def words(self) -> list[str]:
        return self.text.split()


def check_search(search: ImageSearch) -> None:
    if search.sort not in IMAGE_SORTS:
        raise InvalidArgument(f"Unknown sort key {search.sort!r}: expected one of {', '.join(IMAGE_SORTS)}")
    check_search_text(search.text)


def check_search_text(text: str) -> None:
    if len(text) > SEARCH_MAX:
        raise InvalidArgument(f"Search text is too long ({len(text)} characters; at most {SEARCH_MAX})")


def contains(column: Any, word: str) -> peewee.Expression:
    """A case-insensitive "contains" on every backend (LIKE on SQLite, ILIKE on PostgreSQL). MariaDB's
    LIKE follows the column's collation, and ids and names are binary there (catalog/unique.py)."""
    if isinstance(database.obj, peewee.MySQLDatabase):
        return column.collate(SEARCH_COLLATION).contains(word)  # type: ignore[no-any-return]
    return column.contains(word)  # type: ignore[no-any-return]


def word_matches_image(word: str) -> peewee.Expression:
    matches = (
        contains(Image.id, word)
        | contains(Image.display_name, word)
        | contains(Image.description, word)
        | contains(Image.account, word)
    )
    # The accounts whose name matches are looked up first (there are few) and given as values: an
    # IN (subquery) arm would keep PostgreSQL from answering the whole OR from its indexes.
    named = [account.id for account in Account.select(Account.id).where(contains(Account.name, word))]
    return matches | Image.account.in_(named) if named else matches


def filtered_images(search: ImageSearch, *columns: Any) -> peewee.ModelSelect[Image]:
    check_search(search)
    query = Image.select(*columns)
    if not search.include_deleted:
        query = query.where(Image.deleted_at.is_null())
    for word in search.words():
        query = query.where(word_matches_image(word))
    return query


def image_ordering(search: ImageSearch) -> list[Any]:
    column = IMAGE_SORTS[search.sort]
    if search.descending:
        return [column.desc(), Image.id.desc()]
    return [column.asc(), Image.id.asc()]


def count_images(search: ImageSearch) -> int:
    return int(filtered_images(search).count())


def image_page(search: ImageSearch, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows ``offset`` .. ``offset + limit - 1`` of the search's ordering, each as :func:`image_dict`."""
    check_page(offset, limit)
    query = filtered_images(search).order_by(*image_ordering(search)).offset(offset).limit(limit)
    return [image_dict(image) for image in query]


def check_page(offset: int, limit: int) -> None:
    if offset < 0 or not 0 < limit <= PAGE_MAX:
        raise InvalidArgument(f"Bad page: offset {offset}, limit {limit} (1 to {PAGE_MAX} rows)")


def image_position(search: ImageSearch, image_id: str) -> int | None:
    """The index of ``image_id`` in the search's ordering, or None when the search does not list it."""
    return row_position(filtered_images(search, Image.id), Image.id, image_ordering(search), image_id)


def row_position(query: peewee.ModelSelect[Any], id_field: Any, ordering: list[Any], row_id: str) -> int | None:
    """A row's 0-based index in ``query`` ordered by ``ordering`` (a window function: one pass, no rows sent)."""
    numbered = query.select_extend(peewee.fn.ROW_NUMBER().over(order_by=ordering).alias("position"))
    sub = numbered.alias("numbered")
    outer = peewee.Select(from_list=[sub], columns=[sub.c.position]).where(sub.c.id == row_id)
    value = outer.bind(Image._meta.database).scalar()
    return None if value is None else int(value) - 1


@dataclass(frozen=True)
class ChangeToken:
    """Changes whenever a row of a table is added, changed or (softly) deleted: its count and newest update."""

    count: int
    newest: str | None


def change_token(model: type[peewee.Model]) -> ChangeToken:
    """Cheap enough to poll every second on 100,000 rows: MAX of an indexed column is one index probe
    (asked alone: SQLite only optimises a lone MIN/MAX), and COUNT walks the smallest index."""
    updated_at = model._meta.fields["updated_at"]
    newest = model.select(peewee.fn.MAX(updated_at)).scalar()
    count = model.select().count()
    return ChangeToken(int(count), str(newest) if newest is not None else None)


def images_token() -> ChangeToken:
    return change_token(Image)


def inventory_token() -> tuple[ChangeToken, ChangeToken, ChangeToken]:
    """Hosts, backup storages and accounts: what the dashboard's forms and host view list."""
    return change_token(Host), change_token(BackupStorage), change_token(Account)


def live_records(model: type[peewee.Model], to_dict: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    deleted_at = model._meta.fields["deleted_at"]
    created_at = model._meta.fields["created_at"]
    query = model.select().where(deleted_at.is_null()).order_by(created_at, model._meta.primary_key)
    return [to_dict(record) for record in query]


def host_summary(host: Host) -> dict[str, Any]:
    """What a list of hosts shows; never the recorded host key (it is long and not for reading)."""
    return {
        "id": host.id,
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": host.key_file,
        "sr_uuid": host.sr_uuid,
        "host_key_recorded": host.host_key is not None,
        "created_at": iso(host.created_at),
    }


def backup_storage_summary(storage: BackupStorage) -> dict[str, Any]:
    return {
        "id": storage.id,
        "display_name": storage.display_name,
        "storage_type": storage.storage_type,
        "base_uri": storage.base_uri,
        "path": storage.path,
        "address": storage.address,
        "port": storage.port,
        "user": storage.user,
        "created_at": iso(storage.created_at),
    }


def account_summary(account: Account) -> dict[str, Any]:
    return {"id": account.id, "name": account.name}


def live_hosts() -> list[dict[str, Any]]:
    return live_records(Host, host_summary)


def live_backup_storages() -> list[dict[str, Any]]:
    return live_records(BackupStorage, backup_storage_summary)


def live_accounts() -> list[dict[str, Any]]:
    return live_records(Account, account_summary)
