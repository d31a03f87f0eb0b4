"""What can go wrong talking to another machine, as typed exceptions with messages fit for ``ERROR: ``.

Two families:

- :class:`HostUnusable` (exit 100, also a :class:`~vdcmanage.errors.Refused`): the host cannot be used as
  configured (name does not resolve, port closed, timeout, unknown or changed host key, key refused,
  ``xe`` missing, xapi not answering, SR unknown). Nothing was changed on either side; the operator fixes
  the configuration or the host and tries again. ``host check`` exits 100 with one of these.
- :class:`RemoteCommandFailed` and its ``xe`` subclasses (exit 101 unless marked otherwise): a command ran
  on the host and failed. ``xe``'s own text is kept in :attr:`XeError.xe_message`.

This module imports nothing heavy: the CLI, the worker and the dashboard catch these without paramiko.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vdcmanage.errors import ExitCode, Refused, RemoteError

if TYPE_CHECKING:
    from vdcmanage.remote.ssh import CommandResult


class HostUnusable(RemoteError, Refused):
    """The host cannot be used as configured; nothing was changed on it or in the catalog."""

    exit_code = ExitCode.REFUSED


class HostUnresolved(HostUnusable):
    """The host name does not resolve (DNS, /etc/hosts, ~/.ssh/config HostName)."""


class ConnectRefused(HostUnusable):
    """Nothing listens on that address and port (TCP RST)."""


class ConnectTimeout(HostUnusable):
    """No answer within the connect timeout: a firewall dropping packets, a host that is down, a wrong address."""


class ConnectFailed(HostUnusable):
    """Any other failure to set up the SSH session: no route, not an SSH server, no common algorithms."""


class HostKeyUnknown(HostUnusable):
    """The host offered a key that neither known_hosts nor the catalog knows, and no new key was to be accepted."""

    def __init__(self, message: str, fingerprint: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class HostKeyChanged(HostUnusable):
    """The host offered a key different from the one recorded: refused always (a MITM looks exactly like this)."""

    def __init__(self, message: str, offered: str, expected: Sequence[str]) -> None:
        super().__init__(message)
        self.offered = offered
        self.expected = list(expected)


class AuthFailed(HostUnusable):
    """The host refused every key we could offer (or we had none to offer)."""


class XeMissing(HostUnusable):
    """The host has no ``xe`` on the login shell's PATH: not a XenServer/XCP-ng host, or a broken one."""


class XapiUnreachable(HostUnusable):
    """``xe`` runs but cannot reach xapi (the toolstack is down or restarting)."""


class SrUnknown(HostUnusable):
    """The storage repository chosen for imports does not exist on the host."""


class SrUnsuitable(HostUnusable):
    """The chosen SR exists but cannot take imports (not file-based, not mounted, none chosen)."""


class XeUnsupported(HostUnusable):
    """The host's ``xe`` cannot do what was asked (e.g. ``format=vhd`` on XenServer 6.2, which would
    silently import the VHD's bytes as raw data)."""


class ConnectionLost(RemoteError):
    """The SSH session broke while a command was running."""


class RemoteTimeout(RemoteError):
    """A remote command did not finish within its timeout; its channel was closed."""


class RemoteCommandFailed(RemoteError):
    """A remote command exited non-zero. ``result`` has its stdout, stderr and exit status."""

    def __init__(self, message: str, result: CommandResult) -> None:
        super().__init__(message)
        self.result = result

    @property
    def exit_status(self) -> int:
        return self.result.exit_status


class XeError(RemoteCommandFailed):
    """``xe`` exited non-zero. ``xe_message`` is its complete error text (stderr, else stdout)."""

    def __init__(self, message: str, result: CommandResult, xe_message: str) -> None:
        super().__init__(message, result)
        self.xe_message = xe_message


class XeUuidInvalid(XeError):
    """``The uuid you supplied was invalid.``: no object of ``kind`` (VDI, SR, host ...) has that uuid."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, result: CommandResult, xe_message: str, kind: str, uuid: str) -> None:
        super().__init__(message, result, xe_message)
        self.kind = kind
        self.uuid = uuid


class XeRequiredParameter(XeError):
    """``Required parameter not found: <key>``."""

    def __init__(self, message: str, result: CommandResult, xe_message: str, key: str) -> None:
        super().__init__(message, result, xe_message)
        self.key = key


class XeUnknownCommand(XeError):
    """``Unknown command: <name>`` (e.g. ``vdi-export`` on XenServer 6.2)."""

    def __init__(self, message: str, result: CommandResult, xe_message: str, command: str) -> None:
        super().__init__(message, result, xe_message)
        self.command = command


class XeSyntaxError(XeError):
    """``Syntax error: `` (the first argument contained ``=``)."""


class XeAuthFailed(XeError):
    """``Authentication failed`` (only with a remote ``-s`` server)."""


class XeCliError(XeError):
    """``Error: <msg>``: the CLI server refused the arguments."""


class XeUnknownField(XeCliError):
    """``Error: Unknown field '<name>'`` (a *-list filter or param name that is no field)."""

    def __init__(self, message: str, result: CommandResult, xe_message: str, field: str) -> None:
        super().__init__(message, result, xe_message)
        self.field = field


class XeSizeParseError(XeCliError):
    """``Error: Failed to parse field 'virtual-size': ...`` (either generation of the size parser)."""


class XeReadOnlyField(XeCliError):
    """``Error: Field '<f>' is read-only.``"""


class XeApiError(XeError):
    """``Error code: <CODE>`` / ``Error parameters: ...``: xapi raised an API error."""

    def __init__(self, message: str, result: CommandResult, xe_message: str, code: str, params: Sequence[str]) -> None:
        super().__init__(message, result, xe_message)
        self.code = code
        self.params = list(params)


class XeBackendFailure(XeApiError):
    """``SR_BACKEND_FAILURE_<n>``: the storage manager failed; ``reason`` is its text."""

    @property
    def number(self) -> int | None:
        suffix = self.code.rpartition("_")[2]
        return int(suffix) if suffix.isdigit() else None

    @property
    def reason(self) -> str:
        meaningful = [p for p in self.params if p.strip()]
        return meaningful[0] if meaningful else ""


class XeVdiIoError(XeApiError):
    """``VDI_IO_ERROR`` / ``Device I/O errors``: the import or export could not write or read the data
    (the image is larger than the VDI, or the SR ran out of space)."""


class XeInternalError(XeError):
    """``The server failed to handle your request, due to an internal error.`` with ``message: <detail>``."""

    def __init__(self, message: str, result: CommandResult, xe_message: str, detail: str) -> None:
        super().__init__(message, result, xe_message)
        self.detail = detail


class XeLocalFileMissing(XeError):
    """``Operation failed. Error: file '<f>' does not exist``: the file given to vdi-import is not there."""

    exit_code = ExitCode.REFUSED


# -- uploads (vdcmanage.remote.transfer) ------------------------------------------------------------------


class RemotePathMissing(HostUnusable):
    """The directory an upload should go to does not exist on the host (SR not mounted, wrong path)."""


class RemoteToolMissing(HostUnusable):
    """The host lacks a command the upload needs (dd, head, sha1sum, ls, rm)."""


class RemoteWriteFailed(RemoteError):
    """Writing the staged file on the host failed (an I/O error; the message has dd's words)."""


class RemoteNoSpace(RemoteWriteFailed):
    """The host's filesystem is full: free space in the SR (or choose another) and retry the job."""


class UploadVerifyFailed(RemoteError):
    """The host's checksum of a chunk kept differing from ours after re-sending it."""


class SourceChanged(Refused):
    """The local file changed while it was being uploaded: what reached the host is not one version of it."""
