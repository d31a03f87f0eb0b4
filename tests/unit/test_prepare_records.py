"""Recording a prepared image in the catalog, on every backend (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Image, ImagePreparation, Job
from vdcmanage.errors import InUse
from vdcmanage.prepare.records import AppliedStep, file_digests, record_preparation
from vdcmanage.prepare.target import file_path_of, find_registered_by_file, registered_target

pytestmark = pytest.mark.catalog


def add_image(image_id: str, path: Path, **fields: object) -> Image:
    with transaction(write=True):
        return Image.create(
            id=image_id, account=SHARED_ACCOUNT_ID, source_uri="file://" + quote(str(path)), arch="x86_64",
            state="available", file_format="raw", size=1, virtual_size=1, md5="0" * 32, sha256="0" * 64, **fields,
        )  # fmt: skip


def test_file_digests_match_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000
    (tmp_path / "f").write_bytes(data)
    digests = file_digests(tmp_path / "f")
    assert (digests.md5, digests.sha256, digests.size) == (
        hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data)
    )  # fmt: skip


def test_registered_file_is_found_and_recorded(any_catalog: str, tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "ubuntu%20.raw"
    path.parent.mkdir()
    path.write_bytes(b"\0" * 4096)
    add_image("wmi-rec00001", path)
    add_image("wmi-gone0001", path, deleted_at=Image.created_at.default())
    found = find_registered_by_file(path)
    assert found is not None and found.id == "wmi-rec00001"
    assert file_path_of(found) == path  # percent-decoding keeps a literal %20 in the name
    assert registered_target(found).image_id == "wmi-rec00001"

    digests = file_digests(path)
    record_preparation("wmi-rec00001", [AppliedStep("logs", "cloud", "truncated var/log/messages")], digests)
    image = Image.get_by_id("wmi-rec00001")
    assert (image.md5, image.sha256, image.size) == (digests.md5, digests.sha256, 4096)
    rows = list(ImagePreparation.select().where(ImagePreparation.image == "wmi-rec00001"))
    assert [(r.step, r.purpose, r.detail) for r in rows] == [("logs", "cloud", "truncated var/log/messages")]
    assert rows[0].done_at is not None


def test_image_being_imported_is_refused(any_catalog: str, tmp_path: Path) -> None:
    path = tmp_path / "busy.raw"
    path.write_bytes(b"\0")
    with transaction(write=True):
        job = Job.create(id="job-busy0001", kind="import", params="{}", state="running")
    image = add_image("wmi-busy0001", path, job=job)
    with pytest.raises(InUse, match="job-busy0001"):
        registered_target(image)
