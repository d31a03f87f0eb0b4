"""``vdc-manage image import xen``: a machine image onto XenServer and out as a published template."""

from __future__ import annotations

import typer

from vdcmanage.cli.failures import notice
from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.params import YesOption, confirm_long_hash

app = group_app("import", "Import a machine image through a hypervisor (IMAGE_TYPE: xen).")


@app.callback()
def import_group() -> None:
    """Import a machine image through a hypervisor (IMAGE_TYPE: xen)."""
    # Keeps `import` a group while `xen` is its only command (typer would fold the two into one).


@app.command("xen")
def xen(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="PATH", help="The image file (raw; qcow2, vhd, vmdk, vdi are converted)."),
    host: str = typer.Option(..., "--host", help="The XenServer host (hn- id or name; see 'vdc-manage host list')."),
    account_id: str = typer.Option(..., "--account-id", "-a", help="Owner account of the new image."),
    sr_uuid: str = typer.Option(None, "--sr-uuid", help="SR to import into (file-based). Default: the host's."),
    name_label: str = typer.Option(None, "--name-label", help="The VDI name label on XenServer (default: file name)."),
    backup_storage: str = typer.Option(
        None, "--backup-storage", help="Where to publish (bkst- id or name). Default: the only one defined."
    ),
    arch: str = typer.Option("x86_64", "--arch", "-r", help="Architecture: x86 or x86_64."),
    description: str = typer.Option(None, "--description", "-d", help="A free-form description of the image."),
    display_name: str = typer.Option(None, "--display-name", help="Name in listings (default: the name label)."),
    detach: bool = typer.Option(False, "--detach", help="Queue the import for 'job worker' and print the job id."),
    yes: bool = YesOption,
) -> None:
    """Import an image into XenServer, publish it as a .vhd.bz2 template, register it; print its wmi- id.

    Runs in the foreground with progress on stderr unless --detach. Ctrl-C leaves the job resumable
    with 'vdc-manage job retry JOB_ID'. A huge sparse file (hours of hashing) is confirmed first: a
    question on a terminal, else --yes.
    """
    catalog(ctx)
    confirm_long_hash(path, yes)
    from vdcmanage.importer.request import ImportRequest, submit_import

    job = submit_import(
        ImportRequest(
            path=path,
            host=host,
            account_id=account_id,
            backup_storage=backup_storage,
            sr_uuid=sr_uuid,
            name_label=name_label,
            arch=arch,
            description=description,
            display_name=display_name,
        )
    )
    if detach:
        typer.echo(job.id)
        return
    from vdcmanage.cli.foreground import run_in_foreground

    notice(f"{job.id}: importing {path}")
    raise typer.Exit(run_in_foreground(job.id))
