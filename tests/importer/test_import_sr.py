"""Which SR an import uses: the one `host check` reports, chosen by one rule at run time."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image


def add_host_without_sr(world: ImportWorld, name: str = "xen2") -> None:
    world.in_catalog(lambda: world.xen.add_to_catalog(name, sr_role=None))


def set_pool_default_sr(world: ImportWorld, role: str) -> None:
    uuid = world.xen.sr_uuid(role)

    def change(state: dict[str, Any]) -> None:
        state["pool"]["default-SR"] = uuid

    world.xen.update_state(change)


def job_id_in(text: str) -> str:
    return re.search(r"job-[a-z0-9]+", text).group(0)  # type: ignore[union-attr]


def test_host_without_sr_imports_into_the_pool_default_sr_that_check_reports(
    world: ImportWorld, tmp_path: Path
) -> None:
    add_host_without_sr(world)
    set_pool_default_sr(world, "nfs")  # not the first SR: the pool's setting is what counts
    checked = world.cli("host", "check", "xen2", "-f", "json")
    assert checked.code == 0, checked.err
    report = json.loads(checked.out)
    nfs = world.xen.sr_uuid("nfs")
    assert (report["chosen_sr"], report["chosen_sr_from"]) == (nfs, "pool default SR")

    source = ext4_image(tmp_path)
    result = world.cli("image", "import", "xen", str(source), "--host", "xen2", "--account-id", "a-shpoolxx")
    assert result.code == 0, result.err
    job = check_published(world, result.out.strip(), source)
    assert world.xen.vdi(job["result"]["vdi_uuid"])["sr"] == nfs  # the VDI is on the pool's default SR
    assert job["params"]["sr"] == {"uuid": nfs, "from": "pool default SR", "mount": world.xen.remote_sr_path("nfs")}
    assert job["params"]["sr_uuid"] is None  # nothing was asked for: the choice was made at run time
    shown = world.cli("job", "show", job["id"])
    assert re.search(rf"^SR:\s+{nfs} \(pool default SR\)$", shown.out, re.MULTILINE), shown.out


def test_host_record_sr_and_command_line_sr_say_where_they_came_from(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    by_record = world.cli(*world.import_args(source))
    assert by_record.code == 0, by_record.err
    job = world.job(world.image(by_record.out.strip())["job_id"])
    assert (job["params"]["sr"]["uuid"], job["params"]["sr"]["from"]) == (world.xen.sr_uuid("ext"), "host record")

    nfs = world.xen.sr_uuid("nfs").upper()  # accepted as xe prints it or not; stored lower-case
    asked = world.cli(*world.import_args(source, "--sr-uuid", nfs))
    assert asked.code == 0, asked.err
    job = world.job(world.image(asked.out.strip())["job_id"])
    assert (job["params"]["sr"]["uuid"], job["params"]["sr"]["from"]) == (nfs.lower(), "--sr-uuid")
    assert world.xen.vdi(job["result"]["vdi_uuid"])["sr"] == nfs.lower()


def test_no_sr_anywhere_is_refused_with_the_reason(world: ImportWorld, tmp_path: Path) -> None:
    add_host_without_sr(world)

    def no_default(state: dict[str, Any]) -> None:
        state["pool"]["default-SR"] = "<not in database>"

    world.xen.update_state(no_default)
    result = world.cli("image", "import", "xen", str(ext4_image(tmp_path)), "--host", "xen2",
                       "--account-id", "a-shpoolxx")
    assert result.code == 100
    assert "the host record has no --sr-uuid and the pool has no default SR" in result.err
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []


def test_bad_sr_uuid_is_refused_before_a_job_is_queued(world: ImportWorld, tmp_path: Path) -> None:
    result = world.cli(*world.import_args(ext4_image(tmp_path), "--sr-uuid", "not-a-uuid"))
    assert result.code == 100 and "Invalid SR uuid 'not-a-uuid'" in result.err
    assert json.loads(world.cli("job", "list", "-f", "json").out) == []


def test_a_deleted_hosts_failed_job_is_retried_on_the_host_added_again(world: ImportWorld, tmp_path: Path) -> None:
    import signal

    from tests.importer.test_import_faults import random_raw, uploaded_past, wait_for

    source = random_raw(tmp_path / "big.raw", 256 * 1024 * 1024)
    proc = world.popen(*world.import_args(source))
    job_id = wait_for(lambda: (json.loads(world.cli("job", "list", "-f", "json").out) or [{}])[0].get("id"))
    wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
    proc.send_signal(signal.SIGINT)  # failed mid-upload: a partial staged file is on the host
    proc.communicate(timeout=60)
    assert world.job(job_id)["state"] == "failed" and world.sr_leftovers() != []

    assert world.cli("host", "del", "xen1").code == 0  # "a wrong field": deleted, then added again
    orphaned = world.cli("job", "retry", job_id)
    assert orphaned.code != 0 and f"job retry {job_id} --host HOST" in orphaned.err
    new_host = world.in_catalog(lambda: world.xen.add_to_catalog("xen1b", sr_role=None)).id
    for bad, message in ((["--host", "nohost"], "Unknown host"), (["--host", "xen1"], "Unknown host")):
        refused = world.cli("job", "retry", job_id, *bad)
        assert refused.code == 100 and message in refused.err, refused.err
    resumed = world.cli("job", "retry", job_id, "--host", "xen1b")
    assert resumed.code == 0, resumed.err
    job = check_published(world, resumed.out.strip(), source)  # no staged file left behind either
    assert job["params"]["host_id"] == new_host
    assert job["params"]["sr"]["from"] == "pool default SR"
    assert len(world.xen.state()["vdis"]) == 1
    from vdcmanage.catalog.models import JobLog

    log = world.in_catalog(lambda: [r.message for r in JobLog.select().where(JobLog.job == job_id)])
    assert any(line.startswith("moved from host hn-") and f" to {new_host}: " in line for line in log), log
    again = world.cli("job", "retry", job_id, "--host", "xen1b")
    assert again.code == 100 and "only failed jobs can be retried" in again.err
