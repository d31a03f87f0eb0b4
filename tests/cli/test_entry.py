"""The fast path of `image show` (cli/entry.py) prints exactly what the full command line prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.images import raw_image
from vdcmanage.cli.entry import parse_image_show

FULL = "import sys\nfrom vdcmanage.cli.main import main\nsys.exit(main(sys.argv[1:]))"
FAST = "import sys\nfrom vdcmanage.cli.entry import main\nsys.exit(main(sys.argv[1:]))"


def run(code: str, args: list[str], url: str) -> tuple[int, str, str, set[str]]:
    probe = code.replace("sys.exit(", "rc = (") + "\nimport json\nprint('MODULES', json.dumps(sorted(sys.modules)), file=sys.stderr)\nsys.exit(rc)"
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env={**os.environ, "VDC_MANAGE_DB": url}
    )
    err_lines = proc.stderr.splitlines()
    modules = set(json.loads(err_lines[-1].removeprefix("MODULES ")))
    return proc.returncode, proc.stdout, "\n".join(err_lines[:-1]), modules


@pytest.fixture
def images_url(run_cli, sqlite_url: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    for name in ("a.raw", "b.raw"):
        assert run_cli("image", "add", "local", str(raw_image(tmp_path / name)), "-a", "a-shpoolxx", "-d", "multi\nline").code == 0
    assert run_cli("image", "add", "local", str(raw_image(tmp_path / "c.raw")), "-a", "a-shpoolxx", "-u", "wmi-gone").code == 0
    assert run_cli("image", "del", "wmi-gone").code == 0
    return sqlite_url


def variants(url: str, some_id: str) -> list[list[str]]:
    return [
        ["image", "show"],
        ["image", "show", "-f", "json"],
        ["image", "show", some_id],
        ["image", "show", some_id, "-f", "json"],
        ["image", "show", "--format", "json", some_id],
        ["image", "show", "--format=table", some_id],
        ["image", "show", "a.raw"],
        ["image", "show", "wmi-gone"],
        ["image", "show", "wmi-nope"],
        ["image", "show", "BAD ID", "-f", "json"],
        ["--db", url, "image", "show", some_id],
        [f"--db={url}", "image", "show"],
        ["--db", "sqlite:///nonexistent-dir-for-vdc/x/../c.db", "image", "show"],
    ]


def test_fast_path_matches_the_full_command_line(images_url: str) -> None:
    some_id = json.loads(subprocess.run(
        [sys.executable, "-m", "vdcmanage", "image", "list", "-f", "json"],
        capture_output=True, text=True, env={**os.environ, "VDC_MANAGE_DB": images_url}, check=True,
    ).stdout)[0]["id"]
    for args in variants(images_url, some_id):
        assert parse_image_show(list(args)) is not None, args
        fast = run(FAST, args, images_url)
        full = run(FULL, args, images_url)
        assert fast[:3] == full[:3], args
        assert not {"typer", "click"} & {m.split(".")[0] for m in fast[3]}, args


@pytest.mark.parametrize(
    "args",
    [
        ["image", "show", "--help"],
        ["image", "show", "-h"],
        ["image", "show", "a", "b"],
        ["image", "show", "-fjson"],
        ["image", "show", "-f", "yaml"],
        ["image", "show", "--frobnicate"],
        ["image", "show", "--", "x"],
        ["image", "list"],
        ["-e", "image", "show"],
        ["--db"],
        ["image", "show", ""],
        [],
    ],
)
def test_anything_else_goes_through_the_full_command_line(args: list[str]) -> None:
    assert parse_image_show(list(args)) is None
