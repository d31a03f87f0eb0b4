"""``image prepare --for xen-pv`` on grub 2 guests and pv-ops kernels (a Debian 12-like root).

pygrub reads grub.cfg before any legacy file: the grub step checks and reports its default
entry, and the kernel chosen with --kernel is remembered by the boot configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.guests import DEBIAN_KERNEL, debian12_tree, write
from vdcmanage.prepare import bootconf
from vdcmanage.prepare.root import GuestRoot


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    return debian12_tree(tmp_path / "debian12")


def test_grub2_root_device_by_name_becomes_xvd_and_legacy_files_are_left_alone(run_cli, tmp_path: Path) -> None:
    debian = debian12_tree(tmp_path / "debian12", grub_root="/dev/sda1")
    write(debian, "boot/grub/menu.lst", "# an old legacy menu pygrub will not read\n")
    check = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--check")
    assert "root=/dev/sda1 (becomes /dev/xvda)" in check.out  # a directory: the AMI layout
    assert "(boot/grub/menu.lst not read: grub.cfg comes first)" in check.out
    result = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--root-device", "/dev/xvda1")
    assert result.code == 0, result.out + result.err
    cfg = (debian / "boot/grub/grub.cfg").read_text()
    assert f"linux\t/boot/vmlinuz-{DEBIAN_KERNEL} root=/dev/xvda1 ro  quiet console=hvc0" in cfg
    assert (debian / "boot/grub/menu.lst").read_text() == "# an old legacy menu pygrub will not read\n"


def test_grub2_default_entry_that_is_not_the_chosen_kernel_is_an_action(run_cli, debian: Path) -> None:
    other = "6.1.0-30-amd64"
    for path in (f"boot/vmlinuz-{other}", f"boot/initrd.img-{other}"):
        write(debian, path, (debian / path.replace(other, DEBIAN_KERNEL)).read_bytes())
    write(debian, f"usr/lib/modules/{other}/modules.dep", "kernel/drivers/block/xen-blkfront.ko:\n")
    result = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--kernel", other)
    assert result.code == 1
    assert f"the default entry boots {DEBIAN_KERNEL}, not --kernel {other}" in result.out
    # without --kernel, the kernel is the one grub.cfg boots: no "several kernels" refusal
    assert run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--check").code == 0


def test_kernel_chosen_once_is_remembered_by_the_grub_conf_prepare_wrote(run_cli, debian: Path) -> None:
    """A guest without grub 2 and two pv-ops kernels: --kernel at apply, then --check agrees without it."""
    (debian / "boot/grub/grub.cfg").unlink()
    other = "6.1.0-30-amd64"
    for path in (f"boot/vmlinuz-{other}", f"boot/initrd.img-{other}"):
        write(debian, path, (debian / path.replace(other, DEBIAN_KERNEL)).read_bytes())
    write(debian, f"usr/lib/modules/{other}/modules.dep", "kernel/drivers/block/xen-blkfront.ko:\n")
    refused = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--check")
    assert "Several Xen kernels qualify" in refused.out
    applied = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--kernel", other)
    assert applied.code == 0, applied.out + applied.err
    conf = (debian / "boot/grub/grub.conf").read_text()
    assert f"\tkernel /boot/vmlinuz-{other} ro root=/dev/xvda console=hvc0\n" in conf
    check = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--check", "-f", "json")
    assert check.code == 0, check.out
    grub = next(step for step in json.loads(check.out)["steps"] if step["step"] == "grub")
    assert grub["detail"] == f"boot/grub/grub.conf boots {other} with console=hvc0"


def test_grub2_parsing_defaults_by_number_title_id_and_saved_entry() -> None:
    cfg = bootconf.parse_grub2
    text = (
        "set default=\"1>1\"\n"
        "menuentry 'A' --id a { linux /vmlinuz-1 root=/dev/xvda1 ro\n initrd /initrd-1 }\n"  # one-line: ignored
        "menuentry 'First' $menuentry_id_option 'first' {\n linux (hd0,msdos1)/boot/vmlinuz-1 root=/dev/xvda1\n}\n"
        "submenu 'More' {\n menuentry 'Second' {\n  linux /boot/vmlinuz-2 root=/dev/xvda1\n }\n"
        " menuentry 'Third' $menuentry_id_option 'third' {\n  linux16 /boot/vmlinuz-3 a=b\n"
        "  initrd16 /boot/ucode.img /boot/initrd-3\n }\n}\n"
    )
    groups, spec = cfg(text)
    assert spec == "1>1"
    third = bootconf.default_entry(groups, spec)
    assert third is not None and third.kernel == "/boot/vmlinuz-3" and third.initrd == "/boot/initrd-3"
    assert third.version() == "3" and third.arg("a") == "b"
    first = bootconf.default_entry(groups, "first")
    assert first is not None and first.kernel == "/boot/vmlinuz-1" and first.arg("root") == "/dev/xvda1"
    assert bootconf.default_entry(groups, "More>Second") is not None
    assert bootconf.default_entry(groups, "7") is None
    _, saved = cfg('set default="${saved_entry}"\n', "# GRUB Environment Block\nsaved_entry=third\n####\n")
    assert saved == "third"


def test_boot_config_is_read_in_pygrubs_order(tmp_path: Path) -> None:
    write(tmp_path, "boot/grub/grub.conf", "default=0\ntitle Old\n\tkernel /boot/vmlinuz-2.6.18 ro root=/dev/xvda\n")
    legacy = bootconf.read_boot_config(GuestRoot(tmp_path))
    assert legacy is not None and legacy.kind == "legacy" and legacy.default is not None
    assert legacy.default.kernel == "/boot/vmlinuz-2.6.18" and not legacy.written_by_us
    write(tmp_path, "boot/grub/grub.cfg", "menuentry 'New' {\n\tlinux /boot/vmlinuz-6.1 root=UUID=x\n}\n")
    grub2 = bootconf.read_boot_config(GuestRoot(tmp_path))
    assert grub2 is not None and grub2.kind == "grub2" and grub2.path == "boot/grub/grub.cfg"


def test_grub2_root_on_a_build_hosts_loop_device_is_an_action(run_cli, tmp_path: Path) -> None:
    """update-grub in a chroot without /dev/disk/by-uuid writes root=/dev/loopNpM: nothing boots from that."""
    debian = debian12_tree(tmp_path / "debian12", grub_root="/dev/loop0p1")
    check = run_cli("image", "prepare", str(debian), "--for", "xen-pv", "--check")
    assert check.code == 1
    assert "ACTION NEEDED (grub): root=/dev/loop0p1 names a device of the machine the image was built on" in check.out
