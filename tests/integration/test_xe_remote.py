"""The typed xe layer over real SSH against the xe double, in each personality."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.xenhost.fixtures import XenHost
from vdcmanage.remote import errors as e
from vdcmanage.remote.ssh import Connection
from vdcmanage.remote.xe import Xe

MiB = 1024 * 1024
GiB = 1024 * MiB
PERSONALITIES = ["xenserver-6.2", "xenserver-6.5", "xenserver-7.1", "xcp-ng-8.3"]
HOSTILE_LABELS = [
    'x"; touch /tmp/pwned-vdc; echo "',
    "$(touch /tmp/pwned-vdc)",
    "`touch /tmp/pwned-vdc`",
    "it's a \"quoted\" name",
    "Centos 6.2 x86_64 — naïve ✓",
    "a,b\\c",
    "--minimal",
    "uuid=oops",
    "two\nlines",
]


@pytest.fixture
def xe(xen_host: XenHost) -> Iterator[Xe]:
    with xen_host.connect() as conn:
        yield Xe(conn)


def xe_calls(xen_host: XenHost) -> list[list[str]]:
    return [c["argv"] for c in xen_host.calls()]


def stage_raw(xe: Xe, remote_dir: str, name: str, data: bytes) -> None:
    """Upload ``data`` into the SR mount on the host, as the importer will (one exec channel)."""
    with xe.connection.open_exec(["sh", "-c", 'cat > "$1"', "sh", f"{remote_dir}/{name}"]) as upload:
        upload.write(data)
        upload.finish()


@pytest.mark.parametrize("personality", PERSONALITIES)
def test_probe_reads_each_version_from_the_host(xen_host: XenHost, personality: str) -> None:
    xen_host.configure(personality=personality)
    with xen_host.connect() as conn:
        xe = Xe(conn)
        caps = xe.capabilities()
        assert xe.capabilities() is caps  # once per connection
    expected = {
        "xenserver-6.2": (True, {"raw"}, False, set(), "XenServer 6.2.0"),
        "xenserver-6.5": (True, {"raw", "vhd"}, True, {"raw", "vhd"}, "XenServer 6.5.0"),
        "xenserver-7.1": (False, {"raw", "vhd"}, True, {"raw", "vhd"}, "XenServer 7.1.2"),
        "xcp-ng-8.3": (False, {"raw", "vhd", "tar", "qcow2"}, True, {"raw", "vhd", "tar", "qcow2"}, "XCP-ng 8.3.0"),
    }[personality]
    assert (caps.vdi_create_requires_type, set(caps.import_formats), caps.import_progress, set(caps.export_formats),
            caps.product) == expected
    assert caps.case_insensitive_sizes == (personality == "xcp-ng-8.3")
    assert xe_calls(xen_host) == [
        ["help", "vdi-create", "vdi-import", "vdi-export"],
        ["host-list", "params=uuid,name-label,software-version"],
    ]


@pytest.mark.parametrize("personality", PERSONALITIES)
def test_vdi_create_sends_type_and_plain_bytes_on_every_version(xen_host: XenHost, personality: str) -> None:
    xen_host.configure(personality=personality)
    with xen_host.connect() as conn:
        xe = Xe(conn)
        uuid = xe.vdi_create(xen_host.sr_uuid(), "Centos 6.2 x86_64", 10 * GiB)
        assert xe.vdi_param_get(uuid, "virtual-size") == str(10 * GiB)
        assert xe.vdi_param_get(uuid, "type") == "User"
    assert xe_calls(xen_host)[-3] == ["vdi-create", f"sr-uuid={xen_host.sr_uuid()}", "name-label=Centos 6.2 x86_64",
                                      f"virtual-size={10 * GiB}", "type=user"]
    assert xen_host.vdi_path(uuid).name == f"{uuid}.vhd"


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_names_reach_xe_as_one_literal_argument(xen_host: XenHost, xe: Xe, label: str) -> None:
    uuid = xe.vdi_create(xen_host.sr_uuid(), label, 2 * MiB)
    description = f"line one\n{label}\nline three"
    xe.vdi_param_set(uuid, {"name-description": description})
    create = next(c for c in xe_calls(xen_host) if c[0] == "vdi-create")
    assert create[2] == f"name-label={label}"
    assert xe.vdi_param_get(uuid, "name-label") == label
    assert xe.vdi_param_get(uuid, "name-description") == description
    assert xe.list_minimal("vdi-list", params="name-label", filters={"uuid": uuid}) == [label]
    assert xe.vdi_list(filters={"name-label": label}, params=["uuid"]) == [{"uuid": uuid}]
    assert not Path("/tmp/pwned-vdc").exists()


def test_raw_import_into_the_sr_mount(xen_host: XenHost, xe: Xe, tmp_path: Path) -> None:
    data = os.urandom(MiB) + bytes(3 * MiB) + b"end"
    stage_raw(xe, xen_host.remote_sr_path(), "disk.raw", data)
    uuid = xe.vdi_create(xen_host.sr_uuid(), "disk", 8 * MiB)
    percents: list[int] = []
    xe.vdi_import(uuid, "disk.raw", cwd=xen_host.remote_sr_path(), progress=percents.append)
    assert percents == [0, 100]
    vhd = xen_host.vdi_path(uuid)
    assert xe.connection.run(["ls", f"/var/run/sr-mount/{xen_host.sr_uuid()}/{uuid}.vhd"]).exit_status == 0
    reference = tmp_path / "reference.raw"
    reference.write_bytes(data + bytes(8 * MiB - len(data)))
    assert subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", str(vhd), str(reference)]).returncode == 0
    assert ["vdi-import", f"uuid={uuid}", "filename=disk.raw", "format=raw", "--progress"] in xe_calls(xen_host)


@pytest.mark.xen(personality="xenserver-6.2")
def test_vhd_import_is_refused_where_format_would_be_ignored(xen_host: XenHost, xe: Xe) -> None:
    uuid = xe.vdi_create(xen_host.sr_uuid(), "disk", 4 * MiB)
    with pytest.raises(e.XeUnsupported, match="cannot import format=vhd") as raised:
        xe.vdi_import(uuid, "disk.vhd", fmt="vhd", cwd=xen_host.remote_sr_path())
    assert raised.value.exit_code == 100
    assert not [c for c in xe_calls(xen_host) if c[0] == "vdi-import"]  # nothing was sent
    stage_raw(xe, xen_host.remote_sr_path(), "disk.raw", b"raw data")
    seen: list[int] = []
    xe.vdi_import(uuid, "disk.raw", cwd=xen_host.remote_sr_path(), progress=seen.append)
    assert seen == [] and xe_calls(xen_host)[-1] == ["vdi-import", f"uuid={uuid}", "filename=disk.raw"]
    with pytest.raises(e.XeUnsupported, match="no vdi-export"):
        xe.vdi_export(uuid, "out.raw", cwd=xen_host.remote_sr_path())


@pytest.mark.xen(personality="xenserver-7.1")
def test_vhd_import_and_export_where_supported(xen_host: XenHost, xe: Xe, tmp_path: Path) -> None:
    source = tmp_path / "s.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(source),
                    str(6 * MiB)], check=True)
    subprocess.run(["qemu-io", "-f", "vpc", "-c", "write -P 9 2M 4k", str(source)], check=True, capture_output=True)
    stage_raw(xe, xen_host.remote_sr_path(), "s.vhd", source.read_bytes())
    uuid = xe.vdi_create(xen_host.sr_uuid(), "disk", 6 * MiB)
    xe.vdi_import(uuid, "s.vhd", fmt="vhd", cwd=xen_host.remote_sr_path())
    mapped = json.loads(subprocess.run(["qemu-img", "map", "--output=json", "-f", "vpc", str(xen_host.vdi_path(uuid))],
                                       capture_output=True, check=True).stdout)
    assert [(m["start"], m["length"]) for m in mapped if m["data"]] == [(2 * MiB, 2 * MiB)]
    xe.vdi_export(uuid, "out.raw", cwd=xen_host.remote_sr_path())
    exported = xen_host.sr_path() / "out.raw"
    assert exported.stat().st_size == 6 * MiB and exported.read_bytes()[2 * MiB : 2 * MiB + 4096] == b"\x09" * 4096


def test_errors_are_typed_and_keep_xes_text(xen_host: XenHost, xe: Xe) -> None:
    missing = "12345678-1234-1234-1234-123456789abc"
    with pytest.raises(e.XeUuidInvalid) as uuid_error:
        xe.vdi_param_get(missing, "name-label")
    assert (uuid_error.value.kind, uuid_error.value.uuid) == ("VDI", missing)
    assert uuid_error.value.xe_message == f"The uuid you supplied was invalid.\ntype: VDI\nuuid: {missing}"
    with pytest.raises(e.XeUuidInvalid, match="type: SR / uuid"):
        xe.vdi_create(missing, "x", MiB)
    small = xe.vdi_create(xen_host.sr_uuid(), "small", 2 * MiB)
    with pytest.raises(e.XeLocalFileMissing):
        xe.vdi_import(small, "nothing.raw", cwd=xen_host.remote_sr_path())
    stage_raw(xe, xen_host.remote_sr_path(), "big.raw", bytes(3 * MiB))
    with pytest.raises(e.XeVdiIoError) as io_error:
        xe.vdi_import(small, "big.raw", cwd=xen_host.remote_sr_path())
    assert io_error.value.code == "VDI_IO_ERROR" and io_error.value.params == ["Device I/O errors"]
    with pytest.raises(e.XeUnknownField) as field_error:
        xe.vdi_list(filters={"no-such-field": "1"})
    assert field_error.value.field == "no-such-field"
    with pytest.raises(e.XeUnknownCommand):
        xe.call("vdi-frobnicate")


@pytest.mark.xen(personality="xenserver-7.1")
def test_backend_failure_for_a_too_big_vdi(xen_host: XenHost, xe: Xe) -> None:
    with pytest.raises(e.XeBackendFailure) as raised:
        xe.vdi_create(xen_host.sr_uuid(), "huge", 2041 * GiB)
    assert raised.value.number == 79 and "VDI size must be between" in raised.value.reason


@pytest.mark.xen(sr_sizes={"ext": 8 * MiB})
def test_full_sr_shows_during_import(xen_host: XenHost, xe: Xe) -> None:
    uuid = xe.vdi_create(xen_host.sr_uuid(), "disk", 64 * MiB)
    stage_raw(xe, xen_host.remote_sr_path("nfs"), "d.raw", os.urandom(16 * MiB))
    with pytest.raises(e.XeVdiIoError):
        xe.vdi_import(uuid, f"{xen_host.remote_sr_path('nfs')}/d.raw")


def test_missing_xe_and_down_xapi(xen_host: XenHost) -> None:
    xen_host.configure(xapi_down=True)
    with xen_host.connect() as conn, pytest.raises(e.XapiUnreachable, match="xapi does not answer"):
        Xe(conn).capabilities()
    xen_host.configure(xapi_down=False, xe_installed=False)
    with xen_host.connect() as conn, pytest.raises(e.XeMissing, match="xe is not installed"):
        Xe(conn).capabilities()


def test_listing_srs_default_sr_and_destroy(xen_host: XenHost, xe: Xe) -> None:
    srs = {sr.uuid: sr for sr in xe.srs()}
    assert set(srs) == set(xen_host.srs.values())
    ext = srs[xen_host.sr_uuid("ext")]
    assert (ext.type, ext.file_based, ext.physical_size, ext.free) == ("ext", True, 100 * GiB, 100 * GiB)
    assert ext.mount_path == f"/var/run/sr-mount/{ext.uuid}"
    assert not srs[xen_host.sr_uuid("lvm")].file_based
    assert xe.default_sr() == xen_host.sr_uuid("ext")
    assert xe.sr_param_get(ext.uuid, "type") == "ext"
    uuid = xe.vdi_create(ext.uuid, "gone", 2 * MiB)
    xe.vdi_destroy(uuid)
    assert xe.vdi_list() == [] and not (xen_host.sr_path() / f"{uuid}.vhd").exists()
    hosts = xe.host_list()
    assert [h["name-label"] for h in hosts] == ["xenhost1"]


def test_capabilities_are_asked_again_on_a_new_connection(xen_host: XenHost) -> None:
    conn = xen_host.connect()
    Xe(conn).capabilities()
    conn.close()
    assert isinstance(conn, Connection) and conn.memo == {}
    with conn:
        Xe(conn).capabilities()
    assert [c[0] for c in xe_calls(xen_host)].count("help") == 2
