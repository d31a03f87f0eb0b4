"""Options shared by several commands."""

from __future__ import annotations

import typer

from vdcmanage.cli.output import FORMATS

FormatOption = typer.Option("table", "--format", "-f", help="Output format: table (for people) or json (for scripts).")


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(FORMATS)}", param_hint="'--format'")
    return value


YesOption = typer.Option(
    False, "--yes", "-y", help="Hash a huge sparse file without asking (hashing reads every hole as zeros)."
)


def confirm_long_hash(path: str, yes: bool) -> None:
    """Warn before hashing a sparse file that takes minutes or hours; ask on a terminal, and without
    one refuse unless --yes was given (a script must not stall for hours by surprise)."""
    import os
    import sys

    from vdcmanage.cli.failures import warn
    from vdcmanage.errors import Refused
    from vdcmanage.images.source import long_hash

    cost = long_hash(os.path.expanduser(path))
    if cost is None:
        return
    warn(cost.message())
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise Refused(f"{cost.message()}; pass --yes to hash it anyway")
    try:
        answer = input("Hash it anyway? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise Refused("Not confirmed: nothing was done")
