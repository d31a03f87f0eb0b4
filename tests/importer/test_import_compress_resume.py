"""A connection dropped in the middle of the compress step: the step reconnects and goes on after the
last chunk it recorded, and the published template is still exactly the VDI's VHD."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published
from tests.importer.test_import_faults import MiB, random_raw, wait_for


def compress_detail(world: ImportWorld, job_id: str) -> tuple[str | None, dict[str, Any]]:
    from vdcmanage.jobs.queue import get_job, step_detail

    return world.in_catalog(lambda: (get_job(job_id).current_step, step_detail(job_id, "compress")))


def first_job_id(world: ImportWorld) -> str:
    def listed() -> str | None:
        parts = world.cli("job", "list", "-f", "json").out.split('"id": "')
        return parts[1].split('"')[0] if len(parts) > 1 else None

    return str(wait_for(listed))


def small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[import]\ncompress_chunk_mib = 1\n")  # many chunks from a small image
    monkeypatch.setenv("VDC_MANAGE_CONFIG", str(config))


def chunks_recorded(world: ImportWorld, job_id: str, at_least: int) -> dict[str, Any] | None:
    step, detail = compress_detail(world, job_id)
    partial = detail.get("partial") or {}
    return partial if step == "compress" and partial.get("chunks", 0) >= at_least else None


def resumed_after(job: dict[str, Any]) -> tuple[int, int]:
    """From the job log: the chunk compress went on after, and how many chunks there are."""
    messages = [e["message"] for e in job["log"]]
    resumed = [m for m in messages if m.startswith("compress: resuming after chunk ")]
    assert len(resumed) == 1 and not any("starting over" in m for m in messages), messages
    after, count = map(int, re.findall(r"chunk (\d+) of (\d+)", resumed[0])[0])
    return after, count


def test_connection_killed_mid_compress_resumes_from_the_recorded_chunk(
    world: ImportWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_chunks(tmp_path, monkeypatch)
    source = random_raw(tmp_path / "random.raw", 48 * MiB)  # incompressible: every chunk takes bzip2 a while
    proc = world.popen(*world.import_args(source))
    job_id = first_job_id(world)
    recorded = wait_for(lambda: chunks_recorded(world, job_id, 2), interval=0.01)
    assert world.xen.server.kill_sessions() > 0  # every channel breaks, the chunk being compressed with it
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    job = check_published(world, out.strip(), source)
    assert job["attempts"] == 1  # the step reconnected by itself
    after, count = resumed_after(job)
    vhd = world.xen.vdi_path(job["result"]["vdi_uuid"])
    assert count == -(-vhd.stat().st_size // MiB) > 48  # the VHD (48 MiB of data and its metadata) in 1 MiB chunks
    # went on from what was recorded when the connection broke (or a chunk later, if one was recorded
    # between the kill and the break), never from zero: the chunks before were not compressed again
    assert recorded["chunks"] <= after < count
    final = compress_detail(world, job_id)[1]
    assert final["partial"]["chunks"] == count and final["partial"]["temporary"] == recorded["temporary"]
    assert final["compressed_size"] == final["partial"]["length"]

    # the real bunzip2 reads the concatenated streams whole: exactly the VDI's VHD
    published = world.www / f"{out.strip()}.vhd.bz2"
    unpacked = subprocess.run(["bunzip2", "-c", str(published)], capture_output=True, check=True).stdout
    assert unpacked == vhd.read_bytes()


def test_killed_worker_is_taken_over_and_compress_goes_on_from_the_recorded_chunk(
    world: ImportWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_chunks(tmp_path, monkeypatch)
    source = random_raw(tmp_path / "random.raw", 48 * MiB)
    job_id = world.cli(*world.import_args(source, "--detach")).out.strip()
    first = world.popen("job", "worker", "--stale-after", "3")
    wait_for(lambda: chunks_recorded(world, job_id, 2), interval=0.01)
    first.kill()  # SIGKILL: no clean-up; the host kills the chunk being compressed when the session ends
    first.wait()
    recorded = compress_detail(world, job_id)[1]["partial"]
    time.sleep(4)  # until the heartbeat is older than --stale-after
    second = world.popen("job", "worker", "--stale-after", "3", "--once")
    _out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    job = check_published(world, world.job(job_id)["result"]["image_id"], source)
    assert job["attempts"] == 2
    after, count = resumed_after(job)
    assert after == recorded["chunks"] < count  # the second worker did not compress those chunks again
