"""An import world: the catalog, the XenServer test host registered in it, and a local backup storage."""

from __future__ import annotations

import bz2
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import CliResult

T = TypeVar("T")


@dataclass
class ImportWorld:
    xen: Any  # tests.xenhost.fixtures.XenHost
    catalog_url: str
    www: Path
    base_uri: str
    home: Path
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "vdcmanage", *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "VDC_MANAGE_DB": self.catalog_url, **(env or {})},
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A vdc-manage process; whatever is still running when the test ends is killed."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdcmanage", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "VDC_MANAGE_DB": self.catalog_url},
        )
        self.started.append(proc)
        return proc

    def stop_leftovers(self) -> None:
        """A failed test must not leave a worker running on into the next tests."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def in_catalog(self, call: Callable[[], T]) -> T:
        """Run core code on this world's catalog from the test process (no CLI round trip)."""
        from vdcmanage.catalog.db import close_catalog, open_catalog

        open_catalog(self.catalog_url)
        try:
            return call()
        finally:
            close_catalog()

    def import_args(self, path: Path, *extra: str) -> list[str]:
        return ["image", "import", "xen", str(path), "--host", "xen1", "--account-id", "a-shpoolxx", *extra]

    def image(self, image_id: str) -> dict[str, Any]:
        result = self.cli("image", "show", image_id, "-f", "json")
        assert result.code == 0, result.err
        return json.loads(result.out)  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        result = self.cli("job", "show", job_id, "-f", "json")
        assert result.code == 0, result.err
        return json.loads(result.out)  # type: ignore[no-any-return]

    def sr_leftovers(self, role: str = "ext") -> list[str]:
        """Files in the SR that are not VDIs: staged uploads, compressed templates, partial files."""
        vdi_files = {v["file"] for v in self.xen.state()["vdis"]}
        return sorted(p.name for p in self.xen.sr_path(role).iterdir() if p.name not in vdi_files)

    def work_files(self) -> list[str]:
        work = self.home / ".cache" / "vdc-manage" / "work"
        return sorted(p.name for p in work.iterdir()) if work.exists() else []


@pytest.fixture
def world(xen_host: Any, sqlite_url: str, tmp_path: Path, isolated_home: Path) -> Iterator[ImportWorld]:
    from vdcmanage.catalog import storages
    from vdcmanage.catalog.db import close_catalog, open_catalog

    www = tmp_path / "local-www"
    www.mkdir()
    open_catalog(sqlite_url)
    try:
        xen_host.add_to_catalog("xen1")
        storages.add_backup_storage("local", "http://templates.example/vdc", str(www), display_name="www")
    finally:
        close_catalog()
    world = ImportWorld(xen_host, sqlite_url, www, "http://templates.example/vdc", isolated_home)
    yield world
    world.stop_leftovers()


def bunzip2(path: Path) -> bytes:
    return bz2.decompress(path.read_bytes())


def qemu_compare(raw: Path, raw_format: str, vhd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-img", "compare", "-f", raw_format, "-F", "vpc", str(raw), str(vhd)], capture_output=True, text=True
    )
