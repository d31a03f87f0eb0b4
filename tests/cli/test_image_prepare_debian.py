"""``image prepare`` on a Debian 12-like root (systemd, grub 2, zstd initrd), through the real CLI.

The tree is synthetic (tests/guests.py: debian12_tree); the real Debian 12 guest, built with
debootstrap and booted, is in tests/integration/test_boot_check.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.test_image_prepare_dir import statuses
from tests.guests import DEBIAN_KERNEL, DEBIAN_ROOT_UUID, debian12_tree, tree_digest, write
from vdcmanage.prepare.firstboot import METADATA_CALL

UNITS = Path(__file__).resolve().parents[2] / "share/metadata"


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    return debian12_tree(tmp_path / "debian12")


def wants(root: Path, target: str, unit: str) -> str:
    return os.readlink(root / f"etc/systemd/system/{target}.target.wants/{unit}")


def test_check_reports_what_a_systemd_guest_needs(run_cli, debian: Path) -> None:
    check = run_cli("image", "prepare", str(debian), "--for", "all", "--check")
    assert check.code == 1, check.err
    assert statuses(check.out) == {
        "grub": "needed", "fstab": "done", "console": "done", "initrd": "done",
        "root-password": "not applicable", "sshd": "not applicable", "nameserver": "not applicable",
        "mac": "not applicable", "network": "needed", "ssh-host-keys": "needed", "machine-id": "needed",
        "acpiphp": "needed", "logs": "needed", "metadata": "needed",
    }  # fmt: skip
    grub = next(line for line in check.out.splitlines() if line.startswith("grub "))
    assert (
        "boot/grub/grub.cfg (pygrub reads it first): default entry 'Debian GNU/Linux' boots "
        f"{DEBIAN_KERNEL}, root=UUID={DEBIAN_ROOT_UUID}, needs console=hvc0" in grub
    )
    initrd = next(line for line in check.out.splitlines() if line.startswith("initrd "))
    assert f"/boot/initrd.img-{DEBIAN_KERNEL} (cpio+zstd) has xenblk and xennet" in initrd
    assert "systemd starts a getty on hvc0 by itself" in check.out
    assert "vdc-ssh-host-keys.service (before sshd: ssh-keygen -A of OpenSSH 9.2: rsa, ecdsa, ed25519)" in check.out


def test_apply_makes_first_boot_work_and_a_second_run_changes_nothing(run_cli, debian: Path) -> None:
    result = run_cli("image", "prepare", str(debian), "--for", "all")
    assert result.code == 0, result.out + result.err
    assert "ready" in result.out.splitlines()[-1]
    # host keys: gone, and made again before sshd by a unit enabled in multi-user.target
    assert not list((debian / "etc/ssh").glob("ssh_host_*"))
    unit = (debian / "etc/systemd/system/vdc-ssh-host-keys.service").read_text()
    assert unit == (UNITS / "vdc-ssh-host-keys.service").read_text()
    assert "Before=ssh.service sshd.service" in unit and "ExecStart=/usr/local/sbin/vdc-metadata --host-keys" in unit
    assert wants(debian, "multi-user", "vdc-ssh-host-keys.service") == "/etc/systemd/system/vdc-ssh-host-keys.service"
    # the metadata script: a unit after network-online.target, not rc.local (getty would wait for it)
    metadata_unit = (debian / "etc/systemd/system/vdc-metadata.service").read_text()
    assert "After=network-online.target" in metadata_unit and "Type=exec" in metadata_unit
    assert "VDC_METADATA_DEADLINE=20" in metadata_unit
    assert wants(debian, "multi-user", "vdc-metadata.service") == "/etc/systemd/system/vdc-metadata.service"
    assert not (debian / "etc/rc.local").exists()
    assert os.access(debian / "usr/local/sbin/vdc-metadata", os.X_OK)
    # network: networkd for the first Ethernet NIC, whatever its name, with its wait-online
    network = (debian / "etc/systemd/network/90-vdc-first-ethernet.network").read_text()
    assert "Name=en* eth*" in network and "DHCP=yes" in network
    lib = "/usr/lib/systemd/system"
    assert wants(debian, "multi-user", "systemd-networkd.service") == f"{lib}/systemd-networkd.service"
    assert wants(debian, "network-online", "systemd-networkd-wait-online.service").startswith(lib)
    assert wants(debian, "sockets", "systemd-networkd.socket") == f"{lib}/systemd-networkd.socket"
    assert os.readlink(debian / "etc/systemd/system/dbus-org.freedesktop.network1.service").endswith("networkd.service")
    # machine-id and random seed
    assert (debian / "etc/machine-id").read_bytes() == b""
    assert not (debian / "var/lib/dbus/machine-id").exists()
    assert not (debian / "var/lib/systemd/random-seed").exists()
    # logs: compressed and rotated removed (not truncated into broken archives), the journal removed
    left = sorted(str(p.relative_to(debian / "var/log")) for p in (debian / "var/log").rglob("*") if p.is_file())
    assert left == ["dpkg.log", "wtmp"]
    assert (debian / "var/log/dpkg.log").stat().st_size == 0
    # grub 2: console=hvc0 on every linux line and in etc/default/grub; no legacy grub.conf written
    cfg = (debian / "boot/grub/grub.cfg").read_text()
    linux_lines = [line for line in cfg.splitlines() if line.strip().startswith("linux")]
    assert len(linux_lines) == 3 and all(line.endswith(" console=hvc0") for line in linux_lines)
    assert 'GRUB_CMDLINE_LINUX="console=hvc0"' in (debian / "etc/default/grub").read_text()
    assert not (debian / "boot/grub/grub.conf").exists()

    before = tree_digest(debian)
    again = run_cli("image", "prepare", str(debian), "--for", "all")
    assert again.code == 0 and "Prepared: 0 step(s) changed the guest; ready" in again.out, again.out
    assert tree_digest(debian) == before
    assert run_cli("image", "prepare", str(debian), "--for", "all", "--check").code == 0


def test_a_guest_without_http_client_is_not_reported_ready(run_cli, tmp_path: Path) -> None:
    debian = debian12_tree(tmp_path / "debian12", http_client=False)
    check = run_cli("image", "prepare", str(debian), "--for", "cloud", "--check")
    metadata = next(line for line in check.out.splitlines() if line.startswith("metadata "))
    assert "needed" in metadata and "the guest has no HTTP client" in metadata
    result = run_cli("image", "prepare", str(debian), "--for", "cloud")
    assert result.code == 1  # everything it could do is done; the operator must install one
    assert "ACTION NEEDED (metadata): install curl or wget in the guest" in result.out
    write(debian, "usr/bin/busybox", b"\x7fELF", 0o755)  # busybox wget counts
    assert run_cli("image", "prepare", str(debian), "--for", "cloud", "--check").code == 0


def test_resolv_conf_linked_into_run_is_refused_by_dry_run_and_apply_alike(run_cli, debian: Path) -> None:
    (debian / "etc/resolv.conf").unlink()
    os.symlink("../run/systemd/resolve/stub-resolv.conf", debian / "etc/resolv.conf")
    before = tree_digest(debian)
    check = run_cli("image", "prepare", str(debian), "--for", "cloud", "--nameserver", "192.0.2.53", "--check")
    assert check.code == 1 and statuses(check.out)["nameserver"] == "needed"
    for mode in (["--dry-run"], []):
        result = run_cli("image", "prepare", str(debian), "--for", "cloud", "--nameserver", "192.0.2.53", *mode)
        assert result.code == 100, (mode, result.out)
        assert result.err.startswith("ERROR: etc/resolv.conf is a link to ../run/systemd/resolve/stub-resolv.conf")
        assert "it is not overwritten" in result.err
    assert tree_digest(debian) == before


def test_nameserver_replaces_the_stale_lines(run_cli, debian: Path) -> None:
    result = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "nameserver",
                     "--nameserver", "192.0.2.53", "--nameserver", "192.0.2.54")  # fmt: skip
    assert result.code == 0, result.err
    assert (debian / "etc/resolv.conf").read_text() == (
        "domain build.example\nsearch build.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
    )


def test_an_earlier_rc_local_call_moves_to_the_unit(run_cli, debian: Path) -> None:
    write(debian, "etc/rc.local", f"#!/bin/sh -e\ntouch /run/x\n{METADATA_CALL}\nexit 0\n", 0o755)
    result = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "metadata")
    assert result.code == 0, result.out + result.err
    assert (debian / "etc/rc.local").read_text() == "#!/bin/sh -e\ntouch /run/x\nexit 0\n"


def test_distribution_keygen_is_used_where_it_exists(run_cli, debian: Path) -> None:
    write(debian, "usr/lib/systemd/system/sshd-keygen@.service", "[Unit]\nBefore=sshd.service\n")
    result = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "ssh-host-keys")
    assert result.code == 0
    check = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "ssh-host-keys", "--check")
    assert "the distribution's sshd-keygen@.service (before sshd, OpenSSH 9.2) makes new ones" in check.out
    assert not (debian / "etc/systemd/system/vdc-ssh-host-keys.service").exists()


def test_ifupdown_dhcp_nic_becomes_the_first_ethernet_whatever_its_name(run_cli, debian: Path) -> None:
    write(debian, "usr/sbin/ifup", b"\x7fELF", 0o755)
    write(debian, "etc/network/interfaces",
          "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
          "allow-hotplug ens3\niface ens3 inet dhcp\n\thostname build\n")  # fmt: skip
    result = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "network")
    assert result.code == 0, result.out
    assert (debian / "etc/network/interfaces").read_text() == (
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
        "# vdc-manage image prepare: the first Ethernet NIC by DHCP, whatever the kernel names it\n"
        "# (enX0 under Xen with predictable names, eth0 without them, ens3 or enp0s3 under KVM)\n"
        "allow-hotplug /en*/1=vdc-first-ethernet /eth*/1=vdc-first-ethernet\n"
        "iface vdc-first-ethernet inet dhcp\n"
    )
    assert not (debian / "etc/systemd/network").exists()
    write(debian, "etc/network/interfaces", "auto eth0\niface eth0 inet static\n\taddress 10.0.0.5/24\n")
    static = run_cli("image", "prepare", str(debian), "--for", "cloud", "--step", "network")
    assert static.code == 1 and "ifupdown configures eth0 (inet static)" in static.out
    assert "ACTION NEEDED (network): adapt etc/network/interfaces in the guest" in static.out
