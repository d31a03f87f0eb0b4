"""The text edits of the steps, one by one: exact results, and applying twice changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdcmanage.prepare import cloud, firstboot, sshd, xen
from vdcmanage.prepare.root import GuestRoot


def test_fstab_changes_only_the_device_column_for_a_bare_filesystem() -> None:
    text = (
        "/dev/sda1  /     ext3  defaults  1 1\n"
        "/dev/sdb   /mnt  ext3  defaults  0 0\n"
        "# /dev/sda1 in a comment stays\n"
        "LABEL=/boot /boot ext3 defaults 1 2\n"
        "  /dev/sdc1 /data xfs noatime 0 0\n"
        "proc /proc proc defaults 0 0 # /dev/sda1\n"
        "\n"
    )
    assert xen.xen_fstab(text, "filesystem") == (
        "/dev/xvda  /     ext3  defaults  1 1\n"
        "/dev/xvdb   /mnt  ext3  defaults  0 0\n"
        "# /dev/sda1 in a comment stays\n"
        "LABEL=/boot /boot ext3 defaults 1 2\n"
        "  /dev/xvdc1 /data xfs noatime 0 0\n"
        "proc /proc proc defaults 0 0 # /dev/sda1\n"
        "\n"
    )


def test_fstab_in_a_partitioned_disk_keeps_partition_numbers() -> None:
    assert xen.xen_fstab("/dev/sda2 / ext3 defaults 1 1\n/dev/sda1 /boot ext3 defaults 1 2", "partition") == (
        "/dev/xvda2 / ext3 defaults 1 1\n/dev/xvda1 /boot ext3 defaults 1 2"
    )
    done = xen.xen_fstab("/dev/xvda / ext3 defaults 1 1\n", "filesystem")
    assert xen.xen_fstab(done, "filesystem") == done


def test_console_line_added_once_or_replacing_an_old_co_entry() -> None:
    inittab = "id:3:initdefault:\n1:2345:respawn:/sbin/mingetty tty1"
    once = xen.with_console_line(inittab)
    assert once == inittab + "\n" + xen.CONSOLE_LINE + "\n"
    old = "co:2345:respawn:/sbin/agetty hvc0 9600 vt100\n"
    assert xen.with_console_line(old) == xen.CONSOLE_LINE + "\n"


def test_with_line_appends_once() -> None:
    assert xen.with_line("console\ntty1", "xvc0") == "console\ntty1\nxvc0\n"
    assert xen.with_line("console\n xvc0 \n", "xvc0") == "console\n xvc0 \n"
    assert xen.with_line("", "acpiphp") == "acpiphp\n"


def test_shadow_root_hash_and_last_change_replaced_other_users_untouched() -> None:
    shadow = "root:$1$a$b:14000:0:99999:7:::\nbin:*:14000:0:99999:7:::\n"
    assert xen.shadow_with_root_hash(shadow, "$6$s$h", 20000) == (
        "root:$6$s$h:20000:0:99999:7:::\nbin:*:14000:0:99999:7:::\n"
    )
    assert xen.shadow_with_root_hash("bin:*:1::::::\n", "$6$s$h", 1) is None
    assert xen.root_hash(shadow) == "$1$a$b"


def test_hwaddr_commented_out_other_lines_kept() -> None:
    ifcfg = "DEVICE=eth0\nHWADDR=00:16:3E:00:00:01\nONBOOT=yes\n"
    once = cloud.commented_hwaddr(ifcfg)
    assert once == "DEVICE=eth0\n#HWADDR=00:16:3E:00:00:01\nONBOOT=yes\n"
    assert cloud.commented_hwaddr(once) == once


def test_nameservers_replace_the_stale_ones_other_lines_kept() -> None:
    stale = "# from the build host\nsearch x\nnameserver 10.0.0.1\noptions rotate\nnameserver 10.0.0.2\n"
    assert cloud.with_nameservers(stale, ["8.8.8.8", "192.0.2.53"]) == (
        "# from the build host\nsearch x\nnameserver 8.8.8.8\nnameserver 192.0.2.53\noptions rotate\n"
    )
    assert cloud.with_nameservers("nameserver   8.8.8.8  \n", ["8.8.8.8"]) == "nameserver   8.8.8.8  \n"
    assert cloud.with_nameservers("search x", ["8.8.8.8", "8.8.8.8"]) == "search x\nnameserver 8.8.8.8\n"


def test_metadata_call_goes_before_debians_final_exit_0() -> None:
    debian = "#!/bin/sh -e\n# rc.local\n\nexit 0\n"
    once = firstboot.with_metadata_call(debian)
    assert once == f"#!/bin/sh -e\n# rc.local\n\n{firstboot.METADATA_CALL}\nexit 0\n"
    assert firstboot.with_metadata_call(once) == once
    redhat = "#!/bin/sh\ntouch /var/lock/subsys/local\n"
    assert firstboot.with_metadata_call(redhat) == redhat + firstboot.METADATA_CALL + "\n"


@pytest.fixture
def ssh_root(tmp_path: Path) -> GuestRoot:
    (tmp_path / "etc/ssh/sshd_config.d").mkdir(parents=True)
    return GuestRoot(tmp_path)


def test_sshd_effective_value_is_the_first_one_before_match(ssh_root: GuestRoot) -> None:
    (ssh_root.path / "etc/ssh/sshd_config").write_text(
        "#PermitRootLogin yes\nPermitRootLogin no\nPermitRootLogin yes\nMatch User bob\n  PasswordAuthentication no\n"
    )
    assert sshd.effective_setting(ssh_root, "PermitRootLogin").value == "no"
    assert sshd.effective_setting(ssh_root, "PermitRootLogin").where == "etc/ssh/sshd_config:2"
    assert sshd.effective_setting(ssh_root, "PasswordAuthentication").value is None


def test_sshd_include_comes_first_when_it_is_first(ssh_root: GuestRoot) -> None:
    (ssh_root.path / "etc/ssh/sshd_config").write_text(
        "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n"
    )
    (ssh_root.path / "etc/ssh/sshd_config.d/50-cloud.conf").write_text("PasswordAuthentication no\n")
    setting = sshd.effective_setting(ssh_root, "PasswordAuthentication")
    assert (setting.value, setting.where) == ("no", "etc/ssh/sshd_config.d/50-cloud.conf:1")
    text = (ssh_root.path / "etc/ssh/sshd_config").read_text()
    new = sshd.with_setting(text, "PasswordAuthentication", "yes")
    assert new.splitlines()[0] == "PasswordAuthentication yes"  # before the Include: it wins
    (ssh_root.path / "etc/ssh/sshd_config").write_text(new)
    assert sshd.effective_setting(ssh_root, "PasswordAuthentication").value == "yes"


def test_sshd_set_replaces_the_first_occurrence_or_goes_before_match() -> None:
    assert sshd.with_setting("PermitRootLogin yes\nX 1\n", "PermitRootLogin", "no") == "PermitRootLogin no\nX 1\n"
    assert sshd.with_setting("X 1\nMatch all\n", "PermitRootLogin", "no") == "X 1\nPermitRootLogin no\nMatch all\n"
    assert sshd.with_setting("X 1", "PermitRootLogin", "no") == "X 1\nPermitRootLogin no\n"
    assert sshd.with_setting("permitrootlogin=yes\n", "PermitRootLogin", "no") == "PermitRootLogin no\n"
