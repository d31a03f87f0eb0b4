"""How a failure reaches the operator: one ``ERROR:`` line on stderr and a documented exit code.

No typer here: the fast path (cli/entry.py) reports through this module too.
"""

from __future__ import annotations

import os
import sys

from vdcmanage.errors import ExitCode, exit_code_for
from vdcmanage.textsafe import visible


def report(message: str) -> None:
    """The one line every failure prints on stderr. Messages quote names, paths and remote stderr:
    their control characters are spelled out, so one failure is always exactly one line."""
    sys.stderr.write(f"ERROR: {visible(message)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    """A one-line warning on stderr; the work goes on."""
    sys.stderr.write(f"WARNING: {visible(message)}\n")
    sys.stderr.flush()


def notice(message: str) -> None:
    """A one-line note on stderr (worker events, what a command is doing), escaped like errors."""
    sys.stderr.write(f"{visible(message)}\n")
    sys.stderr.flush()


def report_unexpected(exc: Exception) -> int:
    import peewee

    if isinstance(exc, peewee.DatabaseError):
        from vdcmanage.catalog.db import first_line

        report(f"Catalog error: {first_line(exc)}")
    else:
        report(f"Unexpected failure: {type(exc).__name__}: {exc} (VDC_MANAGE_DEBUG=1 shows the traceback)")
    if os.environ.get("VDC_MANAGE_DEBUG"):
        import traceback

        traceback.print_exc()
    return exit_code_for(exc)


def quiet_broken_pipe() -> None:
    """A reader such as ``head`` went away: stop writing without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def finish_output(code: int) -> int:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
        return ExitCode.OK if code == ExitCode.OK else code
    return code
