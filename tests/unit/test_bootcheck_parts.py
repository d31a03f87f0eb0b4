"""boot-check's parts on their own: the command line for qemu, the console, the metadata server,
the relay qemu runs, the KVM probe kernel, the verdict, and the refusal when qemu is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.guests import write
from vdcmanage.bootcheck import guest, qemu
from vdcmanage.bootcheck.console import ConsoleWatcher
from vdcmanage.bootcheck.guest import BootPlan
from vdcmanage.bootcheck.metadata import MetadataServer, Offer
from vdcmanage.bootcheck.probe import HostKey
from vdcmanage.bootcheck.report import json_report, text_report
from vdcmanage.bootcheck.run import BootCheckResult, Milestone
from vdcmanage.errors import Refused
from vdcmanage.prepare.root import GuestRoot


def test_xen_root_device_becomes_virtio_and_the_console_is_watched() -> None:
    cmdline, rewrites = guest.for_qemu(["ro", "root=/dev/xvda", "console=hvc0"])
    assert cmdline == "ro root=/dev/vda console=hvc0 console=ttyS0,115200 loglevel=7 systemd.show_status=true"
    assert rewrites[0] == "root=/dev/xvda -> root=/dev/vda (qemu's disk is virtio, not Xen's)"
    same, notes = guest.for_qemu(["root=UUID=1234", "ro"])
    assert same.startswith("root=UUID=1234 ro ") and len(notes) == 1
    assert guest.qemu_device("/dev/xvdb3") == "/dev/vdb3"


def test_boot_plan_refuses_an_image_pygrub_could_not_boot(tmp_path: Path) -> None:
    root = GuestRoot(tmp_path)
    write(tmp_path, "etc/fstab", "/dev/xvda / ext4 defaults 0 1\n/dev/xvdb /mnt ext4 defaults 0 0\n")
    with pytest.raises(Refused, match="no boot loader configuration pygrub would read"):
        guest.read_boot_plan(root, tmp_path)
    write(tmp_path, "boot/grub/grub.conf", "default=0\ntitle x\n\tkernel /boot/vmlinuz-6.1 root=/dev/xvda\n")
    with pytest.raises(Refused, match=r"kernel /boot/vmlinuz-6\.1 is not in the image"):
        guest.read_boot_plan(root, tmp_path)
    write(tmp_path, "boot/vmlinuz-6.1", b"kernel")
    write(tmp_path, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf6 x\n")
    work = tmp_path / "work"
    work.mkdir()
    plan = guest.read_boot_plan(root, work)
    assert plan.kernel_file is not None and plan.kernel_file.read_bytes() == b"kernel"
    assert plan.warnings == ["fstab mounts /dev/xvdb on /mnt: no such disk in this check (without nofail the boot "
                             "waits for it)"]  # fmt: skip
    assert list(plan.host_keys.values()) == ["/etc/ssh/ssh_host_ed25519_key.pub"]


def test_fingerprint_is_openssh_s(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    line = (tmp_path / "k.pub").read_text().split()
    expected = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True)
    import base64

    assert guest.fingerprint(base64.b64decode(line[1])) == expected.stdout.split()[1]


def test_console_lines_are_timed_and_matched(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"")
    watcher = ConsoleWatcher(log)
    watcher.start()
    with log.open("ab") as out:
        out.write(b"[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)\r\n")
        out.flush()
        time.sleep(0.3)
        out.write(b"\x1b[0;1;31mFAILED\x1b[0m] [FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.\n")
        out.write(b"debian login: ")  # getty's prompt: no newline until the next console output
        out.flush()
        time.sleep(0.5)
        prompt = watcher.first("login-prompt")
        assert prompt is not None
        out.write(b"[   63.0] vdc-metadata[2]: vdc-metadata: metadata server x unreachable after 5 tries\n")
        out.write(b"partial line without newline")
        out.flush()
    time.sleep(0.3)
    watcher.stop()
    kernel, same_prompt = watcher.first("kernel"), watcher.first("login-prompt")
    assert kernel is not None and same_prompt is not None and same_prompt.at == prompt.at > kernel.at
    gave_up = watcher.first("metadata-gave-up")
    assert gave_up is not None and gave_up.at - prompt.at >= 0.4  # the prompt is timed when it appeared
    assert watcher.first("metadata-gave-up") is not None
    assert watcher.failures() == ["Failed to start ssh.service - OpenBSD Secure Shell server."]
    assert [line.text for line in watcher.metadata_lines()] == ["metadata server x unreachable after 5 tries"]


def test_metadata_server_serves_the_offer_and_records_requests() -> None:
    server = MetadataServer(Offer("vdc-check-abc123", "ecdsa-sha2-nistp256 AAAA vdc-boot-check"))
    try:
        base = f"http://127.0.0.1:{server.port}/latest/meta-data/"
        assert urllib.request.urlopen(base + "local-hostname").read() == b"vdc-check-abc123"
        assert urllib.request.urlopen(base + "public-keys/0/openssh-key").read().endswith(b"vdc-boot-check\n")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "user-data")
        assert [(r.path, r.status) for r in server.snapshot()] == [
            ("/latest/meta-data/local-hostname", 200), ("/latest/meta-data/public-keys/0/openssh-key", 200),
            ("/latest/meta-data/user-data", 404),
        ]  # fmt: skip
        assert server.first("local-hostname") is not None and server.first("instance-id") is None
    finally:
        server.close()


def test_relay_carries_a_request_and_its_answer_over_stdin_and_stdout() -> None:
    """What qemu does for each guest connection: the relay's stdin/stdout are the guest's socket."""
    server = MetadataServer(Offer("vdc-check-relay1", "ssh-ed25519 AAAA x"))
    try:
        request = b"GET /latest/meta-data/local-hostname HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n"
        proc = subprocess.run([sys.executable, "-m", "vdcmanage.bootcheck.relay", str(server.port)],
                              input=request, capture_output=True, timeout=30)  # fmt: skip
        assert proc.returncode == 0
        assert proc.stdout.startswith(b"HTTP/1.0 200") and proc.stdout.endswith(b"\r\n\r\nvdc-check-relay1")
    finally:
        server.close()


def test_probe_kernel_boots_under_tcg_and_exits_qemu() -> None:
    binary = pytest.importorskip("shutil").which(qemu.QEMU)
    if binary is None:
        pytest.skip(f"{qemu.QEMU} is not installed")
    took = qemu.probe_boot(binary, "tcg")
    assert took is not None and took < qemu.PROBE_TIMEOUT_S


def test_missing_qemu_is_a_refusal_naming_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Refused) as caught:
        qemu.find_qemu()
    assert "qemu-system-x86_64 is not installed: boot-check needs the qemu-system-x86 package" in str(caught.value)


def test_qemu_argv_restricts_the_network_to_two_forwards(tmp_path: Path) -> None:
    setup = qemu.QemuSetup(
        "qemu", qemu.Accel("tcg", "asked for"), tmp_path / "o,verlay.qcow2", tmp_path / "k", None, "ro",
        tmp_path / "serial.log", tmp_path / "hvc.log", 2222, 8080,
    )  # fmt: skip
    argv = qemu.qemu_argv(setup)
    net = argv[argv.index("-netdev") + 1]
    assert net.startswith("user,id=net0,net=169.254.0.0/16,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,")
    assert f"guestfwd=tcp:169.254.169.254:80-cmd:{sys.executable} -m vdcmanage.bootcheck.relay 8080" in net
    assert f"file={tmp_path}/o,,verlay.qcow2,format=qcow2" in argv[argv.index("-drive") + 1]
    assert "-initrd" not in argv
    setup.metadata_port = None
    assert "guestfwd" not in qemu.qemu_argv(setup)[argv.index("-netdev") + 1]


def result(**changes: object) -> BootCheckResult:
    plan = BootPlan("boot/grub/grub.cfg", "Debian", "boot/vmlinuz-6.1", None, "root=UUID=x ro",
                    host_keys={"SHA256:old": "/etc/ssh/ssh_host_rsa_key.pub"})  # fmt: skip
    base = BootCheckResult("img", qemu.Accel("tcg", "asked for"), plan, False, "vdc-check-a", "SHA256:k", Path("l"))
    base.host_key = HostKey("ssh-ed25519", "SHA256:new")
    base.milestones = [Milestone(n, 1.0) for n in ("kernel", "root", "network", "metadata", "ssh", "login",
                                                   "hostname", "login-prompt")]  # fmt: skip
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_reachable_needs_ssh_a_new_host_key_login_and_hostname() -> None:
    assert result().reachable
    assert not result(host_key_in_image=True).reachable
    assert not result(host_key=None).reachable
    no_login = result()
    no_login.milestones[5] = Milestone("login", None, "the handed-out key was refused")
    assert not no_login.reachable
    down = result(metadata_down=True)
    down.milestones[5:7] = [Milestone("login", None), Milestone("hostname", None)]
    assert down.reachable  # with no metadata server, answering with its own key is the proof
    report = json_report(result())
    assert report["reachable"] and report["host_key"] == {"type": "ssh-ed25519", "fingerprint": "SHA256:new",
                                                           "in_image": False}  # fmt: skip
    json.dumps(report)
    text = text_report(result())
    assert "SSH port answering" in text and "Result: reachable" in text and "it is qemu, not Xen" in text
