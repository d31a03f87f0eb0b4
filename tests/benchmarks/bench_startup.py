#!/usr/bin/env python3
"""Start-up and listing speed of whole `vdc-manage` processes against `python -c pass`, in one run.

Fills a SQLite catalog with 10,000 images, then times (median of N runs each, interleaved):
  python -c pass                      the anchor
  vdc-manage image show <id>          target: median <= 8x the anchor
  vdc-manage image show               10,000 rows; target: under 1 s
  vdc-manage --help

Run: .venv/bin/python tests/benchmarks/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = 10_000


def fill_catalog(url: str) -> str:
    from vdcmanage.catalog.db import close_catalog, database, open_catalog
    from vdcmanage.catalog.models import Image, utcnow

    open_catalog(url)
    now = utcnow()
    rows = [
        {
            "id": f"wmi-{i:08d}",
            "account": "a-shpoolxx",
            "source_uri": f"file:///var/lib/images/image-{i}.raw",
            "arch": "x86_64",
            "state": "available",
            "display_name": f"image {i}",
            "description": f"benchmark image number {i}",
            "file_format": "raw",
            "size": 10 * 2**30,
            "virtual_size": 10 * 2**30,
            "md5": "0" * 32,
            "sha256": "0" * 64,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(IMAGES)
    ]
    with database.obj.atomic():
        for start in range(0, IMAGES, 500):
            Image.insert_many(rows[start : start + 500]).execute()
    close_catalog()
    return f"wmi-{IMAGES // 2:08d}"


def time_command(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("vdc-manage"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{tmp}/catalog.db"
        image_id = fill_catalog(url)
        env = {**os.environ, "VDC_MANAGE_DB": url}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "vdc-manage image show <id>": [script, "image", "show", image_id],
            "vdc-manage image show (10,000 rows)": [script, "image", "show"],
            "vdc-manage --help": [script, "--help"],
        }
        for argv in commands.values():  # warm the page cache and .pyc files
            time_command(argv, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                samples[name].append(time_command(argv, env))
    anchor = statistics.median(samples["python -c pass"])
    print(f"{'command':38} {'median':>9} {'min':>9} {'x anchor':>9}   ({args.runs} runs each, {IMAGES} images)")
    for name, times in samples.items():
        median = statistics.median(times)
        print(f"{name:38} {median * 1000:7.1f}ms {min(times) * 1000:7.1f}ms {median / anchor:8.1f}x")
    show_id = statistics.median(samples["vdc-manage image show <id>"]) / anchor
    table = statistics.median(samples["vdc-manage image show (10,000 rows)"])
    print(f"\nimage show <id>: {show_id:.1f}x python -c pass (target <= 8x): {'ok' if show_id <= 8 else 'MISSED'}")
    print(f"image show, 10,000 rows: {table:.3f} s (target < 1 s): {'ok' if table < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
