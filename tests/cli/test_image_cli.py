"""`vdc-manage image ...` as real processes, on real disk images."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.cli.images import converted, raw_image
from tests.cli.test_account_cli import ok
from tests.imagefactory import qemu_virtual_size


def digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def add(run_cli, path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("image", "add", "local", str(path), "--account-id", "a-shpoolxx", *extra)


def test_add_local_prints_only_the_new_id(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = raw_image(tmp_path / "ubuntu10.04-amd64.raw")
    out = ok(add(run_cli, image, "--arch", "x86_64", "--description", "Ubuntu 10.04 64bit"))
    assert out.strip().startswith("wmi-") and len(out.strip()) == 12 and out.count("\n") == 1
    record = json.loads(ok(run_cli("image", "show", out.strip(), "-f", "json")))
    md5, sha256 = digests(image)
    assert record == {
        **record,
        "account_id": "a-shpoolxx",
        "boot_type": "local",
        "source_uri": image.as_uri(),
        "arch": "x86_64",
        "file_format": "raw",
        "size": image.stat().st_size,
        "virtual_size": image.stat().st_size,
        "md5": md5,
        "sha256": sha256,
        "state": "available",
        "is_public": False,
        "description": "Ubuntu 10.04 64bit",
        "display_name": "ubuntu10.04-amd64.raw",
        "features": {"virtio": False, "acpi": True},
    }


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("qcow2", ()), ("vpc", ("-o", "subformat=fixed")), ("vpc", ()), ("vmdk", ()), ("vdi", ())],
)
def test_format_comes_from_the_content_not_the_name(run_cli, tmp_path: Path, fmt: str, options: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    raw = raw_image(tmp_path / "src.raw", size=3 * 1024 * 1024)
    image = converted(raw, fmt, tmp_path / "misleading-name.raw", *options)
    image_id = ok(add(run_cli, image)).strip()
    record = json.loads(ok(run_cli("image", "show", image_id, "-f", "json")))
    assert record["file_format"] == {"vpc": "vhd"}.get(fmt, fmt)
    # what qemu says (a dynamic VHD made without force_size is rounded to its CHS geometry)
    assert record["virtual_size"] == qemu_virtual_size(image, record["file_format"]) >= 3 * 1024 * 1024
    assert record["size"] == image.stat().st_size


def test_short_aliases_and_underscore_options(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = raw_image(tmp_path / "a.raw")
    md5, _ = digests(image)
    image_id = ok(
        run_cli(
            "image", "add", "local", str(image), "-a", "a-shpoolxx", "-r", "x86", "-u", "wmi-lucid0", "-m", md5,
            "-d", "Lucid", "-p", "-s", "init",
        )
    ).strip()
    assert image_id == "wmi-lucid0"
    record = json.loads(ok(run_cli("image", "show", "wmi-lucid0", "-f", "json")))
    assert (record["arch"], record["is_public"], record["state"], record["description"]) == ("x86", True, "init", "Lucid")
    second = ok(
        run_cli("image", "add", "local", str(image), "--account_id", "a-shpoolxx", "--display_name", "second")
    ).strip()
    assert json.loads(ok(run_cli("image", "show", second, "-f", "json")))["display_name"] == "second"


def test_show_table_and_list_filters(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    account = ok(run_cli("account", "add")).strip()
    a = ok(add(run_cli, raw_image(tmp_path / "a.raw"))).strip()
    qcow = converted(raw_image(tmp_path / "b.raw"), "qcow2", tmp_path / "b.qcow2")
    b = ok(run_cli("image", "add", "local", str(qcow), "--account-id", account, "--arch", "x86")).strip()
    table = ok(run_cli("image", "show")).splitlines()
    assert table[0].split("  ")[0] == "UUID"
    assert [h.strip() for h in table[0].split("  ") if h] == [
        "UUID", "Account ID", "Name", "Boot Type", "Arch", "Format", "Size", "State",
    ]
    assert {line.split()[0] for line in table[1:]} == {a, b}

    def listed(*filters: str) -> set[str]:
        return {i["id"] for i in json.loads(ok(run_cli("image", "list", "-f", "json", *filters)))}

    assert listed("--account-id", account) == {b}
    assert listed("--arch", "x86_64") == {a}
    assert listed("--file-format", "qcow2") == {b}
    assert listed("--state", "available") == {a, b}
    ok(run_cli("image", "del", a))
    assert listed() == {b}
    assert a not in ok(run_cli("image", "show"))
    assert listed("--deleted") == {a, b}
    assert listed("--state", "deleted") == {a}
    assert json.loads(ok(run_cli("image", "show", a, "-f", "json")))["state"] == "deleted"


def test_modify_and_features(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image_id = ok(add(run_cli, raw_image(tmp_path / "a.raw"))).strip()
    ok(run_cli("image", "modify", image_id, "--description", "new", "--is-public", "--display-name", "centos"))
    record = json.loads(ok(run_cli("image", "show", "centos", "-f", "json")))
    assert (record["description"], record["is_public"]) == ("new", True)
    ok(run_cli("image", "modify", image_id, "--no-is-public", "--description", ""))
    record = json.loads(ok(run_cli("image", "show", image_id, "-f", "json")))
    assert (record["description"], record["is_public"]) == (None, False)
    ok(run_cli("image", "features", image_id, "--virtio", "--no-acpi"))
    assert json.loads(ok(run_cli("image", "show", image_id, "-f", "json")))["features"] == {"virtio": True, "acpi": False}
    ok(run_cli("image", "features", image_id, "--no-virtio"))  # clearing works (the original could not)
    assert ok(run_cli("image", "features", image_id)) == "virtio: false\nacpi: false\n"


def catalog_snapshot(run_cli) -> str:  # type: ignore[no-untyped-def]
    return ok(run_cli("image", "list", "--deleted", "-f", "json")) + ok(run_cli("account", "list", "--deleted", "-f", "json"))


def refused(run_cli, *args: str, code: int = 100) -> str:  # type: ignore[no-untyped-def]
    before = catalog_snapshot(run_cli)
    result = run_cli(*args)
    assert result.code == code, (result.code, result.out, result.err)
    assert result.out == ""
    assert result.err.startswith("ERROR: ") and result.err.count("\n") == 1, result.err
    assert catalog_snapshot(run_cli) == before
    return result.err.removeprefix("ERROR: ").rstrip("\n")


def test_missing_file_directory_and_empty_path(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.raw"
    assert refused(run_cli, "image", "add", "local", str(missing), "-a", "a-shpoolxx") == f"File not found: {missing}"
    assert refused(run_cli, "image", "add", "local", str(tmp_path), "-a", "a-shpoolxx") == f"{tmp_path} is a directory, not a regular file"
    assert "must not be empty" in refused(run_cli, "image", "add", "local", "", "-a", "a-shpoolxx")
    home_relative = refused(run_cli, "image", "add", "local", "~/nothing.raw", "-a", "a-shpoolxx")
    assert home_relative == f"File not found: {os.environ['HOME']}/nothing.raw"


def test_bad_arguments_are_refused_and_change_nothing(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = raw_image(tmp_path / "a.raw")
    path = str(image)
    assert refused(run_cli, "image", "add", "local", path, "-a", "a-nobody") == "Unknown account id: a-nobody"
    assert "Unsupported arch 'arm64'" in refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "--arch", "arm64")
    assert "Invalid image id 'WMI-X'" in refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-u", "WMI-X")
    assert "Unsupported state" in refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-s", "bogus")
    wrong_md5 = refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-m", "0" * 32)
    assert "0" * 32 in wrong_md5 and digests(image)[0] in wrong_md5
    contradiction = refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "--file-format", "qcow2")
    assert "which is raw" in contradiction
    too_long = refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-d", "x" * 5000)
    assert too_long == "Description is too long (5000 characters; at most 4096)"
    ok(add(run_cli, image, "-u", "wmi-taken"))
    assert refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-u", "wmi-taken") == (
        "Image wmi-taken already exists"
    )
    assert refused(run_cli, "image", "del", "wmi-nope") == "Unknown image id: wmi-nope"
    assert refused(run_cli, "image", "show", "wmi-nope") == "Unknown image id: wmi-nope"
    assert refused(run_cli, "image", "modify", "wmi-taken") == "Nothing to modify: give at least one option"
    assert "Unsupported arch" in refused(run_cli, "image", "modify", "wmi-taken", "--arch", "sparc")
    ok(run_cli("image", "del", "wmi-taken"))
    assert refused(run_cli, "image", "del", "wmi-taken") == "Image wmi-taken is deleted"


def test_command_line_errors_exit_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    missing_account = refused(run_cli, "image", "add", "local", "/x", code=2)
    assert "Missing option '--account-id'" in missing_account and "vdc-manage image add local --help" in missing_account
    assert "No such command 'frobnicate'" in refused(run_cli, "image", "frobnicate", code=2)
    assert "'yaml' is not one of" in refused(run_cli, "image", "show", "-f", "yaml", code=2)


@pytest.mark.parametrize(
    "name",
    [
        "with space.raw",
        'x"; touch pwned; echo ".raw',
        "$(id).raw",
        "`id`.raw",
        "new\nline.raw",
        "ünïcødé.raw",
    ],
)
def test_hostile_file_names_are_registered_literally(run_cli, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    image = raw_image(tmp_path / name)
    image_id = ok(add(run_cli, image)).strip()
    record = json.loads(ok(run_cli("image", "show", image_id, "-f", "json")))
    assert record["source_uri"] == image.as_uri()
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_non_utf8_path(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw_name = os.fsencode(tmp_path) + b"/caf\xe9.raw"
    with open(raw_name, "wb") as f:
        f.write(b"x" * 4096)
    path = os.fsdecode(raw_name)
    image_id = ok(add(run_cli, Path(path))).strip()
    record = json.loads(ok(run_cli("image", "show", image_id, "-f", "json")))
    assert record["source_uri"].endswith("/caf%E9.raw")
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/gon\xe9.raw")
    assert refused(run_cli, "image", "add", "local", missing, "-a", "a-shpoolxx").endswith("/gon\\xe9.raw")
    bad_text = refused(run_cli, "image", "add", "local", path, "-a", "a-shpoolxx", "-d", os.fsdecode(b"caf\xe9"))
    assert bad_text == "Description is not valid UTF-8 text"


def test_unreadable_file(tmp_path: Path, sqlite_url: str) -> None:
    """A file the user may not read. Tests run as root, who reads anything, so the command runs with
    the capabilities that let root bypass file permissions dropped (setpriv), as an ordinary user would."""
    import subprocess
    import sys

    image = raw_image(tmp_path / "secret.raw")
    image.chmod(0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    proc = subprocess.run(
        [*drop, sys.executable, "-m", "vdcmanage", "image", "add", "local", str(image), "-a", "a-shpoolxx"],
        capture_output=True, text=True, env={**os.environ, "VDC_MANAGE_DB": sqlite_url},
    )
    assert (proc.returncode, proc.stdout) == (100, "")
    assert proc.stderr == f"ERROR: Cannot read {image}: permission denied\n"
