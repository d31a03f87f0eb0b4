"""The remote layer and the host inventory load no paramiko, typer, rich or textual at import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULES = [
    "vdcmanage.remote",
    "vdcmanage.remote.ssh",
    "vdcmanage.remote.xe",
    "vdcmanage.remote.check",
    "vdcmanage.remote.errors",
    "vdcmanage.remote.known_hosts",
    "vdcmanage.remote.target",
    "vdcmanage.remote.auth",
    "vdcmanage.remote.transfer",
    "vdcmanage.remote.transfer.upload",
    "vdcmanage.remote.transfer.lanes",
    "vdcmanage.remote.transfer.openssh",
    "vdcmanage.catalog.hosts",
]
HEAVY = ("paramiko", "typer", "rich", "textual", "click")


@pytest.mark.parametrize("module", MODULES)
def test_import_loads_nothing_heavy(module: str) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
