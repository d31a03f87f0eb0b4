"""``vdc-manage image prepare`` on root directories, through the real CLI process."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.guests import CENTOS_XEN_KERNEL, centos5_tree, tree_digest, ubuntu1004_tree
from tests.unit.test_prepare_password import libcrypt_crypt
from vdcmanage.prepare.firstboot import METADATA_CALL

HOST_FSTAB = Path("/etc/fstab")


def statuses(out: str) -> dict[str, str]:
    """STEP -> STATUS from the --check table."""
    rows = {}
    for line in out.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("xen-pv", "cloud"):
            rows[parts[0]] = "not applicable" if parts[2] == "not" else parts[2]
    return rows


@pytest.fixture
def centos(tmp_path: Path) -> Path:
    return centos5_tree(tmp_path / "centos5")


@pytest.fixture
def ubuntu(tmp_path: Path) -> Path:
    return ubuntu1004_tree(tmp_path / "ubuntu")


def test_check_and_dry_run_change_nothing_then_apply_then_nothing_more(run_cli, centos: Path, tmp_path: Path) -> None:
    before = tree_digest(centos)
    check = run_cli("image", "prepare", str(centos), "--for", "all", "--check")
    assert check.code == 1, check.err
    assert statuses(check.out) == {
        "grub": "needed", "fstab": "needed", "console": "needed", "initrd": "needed",
        "root-password": "not applicable", "sshd": "not applicable", "nameserver": "not applicable",
        "mac": "needed", "network": "not applicable", "ssh-host-keys": "needed", "machine-id": "not applicable",
        "acpiphp": "needed", "logs": "needed", "metadata": "needed",
    }  # fmt: skip
    assert "Not ready" in check.out

    dry = run_cli("image", "prepare", str(centos), "--for", "all", "--dry-run", "--nameserver", "8.8.8.8")
    assert dry.code == 0, dry.err
    assert "--- a/etc/fstab\n+++ b/etc/fstab\n" in dry.out
    assert "-/dev/sda1 " in dry.out and "+/dev/xvda " in dry.out
    assert f"+\tkernel /boot/vmlinuz-{CENTOS_XEN_KERNEL} ro root=/dev/xvda\n" in dry.out
    assert "would remove etc/ssh/ssh_host_rsa_key\n" in dry.out
    assert "would remove var/log/messages.1.gz\n" in dry.out
    assert "would make etc/udev/rules.d/70-persistent-net.rules a link to /dev/null\n" in dry.out
    assert "+nameserver 8.8.8.8\n" in dry.out
    assert tree_digest(centos) == before

    password_file = tmp_path / "pw"
    password_file.write_text("Tr0ub4dor&3\n")
    password_file.chmod(0o600)
    args = ["image", "prepare", str(centos), "--for", "all", "--nameserver", "8.8.8.8",
            "--root-password-file", str(password_file), "--sshd-permit-root-login", "without-password"]  # fmt: skip
    first = run_cli(*args)
    assert first.code == 1, first.err  # the initrd needs the guest's mkinitrd, which cannot run here
    assert "ACTION NEEDED (initrd)" in first.out and "mkinitrd -f --with=xennet --preload=xenblk" in first.out
    assert "Tr0ub4dor" not in first.out + first.err
    after_first = tree_digest(centos)

    again = run_cli(*args)
    assert again.code == 1
    assert "Prepared: 0 step(s) changed the guest" in again.out
    assert tree_digest(centos) == after_first

    ready = run_cli("image", "prepare", str(centos), "--for", "all", "--skip", "initrd", "--check")
    assert ready.code == 0, ready.out
    assert "Ready" in ready.out

    shadow_root = (centos / "etc/shadow").read_text().splitlines()[0].split(":")
    assert libcrypt_crypt("Tr0ub4dor&3", shadow_root[1]) == shadow_root[1]
    assert (centos / "etc/shadow").stat().st_mode & 0o777 == 0o400
    assert "PermitRootLogin without-password\n" in (centos / "etc/ssh/sshd_config").read_text()


def test_centos_files_after_apply(run_cli, centos: Path) -> None:
    result = run_cli("image", "prepare", str(centos), "--for", "all", "--skip", "initrd")
    assert result.code == 0, result.out + result.err
    assert (centos / "boot/grub/grub.conf").read_text() == (
        "# Written by vdc-manage image prepare --for xen-pv\ndefault=0\ntimeout=5\nhiddenmenu\n"
        f"title CentOS release 5.5 (Final) ({CENTOS_XEN_KERNEL})\n\troot (hd0,0)\n"
        f"\tkernel /boot/vmlinuz-{CENTOS_XEN_KERNEL} ro root=/dev/xvda\n\tinitrd /boot/initrd-{CENTOS_XEN_KERNEL}.img\n"
    )
    fstab = (centos / "etc/fstab").read_text().splitlines()
    assert fstab[0].split() == ["/dev/xvda", "/", "ext3", "defaults", "1", "1"]
    assert fstab[1].split()[0] == "/dev/xvdb"
    inittab = (centos / "etc/inittab").read_text()
    assert inittab.count("co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav\n") == 1
    assert (centos / "etc/securetty").read_text().splitlines().count("xvc0") == 1
    assert "#HWADDR=00:16:3E:5A:12:34" in (centos / "etc/sysconfig/network-scripts/ifcfg-eth0").read_text()
    assert os.readlink(centos / "etc/udev/rules.d/70-persistent-net.rules") == "/dev/null"
    assert not [p for p in (centos / "etc/ssh").iterdir() if p.name.startswith("ssh_host")]
    assert (centos / "etc/modules").read_text() == "acpiphp\n"
    assert os.access(centos / "etc/sysconfig/modules/acpiphp.modules", os.X_OK)
    assert not list((centos / "var/log").rglob("*.gz"))
    assert all(p.stat().st_size == 0 for p in (centos / "var/log").rglob("*") if p.is_file())
    assert os.access(centos / "usr/local/sbin/vdc-metadata", os.X_OK)
    assert METADATA_CALL in (centos / "etc/rc.d/rc.local").read_text()
    assert os.readlink(centos / "etc/rc.local") == "rc.d/rc.local"


def test_ubuntu_cloud_prepare_is_ready_and_idempotent(run_cli, ubuntu: Path) -> None:
    assert run_cli("image", "prepare", str(ubuntu), "--for", "cloud", "--check").code == 1
    result = run_cli("image", "prepare", str(ubuntu), "--for", "cloud")
    assert result.code == 0, result.out + result.err
    after = tree_digest(ubuntu)
    check = run_cli("image", "prepare", str(ubuntu), "--for", "cloud", "--check")
    assert check.code == 0, check.out
    assert run_cli("image", "prepare", str(ubuntu), "--for", "cloud").code == 0
    assert tree_digest(ubuntu) == after
    rc_local = (ubuntu / "etc/rc.local").read_text()
    assert rc_local.endswith(f"{METADATA_CALL}\nexit 0\n")
    assert (ubuntu / "etc/modules").read_text().splitlines()[-1] == "acpiphp"
    assert os.readlink(ubuntu / "etc/udev/rules.d/70-persistent-net.rules") == "/dev/null"
    assert not (ubuntu / "var/log/apt/history.log.1.gz").exists()


def test_ubuntu_xen_pv_with_a_chosen_pv_ops_kernel(run_cli, ubuntu: Path) -> None:
    refused = run_cli("image", "prepare", str(ubuntu), "--for", "xen-pv")
    assert refused.code == 100
    assert "No Xen kernel in the guest" in refused.err and "2.6.32-38-server (complete)" in refused.err
    result = run_cli("image", "prepare", str(ubuntu), "--for", "xen-pv", "--kernel", "2.6.32-38-server")
    assert result.code == 0, result.out + result.err
    assert "initrd: done: /boot/initrd.img-2.6.32-38-server (gzip) has xenblk and xennet" in result.out
    assert "\tinitrd /boot/initrd.img-2.6.32-38-server\n" in (ubuntu / "boot/grub/grub.conf").read_text()


def host_fstab_digest() -> str:
    return hashlib.sha256(HOST_FSTAB.read_bytes()).hexdigest()


def test_guest_fstab_linking_to_slash_etc_fstab_never_touches_the_hosts(run_cli, centos: Path) -> None:
    assert HOST_FSTAB.exists(), "the admin host's /etc/fstab is what this test protects"
    host_before = host_fstab_digest()
    (centos / "etc/fstab").unlink()
    os.symlink("/etc/fstab", centos / "etc/fstab")  # inside the guest: a link to itself
    before = tree_digest(centos)

    check = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--check")
    assert check.code == 1
    assert statuses(check.out)["fstab"] == "needed" and "too many levels of symbolic links" in check.out

    refused = run_cli("image", "prepare", str(centos), "--for", "all")
    assert refused.code == 100
    assert "etc/fstab: too many levels of symbolic links inside the guest" in refused.err
    assert tree_digest(centos) == before  # refused before any change
    assert host_fstab_digest() == host_before


def test_guest_fstab_linking_to_an_absolute_guest_path_is_edited_in_the_guest(run_cli, centos: Path) -> None:
    host_before = host_fstab_digest()
    (centos / "etc/fstab.d").mkdir()
    os.replace(centos / "etc/fstab", centos / "etc/fstab.d/main")
    os.symlink("/etc/fstab.d/main", centos / "etc/fstab")
    result = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "fstab")
    assert result.code == 0, result.err
    assert (centos / "etc/fstab.d/main").read_text().startswith("/dev/xvda ")
    assert os.readlink(centos / "etc/fstab") == "/etc/fstab.d/main"
    assert host_fstab_digest() == host_before


def test_not_a_linux_root_is_refused(run_cli, tmp_path: Path) -> None:
    (tmp_path / "home/user").mkdir(parents=True)
    result = run_cli("image", "prepare", str(tmp_path / "home"), "--for", "cloud", "--check")
    assert result.code == 100
    assert "is not a Linux root directory" in result.err


def test_unknown_target_is_refused(run_cli, tmp_path: Path) -> None:
    assert "File not found" in run_cli("image", "prepare", str(tmp_path / "nope.img"), "--for", "cloud").err
    result = run_cli("image", "prepare", "wmi-nothere", "--for", "cloud")
    assert result.code == 100
    assert "wmi-nothere: no such file or directory, and no image with that id or name" in result.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--for", "xen"], "--for must be one of"),
        (["--for", "all", "--check", "--dry-run"], "do not go together"),
        (["--for", "cloud", "--nameserver", "dns.example"], "wants an IP address"),
        (["--for", "xen-pv", "--sshd-password-authentication", "maybe"], "must be one of yes, no"),
        (["--for", "xen-pv", "--sshd-permit-root-login", "sometimes"], "must be one of yes, no, prohibit-password"),
        (["--for", "cloud", "--step", "grub"], "Step grub is part of --for xen-pv"),
        (["--for", "xen-pv", "--root-password-file", "/nonexistent/pw"], "File not found: /nonexistent/pw"),
        (["--for", "all", "-f", "yaml"], "is not one of"),
    ],
)
def test_bad_options_are_refused_and_change_nothing(run_cli, centos: Path, extra: list[str], message: str) -> None:
    before = tree_digest(centos)
    result = run_cli("image", "prepare", str(centos), *extra)
    assert result.code in (2, 100), result.err
    assert message in result.err
    assert tree_digest(centos) == before


def test_root_password_from_stdin_and_underscore_spellings(run_cli, centos: Path) -> None:
    dry = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "root-password",
                  "--root_password_stdin", "--dry_run", input="from-stdin-pw\n")  # fmt: skip
    assert dry.code == 0, dry.err
    assert "would replace root's password hash in etc/shadow (content not shown)" in dry.out
    assert "$6$" not in dry.out
    result = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "root-password",
                     "--root-password-stdin", input="from-stdin-pw\n")  # fmt: skip
    assert result.code == 0, result.err
    hashed = (centos / "etc/shadow").read_text().split(":")[1]
    assert libcrypt_crypt("from-stdin-pw", hashed) == hashed
    check = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "root-password", "--check",
                    "--root-password-stdin", input="another\n")  # fmt: skip
    assert check.code == 1  # a different password: needed again


def test_check_as_json(run_cli, ubuntu: Path) -> None:
    result = run_cli("image", "prepare", str(ubuntu), "--for", "cloud", "--check", "-f", "json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["ready"] is False and data["layout"] == "a directory"
    assert {s["step"]: s["status"] for s in data["steps"]}["nameserver"] == "not applicable"


def test_several_xen_kernels_need_kernel(run_cli, centos: Path) -> None:
    (centos / "lib/modules/2.6.18-164.el5xen").mkdir()
    refused = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "grub")
    assert refused.code == 100
    assert "Several Xen kernels qualify: 2.6.18-164.el5xen, 2.6.18-194.el5xen; choose one with --kernel" in refused.err
    chosen = run_cli(
        "image", "prepare", str(centos), "--for", "xen-pv", "--step", "grub", "--kernel", "2.6.18-164.el5xen"
    )
    assert chosen.code == 0, chosen.err
    assert "vmlinuz-2.6.18-164.el5xen" in (centos / "boot/grub/grub.conf").read_text()


def test_root_device_option_sets_grub_and_fstab_for_a_partition(run_cli, centos: Path) -> None:
    result = run_cli("image", "prepare", str(centos), "--for", "xen-pv", "--step", "grub", "--step", "fstab",
                     "--root-device", "/dev/xvda1")  # fmt: skip
    assert result.code == 0, result.err
    assert "ro root=/dev/xvda1\n" in (centos / "boot/grub/grub.conf").read_text()
    assert (centos / "etc/fstab").read_text().splitlines()[0].split()[0] == "/dev/xvda1"


def test_a_run_in_progress_on_the_same_target_is_refused(run_cli, centos: Path) -> None:
    import fcntl

    fd = os.open(centos, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another apply run holds it
        result = run_cli("image", "prepare", str(centos), "--for", "cloud")
        assert result.code == 100
        assert "is being prepared by another vdc-manage run" in result.err
    finally:
        os.close(fd)
