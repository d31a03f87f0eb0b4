"""`vdc-manage job ...` as real processes, on jobs of a small test pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_account_cli import ok

SUBMIT = """
import sys
from vdcmanage.catalog.db import open_catalog
from vdcmanage.jobs import queue
open_catalog(sys.argv[1])
print(queue.submit("test-counting", {"out": sys.argv[2], "total": 2}, ["prepare", "work", "finish"]).id)
"""


def submit(sqlite_url: str, out: Path) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", SUBMIT, sqlite_url, str(out)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_list_show_cancel(run_cli, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job_id = submit(sqlite_url, tmp_path / "out.txt")
    table = ok(run_cli("job", "list"))
    assert table.splitlines()[0].split()[:4] == ["ID", "Kind", "State", "Step"] and job_id in table
    listed = json.loads(ok(run_cli("job", "list", "--state", "queued", "-f", "json")))
    assert [j["id"] for j in listed] == [job_id]
    shown = json.loads(ok(run_cli("job", "show", job_id, "-f", "json")))
    assert [s["name"] for s in shown["steps"]] == ["prepare", "work", "finish"]
    assert shown["log"][0]["message"] == "queued test-counting"
    text = ok(run_cli("job", "show", job_id))
    assert f"ID: {job_id}" in text and "Step" in text and "queued test-counting" in text
    cancelled = run_cli("job", "cancel", job_id)
    assert cancelled.code == 0 and cancelled.err == f"{job_id}: cancelled\n"
    assert json.loads(ok(run_cli("job", "show", job_id, "-f", "json")))["state"] == "cancelled"


def test_refusals(run_cli, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("job", "show", "job-nope").err == "ERROR: Unknown job id: job-nope\n"
    job_id = submit(sqlite_url, tmp_path / "out.txt")
    retried = run_cli("job", "retry", job_id)
    assert (retried.code, retried.err) == (100, f"ERROR: Job {job_id} is queued; only failed, interrupted or cancelled jobs can be retried\n")
    bad_state = run_cli("job", "list", "--state", "sleeping")
    assert bad_state.code == 2 and "'sleeping' is not one of" in bad_state.err
    assert run_cli("job", "worker", "--concurrency", "0").code == 2
