"""One exception hierarchy for vdc-manage, and the exit code each maps to.

The CLI, the shell, the worker and the dashboard all decide what to tell the operator from
these classes alone, so every refusal the core can make is a subclass of ``Refused`` and
carries a message that is already fit to print after ``ERROR: ``.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    SHELL_STOPPED = 1  # interactive shell with -e stopped at a failing line; `image prepare --check`: not ready
    USAGE = 2  # the command line did not parse
    REFUSED = 100  # the request was refused: unknown id, missing file, bad argument, checksum mismatch ...
    FAILURE = 101  # an unexpected failure: catalog unreachable, remote command broke, a bug
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class VdcError(Exception):
    """Base of every error vdc-manage raises on purpose. Unexpected failure unless a subclass says otherwise."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Refused(VdcError):
    """The operator asked for something that cannot be done as asked; nothing was changed."""

    exit_code = ExitCode.REFUSED


class NotFound(Refused):
    """An id, name or file that does not exist."""


class FileNotFound(NotFound):
    def __init__(self, path: str) -> None:
        super().__init__(f"File not found: {path}")
        self.path = path


class InvalidArgument(Refused):
    """A value of the wrong shape: a bad id, an unsupported arch, an empty name ..."""


class AlreadyExists(Refused):
    """A record with that id or unique name is already in the catalog."""


class ChecksumMismatch(Refused):
    """A checksum the operator gave (or a remote side computed) differs from the data's."""


class InvalidImage(Refused):
    """A disk image whose content is not what it claims: truncated, corrupt or lying header."""


class InUse(Refused):
    """A record that others still depend on (an account with images, a running job ...)."""


class CatalogError(VdcError):
    """The catalog database could not be opened, migrated or reached."""


class RemoteError(VdcError):
    """Base of failures talking to another machine (SSH, xe, backup storage)."""


class Interrupted(VdcError):
    """The operator pressed Ctrl-C; whatever was under way was left resumable."""

    exit_code = ExitCode.INTERRUPTED


def exit_code_for(exc: BaseException) -> ExitCode:
    """The process exit code for an exception that reached the top of a command."""
    if isinstance(exc, VdcError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILURE
