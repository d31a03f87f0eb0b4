"""Hostile catalog text printed by the CLI: control characters are spelled out, never obeyed.

A description may hold a newline and a forged ``ERROR:`` line, a clear-screen sequence, a C1 CSI
(U+009B) or DEL. Tables, ``show`` records, ``ERROR:`` lines and job logs must print them as
``\\n``, ``\\x1b``, ``\\x9b``, ``\\x7f``; ``-f json`` must hold them exactly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.images import raw_image
from tests.xenhost.fixtures import XenHost
from vdcmanage.textsafe import visible, visible_lines

HOSTILE = "evil\nERROR: forged\x1b[2J\x9b31m\x7f\tend\r"
SHOWN = "evil\\nERROR: forged\\x1b[2J\\x9b31m\\x7f\\tend\\r"
# Names must be one line (catalog/validate.py) but may hold every other control character.
NAME = "evil\x1b[2J\x9b31m\x7f\t[/]end"
NAME_SHOWN = "evil\\x1b[2J\\x9b31m\\x7f\\t[/]end"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def assert_safe(text: str) -> None:
    """Only line ends are raw control characters, and no line was forged."""
    assert not RAW_CONTROL.search(text), repr(text)
    assert not any(line.startswith("ERROR: forged") for line in text.splitlines()), text


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 0, result
    return str(result.out)


# -- the function --------------------------------------------------------------------------------------


def test_visible_spells_every_control_character() -> None:
    assert visible(HOSTILE) == SHOWN
    assert visible("\x00\x1f\x80\x9f\u202e\u2028") == "\\x00\\x1f\\x80\\x9f\\u202e\\u2028"
    assert visible("ünïcode ok, tabs\\t and [bold]markup[/] stay as typed") == "ünïcode ok, tabs\\t and [bold]markup[/] stay as typed"
    assert visible(42) == "42"


def test_visible_covers_every_unicode_control_character() -> None:
    """The guard is the class (category Cc: C0, DEL, C1), not a list of known-bad sequences."""
    import unicodedata

    controls = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for char in controls:
        assert visible(char).startswith("\\") and visible(char).isprintable(), hex(ord(char))


def test_visible_lines_keeps_layout_only() -> None:
    assert visible_lines("a\tb\nc\x1b[Hd\r\n") == "a\tb\nc\\x1b[Hd\\r\n"


# -- catalog text in tables, records and json ------------------------------------------------------------


@pytest.fixture
def hostile_catalog(run_cli, any_catalog_url: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """An account, an image and a host whose free-text fields are hostile, on each backend."""
    db = any_catalog_url
    ok(run_cli("account", "add", "--uuid", "a-evil", "--name", NAME, "--description", HOSTILE, db=db))
    image = raw_image(tmp_path / "evil.raw")
    ok(run_cli("image", "add", "local", str(image), "-a", "a-evil", "-u", "wmi-evil", "-d", HOSTILE,
               "--display-name", NAME, db=db))
    ok(run_cli("host", "add", NAME, "--address", "127.0.0.1", "--uuid", "hn-evil", db=db))
    store = tmp_path / "store\x1b[2J\x9b"
    store.mkdir()
    ok(run_cli("backupstorage", "add", "--storage-type", "local", "--base-uri", "http://t.example/",
               "--path", str(store), "--display-name", NAME, "--uuid", "bkst-evil", db=db))
    return db


TABLES_AND_RECORDS = [
    ["account", "show"],
    ["account", "list"],
    ["account", "show", "a-evil"],
    ["image", "show"],
    ["image", "list"],
    ["image", "show", "wmi-evil"],
    ["host", "show"],
    ["host", "list"],
    ["host", "show", "hn-evil"],
    ["backupstorage", "show"],
    ["backupstorage", "list"],
    ["backupstorage", "show", "bkst-evil"],
]


def test_tables_and_records_spell_control_characters(run_cli, hostile_catalog: str) -> None:  # type: ignore[no-untyped-def]
    for command in TABLES_AND_RECORDS:
        out = ok(run_cli(*command, db=hostile_catalog))
        assert_safe(out)
        assert SHOWN in out or NAME_SHOWN in out, (command, out)


def test_show_records_keep_one_line_per_field(run_cli, hostile_catalog: str) -> None:  # type: ignore[no-untyped-def]
    image = ok(run_cli("image", "show", "wmi-evil", db=hostile_catalog)).splitlines()
    assert f"Name: {NAME_SHOWN}" in image and f"Description: {SHOWN}" in image
    account = ok(run_cli("account", "show", "a-evil", db=hostile_catalog)).splitlines()
    assert f"Name: {NAME_SHOWN}" in account and f"Description: {SHOWN}" in account
    storage = ok(run_cli("backupstorage", "show", "bkst-evil", db=hostile_catalog)).splitlines()
    assert f"Display name: {NAME_SHOWN}" in storage and any(line.endswith("/store\\x1b[2J\\x9b") for line in storage)


def test_json_holds_the_exact_text(run_cli, hostile_catalog: str) -> None:  # type: ignore[no-untyped-def]
    """Exact to a parser, inert on a terminal: C0 escaped by JSON itself, DEL and C1 as \\u escapes."""
    raw = ok(run_cli("image", "show", "wmi-evil", "-f", "json", db=hostile_catalog))
    assert_safe(raw)
    assert "\\u001b[2J\\u009b31m\\u007f" in raw
    image = json.loads(raw)
    assert (image["description"], image["display_name"]) == (HOSTILE, NAME)
    account = json.loads(ok(run_cli("account", "show", "a-evil", "-f", "json", db=hostile_catalog)))
    assert (account["name"], account["description"]) == (NAME, HOSTILE)
    host = json.loads(ok(run_cli("host", "show", "hn-evil", "-f", "json", db=hostile_catalog)))
    assert host["name"] == NAME


def test_fast_path_prints_the_same_escapes(run_cli, hostile_catalog: str) -> None:  # type: ignore[no-untyped-def]
    """``image show`` without typer (cli/entry.py) goes through the same printer."""
    fast = ok(run_cli("image", "show", "wmi-evil", db=hostile_catalog))
    full = ok(run_cli("--tx", "each", "image", "show", "wmi-evil", db=hostile_catalog))
    assert fast == full


# -- ERROR: lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["image", "show", HOSTILE],
        ["account", "del", "a-" + HOSTILE],
        ["image", "add", "local", "/nonexistent/" + HOSTILE, "-a", "a-shpoolxx"],
        ["host", "show", HOSTILE + "x"],
        ["no-such-command" + HOSTILE],
    ],
)
def test_error_lines_cannot_be_forged(run_cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(*args)
    assert result.code in (2, 100), result
    assert result.err.startswith("ERROR: ") and result.err.count("\n") == 1, result.err
    assert_safe(result.err)
    assert "\\x1b[2J" in result.err


def test_remote_text_in_host_check_is_escaped(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    """What the XenServer says is untrusted too: its host and SR names in the check's tables.
    (A default SR that is not a uuid is not taken as one: the check says there is none.)"""

    def hostile_pool(state: dict[str, Any]) -> None:
        state["hosts"][0]["name-label"] = NAME
        state["srs"][0]["name-label"] = NAME
        state["pool"]["default-SR"] = HOSTILE

    xen_host.update_state(hostile_pool)
    xen_host.trust()
    ok(run_cli("host", "add", "xen", "--address", xen_host.address, "--port", str(xen_host.port),
               "--key-file", str(xen_host.key_file)))
    result = run_cli("host", "check", "xen")
    assert_safe(result.out + result.err)
    assert f"host name-label     {NAME_SHOWN}" in result.out.splitlines(), result
    sr_row = next(line for line in result.out.splitlines() if line.startswith(xen_host.sr_uuid("ext")))
    assert sr_row.split()[1:3] == [NAME_SHOWN, "ext"], result.out
    assert result.code == 100 and result.err.startswith("ERROR: No SR chosen") and result.err.count("\n") == 1


# -- job logs --------------------------------------------------------------------------------------------


def submit_hostile_job(db: str) -> str:
    """A failed job whose error and log hold hostile text (as a remote stderr relayed into them would)."""
    code = (
        "import sys\n"
        "from vdcmanage.catalog.db import open_catalog\n"
        "from vdcmanage.jobs import queue\n"
        "open_catalog(sys.argv[1])\n"
        "job = queue.submit('import-xen', {}, ['upload'])\n"
        "queue.log(job.id, sys.argv[2], 'error')\n"
        "queue.finish_job(job.id, 'failed', error=sys.argv[2])\n"
        "print(job.id)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, db, HOSTILE], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def test_job_show_and_list_escape_logs_and_errors(run_cli, any_catalog_url: str) -> None:  # type: ignore[no-untyped-def]
    job_id = submit_hostile_job(any_catalog_url)
    shown = ok(run_cli("job", "show", job_id, db=any_catalog_url))
    assert_safe(shown)
    assert f"Error: {SHOWN}" in shown.splitlines()
    assert any(line.endswith(f"error {SHOWN}") for line in shown.splitlines()), shown
    listed = ok(run_cli("job", "list", db=any_catalog_url))
    assert_safe(listed)
    assert SHOWN in listed
    data = json.loads(ok(run_cli("job", "show", job_id, "-f", "json", db=any_catalog_url)))
    assert data["error"] == HOSTILE and HOSTILE in [line["message"] for line in data["log"]]


# -- multi-line reports ----------------------------------------------------------------------------------


def test_prepare_reports_escape_target_and_guest_text(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The report keeps its lines and tabs; a hostile directory name or guest file drives nothing."""
    from tests.guests import centos5_tree

    root = centos5_tree(tmp_path / "evil\x1b[2J\nERROR: forged\x9b")
    fstab = root / "etc/fstab"
    fstab.write_text("# \x1b]0;owned\x07 \x1b[2J\r\n" + fstab.read_text())  # within the diff context
    for mode in ("--check", "--dry-run"):
        result = run_cli("image", "prepare", str(root), "--for", "all", mode)
        assert result.code in (0, 1), result
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.out), repr(result.out)
        assert not any(line.startswith("ERROR: forged") for line in result.out.splitlines())
        assert "Target: " + visible(str(root)) in result.out.splitlines()[0]
    assert "\\x1b]0;owned\\x07 \\x1b[2J\\r" in result.out


def test_passphrase_prompt_spells_out_the_key_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key file's path comes from the catalog; the prompt goes straight to the terminal."""
    import getpass

    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or "")
    from vdcmanage.cli.host import terminal_prompt

    assert terminal_prompt("/keys/a\x1b[2J\nb") is None
    assert prompts == ["Passphrase for key /keys/a\\x1b[2J\\nb: "]


def test_every_stderr_line_is_one_escaped_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The three ways the CLI writes to stderr: a failure, a warning, a note (worker events)."""
    from vdcmanage.cli.failures import notice, report, warn

    report(f"Host {HOSTILE} is deleted")
    warn(f"catalog {HOSTILE} was readable by others")
    notice(f"job-x: {HOSTILE}")
    err = capsys.readouterr().err
    assert err.splitlines() == [f"ERROR: Host {SHOWN} is deleted", f"WARNING: catalog {SHOWN} was readable by others",
                                f"job-x: {SHOWN}"]  # fmt: skip
    assert_safe(err)


# -- the guard stays a guard ---------------------------------------------------------------------------

SEAMS = {"output.py", "failures.py", "progress.py"}  # where text is escaped on its way out
ALLOWED_OUTSIDE_SEAMS = {  # ids (validated: [a-z0-9-]) and fixed text
    "image.id", "host.id", "job.id", "storage.id", "accounts.add_account(uuid, name, description).id",
    'result.get("image_id", finished.id)', 'f"{PROG} {__version__}"', '"\\n"', '"\\nLog:\\n"', '"^C\\n"',
    "f\"{job.id}: {'cancelled' if job.state == 'cancelled' else 'cancel requested'}\"",
}  # fmt: skip


def test_cli_modules_write_catalog_text_only_through_the_seams() -> None:
    """A command that printed a name with typer.echo or sys.stdout.write would bypass the escaping:
    outside cli/output.py, failures.py and progress.py only ids and fixed text are written."""
    import ast

    cli = Path(__file__).resolve().parents[2] / "vdcmanage" / "cli"
    found = []
    for module in sorted(cli.glob("*.py")):
        if module.name in SEAMS:
            continue
        source = module.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("echo", "secho", "write", "print"):
                found += [(module.name, ast.get_source_segment(source, arg)) for arg in node.args]
    assert found, "the scan found no output calls at all"
    assert [f for f in found if f[1] not in ALLOWED_OUTSIDE_SEAMS] == []
