"""qemu for the boot check: found or refused by name, KVM or TCG, the argv, the overlay.

The network is qemu's user networking (slirp) on 169.254.0.0/16, ``restrict=on``: the guest
reaches nothing but the two forwards given (its SSH port from 127.0.0.1, and 169.254.169.254:80,
relayed per connection to the stand-in metadata server); DHCP still answers. With the metadata
server "down", there is no forward at all: the guest's requests go unanswered, as they would
with a metadata server that is not there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.errors import Refused, VdcError

QEMU = "qemu-system-x86_64"
QEMU_PACKAGES = "the qemu-system-x86 package (Debian, Ubuntu: apt-get install qemu-system-x86; RHEL: qemu-kvm)"
KVM_DEVICE = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
METADATA_ADDRESS = "169.254.169.254"
GUEST_NETWORK = "169.254.0.0/16"
MEMORY_MIB = 1024
PROBE_TIMEOUT_S = 5.0
PROBE_FAST_S = 2.0
PROBE_EXIT = 3  # isa-debug-exit: (1 << 1) | 1


def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise Refused(f"{QEMU} is not installed: boot-check needs {QEMU_PACKAGES}")
    if shutil.which("qemu-img") is None:
        raise Refused("qemu-img is not installed: boot-check needs the qemu-utils package for its overlay")
    return path


def kvm_problem(qemu: str) -> str | None:
    """Why KVM cannot be used here, or None when /dev/kvm runs a guest as KVM should: a tiny kernel
    that only signals qemu to exit must be through SeaBIOS and qemu's Linux loader within a second
    or two. Nested KVM without hardware help (some cloud VMs) opens fine and then runs a real boot
    far slower than TCG: only running something tells."""
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"{KVM_DEVICE}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return f"{KVM_DEVICE} does not answer: {exc.strerror}"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return f"{KVM_DEVICE} speaks KVM API {version}, not {KVM_API_VERSION}"
    took = probe_boot(qemu, "kvm")
    if took is None:
        return f"a probe boot under KVM did not finish in {PROBE_TIMEOUT_S:g} s"
    if took > PROBE_FAST_S:
        return f"KVM is slow here: a probe boot took {took:.1f} s under KVM (nested virtualisation?)"
    return None


def probe_kernel() -> bytes:
    """A bzImage that does nothing but ``out 0xf4, 1`` from its real-mode entry: qemu's
    isa-debug-exit device then ends qemu with status 3."""
    image = bytearray(1536)
    image[0x1F1] = 1  # one setup sector
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    image[0x200:0x202] = b"\xeb\x7e"  # jmp to 0x280, past the header
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x020C)  # boot protocol 2.12
    image[0x211] = 0x01  # loaded high
    struct.pack_into("<I", image, 0x214, 0x100000)
    struct.pack_into("<I", image, 0x1F4, 512 // 16)
    struct.pack_into("<I", image, 0x238, 255)
    image[0x280:0x285] = b"\xb0\x01\xe6\xf4\xf4"  # mov al, 1; out 0xf4, al; hlt
    return bytes(image)


def probe_boot(qemu: str, accel: str) -> float | None:
    """Seconds the probe kernel took to boot and exit under ``accel``; None if it did not."""
    with tempfile.TemporaryDirectory(prefix="vdc-kvm-probe-") as work:
        kernel = Path(work) / "probe"
        kernel.write_bytes(probe_kernel())
        argv = [
            qemu, "-nodefaults", "-no-user-config", "-display", "none", "-machine", f"pc,accel={accel}",
            "-m", "64", "-kernel", str(kernel), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]  # fmt: skip
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - started if proc.returncode == PROBE_EXIT else None


@dataclass(frozen=True)
class Accel:
    name: str  # kvm | tcg
    reason: str

    def describe(self) -> str:
        return f"{self.name.upper()} ({self.reason})"


def choose_accel(qemu: str, requested: str) -> Accel:
    """auto: KVM when /dev/kvm is usable (and fast), TCG (emulation, several times slower) otherwise."""
    if requested == "tcg":
        return Accel("tcg", "asked for")
    if requested == "kvm":
        return Accel("kvm", "asked for")
    problem = kvm_problem(qemu)
    return Accel("tcg", f"no KVM: {problem}") if problem else Accel("kvm", f"{KVM_DEVICE} usable")


def make_overlay(image: Path, overlay: Path) -> None:
    """A qcow2 whose backing file is the image, opened read-only: every write of the guest lands here."""
    proc = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image), str(overlay)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise VdcError(f"Cannot make the overlay for {image}: {(proc.stderr or proc.stdout).strip()}")


def relay_command(port: int) -> str:
    """What qemu runs for each guest connection to the metadata address (no commas: qemu's option syntax)."""
    command = f"{sys.executable} -m vdcmanage.bootcheck.relay {port}"
    if "," in command or " " in sys.executable:
        raise Refused(f"The Python running vdc-manage ({sys.executable}) has a comma or space in its path")
    return command


@dataclass
class QemuSetup:
    qemu: str
    accel: Accel
    overlay: Path
    kernel: Path
    initrd: Path | None
    cmdline: str
    serial_log: Path
    hvc_log: Path
    ssh_port: int
    metadata_port: int | None  # None: the metadata server is "down"


def netdev(setup: QemuSetup) -> str:
    options = [f"user,id=net0,net={GUEST_NETWORK},restrict=on", f"hostfwd=tcp:127.0.0.1:{setup.ssh_port}-:22"]
    if setup.metadata_port is not None:
        options.append(f"guestfwd=tcp:{METADATA_ADDRESS}:80-cmd:{relay_command(setup.metadata_port)}")
    return ",".join(options)


def escaped(path: Path) -> str:
    """A path inside a qemu option value: commas are doubled, as qemu's option syntax wants."""
    return str(path).replace(",", ",,")


def qemu_argv(setup: QemuSetup) -> list[str]:
    kvm = setup.accel.name == "kvm"
    argv = [
        setup.qemu, "-name", "vdc-boot-check", "-nodefaults", "-no-user-config", "-display", "none",
        "-machine", f"pc,accel={setup.accel.name}", "-cpu", "host" if kvm else "max",
        "-m", str(MEMORY_MIB), "-smp", "2" if kvm else "1", "-no-reboot",
        "-kernel", str(setup.kernel), "-append", setup.cmdline,
        "-drive", f"file={escaped(setup.overlay)},format=qcow2,if=virtio,cache=unsafe",
        "-netdev", netdev(setup), "-device", "virtio-net-pci,netdev=net0",
        "-chardev", f"file,id=serial0,path={escaped(setup.serial_log)}", "-serial", "chardev:serial0",
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=hvc0,path={escaped(setup.hvc_log)}", "-device", "virtconsole,chardev=hvc0",
        "-monitor", "none",
    ]  # fmt: skip
    if setup.initrd is not None:
        argv[argv.index("-append"):argv.index("-append")] = ["-initrd", str(setup.initrd)]
    return argv
