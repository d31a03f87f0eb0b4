"""Entry point: global options, lazily loaded command groups, and one place that turns errors into exit codes.

Start-up matters (``image show <id>`` is run in loops by scripts): the root group imports a
command group's module only when that group is invoked, so ``vdc-manage image show`` pays for
neither paramiko, textual nor the other groups' option parsing.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup

from vdcmanage import __version__
from vdcmanage.cli.failures import finish_output, quiet_broken_pipe, report, report_unexpected
from vdcmanage.errors import ExitCode, VdcError

PROG = "vdc-manage"
# group name -> (module, one-line help shown in `vdc-manage --help` without importing the module)
GROUPS: dict[str, tuple[str, str]] = {
    "account": ("vdcmanage.cli.account", "Operations for accounts."),
    "image": ("vdcmanage.cli.image", "Operations for machine images."),
    "host": ("vdcmanage.cli.host", "Operations for XenServer host nodes."),
    "backupstorage": ("vdcmanage.cli.backupstorage", "Operations for backup storages (where templates are published)."),
    "job": ("vdcmanage.cli.job", "Operations for long-running jobs (imports) and the worker."),
    "tui": ("vdcmanage.cli.tui", "Open the terminal dashboard."),
}
TX_MODES = ("each", "bulk", "none")
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
    # Wakame's Thor CLI spelled long options with underscores (--account_id); accept both spellings.
    "token_normalize_func": lambda token: token.replace("_", "-"),
}


@dataclass
class CliState:
    """What the root options decided, shared with every command through ``ctx.obj``."""

    db_flag: str | None = None
    stop_on_error: bool = False
    tx_mode: str = "each"
    in_shell: bool = False
    _catalog_open: bool = field(default=False, repr=False)

    def open_catalog(self) -> None:
        """Open (once per process) the catalog the flags, environment and config files point at."""
        if self._catalog_open:
            return
        from vdcmanage.catalog.db import open_catalog
        from vdcmanage.config import load_settings

        open_catalog(load_settings(self.db_flag).db_url)
        self._catalog_open = True


def state(ctx: click.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def catalog(ctx: click.Context) -> CliState:
    """The CLI state with the catalog open: the first line of every command that touches it."""
    st = state(ctx)
    st.open_catalog()
    return st


# A lazily loaded subcommand: (module, attribute holding its Typer app, one-line help for listings)
LazySpec = tuple[str, str, str]


class LazyGroup(TyperGroup):
    """A group whose subcommands (all, or some) live in modules imported on first use, so a command
    pays only for the modules it runs: `image show` never loads `image prepare` or `image import`."""

    lazy: ClassVar[dict[str, LazySpec]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(name for name in self.lazy if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attribute, _help = self.lazy[cmd_name]
            command = typer.main.get_command(getattr(importlib.import_module(module), attribute))
            command.name = cmd_name
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands without importing the lazy ones (their help comes from the spec)."""
        rows = [(name, command.get_short_help_str(limit=200)) for name, command in self.commands.items()]
        rows += [(name, spec[2]) for name, spec in self.lazy.items() if name not in self.commands]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def lazy_group(lazy: dict[str, LazySpec]) -> type[LazyGroup]:
    return type("LazyGroup", (LazyGroup,), {"lazy": lazy})


app = typer.Typer(
    cls=lazy_group({name: (module, "app", help_text) for name, (module, help_text) in GROUPS.items()}),
    name=PROG,
    help="Manage the machine images of a Wakame-vdc style cloud: catalog, XenServer import, dashboard.\n\n"
    "With no command, opens the interactive shell (commands read line by line from stdin when it is not a terminal).",
    epilog="Exit codes: 0 ok, 1 shell stopped by -e, 2 bad command line, 100 request refused, "
    "101 unexpected failure, 130 interrupted.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


def group_app(name: str, help_text: str, lazy: dict[str, LazySpec] | None = None) -> typer.Typer:
    """A command group's Typer app, configured like the root (plain help, no completion installer);
    ``lazy`` names subcommands whose modules are imported only when they run."""
    return typer.Typer(
        cls=lazy_group(lazy) if lazy else LazyGroup,
        name=name,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings=CONTEXT_SETTINGS,
    )


def version_callback(value: bool) -> None:
    if value:
        click.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: str = typer.Option(
        None,
        "--db",
        metavar="URL",
        help="Catalog URL: sqlite:///PATH, postgresql://USER@HOST/DB or mysql://USER@HOST/DB. "
        "Default: $VDC_MANAGE_DB, then db= in the config file, then a SQLite file under $XDG_DATA_HOME.",
        show_default=False,
    ),
    stop_on_error: bool = typer.Option(
        False, "-e", "--stop-on-error", help="Shell: stop at the first failing line (exit 1)."
    ),
    tx: str = typer.Option(
        "each",
        "--tx",
        "--tx-mode",
        metavar="each|bulk|none",
        help="Shell: one transaction per line (each), one for the whole session (bulk), or none.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if tx not in TX_MODES:
        raise typer.BadParameter(f"{tx!r} is not one of: {', '.join(TX_MODES)}", param_hint="'--tx'")
    st = state(ctx)
    if st.in_shell:  # a shell line: the session's options stay as the shell was started with
        return
    st.db_flag, st.stop_on_error, st.tx_mode = db, stop_on_error, tx
    if ctx.invoked_subcommand is None:
        from vdcmanage.cli.shell import run_shell

        raise typer.Exit(run_shell(ctx, st))


def root_command() -> click.Group:
    command = typer.main.get_command(app)
    assert isinstance(command, click.Group)
    return command


def usage_message(exc: click.UsageError) -> str:
    message = exc.format_message().rstrip(".")
    if exc.ctx is not None:
        return f"{message}. See '{exc.ctx.command_path} --help'."
    return f"{message}."


def invoke(command: click.Command, args: list[str], obj: Any = None) -> int:
    """Run one command line and return its exit code; every failure is reported as one ``ERROR:`` line."""
    try:
        # Without standalone mode click returns the code of a ctx.exit()/typer.Exit instead of raising it.
        returned = command.main(args=args, prog_name=PROG, standalone_mode=False, obj=obj)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        report(usage_message(exc))
        return ExitCode.USAGE
    except click.ClickException as exc:
        report(exc.format_message())
        return ExitCode.USAGE
    except (click.Abort, KeyboardInterrupt):
        report("Interrupted")
        return ExitCode.INTERRUPTED
    except VdcError as exc:
        report(exc.message)
        return exc.exit_code
    except BrokenPipeError:
        quiet_broken_pipe()
        return ExitCode.OK
    except Exception as exc:  # the last line of defence: a clear line instead of a traceback
        return report_unexpected(exc)
    if returned == ExitCode.INTERRUPTED:  # typer turns Ctrl-C inside a command into a silent exit 130
        report("Interrupted")
    return returned if isinstance(returned, int) else ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """The full command line (the console script goes through cli/entry.py first)."""
    args = sys.argv[1:] if argv is None else argv
    code = invoke(root_command(), args, obj=CliState())
    return finish_output(code)
