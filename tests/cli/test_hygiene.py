"""Architecture rules checked in fresh interpreters: the core stays free of UI and SSH libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = ["vdcmanage.errors", "vdcmanage.config", "vdcmanage.catalog", "vdcmanage.catalog.db",
        "vdcmanage.catalog.models", "vdcmanage.catalog.migrations", "vdcmanage.catalog.images",
        "vdcmanage.catalog.accounts", "vdcmanage.images", "vdcmanage.jobs.queue", "vdcmanage.jobs.runner",
        "vdcmanage.jobs.worker", "vdcmanage.importer.request", "vdcmanage.prepare.run", "vdcmanage.prepare.registry",
        "vdcmanage.bootcheck.run", "vdcmanage.bootcheck.report"]
FORBIDDEN = ["typer", "click", "textual", "rich", "paramiko"]


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("module", CORE)
def test_core_module_loads_no_ui_or_ssh_library(module: str) -> None:
    loaded = {m.split(".")[0] for m in loaded_after(f"import {module}")}
    assert not loaded & set(FORBIDDEN), f"{module} pulled in {sorted(loaded & set(FORBIDDEN))}"


def test_image_show_path_loads_no_heavy_library() -> None:
    code = "from vdcmanage.cli.main import main\nimport os\nos.environ['VDC_MANAGE_DB']='sqlite:///:memory:'\nmain(['image','show'])"
    loaded = {m.split(".")[0] for m in loaded_after(code)}
    assert not loaded & {"textual", "rich", "paramiko"}
