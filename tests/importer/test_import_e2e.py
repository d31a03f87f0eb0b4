"""`vdc-manage image import xen` end to end against the real sshd test host with the xe double."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.imagefactory import make_ext4_raw
from tests.importer.conftest import ImportWorld, bunzip2, qemu_compare

FILES = {
    "etc/hostname": b"centos62\n",
    "etc/fstab": b"/dev/sda1 / ext4 defaults 1 1\n",
    "usr/share/doc/readme.txt": b"vdc-manage import test\n" * 4000,
    "var/lib/random.bin": os.urandom(3 * 1024 * 1024),
}


def ext4_image(directory: Path, name: str = "centos62.raw", size: int = 64 * 1024 * 1024) -> Path:
    return make_ext4_raw(directory, size, FILES, name=name)


def check_published(world: ImportWorld, image_id: str, source: Path, source_format: str = "raw") -> dict:
    record = world.image(image_id)
    published = world.www / f"{image_id}.vhd.bz2"
    assert record["source_uri"] == f"{world.base_uri}/{image_id}.vhd.bz2"
    assert record["file_format"] == "vhd" and record["state"] == "available"
    data = published.read_bytes()
    assert record["size"] == len(data)
    assert record["md5"] == hashlib.md5(data).hexdigest() and record["sha256"] == hashlib.sha256(data).hexdigest()
    job = world.job(record["job_id"])
    assert job["state"] == "succeeded" and job["result"]["image_id"] == image_id
    vhd = world.xen.vdi_path(job["result"]["vdi_uuid"])
    assert bunzip2(published) == vhd.read_bytes()  # the published file is the VDI's VHD, byte for byte
    from vdcmanage.images.inspect import inspect_image

    info = inspect_image(vhd)  # structural check: qemu-img check cannot check vpc (exit 63)
    assert info.format == "vhd"
    assert record["virtual_size"] == info.virtual_size >= source.stat().st_size
    compared = qemu_compare(source, source_format, vhd)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert world.sr_leftovers() == []  # no staged or compressed file left on the host
    assert world.work_files() == []
    return job


@pytest.mark.parametrize("personality", ["xenserver-6.2", "xenserver-7.1", "xcp-ng-8.3"])
def test_import_publishes_a_template_and_registers_it(world: ImportWorld, tmp_path: Path, personality: str) -> None:
    world.xen.configure(personality=personality)
    source = ext4_image(tmp_path)
    result = world.cli(*world.import_args(source, "--name-label", "Centos 6.2 x86_64", "-d", "CentOS 6.2"))
    assert result.code == 0, result.err
    image_id = result.out.strip()
    assert image_id.startswith("wmi-") and result.out.count("\n") == 1
    job = check_published(world, image_id, source)
    assert world.image(image_id)["description"] == "CentOS 6.2"
    imports = [c["argv"] for c in world.xen.calls() if c["argv"][:1] == ["vdi-import"]]
    expected_format = "format=raw" if personality == "xenserver-6.2" else "format=vhd"
    if personality == "xenserver-6.2":
        assert not any(a.startswith("format=") for a in imports[0])  # 6.2 would ignore it
    else:
        assert expected_format in imports[0]
    assert [s["state"] for s in job["steps"]] == ["done"] * 10
    creates = [c["argv"] for c in world.xen.calls() if c["argv"][:1] == ["vdi-create"]]
    assert "name-label=Centos 6.2 x86_64" in creates[0] and "type=user" in creates[0]


def test_progress_lines_on_stderr_when_not_a_terminal(world: ImportWorld, tmp_path: Path) -> None:
    result = world.cli(*world.import_args(ext4_image(tmp_path)))
    assert result.code == 0
    assert result.err.startswith("job-") and "importing" in result.err.splitlines()[0]


def test_detached_import_runs_in_the_worker(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    queued = world.cli(*world.import_args(source, "--detach"))
    assert queued.code == 0 and queued.out.strip().startswith("job-")
    job_id = queued.out.strip()
    assert world.job(job_id)["state"] == "queued"
    worker = world.cli("job", "worker", "--once")
    assert worker.code == 0, worker.err
    job = world.job(job_id)
    assert job["state"] == "succeeded"
    check_published(world, job["result"]["image_id"], source)


def test_ssh_backup_storage(world: ImportWorld, tmp_path: Path, web_server) -> None:  # type: ignore[no-untyped-def]
    web_server.server  # noqa: B018
    known = Path.home() / ".ssh" / "known_hosts"
    with open(known, "a") as f:
        f.write(web_server.server.known_hosts_line + "\n")
    added = world.cli(
        "backupstorage", "add", "--storage-type", "ssh", "--base-uri", "https://web.example/t",
        "--path", str(web_server.www), "--address", web_server.server.address,
        "--port", str(web_server.server.port), "--key-file", str(web_server.key_file), "--display-name", "web",
    )
    assert added.code == 0, added.err
    source = ext4_image(tmp_path)
    result = world.cli(*world.import_args(source, "--backup-storage", "web"))
    assert result.code == 0, result.err
    image_id = result.out.strip()
    record = world.image(image_id)
    published = web_server.www / f"{image_id}.vhd.bz2"
    assert record["source_uri"] == f"https://web.example/t/{image_id}.vhd.bz2"
    assert hashlib.sha256(published.read_bytes()).hexdigest() == record["sha256"]
    assert oct(published.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in web_server.www.iterdir()] == [published.name]


@pytest.mark.parametrize("source_format", ["qcow2", "vmdk"])
def test_non_raw_sources_are_converted_not_imported_as_raw(world: ImportWorld, tmp_path: Path, source_format: str) -> None:
    import subprocess

    raw = ext4_image(tmp_path)
    source = tmp_path / f"image.{source_format}"
    subprocess.run(["qemu-img", "convert", "-O", source_format, str(raw), str(source)], check=True)
    for personality in ("xenserver-6.2", "xcp-ng-8.3"):
        world.xen.configure(personality=personality)
        result = world.cli(*world.import_args(source))
        assert result.code == 0, result.err
        check_published(world, result.out.strip(), raw)


@pytest.mark.parametrize(
    "name", ["with space.raw", 'x"; touch pwned; echo ".raw', "$(touch pwned).raw", "`id`.raw", "new\nline.raw"]
)
def test_hostile_file_names_and_labels(world: ImportWorld, tmp_path: Path, name: str) -> None:
    source = ext4_image(tmp_path, name=name, size=16 * 1024 * 1024)
    result = world.cli(*world.import_args(source, "--name-label", name))
    assert result.code == 0, result.err
    image_id = result.out.strip()
    check_published(world, image_id, source)
    creates = [c["argv"] for c in world.xen.calls() if c["argv"][:1] == ["vdi-create"]]
    assert f"name-label={name}" in creates[-1]
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    assert "\n" not in world.image(image_id)["display_name"]


def test_raw_file_not_a_multiple_of_512(world: ImportWorld, tmp_path: Path) -> None:
    source = tmp_path / "odd.raw"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 77))
    for personality in ("xenserver-6.2", "xcp-ng-8.3"):
        world.xen.configure(personality=personality)
        result = world.cli(*world.import_args(source))
        assert result.code == 0, result.err
        image_id = result.out.strip()
        job = world.job(world.image(image_id)["job_id"])
        vhd = world.xen.vdi_path(job["result"]["vdi_uuid"])
        padded = tmp_path / f"padded-{personality}.raw"
        padded.write_bytes(source.read_bytes() + b"\0" * (512 - 77))
        assert qemu_compare(padded, "raw", vhd).returncode == 0


def test_two_imports_of_one_file_at_once(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path)
    procs = [world.popen(*world.import_args(source)) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [out.strip() for out, _err in outputs]
    assert len(set(ids)) == 2
    for image_id in ids:
        check_published(world, image_id, source)


def test_refusals_before_anything_is_queued(world: ImportWorld, tmp_path: Path) -> None:
    source = ext4_image(tmp_path, size=8 * 1024 * 1024)
    cases = {
        "Unknown host id: nohost": ["image", "import", "xen", str(source), "--host", "nohost", "-a", "a-shpoolxx"],
        "Unknown account id: a-nobody": ["image", "import", "xen", str(source), "--host", "xen1", "-a", "a-nobody"],
        f"File not found: {tmp_path}/missing.raw": world.import_args(tmp_path / "missing.raw"),
        "Unknown backup storage id: nowhere": world.import_args(source, "--backup-storage", "nowhere"),
        "Unsupported arch 'arm'": world.import_args(source, "--arch", "arm"),
    }
    for message, args in cases.items():
        result = world.cli(*args)
        assert result.code == 100 and message in result.err, (message, result.err)
    assert json.loads(world.cli("job", "list", "-f", "json").out) == []


def test_a_truncated_qcow2_is_refused_by_the_job(world: ImportWorld, tmp_path: Path) -> None:
    import subprocess

    raw = ext4_image(tmp_path, size=8 * 1024 * 1024)
    source = tmp_path / "broken.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(source)], check=True)
    with open(source, "r+b") as f:
        f.truncate(300)
    result = world.cli(*world.import_args(source))
    assert result.code == 100
    assert "ERROR: Preflight: " in result.err and "qcow2" in result.err  # its header is read before any step
    assert world.xen.state()["vdis"] == [] and world.sr_leftovers() == []
