"""``vdc-manage tui``: open the terminal dashboard on the catalog the root options choose.

One command, no subcommands: ``vdc-manage --db URL tui`` (also installed as ``vdc-tui``). The
dashboard (textual, ~220 ms to import) is imported inside the command, so no other command pays
for it.
"""

from __future__ import annotations

import typer

from vdcmanage.cli.main import CONTEXT_SETTINGS, state

app = typer.Typer(
    name="tui",
    help="Open the terminal dashboard.",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


@app.command("tui")
def tui(ctx: typer.Context) -> None:
    """Open the terminal dashboard: images, jobs, hosts, live from the catalog (q quits, ? lists every key)."""
    from vdcmanage.config import load_settings

    settings = load_settings(state(ctx).db_flag)
    from tui.app import run  # textual: ~220 ms, paid only here

    raise typer.Exit(run(settings.db_url))
