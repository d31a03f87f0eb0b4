"""Disk images for CLI tests, made with the real qemu-img."""

from __future__ import annotations

import subprocess
from pathlib import Path


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def raw_image(path: Path, size: int = 1024 * 1024, fill: bytes = b"vdc-manage test data\n") -> Path:
    """A raw image with some non-zero content (so its checksums are not those of zeros)."""
    with path.open("wb") as f:
        f.truncate(size)
        f.write(fill * 64)
    return path


def converted(raw: Path, fmt: str, dest: Path, *options: str) -> Path:
    qemu_img("convert", "-f", "raw", "-O", fmt, *options, str(raw), str(dest))
    return dest
