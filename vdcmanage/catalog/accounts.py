"""Accounts: who images belong to. ``a-shpoolxx`` is the shared account every new catalog has."""

from __future__ import annotations

from typing import Any

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.ids import check_id
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Account, Image, utcnow
from vdcmanage.catalog.records import find_live, insert_new, iso
from vdcmanage.catalog.validate import check_description, check_name
from vdcmanage.errors import AlreadyExists, InUse, InvalidArgument, NotFound


def add_account(uuid: str | None = None, name: str | None = None, description: str | None = None) -> Account:
    chosen_id = check_id("account", uuid) if uuid is not None else None
    fields = {"name": check_name("Name", name), "description": check_description(description)}

    def check_name_free() -> None:
        same = None if name is None else Account.get_or_none((Account.name == name) & Account.deleted_at.is_null())
        if same is not None:
            raise AlreadyExists(f"An account named {name!r} already exists ({same.id})")

    return insert_new(
        Account, "account", chosen_id, check_name_free, lambda account_id: Account.create(id=account_id, **fields)
    )


def get_account(key: str) -> Account:
    """An account by id or unique name, deleted ones included (for show)."""
    return find_live(Account, "account", key, Account.name)


def live_account(key: str) -> Account:
    account = get_account(key)
    if account.deleted_at is not None:
        raise NotFound(f"Account {account.id} is deleted")
    return account


def list_accounts(include_deleted: bool = False) -> list[Account]:
    query = Account.select().order_by(Account.created_at, Account.id)
    if not include_deleted:
        query = query.where(Account.deleted_at.is_null())
    return list(query)


def delete_account(key: str) -> Account:
    with transaction(write=True):
        account = live_account(key)
        if account.id == SHARED_ACCOUNT_ID:
            raise InvalidArgument(f"{SHARED_ACCOUNT_ID} is the shared system account and cannot be deleted")
        owned = Image.select().where(Image.account == account.id, Image.deleted_at.is_null()).count()
        if owned:
            raise InUse(f"Account {account.id} still owns {owned} image(s); delete or move them first")
        account.deleted_at = account.updated_at = utcnow()
        account.save()
        return account


def account_dict(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "description": account.description,
        "created_at": iso(account.created_at),
        "updated_at": iso(account.updated_at),
        "deleted_at": iso(account.deleted_at),
    }
