"""The xe double against xe-facts.md (section numbers below): a wrong double makes every later test lie.

These run the double as a command (``tests/xenhost/bin/xe``) in a local state directory; the
tests in tests/integration run it through the real sshd.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.xenhost import xedouble
from tests.xenhost.fixtures import XE_DOUBLE

MiB = 1024 * 1024
GiB = 1024 * MiB
USAGE_HINT = "For usage run: 'xe help'"


@dataclass
class Run:
    code: int
    out: str
    err: str


class Double:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.sr_mount = root / "sr-mount"

    def reset(self, personality: str = xedouble.DEFAULT_PERSONALITY, **options: object) -> Double:
        state = xedouble.make_state(personality=personality, sr_mount=str(self.sr_mount), **options)  # type: ignore[arg-type]
        xedouble.write_state(str(self.state_dir), state)
        return self

    def __call__(self, *args: str, cwd: Path | None = None) -> Run:
        proc = subprocess.run(
            [str(XE_DOUBLE), *args],
            capture_output=True,  # bytes: text mode would turn the progress frames' \r into \n
            cwd=cwd or self.root,
            env={**os.environ, "XE_DOUBLE_STATE": str(self.state_dir)},
            timeout=120,
        )
        return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        run = self(*args, cwd=cwd)
        assert run.code == 0, run
        return run.out

    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def sr(self, role: str = "ext") -> str:
        return next(sr["uuid"] for sr in self.state()["srs"] if sr["role"] == role)

    def create(self, name: str = "disk", size: str = "10MiB", role: str = "ext", *extra: str) -> str:
        return self.ok("vdi-create", f"sr-uuid={self.sr(role)}", f"name-label={name}", f"virtual-size={size}",
                       "type=user", *extra).strip()

    def vdi_file(self, uuid: str) -> Path:
        vdi = next(v for v in self.state()["vdis"] if v["uuid"] == uuid)
        return self.sr_mount / vdi["sr"] / vdi["file"]


@pytest.fixture
def xe(tmp_path: Path) -> Double:
    return Double(tmp_path).reset()


def failure(run: Run, text: str) -> None:
    """Section 1/2: errors go to stderr only, exit 1."""
    assert (run.code, run.out, run.err) == (1, "", text), run


def qemu_json(*args: str) -> object:
    return json.loads(subprocess.run(["qemu-img", *args, "--output=json"], check=True, capture_output=True).stdout)


def data_extents(path: Path, fmt: str = "vpc") -> list[tuple[int, int]]:
    """Allocated ranges of an image, adjacent ones merged."""
    merged: list[tuple[int, int]] = []
    for entry in qemu_json("map", "-f", fmt, str(path)):  # type: ignore[union-attr]
        if not entry["data"]:
            continue
        if merged and sum(merged[-1]) == entry["start"]:
            merged[-1] = (merged[-1][0], merged[-1][1] + entry["length"])
        else:
            merged.append((entry["start"], entry["length"]))
    return merged


def write_raw(path: Path, size: int, chunks: dict[int, bytes]) -> Path:
    """A sparse raw file of ``size`` bytes with ``chunks`` written at their offsets."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in chunks.items():
            f.seek(offset)
            f.write(data)
    return path


def same_content(a: Path, a_fmt: str, b: Path, b_fmt: str) -> bool:
    return subprocess.run(["qemu-img", "compare", "-f", a_fmt, "-F", b_fmt, str(a), str(b)],
                          capture_output=True).returncode == 0


# -- section 1: syntax and output ------------------------------------------------------------------------


def test_record_layout_is_the_facts_example_exactly(xe: Double) -> None:
    uuid = xe.create("Centos 6.2 x86_64", "10GiB")
    sr = xe.sr()
    assert xe.ok("vdi-list") == (
        f"uuid ( RO)                : {uuid}\n"
        "          name-label ( RW): Centos 6.2 x86_64\n"
        "    name-description ( RW): \n"
        f"             sr-uuid ( RO): {sr}\n"
        "        virtual-size ( RO): 10737418240\n"
        "            sharable ( RO): false\n"
        "           read-only ( RO): false\n"
        "\n\n"
    )


def test_every_record_is_followed_by_two_blank_lines_and_no_match_prints_nothing(xe: Double) -> None:
    xe.create("a")
    xe.create("b")
    out = xe.ok("vdi-list")
    assert out.count("\n\n\n") == 2 and out.endswith("false\n\n\n")
    assert xe("vdi-list", "name-label=nobody") == Run(0, "", "")


def test_params_print_in_definition_order_with_their_own_alignment(xe: Double) -> None:
    uuid = xe.create("disk", "4MiB")
    assert xe.ok("vdi-list", "params=virtual-size,uuid") == (
        f"uuid ( RO)            : {uuid}\n    virtual-size ( RO): 4194304\n\n\n"
    )


def test_params_all_unknown_names_and_none_left(xe: Double) -> None:
    xe.create()
    everything = xe.ok("vdi-list", "params=all")
    assert all(f" {name} (" in everything or everything.startswith(name) for name, *_ in xedouble.VDI_FIELDS)
    assert "other-config (MRW): " in everything and "allowed-operations (SRO): " in everything
    assert xe.ok("vdi-list", "params=uuid,no-such-field").startswith("uuid ( RO)")
    assert xe.ok("vdi-list", "params=no-such-field") == "\n\n"  # the record prints empty


def test_values_booleans_integers_sets_and_maps(xe: Double) -> None:
    uuid = xe.create()
    xe.ok("vdi-param-set", f"uuid={uuid}", "other-config:a=1", "other-config:b=x y")
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=other-config") == "a: 1; b: x y\n"
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=sharable") == "false\n"
    ops = xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=allowed-operations")
    assert "; " in ops and "," not in ops


def test_minimal_is_one_line_with_escapes_and_first_printed_field(xe: Double) -> None:
    assert xe("vdi-list", "--minimal") == Run(0, "\n", "")
    one = xe.create("a,b\\c")
    two = xe.create("plain")
    assert xe.ok("vdi-list", "--minimal") == f"{one},{two}\n"
    assert xe.ok("vdi-list", "params=name-label", "--minimal") == "a\\,b\\\\c,plain\n"
    assert xe.ok("vdi-list", "params=virtual-size,name-label", "--minimal") == "a\\,b\\\\c,plain\n"


def test_filters_exact_anded_case_sensitive_and_on_maps(xe: Double) -> None:
    one = xe.create("Disk")
    two = xe.create("disk")
    xe.ok("vdi-param-set", f"uuid={two}", "other-config:role=template")
    assert xe.ok("vdi-list", "name-label=disk", "--minimal") == f"{two}\n"
    assert xe.ok("vdi-list", "name-label=Disk", f"sr-uuid={xe.sr()}", "--minimal") == f"{one}\n"
    assert xe.ok("vdi-list", "name-label=Disk", "sharable=true", "--minimal") == "\n"
    assert xe.ok("vdi-list", "other-config:role=template", "--minimal") == f"{two}\n"
    assert xe.ok("vdi-list", "virtual-size=10485760", "--minimal") == f"{one},{two}\n"
    assert xe.ok("vdi-list", "uuid=00000000-0000-0000-0000-000000000000") == ""


def test_unknown_filter_field_fails_only_when_records_exist(xe: Double) -> None:
    assert xe("vdi-list", "bogus=1") == Run(0, "", "")
    xe.create()
    failure(xe("vdi-list", "bogus=1"), "Error: Unknown field 'bogus'\n")


def test_argument_syntax(xe: Double) -> None:
    uuid = xe.ok("vdi-create", f"sr-uuid={xe.sr()}", "name-label=a=b=c", "virtual-size=2MiB", "type=user\r",
                 "unknown-parameter=ignored", "--force").strip()
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=name-label") == "a=b=c\n"
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=type") == "User\n"  # the \r was stripped
    for usage in ([], ["-help"], ["--help"]):
        run = xe(*usage)
        assert run.code == 0 and run.out == "" and run.err.startswith("Usage: xe <command>")


def test_client_side_options_are_consumed_anywhere(xe: Double) -> None:
    xe.create()
    assert xe.ok("vdi-list", "-u", "root", "-pw", "xenroot", "-s", "localhost", "--minimal").count("-") == 4
    failure(xe("vdi-list", "-s", "localhost", "-pw", "wrong"), f"Authentication failed\n{USAGE_HINT}\n")


def test_size_parser_old_generation(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xenserver-7.1")
    sr = xe.sr()
    for size, expected in (("10737418240", 10 * GiB), ("10GiB", 10 * GiB), ("3MiB", 4 * MiB), ("1024KiB", 2 * MiB),
                           ("4194304bytes", 4 * MiB), ("1TiB", 1024 * GiB)):
        uuid = xe.ok("vdi-create", f"sr-uuid={sr}", "name-label=x", f"virtual-size={size}", "type=user").strip()
        assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=virtual-size") == f"{expected}\n"
    for bad, suffix in (("10GB", "GB"), ("10gib", "gib"), ("10 GiB", " GiB"), ("1.5GiB", ".5GiB")):
        failure(xe("vdi-create", f"sr-uuid={sr}", "name-label=x", f"virtual-size={bad}", "type=user"),
                f"Error: Failed to parse field 'virtual-size': Unknown suffix: '{suffix}' (try KiB, MiB, GiB or TiB)\n")


def test_size_parser_new_generation(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xcp-ng-8.3")
    sr = xe.sr()
    for size, expected in (("10gb", 10 * GiB), ("10G", 10 * GiB), ("4m", 4 * MiB), ("2048k", 2 * MiB),
                           ("2097152b", 2 * MiB), ("4MIB", 4 * MiB), ("6291456", 6 * MiB)):
        uuid = xe.ok("vdi-create", f"sr-uuid={sr}", "name-label=x", f"virtual-size={size}").strip()
        assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=virtual-size") == f"{expected}\n"
    for bad in ("1.5GiB", "-1", "10 GiB", "ten"):
        failure(xe("vdi-create", f"sr-uuid={sr}", "name-label=x", f"virtual-size={bad}"),
                "Error: Failed to parse field 'virtual-size': expecting an integer (possibly with suffix "
                f"KiB, MiB, GiB, TiB), got '{bad}'\n")


def test_size_parser_is_selectable_apart_from_the_personality(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xcp-ng-8.3", size_parser="old")
    run = xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=x", "virtual-size=10GB")
    assert "Unknown suffix: 'GB'" in run.err


def test_sizes_round_up_to_2_mib_and_large_vdis(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xenserver-7.1")
    small = xe.create("x", "1")
    assert xe.ok("vdi-param-get", f"uuid={small}", "param-name=virtual-size") == f"{2 * MiB}\n"
    failure(xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=x", "virtual-size=2041GiB"),
            "Error code: SR_BACKEND_FAILURE_79\n"
            "Error parameters: , VDI Invalid size [opterr=VDI size must be between 1 MB and 2088960 MB], \n")
    modern = Double(tmp_path / "modern").reset("xcp-ng-8.3")
    big = modern.create("x", "3TiB")
    assert modern.vdi_file(big).suffix == ".qcow2"


# -- section 2: errors -------------------------------------------------------------------------------------


def test_uuid_invalid_for_every_kind_of_lookup(xe: Double) -> None:
    bad = "12345678-1234-1234-1234-123456789abc"
    for args, kind in (
        (["vdi-param-get", f"uuid={bad}", "param-name=uuid"], "VDI"),
        (["vdi-destroy", f"uuid={bad}"], "VDI"),
        (["vdi-import", f"uuid={bad}", "filename=x"], "VDI"),
        (["vdi-create", f"sr-uuid={bad}", "name-label=x", "virtual-size=1"], "SR"),
        (["sr-param-get", f"uuid={bad}", "param-name=type"], "SR"),
        (["host-param-get", f"uuid={bad}", "param-name=uuid"], "host"),
        (["pool-param-get", f"uuid={bad}", "param-name=uuid"], "pool"),
    ):
        failure(xe(*args), f"The uuid you supplied was invalid.\ntype: {kind}\nuuid: {bad}\n")


def test_sr_is_looked_up_before_the_size_is_parsed(xe: Double) -> None:
    run = xe("vdi-create", "sr-uuid=nope", "name-label=x", "virtual-size=garbage")
    assert run.err.startswith("The uuid you supplied was invalid.\ntype: SR")


def test_required_unknown_command_and_syntax_errors(xe: Double) -> None:
    failure(xe("vdi-import", "uuid=x"), f"Required parameter not found: filename\n{USAGE_HINT}\n")
    failure(xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=x"),
            f"Required parameter not found: virtual-size\n{USAGE_HINT}\n")
    failure(xe("vdi-frobnicate"), f"Unknown command: vdi-frobnicate\n{USAGE_HINT}\n")
    failure(xe("uuid=x", "vdi-list"), f"Syntax error: \n{USAGE_HINT}\n")


def test_cli_level_failures(xe: Double) -> None:
    uuid = xe.create()
    failure(xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=x", "virtual-size=2MiB", "type=User"),
            "Error: Unknown vdi type: User\n")
    failure(xe("vdi-param-get", f"uuid={uuid}", "param-name=other-config", "param-key=k"),
            "Error: Key k not found in map\n")
    failure(xe("vdi-param-set", f"uuid={uuid}", "virtual-size=1"), "Error: Field 'virtual-size' is read-only.\n")


def test_import_errors(xe: Double, tmp_path: Path) -> None:
    uuid = xe.create("x", "2MiB")
    failure(xe("vdi-import", f"uuid={uuid}", "filename=missing.raw"),
            "Operation failed. Error: file 'missing.raw' does not exist\n")
    write_raw(tmp_path / "big.raw", 3 * MiB, {0: b"head", 3 * MiB - 4: b"tail"})
    failure(xe("vdi-import", f"uuid={uuid}", "filename=big.raw"),
            "Error code: VDI_IO_ERROR\nError parameters: Device I/O errors\n")
    run = xe("vdi-import", f"uuid={uuid}", "filename=big.raw", "format=cpio")
    assert run.code == 1 and run.out == ""
    assert run.err.startswith("The server failed to handle your request, due to an internal error.")
    assert run.err.endswith("\nmessage: Unknown format cpio\n")


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir() if tasks.exists() else []:
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_a_killed_import_stops_writing_and_the_vdi_can_be_imported_again(xe: Double, tmp_path: Path) -> None:
    """As with the real client: SIGTERM to xe (our watcher's cancel) ends the import it was doing."""
    uuid = xe.create("x", "512MiB")
    with open(tmp_path / "data.raw", "wb") as f:
        f.write(os.urandom(512 * MiB))
    proc = subprocess.Popen([str(XE_DOUBLE), "vdi-import", f"uuid={uuid}", "filename=data.raw"], cwd=tmp_path,
                            env={**os.environ, "XE_DOUBLE_STATE": str(xe.state_dir)})
    deadline = time.monotonic() + 60
    while not (tools := children_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tools, "the double started no qemu-img"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert not [pid for pid in tools if Path(f"/proc/{pid}").exists()]  # the qemu-img died with it
    assert xe("vdi-import", f"uuid={uuid}", "filename=data.raw").code == 0
    assert same_content(tmp_path / "data.raw", "raw", xe.vdi_file(uuid), "vpc")


def test_xapi_down(xe: Double) -> None:
    state = xe.state()
    state["xapi_down"] = True
    xedouble.save(str(xe.state_dir), state)
    failure(xe("sr-list"), "Error: Connection refused (calling connect )\n")


# -- section 3: commands -------------------------------------------------------------------------------------


def test_vdi_create_prints_the_uuid_makes_a_dynamic_vhd_and_ignores_the_description(xe: Double) -> None:
    run = xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=Centos 6.2 x86_64", "virtual-size=10GiB",
             "type=user", "name-description=ignored")
    assert run.code == 0 and run.err == ""
    uuid = run.out[:-1]
    assert run.out == uuid + "\n" and len(uuid) == 36
    info = qemu_json("info", str(xe.vdi_file(uuid)))
    assert info["format"] == "vpc" and info["virtual-size"] == 10 * GiB  # type: ignore[index]
    assert xe.vdi_file(uuid).name == f"{uuid}.vhd"
    assert xe.vdi_file(uuid).stat().st_size < MiB  # dynamic: nothing allocated yet
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=name-description") == "\n"
    assert xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=location") == f"{uuid}\n"
    raw = xe.create("r", "4MiB", "ext", "sm-config:type=raw")
    assert xe.vdi_file(raw).name == f"{raw}.raw"


def test_raw_import_makes_a_real_fully_allocated_vhd(xe: Double, tmp_path: Path) -> None:
    uuid = xe.create("x", "16MiB")
    source = write_raw(tmp_path / "disk.raw", 6 * MiB + 1000, {0: b"boot", 5 * MiB: os.urandom(4096)})
    assert xe("vdi-import", f"uuid={uuid}", "filename=disk.raw", cwd=tmp_path) == Run(0, "", "")
    vhd = xe.vdi_file(uuid)
    assert qemu_json("info", str(vhd))["format"] == "vpc"  # type: ignore[index]
    assert data_extents(vhd) == [(0, 8 * MiB)]  # zeros written too: all four blocks of the data allocated
    padded = write_raw(tmp_path / "padded.raw", 16 * MiB, {})
    with open(source, "rb") as src, open(padded, "r+b") as dst:
        dst.write(src.read())
    assert same_content(vhd, "vpc", padded, "raw")


def test_filename_is_relative_to_the_callers_directory(xe: Double, tmp_path: Path) -> None:
    uuid = xe.create()
    (tmp_path / "sub").mkdir()
    write_raw(tmp_path / "sub" / "d.raw", MiB, {0: b"x"})
    assert xe("vdi-import", f"uuid={uuid}", "filename=d.raw", cwd=tmp_path).code == 1
    assert xe("vdi-import", f"uuid={uuid}", "filename=d.raw", cwd=tmp_path / "sub").code == 0


def make_vhd(path: Path, size: int, writes: list[str]) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path),
                    str(size)], check=True)
    commands = [arg for w in writes for arg in ("-c", w)]
    subprocess.run(["qemu-io", "-f", "vpc", *commands, str(path)], check=True, capture_output=True)
    return path


def test_vhd_import_keeps_the_sources_allocation(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xenserver-7.1")
    uuid = xe.create("x", "20MiB")
    source = make_vhd(tmp_path / "s.vhd", 10 * MiB, ["write -P 0 0 64k", "write -P 7 4M 4k"])
    assert xe("vdi-import", f"uuid={uuid}", "filename=s.vhd", "format=vhd", cwd=tmp_path) == Run(0, "", "")
    vdi = xe.vdi_file(uuid)
    assert data_extents(vdi) == data_extents(source) == [(0, 2 * MiB), (4 * MiB, 2 * MiB)]
    assert same_content(vdi, "vpc", source, "vpc")


def test_xenserver_6_2_ignores_format_and_progress(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xenserver-6.2")
    uuid = xe.create("x", "20MiB")
    source = make_vhd(tmp_path / "s.vhd", 4 * MiB, ["write -P 7 0 4k"])
    run = xe("vdi-import", f"uuid={uuid}", "filename=s.vhd", "format=vhd", "--progress", cwd=tmp_path)
    assert run == Run(0, "", "")  # format= and --progress silently ignored...
    as_raw = pad_copy(source, tmp_path / "as-raw", 20 * MiB)
    assert same_content(xe.vdi_file(uuid), "vpc", as_raw, "raw")  # ...the VHD's bytes became the disk


def pad_copy(source: Path, target: Path, size: int) -> Path:
    target.write_bytes(source.read_bytes())
    with open(target, "r+b") as f:
        f.truncate(size)
    return target


def test_progress_frames_on_stderr(xe: Double, tmp_path: Path) -> None:
    uuid = xe.create()
    write_raw(tmp_path / "d.raw", MiB, {0: b"x"})
    run = xe("vdi-import", f"uuid={uuid}", "filename=d.raw", "--progress", cwd=tmp_path)
    assert run.code == 0 and run.out == ""
    assert run.err.startswith("\r[-] ") and "(100% ETA" in run.err and "\nTotal time: " in run.err


def test_image_larger_than_the_vdi_fails_after_a_partial_write(xe: Double, tmp_path: Path) -> None:
    uuid = xe.create("x", "4MiB")
    write_raw(tmp_path / "big.raw", 6 * MiB, {0: b"first", 5 * MiB: b"beyond"})
    assert xe("vdi-import", f"uuid={uuid}", "filename=big.raw", cwd=tmp_path).err.startswith("Error code: VDI_IO_ERROR")
    assert data_extents(xe.vdi_file(uuid)) == [(0, 4 * MiB)]


def test_full_sr_fails_during_import_not_at_create(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset(sr_sizes={"ext": 8 * MiB})
    uuid = xe.create("x", "64MiB")  # file SRs do not check free space at vdi-create
    write_raw(tmp_path / "d.raw", 16 * MiB, {})
    run = xe("vdi-import", f"uuid={uuid}", "filename=d.raw", cwd=tmp_path)
    failure(run, "Error code: VDI_IO_ERROR\nError parameters: Device I/O errors\n")
    written = data_extents(xe.vdi_file(uuid))
    assert written and written[-1][0] + written[-1][1] < 8 * MiB


def test_file_sr_values_refresh_on_create_delete_and_scan_only(xe: Double, tmp_path: Path) -> None:
    sr = xe.sr()
    used = lambda: int(xe.ok("sr-param-get", f"uuid={sr}", "param-name=physical-utilisation"))  # noqa: E731
    assert used() == 0
    uuid = xe.create("x", "8MiB")
    after_create = used()
    assert after_create > 0
    write_raw(tmp_path / "d.raw", 4 * MiB, {0: b"x"})
    xe.ok("vdi-import", f"uuid={uuid}", "filename=d.raw", cwd=tmp_path)
    assert used() == after_create  # stale until a scan
    vdi_used = int(xe.ok("vdi-param-get", f"uuid={uuid}", "param-name=physical-utilisation"))
    assert vdi_used == xe.vdi_file(uuid).stat().st_size
    xe.ok("sr-scan", f"uuid={sr}")
    assert used() >= after_create + 4 * MiB
    assert xe.ok("sr-param-get", f"uuid={sr}", "param-name=type") == "ext\n"
    assert xe.ok("sr-param-get", f"uuid={sr}", "param-name=physical-size") == f"{100 * GiB}\n"


def test_vdi_destroy_unlinks_at_once(xe: Double) -> None:
    uuid = xe.create()
    path = xe.vdi_file(uuid)
    assert xe("vdi-destroy", f"uuid={uuid}") == Run(0, "", "")
    assert not path.exists() and xe.ok("vdi-list", "--minimal") == "\n"


def test_vdi_export(tmp_path: Path) -> None:
    old = Double(tmp_path / "old").reset("xenserver-6.2")
    failure(old("vdi-export", f"uuid={old.create()}", "filename=x"), f"Unknown command: vdi-export\n{USAGE_HINT}\n")
    xe = Double(tmp_path).reset("xenserver-7.1")
    uuid = xe.create("x", "4MiB")
    write_raw(tmp_path / "d.raw", MiB, {0: b"data"})
    xe.ok("vdi-import", f"uuid={uuid}", "filename=d.raw", cwd=tmp_path)
    assert xe("vdi-export", f"uuid={uuid}", "filename=out.raw", cwd=tmp_path) == Run(0, "", "")
    assert (tmp_path / "out.raw").stat().st_mode & 0o777 == 0o600
    assert same_content(tmp_path / "out.raw", "raw", xe.vdi_file(uuid), "vpc")
    assert xe("vdi-export", f"uuid={uuid}", "filename=out.raw", cwd=tmp_path).code == 1  # must not exist


def test_lists_of_hosts_pools_and_sms(xe: Double) -> None:
    out = xe.ok("pool-list")
    names = [line.split(" (")[0].strip() for line in out.splitlines() if line]
    assert names == ["uuid", "name-label", "name-description", "master", "default-SR"]
    assert xe.ok("host-list", "params=name-label", "--minimal") == "xenhost1\n"
    assert xe.ok("sm-list", "type=ext", "params=name-label", "--minimal") == "Local EXT3 VHD\n"
    assert xe.ok("sm-list", "type=nfs", "params=name-label", "--minimal") == "NFS VHD\n"


# -- section 5: versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("personality", "type_required", "import_optional"),
    [("xenserver-6.2", True, ""), ("xenserver-6.5", True, "format, progress"),
     ("xenserver-7.1", False, "format, progress"), ("xcp-ng-8.3", False, "format, progress")],
)
def test_help_declares_each_versions_parameters(tmp_path: Path, personality: str, type_required: bool,
                                                import_optional: str) -> None:
    xe = Double(tmp_path).reset(personality)
    out = xe.ok("help", "vdi-create", "vdi-import")
    reqd = out.splitlines()[1]
    assert reqd.startswith("        reqd params     : sr-uuid, name-label")
    assert ("type" in reqd) == type_required
    assert f"        optional params : {import_optional}\n" in out
    if type_required:
        failure(xe("vdi-create", f"sr-uuid={xe.sr()}", "name-label=x", "virtual-size=2MiB"),
                f"Required parameter not found: type\n{USAGE_HINT}\n")
    else:
        assert xe.ok("vdi-param-get", f"uuid={xe.create('x', '2MiB')}", "param-name=type") == "User\n"


def test_help_for_an_unknown_command_and_host_versions(tmp_path: Path) -> None:
    xe = Double(tmp_path).reset("xenserver-6.2")
    assert xe.ok("help", "vdi-export") == "Unknown command 'vdi-export'\n"
    version = xe.ok("host-list", "params=software-version")
    assert "product_brand: XenServer" in version and "product_version: 6.2.0" in version
    modern = Double(tmp_path / "m").reset("xcp-ng-8.3")
    assert "xapi_build: 25.27.0" in modern.ok("host-list", "params=software-version")


def test_formats_per_version(tmp_path: Path) -> None:
    write_raw(tmp_path / "d.raw", MiB, {0: b"x"})
    for personality, qcow2_ok in (("xenserver-7.1", False), ("xcp-ng-8.3", True)):
        xe = Double(tmp_path / personality).reset(personality)
        uuid = xe.create()
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(tmp_path / "d.raw"), str(tmp_path / "d.qcow2")],
                       check=True)
        run = xe("vdi-import", f"uuid={uuid}", "filename=d.qcow2", "format=qcow2", cwd=tmp_path)
        assert (run.code == 0) == qcow2_ok, run


# -- the double's own machinery --------------------------------------------------------------------------------


def test_concurrent_calls_lose_no_update(xe: Double) -> None:
    with ThreadPoolExecutor(8) as pool:
        uuids = list(pool.map(lambda i: xe.create(f"d{i}", "2MiB"), range(16)))
    assert len(set(uuids)) == 16
    assert sorted(v["uuid"] for v in xe.state()["vdis"]) == sorted(uuids)


def test_every_call_is_logged_with_its_exact_argv(xe: Double) -> None:
    xe("vdi-list", "name-label=$(id) `x` \"q\"")
    calls = [json.loads(line) for line in (xe.state_dir / "calls.jsonl").read_text().splitlines()]
    assert calls[-1]["argv"] == ["vdi-list", "name-label=$(id) `x` \"q\""]


def test_unknown_personality_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown personality"):
        xedouble.make_state(personality="xenserver-5.0")


def test_double_uses_only_the_standard_library() -> None:
    """It runs with ``python3 -IS`` on the test host: no site-packages."""
    code = f"import sys; sys.path.insert(0, {str(XE_DOUBLE.parent.parent)!r}); import xedouble"
    proc = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- fault injection (tests of the importer's error handling) --------------------------------------------


def test_an_injected_fault_fails_the_command_as_often_as_asked(xe: Double) -> None:
    text = "Error code: VDI_IO_ERROR\nError parameters: Device I/O errors"
    state = xe.state()
    state["faults"] = {"sr-list": {"text": text, "times": 2}, "pool-list": {"text": "Error: down", "times": None}}
    xedouble.write_state(str(xe.state_dir), state)
    failure(xe("sr-list", "--minimal"), text + "\n")
    failure(xe("sr-list", "--minimal"), text + "\n")
    assert xe.ok("sr-list", "--minimal").strip()  # spent: the command runs again
    for _ in range(3):
        failure(xe("pool-list"), "Error: down\n")  # no count: until configured away
