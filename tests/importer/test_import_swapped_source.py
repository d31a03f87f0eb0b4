"""A source swapped for another file between the import's passes is refused, never uploaded under the
first file's checksums: `job retry` after a failure re-checks the file inspect and hash read."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image


def failed_import(world: ImportWorld, source: Path) -> str:
    """An import that fails after inspect and convert (a raw upload on 6.2 whose vdi-import xe fails once;
    an SR too small would now be refused by the preflight, before inspect)."""
    world.xen.configure(personality="xenserver-6.2")
    world.xen.inject_fault("vdi-import", "Error code: VDI_IO_ERROR\nError parameters: Device I/O errors")
    result = world.cli(*world.import_args(source))
    assert result.code == 101 and "Step vdi-import failed" in result.err, result.err
    return re.search(r"job-[a-z0-9]+", result.err).group(0)  # type: ignore[union-attr]


def test_retry_refuses_a_swapped_source(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    job_id = failed_import(world, source)
    impostor = tmp_path / "impostor.raw"
    impostor.write_bytes(os.urandom(64 * 1024) * 1024)  # same size, other contents, another inode
    os.replace(impostor, source)
    retried = world.cli("job", "retry", job_id)
    assert retried.code == 100, retried.err
    assert f"{source} changed while it was being read (inode, mtime_ns differ)" in retried.err
    assert world.job(job_id)["state"] == "failed"
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []  # nothing staged from the impostor


def test_retry_of_an_untouched_source_completes(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    job_id = failed_import(world, source)
    retried = world.cli("job", "retry", job_id)
    assert retried.code == 0, retried.err
    check_published(world, retried.out.strip(), source)
