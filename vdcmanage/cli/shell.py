"""The interactive shell: ``vdc-manage`` with no command.

On a terminal: prompt ``vdc-manage>> ``, readline editing and tab completion of commands and
options; with stdin not a terminal: commands read line by line (scripts pipe into it). A
trailing ``\\`` continues a line. ``-e`` stops at the first failing line with exit 1.

Transactions (``--tx``): ``each`` (default) — every line is one transaction, because every
command commits its changes in exactly one transaction of its own; ``none`` — accepted for
compatibility with the original vdc-manage and behaves like ``each``; ``bulk`` — the whole
session is one transaction, committed at the end (EOF or ``exit``), a failing line's changes
are rolled back on their own, and stopping with ``-e`` or Ctrl-C rolls back everything. On
SQLite a bulk session holds the catalog's write lock until it ends.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

import click

from vdcmanage.errors import ExitCode

if TYPE_CHECKING:
    from vdcmanage.cli.main import CliState

PROMPT = "vdc-manage>> "
CONTINUATION_PROMPT = " > "
EXIT_WORDS = ("exit", "quit")


def read_logical_lines(stream: TextIO, interactive: bool) -> Iterator[str]:
    """Lines with ``\\``-continuations joined; Ctrl-C at a terminal prompt discards the line."""
    buffer: list[str] = []
    while True:
        prompt = (CONTINUATION_PROMPT if buffer else PROMPT) if interactive else ""
        try:
            line = input(prompt) if interactive else stream.readline()
        except EOFError:
            line = ""
            if interactive:
                sys.stdout.write("\n")
            if not buffer:
                return
        except KeyboardInterrupt:
            if not interactive:
                raise
            sys.stdout.write("^C\n")
            buffer = []
            continue
        if not interactive and line == "":
            if buffer:
                yield " ".join(buffer)
            return
        line = line.rstrip("\r\n")
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        yield " ".join(buffer)
        buffer = []


def split_line(line: str) -> list[str] | None:
    """The words of a line, or None for blank lines and comments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return shlex.split(stripped)


class Session:
    """Runs lines against the root command group, tracking the transaction mode and -e."""

    def __init__(self, root: click.Group, state: CliState) -> None:
        self.root = root
        self.state = state
        self.last_code = 0

    def run_line(self, line: str) -> int | None:
        """Run one line; return its exit code, or None to end the session."""
        from vdcmanage.cli.failures import report
        from vdcmanage.cli.main import invoke

        try:
            words = split_line(line)
        except ValueError as exc:
            report(f"Cannot parse line: {exc}")
            return ExitCode.USAGE
        if words is None:
            return 0
        if words[0] in EXIT_WORDS:
            return None
        if words[0] == "help":
            words = [*words[1:], "--help"]
        with self.line_savepoint() as savepoint:
            code = invoke(self.root, words, obj=self.state)
            if code and savepoint is not None:
                savepoint.rollback()
        return code

    @contextlib.contextmanager
    def line_savepoint(self) -> Iterator[Any]:
        """In bulk mode each line runs in a savepoint so a failing line undoes only itself."""
        if self.state.tx_mode != "bulk":
            yield None
            return
        from vdcmanage.catalog.db import database

        with database.obj.savepoint() as savepoint:
            yield savepoint


def run_shell(ctx: click.Context, state: CliState) -> int:
    state.in_shell = True
    state.open_catalog()
    root = ctx.command
    assert isinstance(root, click.Group)
    interactive = sys.stdin.isatty()
    if interactive:
        enable_completion(root)
    session = Session(root, state)
    try:
        with session_transaction(state.tx_mode) as bulk:
            code = run_lines(session, read_logical_lines(sys.stdin, interactive))
            if code == ExitCode.SHELL_STOPPED and bulk is not None:
                bulk.rollback()
            return code
    except KeyboardInterrupt:
        from vdcmanage.cli.failures import report

        report("Interrupted" + ("; the bulk transaction was rolled back" if state.tx_mode == "bulk" else ""))
        return ExitCode.INTERRUPTED


def run_lines(session: Session, lines: Iterator[str]) -> int:
    last = 0
    for line in lines:
        code = session.run_line(line)
        if code is None:
            break
        last = code
        if code and session.state.stop_on_error:
            return ExitCode.SHELL_STOPPED
    return last


@contextlib.contextmanager
def session_transaction(mode: str) -> Iterator[Any]:
    if mode != "bulk":
        yield None
        return
    from vdcmanage.catalog.db import database, is_sqlite

    db = database.obj
    with db.atomic("IMMEDIATE") if is_sqlite() else db.atomic() as txn:
        yield txn


def enable_completion(root: click.Group) -> None:
    import readline

    completer = Completer(root)
    readline.set_completer(completer.complete)
    readline.set_completer_delims(" \t\n")
    readline.parse_and_bind("tab: complete")


class Completer:
    """Completes group names, command names and the options of the command being typed."""

    def __init__(self, root: click.Group) -> None:
        self.root = root
        self.matches: list[str] = []

    def complete(self, text: str, index: int) -> str | None:
        if index == 0:
            import readline

            words = readline.get_line_buffer()[: readline.get_begidx()].split()
            self.matches = [c + " " for c in self.candidates(words) if c.startswith(text)]
        return self.matches[index] if index < len(self.matches) else None

    def candidates(self, words: list[str]) -> list[str]:
        ctx = click.Context(self.root)
        command: click.Command = self.root
        for word in words:
            if isinstance(command, click.Group) and not word.startswith("-"):
                sub = command.get_command(ctx, word)
                if sub is None:
                    break
                command = sub
        if isinstance(command, click.Group):
            names = command.list_commands(ctx)
            return [*names, *(["help", "exit"] if command is self.root else [])]
        return [opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")]
