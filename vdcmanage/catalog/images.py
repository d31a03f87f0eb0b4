"""Machine images in the catalog: register a local file, find, list, modify, delete, features."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from vdcmanage.catalog.accounts import live_account
from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.ids import check_id
from vdcmanage.catalog.models import Image, ImagePreparation, utcnow
from vdcmanage.catalog.records import find_live, insert_new, iso, refuse_taken_id
from vdcmanage.catalog.validate import check_choice, check_description, check_name
from vdcmanage.errors import InvalidArgument, NotFound, Refused
from vdcmanage.images.reader import require_regular_file

ARCHES = ("x86", "x86_64")
STATES = ("init", "creating", "available", "broken", "deleted")
OS_TYPES = ("linux", "windows")
FILE_FORMATS = ("raw", "qcow2", "vhd", "vmdk", "vdi")
FEATURES = ("virtio", "acpi")


@dataclass
class LocalImageRequest:
    """What `image add local` was asked to register."""

    path: str
    account_id: str
    uuid: str | None = None
    arch: str = "x86_64"
    is_public: bool = False
    md5sum: str | None = None
    description: str | None = None
    display_name: str | None = None
    file_format: str | None = None
    state: str = "available"
    os_type: str = "linux"


def resolve_image_file(path: str) -> Path:
    """The absolute path of a readable regular file, or a refusal that names it."""
    if not path:
        raise InvalidArgument("The image path must not be empty")
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    require_regular_file(absolute)
    if not os.access(absolute, os.R_OK):
        raise Refused(f"Cannot read {display_path(absolute)}: permission denied")
    return absolute


def display_path(path: Path) -> str:
    """A path fit for an error line even when its bytes are not UTF-8."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_uri(path: Path) -> str:
    """``file:///abs/path``, percent-encoded so any byte string survives the catalog."""
    return path.as_uri()


def check_new_image_fields(req: LocalImageRequest) -> str | None:
    """Validate everything that does not need the file; return the id the operator chose, if any."""
    check_choice("arch", req.arch, ARCHES)
    check_choice("state", req.state, tuple(s for s in STATES if s != "deleted"))
    check_choice("os type", req.os_type, OS_TYPES)
    if req.file_format is not None:
        check_choice("file format", req.file_format, FILE_FORMATS)
    check_name("Display name", req.display_name)
    req.description = check_description(req.description)
    if req.md5sum is not None:
        from vdcmanage.images.checksum import parse_md5

        req.md5sum = parse_md5(req.md5sum)
    return check_id("image", req.uuid) if req.uuid is not None else None


def add_local_image(req: LocalImageRequest, progress: Any = None) -> Image:
    """Register a local image file: inspect its content, checksum it in one pass, insert one row.

    Everything that can be refused without reading the file is checked first, so a typo in the
    account id does not cost a pass over tens of GiB; the write transaction is held only for the
    final checks and the insert, never while hashing.
    """
    from vdcmanage.images.checksum import check_md5
    from vdcmanage.images.source import inspect_and_hash

    chosen_id = check_new_image_fields(req)
    path = resolve_image_file(req.path)
    with transaction():
        account_id = live_account(req.account_id).id  # the operator may have given its name
        refuse_taken_id(Image, "image", chosen_id)
    source = inspect_and_hash(path, progress)
    info, digests = source.info, source.digests
    if req.file_format is not None and req.file_format != info.format:
        raise InvalidArgument(
            f"--file-format {req.file_format} contradicts the content of {display_path(path)}, which is {info.format}"
        )
    if req.md5sum is not None:
        check_md5(req.md5sum, digests, path)
    fields = {
        "boot_type": "local",
        "source_uri": file_uri(path),
        "arch": req.arch,
        "is_public": req.is_public,
        "state": req.state,
        "display_name": req.display_name if req.display_name is not None else default_display_name(path),
        "description": req.description,
        "file_format": info.format,
        "size": digests.size,
        "virtual_size": info.virtual_size,
        "md5": digests.md5,
        "sha256": digests.sha256,
        "os_type": req.os_type,
    }

    def check_account_live() -> None:  # image names need not be unique; the owner must still be there
        live_account(account_id)

    return insert_new(
        Image, "image", chosen_id, check_account_live,
        lambda image_id: Image.create(id=image_id, account=account_id, **fields),
    )


def default_display_name(path: Path) -> str:
    """The file name, with control characters (a newline in a file name ...) shown as '?'."""
    name = display_path(Path(path.name))
    return "".join("?" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in name)[:255]


def get_image(key: str) -> Image:
    """An image by id or unique display name (deleted images too, for `show`)."""
    return find_live(Image, "image", key, Image.display_name)


def live_image(key: str) -> Image:
    image = get_image(key)
    if image.deleted_at is not None:
        raise NotFound(f"Image {image.id} is deleted")
    return image


@dataclass
class ImageFilter:
    account_id: str | None = None
    state: str | None = None
    arch: str | None = None
    file_format: str | None = None
    include_deleted: bool = False


def image_query(flt: ImageFilter | None = None) -> peewee.ModelSelect[Image]:
    flt = flt or ImageFilter()
    query = Image.select()
    if flt.account_id is not None:
        query = query.where(Image.account == flt.account_id)
    if flt.state is not None:
        query = query.where(Image.state == flt.state)
    if flt.arch is not None:
        query = query.where(Image.arch == flt.arch)
    if flt.file_format is not None:
        query = query.where(Image.file_format == flt.file_format)
    if not flt.include_deleted and flt.state != "deleted":
        query = query.where(Image.deleted_at.is_null())
    return query


def list_images(flt: ImageFilter | None = None) -> list[Image]:
    return list(image_query(flt).order_by(Image.created_at, Image.id))


MODIFIABLE = ("account_id", "arch", "is_public", "state", "description", "display_name", "os_type")


def modify_image(key: str, **changes: Any) -> Image:
    """Change the given fields (None means "leave as is"); refuse anything invalid, change nothing then."""
    unknown = set(changes) - set(MODIFIABLE)
    if unknown:
        raise InvalidArgument(f"Cannot modify {', '.join(sorted(unknown))}")
    wanted = {k: v for k, v in changes.items() if v is not None}
    if not wanted:
        raise InvalidArgument("Nothing to modify: give at least one option")
    validate_changes(wanted)
    with transaction(write=True):
        image = live_image(key)
        if "account_id" in wanted:
            image.account = live_account(wanted.pop("account_id")).id
        for field_name, value in wanted.items():
            setattr(image, field_name, value)
        if wanted.get("state") == "deleted":
            image.deleted_at = utcnow()
        image.touch()
        image.save()
        return image


def validate_changes(wanted: dict[str, Any]) -> None:
    if "arch" in wanted:
        check_choice("arch", wanted["arch"], ARCHES)
    if "state" in wanted:
        check_choice("state", wanted["state"], STATES)
    if "os_type" in wanted:
        check_choice("os type", wanted["os_type"], OS_TYPES)
    if "display_name" in wanted:
        check_name("Display name", wanted["display_name"])
    if "description" in wanted:
        wanted["description"] = check_description(wanted["description"])  # "" clears it


def delete_image(key: str) -> Image:
    """Mark an image deleted: it leaves listings, its id is never reused, its record stays for history."""
    with transaction(write=True):
        image = live_image(key)
        image.state = "deleted"
        image.deleted_at = image.updated_at = utcnow()
        image.save()
        return image


def set_features(key: str, **flags: bool | None) -> Image:
    """Set or clear feature flags; None leaves a flag as it is."""
    unknown = set(flags) - set(FEATURES)
    if unknown:
        raise InvalidArgument(f"Unknown feature {', '.join(sorted(unknown))}")
    with transaction(write=True):
        image = live_image(key)
        for name, value in flags.items():
            if value is not None:
                setattr(image, f"feature_{name}", value)
        image.touch()
        image.save()
        return image


def image_dict(image: Image, *, preparations: bool = False) -> dict[str, Any]:
    """Every field of an image, in a stable order with stable names (the JSON contract for scripts).

    ``preparations`` adds what `image prepare` did to it (one more query: for one image, not lists).
    """
    data = {
        "id": image.id,
        "account_id": image.account_id,
        "display_name": image.display_name,
        "description": image.description,
        "boot_type": image.boot_type,
        "source_uri": image.source_uri,
        "arch": image.arch,
        "file_format": image.file_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "md5": image.md5,
        "sha256": image.sha256,
        "state": image.state,
        "is_public": image.is_public,
        "os_type": image.os_type,
        "features": {"virtio": image.feature_virtio, "acpi": image.feature_acpi},
        "job_id": image.job_id,
        "created_at": iso(image.created_at),
        "updated_at": iso(image.updated_at),
        "deleted_at": iso(image.deleted_at),
    }
    if preparations:
        data["preparations"] = [
            {"step": p.step, "purpose": p.purpose, "detail": p.detail, "done_at": iso(p.done_at)}
            for p in ImagePreparation.select().where(ImagePreparation.image == image.id).order_by(ImagePreparation.id)
        ]
    return data
