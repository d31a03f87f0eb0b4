"""What a disk image file really is: its format, from its content (never its name), and its virtual size.

Detection follows the magic numbers QEMU probes (qcow2 "QFI\\xfb", VHD "conectix", VMDK "KDMV", VDI's
signature at byte 64), plus the VHD footer at the end of the file that marks a fixed VHD (which QEMU
itself cannot detect). A file that carries a magic is then read as that format and must be
consistent: a truncated or lying header is an ``InvalidImage`` saying what is wrong, never a
fallback to raw and never a wrong size. Anything without a known magic is raw.

Only headers and metadata tables are read, by bounded reads (see ``reader``): inspecting a
multi-GiB image costs milliseconds. Each format module documents the checks it makes and the
limits it enforces, with their sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vdcmanage.images import qcow2, vdi, vhd, vmdk
from vdcmanage.images.reader import SECTOR, ImageFile, round_up

FORMATS = ("raw", "qcow2", "vhd", "vmdk", "vdi")

PROBE_SIZE = 512
OTHER_FORMATS = (
    (b"vhdxfile", "a VHDX image (Hyper-V's newer format)"),
    (b"QED\0", "a QED image"),
    (b"WithoutFreeSpace", "a Parallels image"),
    (b"WithouFreSpacExt", "a Parallels image"),
)


@dataclass(frozen=True)
class ImageInfo:
    """A disk image's format, the size of the disk it holds, and the size of the file holding it.

    ``subformat``: qcow2 "v2"/"v3", vhd "fixed"/"dynamic", vmdk "monolithicSparse"/"streamOptimized",
    vdi "dynamic"/"fixed"; None for raw.
    """

    format: str
    virtual_size: int
    file_size: int
    subformat: str | None


def inspect_image(path: str | os.PathLike[str], fd: int | None = None) -> ImageInfo:
    """Detect the format of the image at ``path`` and read its virtual size.

    Raises ``FileNotFound`` (missing), ``InvalidArgument`` (a directory or other non-regular file),
    ``Refused`` (unreadable), ``InvalidImage`` (an image that is corrupt, truncated, lying, or of a
    variant that depends on another file or is not supported), all exit code 100. Given ``fd`` (the
    file already open), it reads that descriptor: the very file that will be hashed and converted.
    """
    with ImageFile(path, fd) as f:
        fmt, size, subformat = detect(f)
        return ImageInfo(fmt, size, f.size, subformat)


def detect(f: ImageFile) -> tuple[str, int, str | None]:
    if f.size == 0:
        raise f.invalid("the file is empty (0 bytes): it holds no disk")
    head = f.pread(0, min(f.size, PROBE_SIZE))
    if head.startswith(qcow2.MAGIC):
        return ("qcow2", *qcow2.inspect_qcow2(f))
    if head.startswith(vhd.FOOTER_COOKIE):
        return ("vhd", *vhd.inspect_vhd_dynamic(f))
    if head.startswith(vmdk.MAGIC):
        return ("vmdk", *vmdk.inspect_vmdk(f))
    if head.startswith(vmdk.COWD_MAGIC):
        vmdk.refuse_cowd(f)
    if head.startswith(vmdk.DESCRIPTOR_FILE_START):
        vmdk.refuse_descriptor_file(f)
    if head[vdi.SIGNATURE_AT : vdi.SIGNATURE_AT + 4] == vdi.SIGNATURE.to_bytes(4, "little"):
        return ("vdi", *vdi.inspect_vdi(f))
    refuse_other_formats(f, head)
    if f.size >= vhd.FOOTER.size and f.pread(f.size - vhd.FOOTER.size, 8) == vhd.FOOTER_COOKIE:
        return ("vhd", *vhd.inspect_vhd_fixed(f))
    vhd.refuse_cut_footer(f)
    # QEMU exposes a raw file's partial last sector as a whole one, zero-filled: so does a guest.
    return "raw", round_up(f.size, SECTOR), None


def refuse_other_formats(f: ImageFile, head: bytes) -> None:
    """Formats we recognise but cannot register: reading them as raw would record a wrong size."""
    for magic, name in OTHER_FORMATS:
        if head.startswith(magic):
            raise f.invalid(f"{name} is not supported: convert it with qemu-img convert -O qcow2 first")
