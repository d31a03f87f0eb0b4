"""xe's raw errors during an import: verbatim in the job log, translated in the message (the xe double injects them)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image
from tests.importer.test_import_interrupted import log_lines

VDI_IO_ERROR = "Error code: VDI_IO_ERROR\nError parameters: Device I/O errors"
SR_GONE = "Error code: SR_BACKEND_FAILURE_47\nError parameters: , The SR is not available [opterr=no such volume], "


def failed_job(world: ImportWorld, source: Path) -> tuple[str, str]:
    result = world.cli(*world.import_args(source))
    assert result.code == 101, result.err
    job_id = re.search(r"job-[a-z0-9]+", result.err).group(0)  # type: ignore[union-attr]
    return job_id, result.err


def test_vdi_io_error_is_logged_verbatim_and_explained(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    world.xen.inject_fault("vdi-import", VDI_IO_ERROR)
    job_id, err = failed_job(world, source)
    sr = world.xen.sr_uuid()
    assert "ERROR: Step vdi-import failed: xe vdi-import on hn-" in err
    assert "said VDI_IO_ERROR (Device I/O errors): the image's data could not be written into the VDI" in err
    assert f"What to do: free space on SR {sr} or import into another SR" in err
    assert f"then 'vdc-manage job retry {job_id}'" in err
    assert f"xe said (verbatim, exit status 1):\n{VDI_IO_ERROR}" in log_lines(world, job_id)
    assert world.job(job_id)["error"].startswith("Step vdi-import failed: xe vdi-import on hn-")
    resumed = world.cli("job", "retry", job_id)  # the fault was once: the retry goes through
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)


def test_sr_backend_failure_is_logged_verbatim_and_explained(world: ImportWorld, tmp_path: Path) -> None:
    world.xen.inject_fault("vdi-create", SR_GONE)
    job_id, err = failed_job(world, ext4_image(tmp_path))
    assert "Step vdi-create failed: xe vdi-create on hn-" in err
    assert "said SR_BACKEND_FAILURE_47 (The SR is not available [opterr=no such volume])" in err
    assert f"the storage manager of SR {world.xen.sr_uuid()} failed. What to do: look at /var/log/SMlog" in err
    assert f"xe said (verbatim, exit status 1):\n{SR_GONE}" in log_lines(world, job_id)
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []  # nothing left behind
