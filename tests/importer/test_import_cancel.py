"""`job cancel` of a failed or interrupted import cleans the host itself (no worker), or says what remains."""

from __future__ import annotations

import re
from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image
from tests.importer.test_import_faults import MiB, random_raw
from tests.importer.test_import_interrupted import killed_mid_upload

XAPI_GONE = "Error: Connection refused (calling connect )"  # xapi restarting: the job keeps its host state


def failed_at_vdi_import(world: ImportWorld, source: Path) -> str:
    """Run an import that fails in vdi-import with the staged file and the VDI left on the host."""
    world.xen.inject_fault("vdi-import", XAPI_GONE)
    result = world.cli(*world.import_args(source))
    assert result.code == 100, result.err
    assert "Step vdi-import failed" in result.err
    job_id = re.search(r"job-[a-z0-9]+", result.err).group(0)  # type: ignore[union-attr]
    assert len(world.xen.state()["vdis"]) == 1 and world.sr_leftovers() == [f"vdc-manage-{job_id}.staging"]
    return job_id


def test_cancel_of_a_failed_job_cleans_the_host_without_a_worker_then_retry(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    job_id = failed_at_vdi_import(world, source)
    vdi = world.xen.state()["vdis"][0]["uuid"]
    cancelled = world.cli("job", "cancel", job_id)
    assert cancelled.code == 0, cancelled.err
    assert f"{job_id}: cancelled; clean-up: removed VDI {vdi}, " in cancelled.err
    assert f"vdc-manage-{job_id}.staging on the host" in cancelled.err
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == [] and world.work_files() == []
    job = world.job(job_id)
    assert job["state"] == "cancelled"
    assert {s["name"]: s["state"] for s in job["steps"]}["inspect"] == "done"  # the source needs no new hashing
    resumed = world.cli("job", "retry", job_id)
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)
    assert len(world.xen.state()["vdis"]) == 1 and world.sr_leftovers() == []


def test_cancel_says_what_remains_when_the_host_cannot_clean_up(world: ImportWorld, tmp_path: Path) -> None:
    job_id = failed_at_vdi_import(world, ext4_image(tmp_path))
    vdi = world.xen.state()["vdis"][0]["uuid"]
    world.xen.configure(xapi_down=True)
    refused = world.cli("job", "cancel", job_id)
    assert refused.code == 101
    staged = f"{world.xen.remote_sr_path()}/vdc-manage-{job_id}.staging"
    assert f"VDI {vdi}, {staged}, " in refused.err and "may remain on host" in refused.err
    assert "xapi does not answer" in refused.err  # and why
    assert world.job(job_id)["state"] == "failed"
    world.xen.configure(xapi_down=False)
    again = world.cli("job", "cancel", job_id)
    assert again.code == 0, again.err
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []


def test_cancel_of_a_killed_foreground_import_removes_its_partial_upload(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 384 * MiB)
    job_id = killed_mid_upload(world, source)
    assert world.sr_leftovers() != []  # the partial upload
    cancelled = world.cli("job", "cancel", job_id)
    assert cancelled.code == 0, cancelled.err
    assert world.job(job_id)["state"] == "cancelled"
    assert world.sr_leftovers() == [] and world.xen.state()["vdis"] == []
