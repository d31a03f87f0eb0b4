"""Choosing steps, refusing options no chosen step uses, recognising non-raw images, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vdcmanage.errors import InvalidArgument
from vdcmanage.prepare.registry import select_steps, step_names
from vdcmanage.prepare.steps import Options
from vdcmanage.prepare.target import non_raw_format

XEN = ["grub", "fstab", "console", "initrd", "root-password", "sshd"]
CLOUD = ["nameserver", "mac", "network", "ssh-host-keys", "machine-id", "acpiphp", "logs", "metadata"]


def names(choice: str, only: list[str] | None = None, skip: list[str] | None = None, **options: object) -> list[str]:
    return [s.name for s in select_steps(choice, only or [], skip or [], Options(**options))]  # type: ignore[arg-type]


def test_purposes_and_order() -> None:
    assert step_names() == XEN + CLOUD
    assert names("xen-pv") == XEN
    assert names("cloud") == CLOUD
    assert names("all") == XEN + CLOUD
    assert names("all", only=["logs", "grub"]) == ["grub", "logs"]
    assert names("cloud", skip=["logs", "metadata"]) == CLOUD[:6]


@pytest.mark.parametrize(
    ("choice", "only", "skip", "options", "message"),
    [
        ("xen", [], [], {}, "--for must be one of xen-pv, cloud, all"),
        ("all", ["grubb"], [], {}, "Unknown step 'grubb'"),
        ("cloud", [], ["bogus"], {}, "Unknown step 'bogus'"),
        ("xen-pv", ["logs"], [], {}, "Step logs is part of --for cloud"),
        ("cloud", [], CLOUD, {}, "No step left"),
        ("xen-pv", [], [], {"nameservers": ["8.8.8.8"]}, "--nameserver is for step nameserver"),
        ("all", [], ["root-password"], {"root_password": "pw"}, "--root-password-file"),
        ("cloud", [], [], {"rebuild_initrd": True}, "--rebuild-initrd is for step initrd"),
        ("cloud", [], [], {"kernel": "2.6"}, "--kernel is for step grub or initrd"),
        ("all", ["nameserver"], [], {}, "--step nameserver needs --nameserver"),
    ],
)
def test_bad_selections_are_refused(
    choice: str, only: list[str], skip: list[str], options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        names(choice, only, skip, **options)


@pytest.mark.parametrize(("fmt", "expected"), [("qcow2", "qcow2"), ("vpc", "vhd"), ("vmdk", "vmdk"), ("vdi", "vdi")])
def test_non_raw_formats_recognised_from_content(tmp_path: Path, fmt: str, expected: str) -> None:
    image = tmp_path / "disk.img"  # the name says nothing: the content decides
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(image), "16M"], check=True)
    assert non_raw_format(image) == expected


def test_fixed_vhd_with_its_footer_at_the_end_is_recognised(tmp_path: Path) -> None:
    image = tmp_path / "fixed.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(image), "16M"], check=True)
    assert non_raw_format(image) == "vhd"


def test_raw_is_raw(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image), "16M"], check=True)
    assert non_raw_format(image) is None


def test_prepare_core_imports_no_cli_or_heavy_module() -> None:
    modules = [
        "vdcmanage.prepare.run",
        "vdcmanage.prepare.report",
        "vdcmanage.prepare.registry",
        "vdcmanage.prepare.mounts",
        "vdcmanage.prepare.target",
        "vdcmanage.prepare.xen",
        "vdcmanage.prepare.cloud",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "from vdcmanage.prepare.registry import all_steps; all_steps()\n"
        + "bad = [m for m in ('typer', 'click', 'rich', 'textual', 'paramiko') if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
