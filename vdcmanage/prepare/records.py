"""Keeping a registered image's catalog record true after prepare changed its file.

The steps done go into ``ImagePreparation`` rows, and the image's md5/sha256 (which no longer
match the edited file) are recomputed, all in one write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from vdcmanage.images.checksum import Digests, file_digests

__all__ = ["AppliedStep", "file_digests", "record_preparation"]


@dataclass(frozen=True)
class AppliedStep:
    step: str
    purpose: str
    detail: str  # what was done; never a secret (the root password step says only that it was set)


def record_preparation(image_id: str, applied: list[AppliedStep], digests: Digests) -> None:
    """One transaction: a row per step done, and the image's new checksums."""
    from vdcmanage.catalog.db import transaction
    from vdcmanage.catalog.models import Image, ImagePreparation, utcnow

    with transaction(write=True):
        image = Image.get_by_id(image_id)
        now = utcnow()
        for item in applied:
            ImagePreparation.create(image=image, step=item.step, purpose=item.purpose, detail=item.detail, done_at=now)
        image.md5, image.sha256, image.size = digests.md5, digests.sha256, digests.size
        image.touch()
        image.save()
