"""Imports that go wrong: a full SR, a cancel, a full publish target, Ctrl-C, a killed worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image

MiB = 1024 * 1024


def random_raw(path: Path, size: int) -> Path:
    """Incompressible, hole-free data: every byte must travel."""
    with path.open("wb") as f:
        for _ in range(size // (8 * MiB)):
            f.write(os.urandom(8 * MiB))
    return path


def wait_for(condition, timeout: float = 120, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def saved_upload(world: ImportWorld, job_id: str) -> tuple[str | None, int, int]:
    """Straight from the catalog: the job's current step, and the bytes the stage step has recorded
    as verified on the host out of its total."""
    from vdcmanage.jobs.queue import get_job, step_detail
    from vdcmanage.remote.transfer.source import CHUNK
    from vdcmanage.remote.transfer.state import from_ranges

    current, upload = world.in_catalog(
        lambda: (get_job(job_id).current_step, step_detail(job_id, "stage").get("upload") or {})
    )
    size = upload.get("local", {}).get("size", 0)
    verified = sum(min(CHUNK, size - chunk * CHUNK) for chunk in from_ranges(upload.get("verified", [])))
    return current, verified, size


def uploaded_past(world: ImportWorld, job_id: str, fraction: float) -> bool:
    step, verified, total = saved_upload(world, job_id)
    return step == "stage" and verified > fraction * total


def preflight_passed(world: ImportWorld) -> bool:
    """The first job's preflight found room: what is filled up after this is found by the steps."""
    from vdcmanage.catalog.models import JobLog

    return world.in_catalog(lambda: JobLog.select().where(JobLog.message.startswith("preflight: ")).exists())


def test_sr_filled_during_the_import_fails_with_xes_reason_and_cleans_up(world: ImportWorld, tmp_path: Path) -> None:
    world.xen.configure(personality="xenserver-6.2")  # raw import writes all 64 MiB
    proc = world.popen(*world.import_args(ext4_image(tmp_path)))
    wait_for(lambda: preflight_passed(world), interval=0.01)
    world.xen.configure(sr_sizes={"ext": 2 * MiB})  # another VDI took the room since
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 101
    assert "Step vdi-import failed" in err and "VDI_IO_ERROR" in err
    assert world.xen.state()["vdis"] == []  # the VDI was destroyed
    assert world.sr_leftovers() == []  # and the staged file removed
    job_id = re.search(r"job-[a-z0-9]+", err).group(0)  # type: ignore[union-attr]
    steps = {s["name"]: s["state"] for s in world.job(job_id)["steps"]}
    # the failed step says so; the upload and the VDI will be made again by `job retry`
    assert (steps["stage"], steps["vdi-create"], steps["vdi-import"]) == ("pending", "pending", "failed")


def test_cancel_mid_upload_stops_within_two_seconds_and_removes_everything(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 768 * MiB)
    job_id = world.cli(*world.import_args(source, "--detach")).out.strip()
    worker = world.popen("job", "worker")
    try:
        wait_for(lambda: uploaded_past(world, job_id, 0.1), interval=0.02)
        asked = time.monotonic()
        assert world.cli("job", "cancel", job_id).code == 0
        wait_for(lambda: world.job(job_id)["state"] == "cancelled", timeout=10, interval=0.05)
        assert time.monotonic() - asked < 2.0 + 0.5  # 2 s, plus this test's own polling of the catalog
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert world.sr_leftovers() == [] and world.xen.state()["vdis"] == []
    assert world.work_files() == []
    assert list(world.www.iterdir()) == []


@pytest.fixture
def tiny_www(world: ImportWorld, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A backup storage on a 16 MiB tmpfs: room for the template when the import starts."""
    from vdcmanage.catalog import storages

    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    world.in_catalog(lambda: storages.add_backup_storage("local", "http://tiny.example/t", str(mount), display_name="tiny"))
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_publish_target_filled_during_the_import(world: ImportWorld, tmp_path: Path, tiny_www: Path) -> None:
    proc = world.popen(*world.import_args(ext4_image(tmp_path), "--backup-storage", "tiny"))
    wait_for(lambda: preflight_passed(world), interval=0.01)
    free = os.statvfs(tiny_www).f_bavail * os.statvfs(tiny_www).f_frsize
    (tiny_www / "other-template.vhd.bz2").write_bytes(b"x" * (free - 64 * 1024))  # someone else's upload
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 100
    assert "Step publish failed" in err and "is full" in err
    # no partial file, under the published name or any other
    assert [p.name for p in tiny_www.iterdir()] == ["other-template.vhd.bz2"]


def test_ctrl_c_in_the_foreground_leaves_a_resumable_job(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 512 * MiB)
    proc = world.popen(*world.import_args(source))
    job_id = wait_for(lambda: (world.cli("job", "list", "-f", "json").out.split('"id": "')[1:2] or [None])[0])
    job_id = job_id.split('"')[0]
    wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"vdc-manage job retry {job_id}" in err
    assert world.job(job_id)["state"] == "failed"
    resumed = world.cli("job", "retry", job_id)
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)


def test_killed_worker_is_taken_over_and_sends_only_what_is_missing(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 768 * MiB)
    job_id = world.cli(*world.import_args(source, "--detach")).out.strip()
    first = world.popen("job", "worker", "--stale-after", "3")
    # kill early in the upload, judged by what the worker saved as verified (fresher than the
    # heartbeat's progress, which is up to a second old: at full speed that is a third of the file)
    wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
    first.kill()  # SIGKILL: no clean-up, the heartbeat just stops
    first.wait()
    step, verified_before, total = saved_upload(world, job_id)
    assert step == "stage" and 0 < verified_before < total, "the worker was not killed during the upload"
    time.sleep(4)  # until the heartbeat is older than --stale-after
    second = world.popen("job", "worker", "--stale-after", "3", "--once")
    _out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    job = world.job(job_id)
    assert (job["state"], job["attempts"]) == ("succeeded", 2), job
    from vdcmanage.jobs.queue import step_detail

    sent_by_the_second_worker = world.in_catalog(lambda: step_detail(job_id, "stage")["bytes_sent"])
    # what the first worker verified is not sent again (the file is random: no byte is skipped as zero)
    assert 0 < sent_by_the_second_worker <= total - verified_before
    check_published(world, job["result"]["image_id"], source)


def test_connection_killed_mid_upload_resumes_and_completes(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 512 * MiB)
    proc = world.popen(*world.import_args(source))
    job_id = wait_for(lambda: (world.cli("job", "list", "-f", "json").out.split('"id": "')[1:2] or [None])[0])
    job_id = job_id.split('"')[0]
    wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
    assert world.xen.server.kill_sessions() > 0  # the sshd children serving us die: every channel breaks
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    job = world.job(job_id)
    assert job["attempts"] == 1  # the step reconnected by itself
    check_published(world, out.strip(), source)


def test_connection_killed_while_publishing_reconnects_and_publishes_again(world: ImportWorld, tmp_path: Path) -> None:
    from vdcmanage.catalog.models import JobStep

    def publishing() -> bool:
        step = world.in_catalog(lambda: JobStep.get((JobStep.job == job_id) & (JobStep.name == "publish")))
        return step.state == "running" and step.bytes_done > 0

    source = random_raw(tmp_path / "big.raw", 512 * MiB)  # incompressible: the template is as big
    proc = world.popen(*world.import_args(source))
    job_id = wait_for(lambda: (world.cli("job", "list", "-f", "json").out.split('"id": "')[1:2] or [None])[0])
    job_id = job_id.split('"')[0]
    wait_for(publishing, interval=0.02)
    assert world.xen.server.kill_sessions() > 0  # the stream of the template from the host breaks
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert world.job(job_id)["attempts"] == 1  # the step reconnected by itself
    assert sorted(p.name for p in world.www.iterdir()) == [f"{out.strip()}.vhd.bz2"]  # no partial file left
    check_published(world, out.strip(), source)
