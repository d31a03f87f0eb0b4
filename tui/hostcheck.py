"""The one place the dashboard runs ``host check``: an adapter over the remote layer, imported lazily.

The hosts view calls :func:`check_host` from a worker thread and shows the :class:`HostCheckResult`;
it never sees an exception. Tests inject their own function of the same shape through
``create_app(check_host=...)``.

The remote layer (``vdcmanage.remote``, paramiko: ~140 ms to import) is imported only when a check
runs, so opening the dashboard does not pay for it, and a build without it shows a clear error
instead of failing to start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tui.catalog import call_catalog, error_text

# Where the check lives: host id or name -> HostCheck report (vdcmanage.catalog.hosts).
REMOTE_MODULE = "vdcmanage.catalog.hosts"
REMOTE_FUNCTION = "check_host"

T = TypeVar("T")


@dataclass(frozen=True)
class HostCheckResult:
    """What a check found: ``ok``, the rows of its report (label, value), or why it could not run."""

    ok: bool
    summary: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


CheckHost = Callable[[str], HostCheckResult]


def check_host(host_id: str) -> HostCheckResult:
    """Run ``host check HOST_ID`` through the remote layer; every failure becomes ``error``, never an exception."""
    try:
        remote_check = load_remote_check()
    except ImportError as exc:
        return HostCheckResult(False, error=f"host check is not available in this installation ({exc})")
    try:
        report = call_catalog(remote_check, host_id)
    except Exception as exc:
        return HostCheckResult(False, error=error_text(exc))
    return result_from_report(report)


def load_remote_check() -> Callable[[str], Any]:
    import importlib

    module = importlib.import_module(REMOTE_MODULE)
    function = getattr(module, REMOTE_FUNCTION, None)
    if not callable(function):
        raise ImportError(f"{REMOTE_MODULE} has no {REMOTE_FUNCTION}()")
    from vdcmanage.remote.options import connect_options

    options = connect_options()  # the [ssh] settings of the config file, as `host check` uses them
    return lambda host_id: function(host_id, options)


def result_from_report(report: Any) -> HostCheckResult:
    """Turn the remote layer's report into rows: its JSON form (what ``host check -f json`` prints) is read
    as ``ok`` plus labelled values, lists of records (the SRs) as one row each."""
    data = report_as_dict(report)
    ok = bool(data.get("ok", data.get("reachable", True)))
    rows = [(label, value) for key, item in data.items() if key != "ok" for label, value in rows_for(key, item)]
    error = data.get("error")
    return HostCheckResult(ok, rows, str(error) if error and not ok else None)


def report_as_dict(report: Any) -> dict[str, Any]:
    if isinstance(report, Mapping):
        return dict(report)
    for method in ("to_dict", "as_dict"):
        if callable(getattr(report, method, None)):
            return dict(getattr(report, method)())
    import dataclasses

    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return {"result": str(report)}


def rows_for(key: str, value: Any) -> list[tuple[str, str]]:
    label = key.replace("_", " ")
    if isinstance(value, list):
        return [(f"{label} {i + 1}", one_line(item)) for i, item in enumerate(value)] or [(label, "none")]
    return [(label, one_line(value))]


def one_line(value: Any) -> str:
    if isinstance(value, Mapping):
        return "  ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def run_abandonable(check: CheckHost, host_id: str, cancelled: threading.Event) -> HostCheckResult | None:
    """Run a check in a daemon thread and wait for it, giving up (None) when ``cancelled`` is set.

    A check may wait out an SSH connect timeout (10 s by default); quitting the dashboard must not.
    """
    return abandonable(check, host_id, cancelled, lambda error: HostCheckResult(False, error=error))


def abandonable(
    call: Callable[[str], T], host_id: str, cancelled: threading.Event, failed: Callable[[str], T]
) -> T | None:
    """``call(host_id)`` in a daemon thread, waited for until ``cancelled``; an exception becomes ``failed(text)``."""
    box: list[T] = []

    def run() -> None:
        try:
            box.append(call(host_id))
        except Exception as exc:  # an injected function that raises: still a result, never a crash
            box.append(failed(error_text(exc)))

    thread = threading.Thread(target=run, name=f"host-{host_id}", daemon=True)
    thread.start()
    while thread.is_alive():
        if cancelled.wait(0.1):
            return None
    return box[0] if box else failed("the host did not answer")


@dataclass(frozen=True)
class SrListing:
    """A host's SRs for the import form: (uuid, name label, type, free bytes) each, the SR an import goes to
    when none is chosen (the host record's, else the pool's default), or why they could not be listed."""

    srs: list[tuple[str, str, str, int | None]] = field(default_factory=list)
    default: str | None = None
    default_from: str | None = None
    error: str | None = None


ListSrs = Callable[[str], SrListing]


def list_srs(host_id: str) -> SrListing:
    """The SRs ``host check`` sees on a catalog host (over SSH: call it from a worker thread)."""
    try:
        remote_check = load_remote_check()
        report = call_catalog(remote_check, host_id)
    except Exception as exc:
        return SrListing(error=error_text(exc))
    srs = [(sr.uuid, sr.name_label, sr.type, sr.free) for sr in report.srs]
    error = report.error.message if report.error is not None and not srs else None
    return SrListing(srs, report.chosen_sr, report.chosen_sr_from, error)
