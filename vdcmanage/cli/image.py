"""``vdc-manage image ...``: register, show, list, modify, delete machine images and set their features."""

from __future__ import annotations

import typer

from vdcmanage.catalog import images
from vdcmanage.cli.image_views import print_images, show_images
from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import print_record
from vdcmanage.cli.params import FormatOption, YesOption, check_format, confirm_long_hash

app = group_app(
    "image",
    "Operations for machine images.",
    lazy={
        "import": ("vdcmanage.cli.image_import", "app", "Import a machine image through a hypervisor (xen)."),
        "prepare": ("vdcmanage.cli.image_prepare", "app", "Make a raw image boot on XenServer and start clean."),
        "boot-check": ("vdcmanage.cli.image_bootcheck", "app", "Boot a raw image under qemu: is it reachable?"),
    },
)
add_app = group_app("add", "Register a machine image (IMAGE_TYPE: local).")
app.add_typer(add_app, name="add")

ARCH_HELP = f"Architecture: {' or '.join(images.ARCHES)}."
STATE_HELP = f"State: {', '.join(images.STATES)}."
FORMAT_HELP = f"File format the content must have: {', '.join(images.FILE_FORMATS)} (default: detected)."


@add_app.command("local")
def add_local(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="PATH", help="The image file on this host (raw, qcow2, vhd, vmdk, vdi)."),
    account_id: str = typer.Option(..., "--account-id", "-a", help="Owner account (a-shpoolxx: shared with everyone)."),
    uuid: str = typer.Option(None, "--uuid", "-u", help="Choose the new id (wmi-[a-z0-9]+); default: generated."),
    arch: str = typer.Option("x86_64", "--arch", "-r", help=ARCH_HELP),
    is_public: bool = typer.Option(False, "--is-public", "-p", help="Make the image visible to every account."),
    md5sum: str = typer.Option(None, "--md5sum", "-m", help="Expected MD5 of the file; refused when it differs."),
    description: str = typer.Option(None, "--description", "-d", help="A free-form description."),
    display_name: str = typer.Option(None, "--display-name", help="Name shown in listings (default: file name)."),
    file_format: str = typer.Option(None, "--file-format", help=FORMAT_HELP),
    state: str = typer.Option("available", "--state", "-s", help=STATE_HELP),
    os_type: str = typer.Option("linux", "--os-type", help="Guest OS: linux or windows."),
    yes: bool = YesOption,
) -> None:
    """Register a local image file and print its new id (wmi-...).

    The format and virtual size come from the file's content; md5 and sha256 are computed in one pass.
    A huge sparse file (hours of hashing) is confirmed first: a question on a terminal, else --yes.
    """
    catalog(ctx)
    confirm_long_hash(path, yes)
    from vdcmanage.cli.progress import ProgressPrinter

    request = images.LocalImageRequest(
        path=path,
        account_id=account_id,
        uuid=uuid,
        arch=arch,
        is_public=is_public,
        md5sum=md5sum,
        description=description,
        display_name=display_name,
        file_format=file_format,
        state=state,
        os_type=os_type,
    )
    progress = ProgressPrinter("Checksumming", plain_interval=None)
    try:
        image = images.add_local_image(request, progress=progress)
    finally:
        progress.finish()
    typer.echo(image.id)


@app.command("show")
def show(
    ctx: typer.Context,
    image_id: str = typer.Argument(None, metavar="[IMAGE_ID]", help="Image id or display name; omit for the table."),
    fmt: str = FormatOption,
) -> None:
    """Show the images as a table (deleted ones left out), or every field of one image."""
    check_format(fmt)
    catalog(ctx)
    show_images(image_id, fmt)


@app.command("list")
def list_(
    ctx: typer.Context,
    account_id: str = typer.Option(None, "--account-id", "-a", help="Only images of this account."),
    state: str = typer.Option(None, "--state", "-s", help="Only images in this state."),
    arch: str = typer.Option(None, "--arch", "-r", help="Only images of this architecture."),
    file_format: str = typer.Option(None, "--file-format", help="Only images of this file format."),
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted images."),
    fmt: str = FormatOption,
) -> None:
    """List images, optionally filtered (filters combine)."""
    check_format(fmt)
    catalog(ctx)
    flt = images.ImageFilter(account_id, state, arch, file_format, include_deleted=deleted)
    print_images(images.list_images(flt), fmt)


@app.command("modify")
def modify(
    ctx: typer.Context,
    image_id: str = typer.Argument(..., metavar="IMAGE_ID", help="Image id or display name."),
    account_id: str = typer.Option(None, "--account-id", "-a", help="Move the image to this account."),
    arch: str = typer.Option(None, "--arch", "-r", help=ARCH_HELP),
    is_public: bool = typer.Option(None, "--is-public/--no-is-public", "-p/-P", help="Make public / private."),
    state: str = typer.Option(None, "--state", "-s", help=STATE_HELP),
    description: str = typer.Option(None, "--description", "-d", help="New description (\"\" clears it)."),
    display_name: str = typer.Option(None, "--display-name", help="New display name."),
    os_type: str = typer.Option(None, "--os-type", help="Guest OS: linux or windows."),
) -> None:
    """Change fields of a registered image (only the options given)."""
    catalog(ctx)
    images.modify_image(
        image_id,
        account_id=account_id,
        arch=arch,
        is_public=is_public,
        state=state,
        description=description,
        display_name=display_name,
        os_type=os_type,
    )


@app.command("del")
def delete(
    ctx: typer.Context, image_id: str = typer.Argument(..., metavar="IMAGE_ID", help="Image id or display name.")
) -> None:
    """Delete a registered image (the record is kept as deleted; the file is not touched)."""
    catalog(ctx)
    images.delete_image(image_id)


@app.command("features")
def features(
    ctx: typer.Context,
    image_id: str = typer.Argument(..., metavar="IMAGE_ID", help="Image id or display name."),
    virtio: bool = typer.Option(None, "--virtio/--no-virtio", help="The guest has virtio drivers."),
    acpi: bool = typer.Option(None, "--acpi/--no-acpi", help="The guest uses ACPI."),
) -> None:
    """Set or clear feature flags; with no flag, print the current ones."""
    catalog(ctx)
    if virtio is None and acpi is None:
        image = images.get_image(image_id)
    else:
        image = images.set_features(image_id, virtio=virtio, acpi=acpi)
    print_record([("virtio", image.feature_virtio), ("acpi", image.feature_acpi)])
