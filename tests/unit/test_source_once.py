"""The source image is read once: inspect and hash share one descriptor, and a file swapped or written
between passes is refused, never registered with another file's checksums."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from vdcmanage.images import source as source_module
from vdcmanage.images.reader import FileIdentity, SourceChanged
from vdcmanage.images.source import inspect_and_hash
from vdcmanage.importer import localimage

MiB = 1024 * 1024


def raw(path: Path, fill: bytes, size: int = 4 * MiB) -> Path:
    path.write_bytes(fill * (size // len(fill)))
    return path


def qcow2(path: Path, size: str = "8M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def test_unchanged_file_is_inspected_and_hashed_once(tmp_path: Path) -> None:
    image = raw(tmp_path / "a.raw", b"A")
    read = inspect_and_hash(image)
    assert read.info.format == "raw" and read.info.virtual_size == 4 * MiB
    assert read.digests.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert read.identity == FileIdentity.of(image.stat())


def test_file_swapped_between_inspect_and_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = qcow2(tmp_path / "image.qcow2")
    impostor = raw(tmp_path / "impostor.raw", b"B")
    real_inspect = source_module.inspect_image

    def inspect_then_swap(path, fd=None):  # type: ignore[no-untyped-def]
        info = real_inspect(path, fd)
        os.replace(impostor, image)  # another file under the inspected name
        return info

    monkeypatch.setattr(source_module, "inspect_image", inspect_then_swap)
    with pytest.raises(SourceChanged, match=r"image\.qcow2 changed while it was being read \(inode"):
        inspect_and_hash(image)


def test_file_written_while_hashed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = raw(tmp_path / "a.raw", b"A")
    real_digests = source_module.file_digests

    def append_then_hash(path, progress=None, fd=None):  # type: ignore[no-untyped-def]
        with open(image, "ab") as f:
            f.write(b"more")
        return real_digests(path, progress, fd)

    monkeypatch.setattr(source_module, "file_digests", append_then_hash)
    with pytest.raises(SourceChanged, match="size, mtime_ns differ"):
        inspect_and_hash(image)


def test_convert_refuses_a_source_that_is_not_the_one_inspected(tmp_path: Path) -> None:
    image = qcow2(tmp_path / "image.qcow2")
    identity = inspect_and_hash(image).identity
    os.replace(qcow2(tmp_path / "other.qcow2", "16M"), image)
    with pytest.raises(SourceChanged):
        localimage.convert(image, "qcow2", tmp_path / "out.vhd", "vhd", 8 * MiB, lambda d, t: None, identity=identity)
    assert not (tmp_path / "out.vhd").exists()


def test_convert_reads_the_descriptor_it_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A swap after the check but while qemu-img runs: qemu-img still reads the file we opened, and
    the check after the pass refuses the result anyway."""
    image = raw(tmp_path / "image.raw", b"A")
    identity = inspect_and_hash(image).identity
    impostor = raw(tmp_path / "impostor.raw", b"B")
    real_run = localimage.run_qemu_img
    argvs: list[list[str]] = []
    written: list[bytes] = []

    def swap_then_run(argv, on_percent, pass_fds=()):  # type: ignore[no-untyped-def]
        os.replace(impostor, image)
        argvs.append(argv)
        real_run(argv, on_percent, pass_fds)
        written.append(Path(argv[-1]).read_bytes())

    monkeypatch.setattr(localimage, "run_qemu_img", swap_then_run)
    out = tmp_path / "out.raw"
    with pytest.raises(SourceChanged, match="inode"):
        localimage.convert(image, "raw", out, "raw", 4 * MiB, lambda d, t: None, identity=identity)
    assert argvs[0][-2].startswith("/dev/fd/") and Path(argvs[0][-1]).name.startswith(".out.raw.part.")
    assert written == [b"A" * (4 * MiB)]  # the inspected file's bytes, not the impostor's
    assert list(tmp_path.glob("*out.raw*")) == []  # the refused conversion left nothing
