"""Import boundaries, checked in fresh interpreters: the core never loads textual, the dashboard never loads
the CLI layer, and commands other than ``tui`` do not pay for the dashboard."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO, env=env)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "module", ["vdcmanage.catalog.browse", "vdcmanage.jobs.browse", "vdcmanage.catalog.images", "vdcmanage.jobs.queue"]
)
def test_core_modules_import_no_ui_library(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "rich", "typer")}


def test_the_dashboard_imports_nothing_from_the_cli_layer() -> None:
    loaded = modules_after(
        "import tui.app, tui.screens.images, tui.screens.jobs, tui.screens.hosts, tui.screens.importer, tui.hostcheck"
    )
    assert "textual.app" in loaded
    assert not {m for m in loaded if m.startswith("vdcmanage.cli") or m == "typer"}
    assert "paramiko" not in loaded  # host check loads the remote layer only when it runs


def test_image_show_does_not_load_the_dashboard(sqlite_url: str) -> None:
    import os

    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url}
    loaded = modules_after("from vdcmanage.cli.main import main\nmain(['image', 'show'])", env=env)
    assert "vdcmanage.cli.image" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "tui")}
