"""The images package is part of the core: importing it loads no CLI, TUI or SSH library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("typer", "click", "rich", "textual", "paramiko", "peewee")


@pytest.mark.parametrize(
    "module", ["vdcmanage.images", "vdcmanage.images.inspect", "vdcmanage.images.checksum"]
)
def test_import_loads_no_heavy_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == ""
