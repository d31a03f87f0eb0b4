"""Benchmark: `image prepare --check` on a raw image against the bare loop mount it wraps.

Anchor: `mount -o loop,ro IMAGE DIR && umount DIR` (what an operator's manual check starts with).
Ours: `vdc-manage image prepare IMAGE --for all --check` (attach, find the root, mount, plan all
fourteen steps, unmount, detach). Both on the same freshly built CentOS 5-like image. Needs root.

    sudo .venv/bin/python tests/benchmarks/bench_prepare_check.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.guests import bare_image, centos5_tree


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode()}")
    return elapsed


def anchor(image: Path, mount_point: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["mount", "-o", "loop,ro", str(image), str(mount_point)], check=True)
    subprocess.run(["umount", str(mount_point)], check=True)
    return time.perf_counter() - started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if os.geteuid() != 0:
        raise SystemExit("needs root (loop devices and mounts)")
    with tempfile.TemporaryDirectory(prefix="vdc-bench-") as tmp:
        work = Path(tmp)
        image = bare_image(centos5_tree(work / "tree", with_busybox=True), work / "centos5.img", 64)
        mount_point = work / "mnt"
        mount_point.mkdir()
        env = {**os.environ, "VDC_MANAGE_DB": f"sqlite:///{work}/catalog.db"}
        ours_argv = [sys.executable, "-m", "vdcmanage", "image", "prepare", str(image), "--for", "all", "--check"]
        timed(ours_argv, env)  # warm caches for both
        anchor(image, mount_point)
        anchor_times = [anchor(image, mount_point) for _ in range(rounds)]
        ours_times = [timed(ours_argv, env) for _ in range(rounds)]
        python_times = [timed([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    a, o, p = (statistics.median(t) * 1000 for t in (anchor_times, ours_times, python_times))
    print(f"anchor mount -o loop,ro + umount: {a:7.1f} ms (median of {rounds})")
    print(f"python -c pass:                   {p:7.1f} ms")
    print(f"image prepare --for all --check:  {o:7.1f} ms")
    print(f"ratio ours/anchor: {o / a:.1f}x; ours minus anchor and interpreter start: {o - a - p:.1f} ms")


if __name__ == "__main__":
    main()
