"""`job list` and `job show` of a real import: where it stands, and its whole log."""

from __future__ import annotations

import json
from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import ext4_image


def log_section(text: str) -> list[str]:
    return text.split("\nLog:\n", 1)[1].splitlines()


def test_succeeded_import_reads_100_percent_and_shows_its_whole_log(world: ImportWorld, tmp_path: Path) -> None:
    result = world.cli(*world.import_args(ext4_image(tmp_path)))
    assert result.code == 0, result.err
    job_id = world.image(result.out.strip())["job_id"]

    table = world.cli("job", "list")
    assert table.out.splitlines()[0].split() == ["ID", "Kind", "State", "Step", "Progress", "Age", "Error"]
    row = next(line for line in table.out.splitlines() if line.startswith(job_id))
    assert row.split()[1:6] == ["import-xen", "succeeded", "10/10", "cleanup", "100%"], row
    listed = json.loads(world.cli("job", "list", "-f", "json").out)[0]
    assert (listed["step_number"], listed["steps_total"], listed["percent"]) == (10, 10, 100)
    assert 0 <= listed["age_seconds"] < 600

    from vdcmanage.catalog.models import JobLog

    messages = world.in_catalog(lambda: [r.message for r in JobLog.select().where(JobLog.job == job_id)])
    assert len(messages) > 20  # more than the old fixed tail held
    shown = world.cli("job", "show", job_id)
    assert "Progress: step 10/10, 100%" in shown.out
    lines = log_section(shown.out)
    assert len(lines) == len(messages) and all(line.endswith(m) for line, m in zip(lines, messages, strict=True))
    assert len(json.loads(world.cli("job", "show", job_id, "-f", "json").out)["log"]) == len(messages)
    tail = log_section(world.cli("job", "show", job_id, "--tail", "3").out)
    assert len(tail) == 3 and tail[-1].endswith(messages[-1]) and tail[0].endswith(messages[-3])
    assert world.cli("job", "show", job_id, "--tail", "0").code == 2


def test_a_job_refused_by_its_preflight_lists_as_failed_at_zero(world: ImportWorld, tmp_path: Path) -> None:
    world.xen.configure(xapi_down=True)
    assert world.cli(*world.import_args(ext4_image(tmp_path))).code == 100
    listed = json.loads(world.cli("job", "list", "-f", "json").out)[0]
    assert (listed["state"], listed["step_number"], listed["percent"]) == ("failed", 0, 0)
