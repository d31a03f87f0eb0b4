"""The preflight: an import that cannot succeed is refused before anything is hashed, converted or sent."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image
from tests.importer.test_import_faults import random_raw, saved_upload, uploaded_past, wait_for
from tests.xenhost.sshd import public_line

MiB = 1024 * 1024
GiB = 1024 * MiB


def job_id_in(text: str) -> str:
    return re.search(r"job-[a-z0-9]+", text).group(0)  # type: ignore[union-attr]


def log_of(world: ImportWorld, job_id: str) -> list[str]:
    from vdcmanage.catalog.models import JobLog

    return world.in_catalog(lambda: [r.message for r in JobLog.select().where(JobLog.job == job_id)])


def assert_nothing_started(world: ImportWorld, job_id: str) -> None:
    """No step ran: nothing hashed, converted, staged, created on the host or published."""
    log = log_of(world, job_id)
    assert not [line for line in log if line.startswith("step ")], log
    assert world.job(job_id)["state"] == "failed"
    assert not [c for c in world.xen.calls() if c["argv"][:1] in (["vdi-create"], ["vdi-import"])]
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []
    assert world.work_files() == []


def test_full_sr_is_refused_before_any_upload_and_retry_goes_on_once_there_is_room(
    world: ImportWorld, tmp_path: Path
) -> None:
    world.xen.configure(sr_sizes={"ext": 8 * MiB})
    source = ext4_image(tmp_path)
    result = world.cli(*world.import_args(source))
    assert result.code == 100, result.err
    sr = world.xen.sr_uuid("ext")
    assert re.search(
        rf"ERROR: Preflight: SR {sr} \(Local storage\) has 8\.0 MiB free, the image needs [\d.]+ MiB "
        r"\(staged upload [\d.]+ MiB, VDI [\d.]+ MiB, compressed template [\d.]+ MiB\)", result.err
    ), result.err
    job_id = job_id_in(result.err)
    assert_nothing_started(world, job_id)

    world.xen.configure(sr_sizes={"ext": 100 * GiB})
    resumed = world.cli("job", "retry", job_id)
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)
    assert any(line.startswith(f"preflight: SR {sr} (Local storage) has 100.0 GiB free") for line in log_of(world, job_id))


@pytest.mark.parametrize(("personality", "refused"), [("xenserver-6.2", True), ("xcp-ng-8.3", False)])
def test_raw_import_needs_the_whole_virtual_size_vhd_import_only_the_data(
    world: ImportWorld, tmp_path: Path, personality: str, refused: bool
) -> None:
    world.xen.configure(personality=personality, sr_sizes={"ext": 56 * MiB})
    source = ext4_image(tmp_path)  # 64 MiB, a few MiB of data
    result = world.cli(*world.import_args(source))
    if refused:  # XenServer 6.2 writes every block of the 64 MiB VDI
        assert result.code == 100 and "VDI 64.0 MiB" in result.err, result.err
        assert_nothing_started(world, job_id_in(result.err))
    else:
        assert result.code == 0, result.err
        check_published(world, result.out.strip(), source)


@pytest.fixture
def small_www(world: ImportWorld, tmp_path: Path) -> Iterator[Path]:
    """A backup storage on a 64 KiB tmpfs: no template fits."""
    from vdcmanage.catalog import storages

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    world.in_catalog(lambda: storages.add_backup_storage("local", "http://small.example/t", str(mount),
                                                         display_name="small"))
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_backup_storage_is_refused_before_any_upload(world: ImportWorld, tmp_path: Path, small_www: Path) -> None:
    result = world.cli(*world.import_args(ext4_image(tmp_path), "--backup-storage", "small"))
    assert result.code == 100, result.err
    assert re.search(
        rf"ERROR: Preflight: backup storage bkst-[a-z0-9]+ \({small_www}\) has 64\.0 KiB free, "
        r"the template needs up to [\d.]+ MiB", result.err
    ), result.err
    assert_nothing_started(world, job_id_in(result.err))
    assert list(small_www.iterdir()) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_closed_port_and_changed_host_key_are_found_before_the_source_is_read(
    world: ImportWorld, tmp_path: Path
) -> None:
    source = tmp_path / "huge.raw"
    with source.open("wb") as f:
        f.truncate(32 * GiB)  # sparse: hashing it would read 32 GiB of zeros, tens of seconds
    assert world.cli("host", "modify", "xen1", "--port", str(closed_port())).code == 0
    started = time.monotonic()
    refused = world.cli(*world.import_args(source))
    assert refused.code == 100 and "refused" in refused.err.lower(), refused.err
    assert time.monotonic() - started < 8
    assert_nothing_started(world, job_id_in(refused.err))

    assert world.cli("host", "modify", "xen1", "--port", str(world.xen.port)).code == 0
    impostor_key = public_line(world.xen.keys.stranger)  # any other key: the host looks like an impostor
    (world.home / ".ssh" / "known_hosts").write_text(f"[{world.xen.address}]:{world.xen.port} {impostor_key}\n")
    started = time.monotonic()
    changed = world.cli(*world.import_args(source))
    assert changed.code == 100 and "host key" in changed.err.lower(), changed.err
    assert time.monotonic() - started < 8
    assert_nothing_started(world, job_id_in(changed.err))
    jobs = json.loads(world.cli("job", "list", "-f", "json").out)
    assert {j["state"] for j in jobs} == {"failed"} and len(jobs) == 2


def test_a_retried_job_runs_the_preflight_again(world: ImportWorld, tmp_path: Path) -> None:
    source = random_raw(tmp_path / "big.raw", 256 * MiB)
    proc = world.popen(*world.import_args(source))
    job_id = wait_for(lambda: (json.loads(world.cli("job", "list", "-f", "json").out) or [{}])[0].get("id"))
    wait_for(lambda: uploaded_past(world, job_id, 0.2), interval=0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    _step, verified, _total = saved_upload(world, job_id)

    world.xen.configure(sr_sizes={"ext": 64 * MiB})  # someone filled the SR meanwhile
    refused = world.cli("job", "retry", job_id)
    assert refused.code == 100, refused.err
    assert f"Preflight: SR {world.xen.sr_uuid()} (Local storage) has 64.0 MiB free" in refused.err
    assert saved_upload(world, job_id)[1] == verified  # the upload did not go on
    assert not [c for c in world.xen.calls() if c["argv"][:1] == ["vdi-create"]]

    world.xen.configure(sr_sizes={"ext": 100 * GiB})
    resumed = world.cli("job", "retry", job_id)
    assert resumed.code == 0, resumed.err
    check_published(world, resumed.out.strip(), source)


def test_free_space_over_ssh_is_what_df_reports_there(xen_host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    from vdcmanage.errors import VdcError
    from vdcmanage.importer.preflight import remote_free

    with xen_host.connect() as conn:  # the sshd shares this machine's file systems (but /run)
        free = remote_free(conn, str(tmp_path))
        st = os.statvfs(tmp_path)
        assert abs(free - st.f_bavail * st.f_frsize) < 64 * MiB  # other tests write meanwhile
        with pytest.raises(VdcError, match=r"Cannot read the free space of /nonexistent/dir .*df -PB1"):
            remote_free(conn, "/nonexistent/dir")
