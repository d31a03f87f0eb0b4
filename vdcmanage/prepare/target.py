"""What TARGET names, and opening it as a guest root.

TARGET is a directory (a mounted root), a raw image file, or a registered image whose source is
a local raw file. Formats other than raw are refused with the conversion to run: the loop mount
reads the file as a plain disk, and a qcow2 or VHD mounted that way would show nonsense.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit

from vdcmanage.errors import FileNotFound, InUse, InvalidArgument, InvalidImage, NotFound, Refused
from vdcmanage.images.reader import require_regular_file
from vdcmanage.prepare.root import GuestRoot, is_linux_root
from vdcmanage.prepare.steps import Layout

if TYPE_CHECKING:
    from vdcmanage.catalog.models import Image

VHD_COOKIE = b"conectix"


class NotALinuxRoot(Refused):
    """A directory without etc/fstab and the usual system directories."""


@dataclass
class Target:
    """What TARGET resolved to. ``image_id`` is set for a registered image."""

    kind: str  # directory | file
    path: Path
    image_id: str | None = None

    def describe(self) -> str:
        return f"image {self.image_id} ({self.path})" if self.image_id else str(self.path)


@dataclass
class OpenTarget:
    root: GuestRoot
    layout: Layout
    make_writable: Callable[[], None]  # before the first change; the root starts read-only
    zero_free: Callable[[], str] | None = None  # clears the free blocks of an image's filesystem


def nothing_to_do() -> None:
    """A directory is writable as it is."""


def non_raw_format(path: Path) -> str | None:
    """The name of a known non-raw disk image format the file is in, from its content; None if raw."""
    with path.open("rb") as handle:
        head = handle.read(512)
        size = os.fstat(handle.fileno()).st_size
        tail = b""
        if size >= 512:
            handle.seek(size - 512)
            tail = handle.read(512)
    if head.startswith(b"QFI\xfb"):
        return "qcow2" if head[4:8] != b"\0\0\0\x01" else "qcow"
    if head.startswith(VHD_COOKIE) or tail.startswith(VHD_COOKIE):
        return "vhd"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head[64:68] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if head.startswith(b"QED\0"):
        return "qed"
    return None


def refuse_non_raw(path: Path, fmt: str) -> InvalidImage:
    raw = path.with_name(path.name.rsplit(".", 1)[0] + ".raw")
    return InvalidImage(
        f"{path} is a {fmt} image; prepare works on raw images only. Convert it first: "
        f"qemu-img convert -O raw {path} {raw} (then prepare and register the .raw file)"
    )


def check_raw_file(path: Path) -> None:
    fmt = non_raw_format(path)
    if fmt is not None:
        raise refuse_non_raw(path, fmt)


def locate(spec: str) -> Target | None:
    """TARGET as a path on this machine, or None when no such path exists (then: an image id)."""
    path = Path(spec)
    if not os.path.lexists(path):
        return None
    if path.is_dir():
        return Target("directory", Path(os.path.abspath(path)))
    require_regular_file(path)  # a FIFO, a socket or a device is named as such; a dangling link: not found
    return Target("file", Path(os.path.abspath(path)))


def file_path_of(image: Image) -> Path:
    """The local file a registered image's ``source_uri`` (``file:///...``, percent-encoded) names."""
    parts = urlsplit(image.source_uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise InvalidArgument(
            f"Image {image.id}'s source is not a local file ({image.source_uri}); prepare works on local raw files"
        )
    return Path(os.fsdecode(unquote_to_bytes(parts.path)))


def registered_target(image: Image) -> Target:
    """A registered image as a prepare target: live, raw, a local file, not being imported."""
    if image.deleted_at is not None:
        raise Refused(f"Image {image.id} is deleted")
    if image.file_format != "raw":
        path = file_path_of(image)
        raise refuse_non_raw(path, image.file_format)
    job = image.job
    if job is not None and job.state in ("queued", "running"):
        raise InUse(f"Image {image.id} is being used by {job.id} ({job.state}); wait for it to finish")
    path = file_path_of(image)
    require_regular_file(path)
    return Target("file", path, image.id)


def find_registered_by_file(path: Path) -> Image | None:
    """The live registered image whose source is this file, if any (so its record stays right)."""
    from vdcmanage.catalog.models import Image

    real = os.path.realpath(path)
    candidates = Image.select().where(Image.deleted_at.is_null(), Image.source_uri.startswith("file:"))
    for image in candidates:
        with contextlib.suppress(InvalidArgument):
            if os.path.realpath(file_path_of(image)) == real:
                return image
    return None


@contextlib.contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock on the target for the run: one apply at a time, checks alongside each other."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InUse(f"{path} is being prepared by another vdc-manage run; try again when it has finished") from exc
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_target(target: Target, *, writable: bool) -> Iterator[OpenTarget]:
    """The guest root of a target, locked for the run: the directory itself, or the root mounted from the file."""
    with locked(target.path, exclusive=writable), opened_root(target, writable=writable) as opened:
        yield opened


@contextlib.contextmanager
def opened_root(target: Target, *, writable: bool) -> Iterator[OpenTarget]:
    if target.kind == "directory":
        root = GuestRoot(target.path)
        if not is_linux_root(root):
            raise NotALinuxRoot(
                f"{target.path} is not a Linux root directory (it needs etc/fstab and bin, sbin or "
                "usr/bin): give the directory where the guest's root is mounted"
            )
        yield OpenTarget(root, Layout("directory"), nothing_to_do)
        return
    check_raw_file(target.path)
    if os.geteuid() != 0:
        raise Refused(
            f"Preparing the raw image {target.path} needs root (loop devices and mounts): run as root, "
            "or mount the image yourself and prepare the mounted directory"
        )
    if writable and not os.access(target.path, os.W_OK):
        raise Refused(f"{target.path} is not writable by this user")
    from vdcmanage.prepare.inuse import refuse_if_in_use
    from vdcmanage.prepare.mounts import mounted_image_root

    refuse_if_in_use(target.path, changing=writable)
    with mounted_image_root(target.path, writable=writable) as mounted:
        yield OpenTarget(GuestRoot(mounted.path), mounted.layout, mounted.make_writable, mounted.zero_free)


def needs_catalog(spec: str, *, applying: bool) -> bool:
    """An image id needs the catalog; so does changing a raw file, which may be a registered image's."""
    located = locate(spec)
    return located is None or (applying and located.kind == "file")


def resolve_target(spec: str, *, applying: bool) -> Target:
    """TARGET as a directory, a raw file or a registered image (the catalog is open when needed)."""
    located = locate(spec)
    if located is None:
        from vdcmanage.catalog.models import Image
        from vdcmanage.catalog.records import find_live

        if "/" in spec:
            raise FileNotFound(spec)
        try:
            image = find_live(Image, "image", spec, Image.display_name)
        except NotFound as exc:
            raise NotFound(f"{spec}: no such file or directory, and no image with that id or name") from exc
        return registered_target(image)
    if applying and located.kind == "file":
        registered = find_registered_by_file(located.path)
        if registered is not None:
            return registered_target(registered)
    return located
