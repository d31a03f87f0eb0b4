"""Options shared by several commands."""

from __future__ import annotations

import typer

from vdcmanage.cli.output import FORMATS

FormatOption = typer.Option("table", "--format", "-f", help="Output format: table (for people) or json (for scripts).")


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(FORMATS)}", param_hint="'--format'")
    return value
