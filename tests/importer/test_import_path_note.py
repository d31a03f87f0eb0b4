"""When a host's release implies another vdi-import than its xe help shows, host check and the job say so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image
from tests.xenhost import xedouble
from tests.xenhost.fixtures import XenHost


def claim_release(xen_host: XenHost, personality: str) -> None:
    """The host says it is ``personality``'s release while its xe keeps behaving as it did."""
    software = xedouble.PERSONALITIES[personality]["software_version"]

    def change(state: dict[str, Any]) -> None:
        state["software_version"] = software

    xen_host.update_state(change)


@pytest.mark.parametrize(
    ("behaves_as", "claims", "path", "note"),
    [
        ("xenserver-6.2", "xenserver-7.1", "raw", "XenServer 7.1.2 normally imports VHD, but this host's xe help "
                                                  "offers raw only: importing raw"),
        ("xenserver-7.1", "xenserver-6.2", "vhd", "XenServer 6.2.0 normally imports raw only, but this host's xe "
                                                  "help offers format=vhd: importing VHD"),
        ("xenserver-7.1", "xenserver-7.1", "vhd", None),
    ],
)
def test_host_check_and_the_job_log_name_the_path_and_why(
    world: ImportWorld, tmp_path: Path, behaves_as: str, claims: str, path: str, note: str | None
) -> None:
    world.xen.configure(personality=behaves_as)
    claim_release(world.xen, claims)
    checked = world.cli("host", "check", "xen1", "-f", "json")
    assert checked.code == 0, checked.err
    caps = json.loads(checked.out)["capabilities"]
    assert caps["import_path"] == path
    assert caps["import_path_reason"].endswith(f"; {note}") if note else ";" not in caps["import_path_reason"]
    table = world.cli("host", "check", "xen1").out
    assert any(line.startswith("import path") and line.rstrip().endswith(note or "vdi-import)")
               for line in table.splitlines()), table

    source = ext4_image(tmp_path)
    result = world.cli(*world.import_args(source))
    assert result.code == 0, result.err
    job = check_published(world, result.out.strip(), source)
    lines = [entry for entry in job["log"] if entry["message"].startswith("import path: ")]
    assert [entry["message"] for entry in lines] == [f"import path: {caps['import_path_reason']}"]
    assert lines[0]["level"] == ("warning" if note else "info")
