#!/usr/bin/env python3
"""`vdc-manage image import xen` against the manual CloudStack procedure, same test host, same run.

    .venv/bin/python -m tests.benchmarks.bench_import [--size-gib 4] [--personality xcp-ng-8.3]

Builds a raw image of SIZE GiB holding a real ext4 file system with ~1 GiB of OS files (hard links to
this machine's /usr/lib/x86_64-linux-gnu and /usr/bin, copied in by mkfs.ext4 -d), starts the
XenServer test host (real sshd + the xe double, tests/xenhost; needs root), then times:

  manual: scp the raw file into the SR mount; ssh xe vdi-create; ssh xe vdi-import; ssh bzip2 -c
          <vdi>.vhd > Name.vhd.bz2; scp the .vhd.bz2 to the web directory (OpenSSH tools throughout)
  ours:   vdc-manage image import xen (a whole process, foreground)

and prints both, per step for the manual run, and the ratio (target: at most 0.5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GiB = 1024**3
TREES = ["/usr/lib/x86_64-linux-gnu", "/usr/bin"]


def run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def make_image(directory: Path, size_gib: int) -> Path:
    tree = directory / "tree"
    for source in TREES:
        target = tree / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        run("cp", "-al", source, str(target))
    image = directory / "centos.raw"
    with image.open("wb") as f:
        f.truncate(size_gib * GiB)
    run("mkfs.ext4", "-q", "-F", "-d", str(tree), str(image))
    run("rm", "-rf", str(tree))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--personality", default="xcp-ng-8.3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "home")  # never the operator's ~/.ssh
        (root / "home" / ".ssh").mkdir(parents=True, mode=0o700)
        os.environ.pop("SSH_AUTH_SOCK", None)
        image = make_image(root, args.size_gib)
        used = int(run("du", "-B1", str(image)).stdout.split()[0])
        print(f"image: {args.size_gib} GiB raw ext4, {used / GiB:.2f} GiB allocated; host personality {args.personality}")
        with XenTestHost(root, args.personality) as host:
            manual = manual_procedure(host, image, root)
            ours = our_import(host, image, root)
    total = sum(manual.values())
    print("\nmanual procedure (OpenSSH tools):")
    for step, seconds in manual.items():
        print(f"  {step:28} {seconds:7.1f} s")
    print(f"  {'total':28} {total:7.1f} s")
    print(f"vdc-manage image import xen:   {ours:7.1f} s")
    ratio = ours / total
    print(f"\nratio ours/manual: {ratio:.2f} (target <= 0.5): {'ok' if ratio <= 0.5 else 'MISSED'}")


class Host:
    def __init__(self, server: object, key: Path, known: Path, sr_uuid: str, state_dir: Path) -> None:
        self.server, self.key, self.known, self.sr_uuid, self.state_dir = server, key, known, sr_uuid, state_dir

    def ssh_options(self) -> list[str]:
        return ["-F", "none", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known}",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]

    def ssh(self, command: str) -> str:
        server = self.server
        argv = ["ssh", *self.ssh_options(), "-p", str(server.port), f"root@{server.address}", command]  # type: ignore[attr-defined]
        return run(*argv).stdout


class XenTestHost:
    """The XenServer test host (real sshd + xe double) for the length of a benchmark."""

    def __init__(self, root: Path, personality: str) -> None:
        self.root, self.personality = root, personality

    def __enter__(self) -> Host:
        from tests.xenhost import xedouble
        from tests.xenhost.fixtures import DEFAULT_PATH, REMOTE_SR_MOUNT, XE_DOUBLE
        from tests.xenhost.sshd import SshServer, keygen, public_line

        state_dir, sr_mount, bin_dir = (self.root / n for n in ("state", "sr-mount", "bin"))
        for directory in (state_dir, sr_mount, bin_dir):
            directory.mkdir()
        (bin_dir / "xe").symlink_to(XE_DOUBLE)
        state = xedouble.make_state(personality=self.personality, sr_mount=REMOTE_SR_MOUNT,
                                    sr_sizes={"ext": 500 * GiB})
        xedouble.write_state(str(state_dir), state, sr_mount_here=str(sr_mount))
        key = keygen(self.root / "id_bench")
        self.server = SshServer(self.root / "sshd", authorized_keys=[public_line(key)],
                                env={"PATH": f"{bin_dir}:{DEFAULT_PATH}", "XE_DOUBLE_STATE": str(state_dir)},
                                sr_mount=sr_mount).start()
        known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
        known.write_text(self.server.known_hosts_line + "\n")
        sr_uuid = next(sr["uuid"] for sr in state["srs"] if sr["role"] == "ext")
        return Host(self.server, key, known, sr_uuid, state_dir)

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def timed(step: str, results: dict[str, float], action) -> object:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = action()
    results[step] = time.perf_counter() - started
    return value


def manual_procedure(host: Host, image: Path, root: Path) -> dict[str, float]:
    sr = f"/var/run/sr-mount/{host.sr_uuid}"
    web = root / "www-manual"
    web.mkdir()
    server = host.server
    results: dict[str, float] = {}
    scp = ["scp", "-q", *host.ssh_options(), "-P", str(server.port)]  # type: ignore[attr-defined]
    address = f"root@{server.address}"  # type: ignore[attr-defined]
    timed("scp raw image to the SR", results, lambda: run(*scp, str(image), f"{address}:{sr}/centos.raw"))
    size = image.stat().st_size
    uuid = timed("xe vdi-create", results, lambda: host.ssh(
        f"cd {sr} && xe vdi-create virtual-size={size} sr-uuid={host.sr_uuid} type=user name-label='Centos 6.2 x86_64'"
    ))
    uuid = str(uuid).strip()
    timed("xe vdi-import", results, lambda: host.ssh(f"cd {sr} && xe vdi-import filename=centos.raw uuid={uuid}"))
    timed("bzip2 -c VHD", results, lambda: host.ssh(f"cd {sr} && bzip2 -c {uuid}.vhd > centos.vhd.bz2"))
    timed("scp .vhd.bz2 to the web dir", results, lambda: run(*scp, f"{address}:{sr}/centos.vhd.bz2", str(web)))
    host.ssh(f"rm -f {sr}/centos.raw {sr}/centos.vhd.bz2")
    published = web / "centos.vhd.bz2"
    print(f"manual: published {published.stat().st_size / 2**20:.0f} MiB")
    return results


def our_import(host: Host, image: Path, root: Path) -> float:
    server = host.server
    www = root / "www-ours"
    www.mkdir()
    env = {**os.environ, "VDC_MANAGE_DB": f"sqlite://{root}/catalog.db"}

    def cli(*args: str) -> str:
        return run(sys.executable, "-m", "vdcmanage", *args, env=env).stdout.strip()

    cli("host", "add", "xen1", "--address", server.address, "--port", str(server.port),  # type: ignore[attr-defined]
        "--key-file", str(host.key), "--sr-uuid", host.sr_uuid)
    cli("backupstorage", "add", "--storage-type", "local", "--base-uri", "http://web/t", "--path", str(www))
    started = time.perf_counter()
    image_id = cli("image", "import", "xen", str(image), "--host", "xen1", "--account-id", "a-shpoolxx")
    elapsed = time.perf_counter() - started
    published = www / f"{image_id}.vhd.bz2"
    print(f"ours: published {published.stat().st_size / 2**20:.0f} MiB as {image_id}")
    import json

    job_id = json.loads(cli("image", "show", image_id, "-f", "json"))["job_id"]
    for step in json.loads(cli("job", "show", job_id, "-f", "json"))["steps"]:
        print(f"  ours, {step['name']:12} {step['seconds'] or 0:7.1f} s")
    return elapsed


if __name__ == "__main__":
    main()
