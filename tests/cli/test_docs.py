"""Every command has help text, every option too, and every command is documented in the README."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from vdcmanage.cli.main import root_command

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def walk(command: click.Command, path: str, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name} cannot be loaded"
            yield from walk(sub, f"{path} {name}", click.Context(sub, parent=ctx, info_name=name))


ROOT = root_command()
COMMANDS = list(walk(ROOT, "vdc-manage", click.Context(ROOT, info_name="vdc-manage")))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert (command.help or command.short_help or "").strip(), f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path} {param.opts} has no help text"
    if not isinstance(command, click.Group) or path == "vdc-manage":
        assert f"`{path}" in README or f"{path}`" in README, f"{path} is not documented in README.md"


def test_every_exit_code_is_documented() -> None:
    from vdcmanage.errors import ExitCode

    for code in ExitCode:
        assert f"| {int(code)} |" in README, f"exit code {int(code)} is not in the README"
