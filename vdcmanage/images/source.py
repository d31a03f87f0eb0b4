"""A source image read once: its format, size and checksums all from one open descriptor.

Inspecting and hashing by name would let someone swap the file between the passes and pair one
file's checksums with another's format or contents. Here both passes read the same descriptor,
which is then checked to be the file the path still names, unchanged (device, inode, size,
mtime); later passes by name (a conversion, an upload) check the same identity before they start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.images.checksum import Digests, Progress, file_digests
from vdcmanage.images.inspect import ImageInfo, inspect_image
from vdcmanage.images.reader import FileIdentity, check_unchanged, open_regular_file


@dataclass(frozen=True)
class ReadSource:
    info: ImageInfo
    digests: Digests
    identity: FileIdentity


def inspect_and_hash(path: Path, progress: Progress | None = None) -> ReadSource:
    fd, opened = open_regular_file(path)
    try:
        identity = FileIdentity.of(opened)
        info = inspect_image(path, fd)
        digests = file_digests(path, progress=progress, fd=fd)
        check_unchanged(path, identity, fd)
    finally:
        os.close(fd)
    return ReadSource(info, digests, identity)

