"""How images are shown: the table of ``image show``/``image list`` and the record of ``image show ID``.

No typer here: ``image show`` also runs through the fast path of cli/entry.py, which must print
exactly what the full command prints.
"""

from __future__ import annotations

from vdcmanage.catalog import images
from vdcmanage.catalog.models import Image
from vdcmanage.cli.output import human_size, print_json, print_record, print_table


def show_images(image_id: str | None, fmt: str) -> None:
    """``image show [IMAGE_ID] [-f FMT]`` once the catalog is open."""
    if image_id is None:
        print_images(images.list_images(), fmt)
        return
    data = images.image_dict(images.get_image(image_id), preparations=True)
    if fmt == "json":
        print_json(data)
    else:
        print_image_record(data)


TABLE_HEADERS = ["UUID", "Account ID", "Name", "Boot Type", "Arch", "Format", "Size", "State"]


def print_images(rows: list[Image], fmt: str) -> None:
    if fmt == "json":
        print_json([images.image_dict(i) for i in rows])
        return
    print_table(
        TABLE_HEADERS,
        (
            (i.id, i.account_id, i.display_name, i.boot_type, i.arch, i.file_format, human_size(i.size), i.state)
            for i in rows
        ),
    )


def print_image_record(data: dict[str, object]) -> None:
    features, preps = data["features"], data.get("preparations", [])
    assert isinstance(features, dict) and isinstance(preps, list)
    print_record(
        [
            ("UUID", data["id"]),
            ("Name", data["display_name"]),
            ("Account ID", data["account_id"]),
            ("Boot Type", data["boot_type"]),
            ("Source", data["source_uri"]),
            ("Arch", data["arch"]),
            ("Format", data["file_format"]),
            ("Size", size_with_bytes(data["size"])),
            ("Virtual Size", size_with_bytes(data["virtual_size"])),
            ("MD5", data["md5"]),
            ("SHA256", data["sha256"]),
            ("State", data["state"]),
            ("Is Public", data["is_public"]),
            ("OS Type", data["os_type"]),
            ("Features", " ".join(f"{k}={'true' if v else 'false'}" for k, v in features.items())),
            ("Job", data["job_id"]),
            ("Created", data["created_at"]),
            ("Updated", data["updated_at"]),
            ("Deleted", data["deleted_at"]),
            ("Description", data["description"]),
            ("Prepared", [f"{p['done_at']} {p['purpose']} {p['step']}: {p['detail']}" for p in preps]),
        ]
    )


def size_with_bytes(value: object) -> str:
    return f"{value} ({human_size(value)})" if isinstance(value, int) else ""
