"""``vdc-manage backupstorage ...``: where published templates go."""

from __future__ import annotations

import typer

from vdcmanage.catalog import storages
from vdcmanage.catalog.models import BackupStorage
from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import print_json, print_record, print_table, when
from vdcmanage.cli.params import FormatOption, check_format

app = group_app("backupstorage", "Operations for backup storages (where templates are published).")


@app.command("add")
def add(
    ctx: typer.Context,
    storage_type: str = typer.Option(..., "--storage-type", "-t", help="local (a directory here) or ssh (web server)."),
    base_uri: str = typer.Option(..., "--base-uri", help="URL the directory is served at, e.g. http://web/templates."),
    path: str = typer.Option(..., "--path", help="The directory templates are written to (absolute)."),
    address: str = typer.Option(None, "--address", "-a", help="ssh: web server host name, IP or ~/.ssh/config alias."),
    port: int = typer.Option(None, "--port", "-p", help="ssh: SSH port (default: ~/.ssh/config, else 22)."),
    user: str = typer.Option(None, "--user", "-l", help="ssh: login user (default: ~/.ssh/config, else root)."),
    key_file: str = typer.Option(None, "--key-file", "-i", help="ssh: private key file (default: agent, ~/.ssh/id_*)."),
    display_name: str = typer.Option(None, "--display-name", "-n", help="A unique name for the storage."),
    uuid: str = typer.Option(None, "--uuid", "-u", help="Choose the new id (bkst-[a-z0-9]+); default: generated."),
    accept_new_host_key: bool = typer.Option(
        False, "--accept-new-host-key", help="ssh: connect now and record the server's key if it is not known yet."
    ),
) -> None:
    """Add a backup storage and print its id."""
    catalog(ctx)
    options = None
    if accept_new_host_key:
        from vdcmanage.cli.host import connect_options

        options = connect_options(ctx, None, True)
    storage = storages.add_backup_storage(
        storage_type,
        base_uri,
        path,
        address=address,
        port=port,
        user=user,
        key_file=key_file,
        display_name=display_name,
        uuid=uuid,
        accept_new_host_key=accept_new_host_key,
        connect=options,
    )
    typer.echo(storage.id)


@app.command("show")
def show(
    ctx: typer.Context,
    storage_id: str = typer.Argument(None, metavar="[ID]", help="Storage id or display name; omit for the table."),
    fmt: str = FormatOption,
) -> None:
    """Show the backup storages as a table, or every field of one."""
    check_format(fmt)
    catalog(ctx)
    if storage_id is None:
        print_storages(storages.list_backup_storages(), fmt)
        return
    data = storages.storage_dict(storages.get_backup_storage(storage_id))
    if fmt == "json":
        print_json(data)
        return
    print_record([(key.replace("_", " ").capitalize(), value) for key, value in data.items()])


@app.command("list")
def list_(
    ctx: typer.Context,
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted backup storages."),
    fmt: str = FormatOption,
) -> None:
    """List backup storages."""
    check_format(fmt)
    catalog(ctx)
    print_storages(storages.list_backup_storages(include_deleted=deleted), fmt)


def print_storages(rows: list[BackupStorage], fmt: str) -> None:
    if fmt == "json":
        print_json([storages.storage_dict(s) for s in rows])
        return
    print_table(
        ["UUID", "Name", "Type", "Base URI", "Path", "Address", "Created"],
        (
            (s.id, s.display_name, s.storage_type, s.base_uri, s.path, s.address, when(s.created_at))
            for s in rows
        ),
    )


@app.command("del")
def delete(
    ctx: typer.Context, storage_id: str = typer.Argument(..., metavar="ID", help="Backup storage id or display name.")
) -> None:
    """Delete a backup storage (templates already published there are not touched)."""
    catalog(ctx)
    storages.delete_backup_storage(storage_id)
