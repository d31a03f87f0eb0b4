"""``vdc-manage tui`` and ``vdc-tui``: the catalog choice of the root options, and a clear refusal without a terminal.

The dashboard itself runs in a real terminal in tests/tui/test_terminal.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

VENV_BIN = Path(sys.executable).parent


def test_tui_is_listed_and_has_help(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--help")
    assert "tui" in result.out and "Open the terminal dashboard." in result.out
    result = run_cli("tui", "--help")
    assert result.code == 0
    assert "Usage: vdc-manage tui" in result.out


def test_tui_without_a_terminal_is_refused_with_exit_100(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--db", "sqlite:///dev/null/never-created.db", "tui", input="")
    assert result.code == 100
    assert result.err == "ERROR: The dashboard needs a terminal (stdin and stdout); use the image and job commands\n"


def test_vdc_tui_reports_bad_settings_like_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("db = [broken")
    env = {**os.environ, "VDC_MANAGE_CONFIG": str(config)}
    env.pop("VDC_MANAGE_DB", None)
    proc = subprocess.run([str(VENV_BIN / "vdc-tui")], capture_output=True, text=True, env=env, input="", cwd=REPO)
    assert proc.returncode == 100
    assert proc.stderr.startswith(f"ERROR: Config file {config} is not valid TOML")


def test_vdc_tui_help_names_the_db_option() -> None:
    proc = subprocess.run([str(VENV_BIN / "vdc-tui"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "--db URL" in proc.stdout
