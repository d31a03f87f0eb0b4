"""Eight `image add local` processes at once on one SQLite catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.images import raw_image


def test_eight_concurrent_adds_all_succeed(tmp_path: Path, sqlite_url: str) -> None:
    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url}
    images = [raw_image(tmp_path / f"img{i}.raw", size=8 * 1024 * 1024, fill=f"image {i}\n".encode()) for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vdcmanage", "image", "add", "local", str(p), "-a", "a-shpoolxx"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for p in images
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [(code, err) for code, _out, err in results] == [(0, "")] * 8
    ids = [out.strip() for _code, out, _err in results]
    assert len(set(ids)) == 8
    listed = subprocess.run(
        [sys.executable, "-m", "vdcmanage", "image", "list", "-f", "json"], capture_output=True, text=True, env=env, check=True
    )
    rows = json.loads(listed.stdout)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert sorted(r["source_uri"] for r in rows) == sorted(p.as_uri() for p in images)
