"""What ``image boot-check`` prints: the milestones with their times, findings, and the limits."""

from __future__ import annotations

from typing import Any

from vdcmanage.bootcheck.run import NOT_PROVEN, BootCheckResult
from vdcmanage.textsafe import visible

LABELS = {
    "kernel": "kernel started",
    "root": "root mounted",
    "network": "network up",
    "metadata": "metadata fetched",
    "ssh": "SSH port answering",
    "login": "login with the handed-out key",
    "hostname": "hostname applied",
    "login-prompt": "console login prompt",
}


def seconds(value: float | None) -> str:
    return "not seen" if value is None else f"{value:.1f} s"


def text_report(result: BootCheckResult) -> str:
    """The report; what the guest image or its console wrote (names, command line, console
    findings) is passed through ``visible``, so it stays on its line and drives no terminal."""
    plan = result.plan
    lines = [
        f"Boot check of {visible(result.target)} under qemu, {result.accel.describe()}",
        visible(f"Booted as pygrub would: {plan.config}, entry {plan.entry!r}: /{plan.kernel}")
        + (visible(f" with /{plan.initrd}") if plan.initrd else ""),
        f"  command line: {visible(plan.cmdline)}",
        *(f"  for qemu: {visible(rewrite)}" for rewrite in plan.rewrites),
    ]
    if result.metadata_down:
        lines.append("Metadata server: down (--metadata-down): nothing answers at 169.254.169.254")
    else:
        lines.append(
            f"Metadata server (stand-in at 169.254.169.254): host name {visible(result.hostname)}, "
            f"key {result.key_fingerprint}"
        )
    width = max(len(label) for label in LABELS.values())
    lines.append(f"  {'MILESTONE'.ljust(width)}  {'TIME':>9}  DETAIL")
    for milestone in result.milestones:
        label = LABELS[milestone.name].ljust(width)
        lines.append(f"  {label}  {seconds(milestone.seconds):>9}  {visible(milestone.detail)}".rstrip())
    lines += [f"Finding: {visible(finding)}" for finding in result.findings]
    lines.append(f"Serial console log: {visible(result.serial_log)}")
    lines.append("Not proven by this check (it is qemu, not Xen): " + "; ".join(NOT_PROVEN))
    verdict = "reachable" if result.reachable else "NOT reachable"
    lines.append(f"Result: {verdict} ({result.elapsed:.1f} s in all)")
    return "\n".join(lines) + "\n"


def json_report(result: BootCheckResult) -> dict[str, Any]:
    plan = result.plan
    key = result.host_key
    return {
        "target": result.target,
        "accel": result.accel.name,
        "accel_reason": result.accel.reason,
        "boot": {
            "config": plan.config,
            "entry": plan.entry,
            "kernel": f"/{plan.kernel}",
            "initrd": f"/{plan.initrd}" if plan.initrd else None,
            "cmdline": plan.cmdline,
            "qemu_cmdline": plan.qemu_cmdline,
            "rewrites": plan.rewrites,
        },
        "metadata": {
            "down": result.metadata_down,
            "hostname": result.hostname,
            "key_fingerprint": result.key_fingerprint,
            "requests": [{"path": path, "status": status} for _at, path, status in result.requests],
        },
        "milestones": [{"name": m.name, "seconds": m.seconds, "detail": m.detail} for m in result.milestones],
        "host_key": {"type": key.key_type, "fingerprint": key.fingerprint, "in_image": result.host_key_in_image}
        if key
        else None,
        "image_host_keys": sorted(plan.host_keys),
        "hostname_seen": result.hostname_seen,
        "findings": result.findings,
        "serial_log": str(result.serial_log),
        "reachable": result.reachable,
        "elapsed": round(result.elapsed, 1),
        "not_proven": list(NOT_PROVEN),
    }
