"""What an ``xe`` failure during an import means, and what the operator can do about it.

The job log keeps xe's own words verbatim (the codes are what XenServer's documentation and
support know); the job's error message translates them: the step, what xe said, what it means
here, what to do. Codes and texts are those of xe-facts.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass

from vdcmanage.remote.errors import (
    XeApiError,
    XeBackendFailure,
    XeCliError,
    XeError,
    XeInternalError,
    XeUuidInvalid,
    XeVdiIoError,
)

# SR_BACKEND_FAILURE_<n> numbers of the storage manager (xapi-project/sm, XE_SR_ERRORCODES.xml)
BACKEND_TOO_BIG = 79  # VDI Invalid size
BACKEND_NO_SPACE = 44  # There is insufficient space


@dataclass(frozen=True)
class Situation:
    """What the advice can name: the step, the host, the SR, the job."""

    step: str
    host: str
    sr_uuid: str
    job_id: str

    @property
    def retry(self) -> str:
        return f"'vdc-manage job retry {self.job_id}'"


def said(exc: XeError) -> str:
    """xe's words on one line: the code and its parameters, or its first line."""
    if isinstance(exc, XeBackendFailure):
        return f"{exc.code} ({exc.reason})" if exc.reason else exc.code
    if isinstance(exc, XeApiError):
        params = ", ".join(p for p in exc.params if p.strip())
        return f"{exc.code} ({params})" if params else exc.code
    lines = [line for line in exc.xe_message.split("\n") if line.strip() and not line.startswith("For usage run")]
    return " / ".join(lines) or f"exit status {exc.exit_status}"


def meaning_and_remedy(exc: XeError, where: Situation) -> tuple[str, str]:
    sr, retry = where.sr_uuid, where.retry
    free_space = f"free space on SR {sr} or import into another SR (--sr-uuid, 'vdc-manage host modify'), then {retry}"
    if isinstance(exc, XeVdiIoError):
        return ("the image's data could not be written into the VDI: the SR ran out of space, or the image is "
                "larger than the VDI", free_space)
    if isinstance(exc, XeBackendFailure) and exc.number == BACKEND_TOO_BIG:
        return ("the SR cannot make a VDI of this size (a VHD VDI holds at most 2040 GiB)",
                "import a smaller image, or into a host whose SR makes larger (QCOW2) VDIs")
    if isinstance(exc, XeBackendFailure) and exc.number == BACKEND_NO_SPACE:
        return "the SR has no room for the VDI", free_space
    if isinstance(exc, XeBackendFailure):
        return (f"the storage manager of SR {sr} failed",
                f"look at /var/log/SMlog on the host and 'xe sr-scan uuid={sr}', then {retry}")
    if isinstance(exc, XeUuidInvalid):
        return (f"the {exc.kind or 'object'} {exc.uuid} no longer exists on the host (destroyed or forgotten "
                "outside vdc-manage)", f"'vdc-manage job cancel {where.job_id}' then {retry} makes it again")
    if isinstance(exc, XeInternalError):
        return "xapi failed internally", f"look at /var/log/xensource.log on the host, then {retry}"
    if isinstance(exc, XeApiError):
        return "xapi refused the operation", f"fix the cause on the host, then {retry}"
    if isinstance(exc, XeCliError):
        return "xe refused the arguments vdc-manage gave it", "report this with the job log ('vdc-manage job show')"
    return "xe failed", f"fix the cause on the host, then {retry}"


def explain(exc: XeError, where: Situation) -> str:
    """One line: what xe said in which step on which host, what it means, what to do."""
    command = exc.result.argv[1] if len(exc.result.argv) > 1 else "xe"
    meaning, remedy = meaning_and_remedy(exc, where)
    return f"xe {command} on {where.host} said {said(exc)}: {meaning}. What to do: {remedy}"
