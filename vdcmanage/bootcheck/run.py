"""The boot check: read the image, boot it on an overlay, watch, probe, report; always clean up.

Times are seconds since qemu started, measured on this machine. The check ends as soon as what
it proves is seen (the login and the host name; with the metadata server down, the SSH port and
the metadata script giving up), when qemu exits, or at the time limit. qemu is killed at the
end, whatever happened: the overlay is thrown away with it, and the image never changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vdcmanage.bootcheck import probe
from vdcmanage.bootcheck.console import ConsoleWatcher, without_kernel_time
from vdcmanage.bootcheck.guest import BootPlan, read_boot_plan
from vdcmanage.bootcheck.metadata import MetadataServer, Offer, fresh_hostname
from vdcmanage.bootcheck.qemu import Accel, QemuSetup, choose_accel, find_qemu, make_overlay, qemu_argv
from vdcmanage.errors import Refused, VdcError
from vdcmanage.prepare.target import Target, check_raw_file, locked

if TYPE_CHECKING:
    import paramiko

POLL_S = 1.0
STOP_WAIT_S = 10.0
AFTER_GAVE_UP_S = 2.0

NOT_PROVEN = (
    "Xen itself: here the disk is virtio (vda) and the NIC virtio-net; under Xen they are xvda and enX0, "
    "driven by xen-blkfront and xen-netfront, which this boot does not load ('image prepare --check' "
    "reports whether the initrd has them)",
    "the image's own boot loader (grub in the MBR, an HVM boot): the kernel is handed to qemu the way "
    "pygrub hands it to Xen, from vdc-manage's reading of the same file",
    "the cloud's own metadata server, DHCP and DNS: a stand-in answers at 169.254.169.254, and the "
    "instance reaches nothing else",
)


@dataclass
class Options:
    timeout: float = 300.0
    metadata_down: bool = False
    accel: str = "auto"
    log: Path | None = None


@dataclass
class Milestone:
    name: str
    seconds: float | None
    detail: str = ""


@dataclass
class BootCheckResult:
    target: str
    accel: Accel
    plan: BootPlan
    metadata_down: bool
    hostname: str  # handed out (or would have been)
    key_fingerprint: str
    serial_log: Path
    milestones: list[Milestone] = field(default_factory=list)
    host_key: probe.HostKey | None = None
    host_key_in_image: bool = False
    hostname_seen: str | None = None
    findings: list[str] = field(default_factory=list)
    requests: list[tuple[float, str, int]] = field(default_factory=list)
    elapsed: float = 0.0
    qemu_exit: int | None = None

    def seen(self, name: str) -> bool:
        return any(m.name == name and m.seconds is not None for m in self.milestones)

    @property
    def reachable(self) -> bool:
        if not self.seen("ssh") or self.host_key is None or self.host_key_in_image:
            return False
        return self.metadata_down or (self.seen("login") and self.seen("hostname"))


def default_log(target: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdc-manage" / "boot-check"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return base / f"{target.name}-{stamp}.log"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vdc-boot-check-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def read_image(target: Target, into: Path) -> BootPlan:
    """The boot plan, read from the image mounted read-only (root needed, as for prepare)."""
    from vdcmanage.prepare.inuse import refuse_if_in_use
    from vdcmanage.prepare.mounts import mounted_image_root
    from vdcmanage.prepare.root import GuestRoot

    check_raw_file(target.path)
    if os.geteuid() != 0:
        raise Refused(f"Reading the kernel from {target.path} needs root (loop devices and mounts): run as root")
    refuse_if_in_use(target.path, changing=False)
    with mounted_image_root(target.path, writable=False) as mounted:
        return read_boot_plan(GuestRoot(mounted.path), into)


def boot_check(target: Target, options: Options) -> BootCheckResult:
    if target.kind != "file":
        raise Refused(f"{target.path} is a directory: boot-check boots a raw image file (or a registered image)")
    qemu = find_qemu()
    accel = choose_accel(qemu, options.accel)
    with workdir() as work, locked(target.path, exclusive=False):
        plan = read_image(target, work)
        overlay = work / "overlay.qcow2"
        make_overlay(target.path, overlay)
        key = probe.new_key()
        offer = Offer(fresh_hostname(), probe.public_line(key))
        serial_log = options.log or default_log(target.path)
        serial_log.parent.mkdir(parents=True, exist_ok=True)
        serial_log.write_bytes(b"")
        server = None if options.metadata_down else MetadataServer(offer)
        from vdcmanage.bootcheck.guest import fingerprint

        result = BootCheckResult(
            target.describe(), accel, plan, options.metadata_down, offer.hostname,
            fingerprint(key.asbytes()), serial_log,
        )  # fmt: skip
        setup = QemuSetup(
            qemu, accel, overlay, plan.kernel_file or work / "kernel", plan.initrd_file, plan.qemu_cmdline,
            serial_log, work / "hvc0.log", free_port(), server.port if server else None,
        )  # fmt: skip
        try:
            Session(setup, result, server, key, options, work).run()
        finally:
            if server is not None:
                result.requests = [(r.at, r.path, r.status) for r in server.snapshot()]
                server.close()
    return result


class Session:
    """One boot: qemu running, the console watched, the instance probed until done or the time limit."""

    def __init__(
        self, setup: QemuSetup, result: BootCheckResult, server: MetadataServer | None, key: paramiko.PKey,
        options: Options, work: Path,
    ) -> None:  # fmt: skip
        self.setup = setup
        self.result = result
        self.server = server
        self.key = key
        self.options = options
        self.work = work
        self.console = ConsoleWatcher(setup.serial_log)
        self.started = 0.0
        self.ssh_at: float | None = None
        self.login_at: float | None = None
        self.login_error = ""

    def run(self) -> None:
        stderr_path = self.work / "qemu.err"
        with stderr_path.open("wb") as stderr:
            self.started = time.monotonic()
            proc = subprocess.Popen(qemu_argv(self.setup), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        self.console.start()
        try:
            self.watch(proc)
        finally:
            stop(proc)
            self.console.stop()
            self.result.elapsed = time.monotonic() - self.started
            self.result.qemu_exit = proc.returncode
        errors = stderr_path.read_text(errors="replace").strip()
        if proc.returncode and proc.returncode > 0 and self.console.first("kernel") is None:
            last = errors.splitlines()[-1] if errors else "no message"
            raise VdcError(f"qemu failed before the kernel started (exit {proc.returncode}): {last}")
        self.conclude(errors)

    def watch(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = self.started + self.options.timeout
        while time.monotonic() < deadline and proc.poll() is None:
            self.probe_ssh()
            if self.finished():
                return
            time.sleep(POLL_S)

    def probe_ssh(self) -> None:
        port = self.setup.ssh_port
        if self.ssh_at is None:
            if probe.ssh_banner(port) is None:
                return
            self.ssh_at = time.monotonic()
            self.result.host_key = probe.host_key(port)
        if self.server is not None and self.login_at is None:
            try:
                self.result.hostname_seen = probe.login_hostname(port, self.key)
                self.login_at = time.monotonic()
            except probe.LoginRefused as exc:
                self.login_error = f"the handed-out key was refused ({exc})"
            except Exception as exc:  # any SSH failure is reported, and the check goes on
                self.login_error = f"{type(exc).__name__}: {exc}"

    def finished(self) -> bool:
        if self.ssh_at is None or self.result.host_key is None:
            return False
        if self.server is not None:
            return self.login_at is not None
        gave_up = self.console.first("metadata-gave-up")
        return gave_up is not None and time.monotonic() > gave_up.at + AFTER_GAVE_UP_S

    def since(self, at: float | None) -> float | None:
        return None if at is None else round(at - self.started, 1)

    def conclude(self, qemu_errors: str) -> None:
        result = self.result
        line = self.console.first
        kernel, root, login_prompt = line("kernel"), line("root"), line("login-prompt")
        network_at = min(
            (at for at in (getattr(line("network"), "at", None), self.first_request()) if at is not None),
            default=None,
        )
        fetched = self.server.first("public-keys/0/openssh-key") if self.server else None
        key = result.host_key
        result.host_key_in_image = key is not None and key.fingerprint in result.plan.host_keys
        hostname_ok = result.hostname_seen == result.hostname
        result.milestones = [
            Milestone("kernel", self.since(getattr(kernel, "at", None)), "Linux version on the serial console"),
            Milestone("root", self.since(getattr(root, "at", None)),
                      without_kernel_time(getattr(root, "text", ""))[:100]),
            Milestone("network", self.since(network_at), "network-online.target, or the first metadata request"),
            Milestone("metadata", self.since(fetched), self.metadata_detail()),
            Milestone("ssh", self.since(self.ssh_at), self.host_key_detail()),
            Milestone("login", self.since(self.login_at), "root, with the handed-out key" if self.login_at
                      else self.login_error or "not tried"),
            Milestone("hostname", self.since(self.login_at) if hostname_ok else None,
                      f"hostname is {result.hostname_seen!r}" if result.hostname_seen is not None else ""),
            Milestone("login-prompt", self.since(getattr(login_prompt, "at", None)), "getty on the serial console"),
        ]  # fmt: skip
        self.add_findings(qemu_errors)

    def first_request(self) -> float | None:
        requests = self.server.snapshot() if self.server else []
        return requests[0].at if requests else None

    def metadata_detail(self) -> str:
        if self.server is None:
            gave_up = self.console.first("metadata-gave-up")
            when = f"; the script gave up at {self.since(gave_up.at)} s" if gave_up else "; the script's end not seen"
            return f"server down (--metadata-down){when}"
        return f"host name {self.result.hostname} and the public key, served to the instance"

    def host_key_detail(self) -> str:
        key = self.result.host_key
        if key is None:
            return "no host key could be read" if self.ssh_at else ""
        where = "the image's own" if self.result.host_key_in_image else "made at first boot, not in the image"
        return f"host key {key.key_type} {key.fingerprint}: {where}"

    def add_findings(self, qemu_errors: str) -> None:
        result = self.result
        result.findings += [f"FAILED unit: {failure}" for failure in self.console.failures()]
        panic = self.console.first("panic")
        if panic is not None:
            result.findings.append(f"kernel panic at {self.since(panic.at)} s: {panic.text.strip()[:160]}")
        result.findings += result.plan.warnings
        if result.host_key_in_image:
            result.findings.append("the instance presents a host key stored in the image: every instance shares it")
        if result.hostname_seen is not None and result.hostname_seen != result.hostname:
            result.findings.append(f"the host name is {result.hostname_seen!r}, not the one handed out")
        gave_up = self.console.first("metadata-gave-up")
        if result.metadata_down and gave_up and self.ssh_at:
            waited = self.ssh_at > gave_up.at
            verb = "only after" if waited else "before"
            result.findings.append(
                f"SSH answered {verb} the metadata script gave up ({self.since(self.ssh_at)} s, "
                f"{self.since(gave_up.at)} s): {'something waits for it' if waited else 'the boot did not wait for it'}"
            )
        if result.qemu_exit not in (None, 0, -9, -15) and qemu_errors.strip():
            result.findings.append(f"qemu exited with {result.qemu_exit}: {qemu_errors.strip().splitlines()[-1]}")
        if result.elapsed >= self.options.timeout and not result.reachable:
            result.findings.append(f"stopped at the time limit ({self.options.timeout:g} s, --timeout)")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

