"""``host check``: connect to a host and find out, step by step, whether imports can go through it.

:func:`check_target` never raises for a problem of the host: it returns a :class:`HostCheck` whose
``error`` is the first failure (a :class:`~vdcmanage.remote.errors.HostUnusable`, exit 100) and whose
other fields say how far it got. The CLI prints it and then raises ``error``; the dashboard shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vdcmanage.errors import VdcError
from vdcmanage.remote.errors import HostKeyChanged, HostKeyUnknown, SrUnknown, SrUnsuitable
from vdcmanage.remote.ssh import Connection, ConnectOptions, SshTarget
from vdcmanage.remote.xe import SR_MOUNT_ROOT, SrInfo, Xe

STAGES = ("connect", "host key", "login", "xe", "SR")  # failed_stage is one of these


@dataclass
class SrReport:
    uuid: str
    name_label: str
    type: str
    content_type: str
    physical_size: int | None
    free: int | None
    file_based: bool
    mount_path: str | None
    mounted: bool | None  # None: not a file SR, nothing to look for

    @classmethod
    def from_info(cls, sr: SrInfo, mounted: bool | None) -> SrReport:
        return cls(sr.uuid, sr.name_label, sr.type, sr.content_type, sr.physical_size, sr.free, sr.file_based,
                   sr.mount_path, mounted)


@dataclass
class HostCheck:
    """What ``host check`` found. ``error`` is None when the host is ready for imports."""

    target: str  # "host xen1 (hn-...)"
    endpoint: str | None = None  # "root@10.0.0.5 port 22"
    reachable: bool = False
    connect_seconds: float | None = None
    host_key: str | None = None  # "ED25519 SHA256:..."
    host_key_source: str | None = None  # "/root/.ssh/known_hosts:3", "the catalog", "accepted as new"
    authenticated: bool = False
    xe_ok: bool = False
    product: str | None = None
    xapi_version: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    host_names: list[str] = field(default_factory=list)
    srs: list[SrReport] = field(default_factory=list)
    chosen_sr: str | None = None
    chosen_sr_from: str | None = None  # SrChoice.source
    chosen_sr_ready: bool = False
    failed_stage: str | None = None
    error: VdcError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def chosen(self) -> SrReport | None:
        return next((sr for sr in self.srs if sr.uuid == self.chosen_sr), None)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("error", "srs")}
        data["srs"] = [sr.__dict__ for sr in self.srs]
        data["ok"] = self.ok
        data["error"] = None if self.error is None else self.error.message
        data["error_kind"] = None if self.error is None else type(self.error).__name__
        return data


def check_target(target: SshTarget, sr_uuid: str | None, options: ConnectOptions | None = None) -> HostCheck:
    """Run the checks in order; stop at the first that fails (the report says which and why)."""
    report = HostCheck(target=target.label or target.address)
    stage = "connect"
    with Connection(target, options) as conn:
        try:
            started = time.monotonic()
            conn.open(authenticate=False)
            stage = "login"
            record_connection(conn, report, time.monotonic() - started)
            conn.open()
            report.authenticated = True
            stage = "xe"
            xe = Xe(conn, timeout=conn.options.connect_timeout * 3)
            probe_xe(xe, report)
            stage = "SR"
            survey_srs(conn, xe, report, sr_uuid)
        except (HostKeyUnknown, HostKeyChanged) as exc:
            report.reachable = True
            report.host_key = exc.fingerprint if isinstance(exc, HostKeyUnknown) else exc.offered
            report.failed_stage, report.error = "host key", exc
        except VdcError as exc:  # HostUnusable above all; anything else is still reported, not lost
            report.failed_stage, report.error = stage, exc
        finally:
            report.endpoint = conn.endpoint.describe() if conn.endpoint else None
    return report


def record_connection(conn: Connection, report: HostCheck, seconds: float) -> None:
    assert conn.host_key is not None
    report.reachable = True
    report.connect_seconds = round(seconds, 3)
    report.host_key = conn.host_key.key.label
    report.host_key_source = "accepted as new" if conn.host_key.accepted_new else conn.host_key.source


def probe_xe(xe: Xe, report: HostCheck) -> None:
    caps = xe.capabilities()
    report.xe_ok = True
    report.product = caps.product
    report.capabilities = caps.as_dict()
    report.xapi_version = ".".join(map(str, caps.xapi_version)) if caps.xapi_version else None
    report.host_names = [h.name_label for h in caps.hosts]


@dataclass(frozen=True)
class SrChoice:
    """The SR imports go to on a host, and where that choice came from."""

    uuid: str | None
    source: str  # "--sr-uuid" | "host record" | "pool default SR"


def choose_sr(xe: Xe, *, requested: str | None = None, host_record: str | None = None) -> SrChoice:
    """The one rule ``host check`` and ``image import xen`` share: the SR asked for on the command line,
    else the host record's, else the pool's default SR, read now because the pool's can change."""
    if requested:
        return SrChoice(requested, "--sr-uuid")
    if host_record:
        return SrChoice(host_record, "host record")
    return SrChoice(xe.default_sr(), "pool default SR")


def survey_srs(conn: Connection, xe: Xe, report: HostCheck, sr_uuid: str | None) -> None:
    report.srs = sr_reports(conn, xe)
    choice = choose_sr(xe, host_record=sr_uuid)
    report.chosen_sr, report.chosen_sr_from = choice.uuid, choice.source
    usable_sr(choice, report.srs, conn.where)
    report.chosen_sr_ready = True


def sr_reports(conn: Connection, xe: Xe) -> list[SrReport]:
    """Every SR of the pool, with whether its mount directory is there (one ``ls`` for all)."""
    srs = xe.srs()
    mounted = existing_dirs(conn, [sr.mount_path for sr in srs if sr.mount_path])
    return [SrReport.from_info(sr, (sr.mount_path in mounted) if sr.mount_path else None) for sr in srs]


def ready_sr(conn: Connection, xe: Xe, choice: SrChoice) -> SrReport:
    """The chosen SR, checked as ``host check`` checks it; raises SrUnknown or SrUnsuitable."""
    return usable_sr(choice, sr_reports(conn, xe), conn.where)


def usable_sr(choice: SrChoice, srs: list[SrReport], where: str) -> SrReport:
    chosen = next((sr for sr in srs if sr.uuid == choice.uuid), None)
    if choice.uuid is None:
        raise SrUnsuitable(
            f"No SR chosen for imports on {where}: the host record has no --sr-uuid and the pool has no default SR"
        )
    if chosen is None:
        known = ", ".join(f"{sr.uuid} ({sr.name_label}, {sr.type})" for sr in srs) or "none"
        raise SrUnknown(f"SR {choice.uuid} ({choice.source}) does not exist on {where}; its SRs: {known}")
    if not chosen.file_based:
        raise SrUnsuitable(
            f"SR {chosen.uuid} ({chosen.name_label}) on {where} is of type {chosen.type}: imports need a "
            f"file-based SR (ext or nfs) whose VDIs are files under {SR_MOUNT_ROOT}"
        )
    if not chosen.mounted:
        raise SrUnsuitable(
            f"SR {chosen.uuid} ({chosen.name_label}) on {where} is not mounted at {chosen.mount_path} "
            f"(is its PBD plugged? xe pbd-list sr-uuid={chosen.uuid})"
        )
    return chosen


def existing_dirs(conn: Connection, paths: list[str]) -> set[str]:
    """Which of ``paths`` are directories on the host (one command for all)."""
    if not paths:
        return set()
    result = conn.run(["ls", "-1d", "--", *paths], check=False, timeout=conn.options.connect_timeout * 3)
    return {line for line in result.stdout_text.splitlines() if line in paths}
