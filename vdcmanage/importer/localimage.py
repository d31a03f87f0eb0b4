"""The file uploaded to the host, made on the admin host with qemu-img.

Where the host's ``xe vdi-import`` takes ``format=vhd`` (XenServer 6.5 and later), the image is
converted here into a *dynamic* VHD: only its allocated data is in the file, so holes and all-zero
blocks are never sent, and the VDI it is imported into stays sparse (a raw import writes every
block, zeros included). On XenServer 6.2 the upload is raw: a raw source is uploaded as is (holes
skipped by the transfer), anything else is converted to a sparse raw file first.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from vdcmanage.errors import VdcError
from vdcmanage.images.reader import FileIdentity, check_unchanged, open_regular_file
from vdcmanage.safefiles import create_temporary

QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc", "vmdk": "vmdk", "vdi": "vdi"}
PROGRESS_RE = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")

Progress = Callable[[int, int], None]


def convert(
    source: Path, source_format: str, dest: Path, target: str, total: int, progress: Progress,
    identity: FileIdentity | None = None,
) -> None:
    """``qemu-img convert`` ``source`` into ``dest`` (``vhd``: dynamic VHD of exactly the same size; ``raw``:
    sparse raw), atomically: written into a fresh private temporary next to it (``safefiles``: the
    work directory may be a shared one) and renamed when complete.

    qemu-img reads the descriptor we opened (``/dev/fd/N``), checked before and after to be the file
    ``identity`` describes (the one inspected and hashed): a file swapped or written to is refused."""
    out = ["-O", "vpc", "-o", "subformat=dynamic,force_size=on"] if target == "vhd" else ["-O", "raw"]
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, _info = open_regular_file(source)
    part_fd, part = create_temporary(dest.parent, dest.name)
    os.close(part_fd)
    try:
        os.set_blocking(fd, True)
        if identity is not None:
            check_unchanged(source, identity, fd)
        argv = ["qemu-img", "convert", "-p", "-f", QEMU_FORMATS[source_format], *out, f"/dev/fd/{fd}", str(part)]
        run_qemu_img(argv, lambda percent: progress(int(total * percent / 100), total), pass_fds=(fd,))
        if identity is not None:
            check_unchanged(source, identity, fd)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    os.replace(part, dest)


def run_qemu_img(argv: list[str], on_percent: Callable[[float], None], pass_fds: tuple[int, ...] = ()) -> None:
    """Run qemu-img with ``-p``, feeding its percentages to ``on_percent``; whatever that raises
    (a cancelled job) kills qemu-img first."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds)
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    reader.start()
    try:
        for frame in read_frames(proc.stdout):
            match = PROGRESS_RE.search(frame)
            if match:
                on_percent(float(match.group(1)))
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(5)
    if proc.returncode != 0:
        detail = b"".join(errors).decode("utf-8", "replace").strip().replace("\n", " / ")
        raise VdcError(f"qemu-img convert failed (exit {proc.returncode}): {detail}")


def read_frames(stream: IO[bytes]) -> Iterator[bytes]:
    """qemu-img redraws its progress with carriage returns: split on them as well as on newlines."""
    buffer = b""
    while True:
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *frames, buffer = re.split(rb"[\r\n]", buffer)
        yield from frames
