"""``vdc-manage account ...``"""

from __future__ import annotations

import typer

from vdcmanage.catalog import accounts
from vdcmanage.catalog.models import Account
from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import print_json, print_record, print_table, when
from vdcmanage.cli.params import FormatOption, check_format

app = group_app("account", "Operations for accounts.")


@app.command("add")
def add(
    ctx: typer.Context,
    uuid: str = typer.Option(None, "--uuid", "-u", help="Choose the new id (a-[a-z0-9]+); default: generated."),
    name: str = typer.Option(None, "--name", "-n", help="A name for the account."),
    description: str = typer.Option(None, "--description", "-d", help="A free-form description."),
) -> None:
    """Add an account and print its id."""
    catalog(ctx)
    typer.echo(accounts.add_account(uuid, name, description).id)


@app.command("show")
def show(
    ctx: typer.Context,
    account_id: str = typer.Argument(None, metavar="[ACCOUNT_ID]", help="Account id or name; omit for the table."),
    fmt: str = FormatOption,
) -> None:
    """Show the accounts as a table, or every field of one."""
    check_format(fmt)
    catalog(ctx)
    if account_id is None:
        print_accounts(accounts.list_accounts(), fmt)
        return
    data = accounts.account_dict(accounts.get_account(account_id))
    if fmt == "json":
        print_json(data)
        return
    print_record(
        [
            ("UUID", data["id"]),
            ("Name", data["name"]),
            ("Description", data["description"]),
            ("Created", data["created_at"]),
            ("Updated", data["updated_at"]),
            ("Deleted", data["deleted_at"]),
        ]
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted accounts."),
    fmt: str = FormatOption,
) -> None:
    """List accounts."""
    check_format(fmt)
    catalog(ctx)
    print_accounts(accounts.list_accounts(include_deleted=deleted), fmt)


def print_accounts(rows: list[Account], fmt: str) -> None:
    if fmt == "json":
        print_json([accounts.account_dict(a) for a in rows])
        return
    print_table(
        ["UUID", "Name", "Description", "Created"], [(a.id, a.name, a.description, when(a.created_at)) for a in rows]
    )


@app.command("del")
def delete(
    ctx: typer.Context, account_id: str = typer.Argument(..., metavar="ACCOUNT_ID", help="Account id or name.")
) -> None:
    """Delete an account that owns no images (the shared account a-shpoolxx stays)."""
    catalog(ctx)
    accounts.delete_account(account_id)
