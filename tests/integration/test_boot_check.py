"""A real Debian 12 guest, prepared, then booted by ``image boot-check``: reachable, or not shipped.

The guest is debootstrapped from the Debian mirror this machine's apt uses (tests/debian_guest.py;
cached outside the repository between runs, built from nothing on a cold run), put in a raw image
with a bare ext4 filesystem (the AMI case) and in a partitioned one with grub 2, prepared with
``image prepare --for all``, and booted under qemu (KVM when usable, TCG otherwise). The instance
must answer on SSH with a host key that was not in the image, take the host name and key the
stand-in metadata server hands out, and, with no metadata server at all, not wait for it.

Slow (minutes): they run in CI, which installs what they need (.ci/apt-packages.txt). Where the
machine cannot run them (not root, no loop device, the mirror unreachable on a cold cache) they
are skipped and say why; under CI a missing tool is a failure, since CI installs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import debian_guest
from tests.integration.test_prepare_images import assert_released, sha256
from vdcmanage.bootcheck.guest import fingerprint

pytestmark = pytest.mark.slow

TOOLS = ("debootstrap", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "sfdisk", "zstd", "losetup")
BOOT_TIMEOUT_S = 600


def unavailable() -> tuple[str, bool] | None:
    """(why these tests cannot run here, whether that is a failure under CI), or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (.ci/apt-packages.txt installs them)", True
    if os.geteuid() != 0:
        return "debootstrap, loop devices and mounts need root", False
    if subprocess.run(["losetup", "--find"], capture_output=True).returncode != 0:
        return "no free loop device", False
    cached = debian_guest.cache_root() / f"debian12-{debian_guest.tree_key()}" / ".complete"
    if not cached.exists():
        url = f"{debian_guest.mirror()}/dists/{debian_guest.SUITE}/Release"
        try:
            urllib.request.urlopen(url, timeout=15).close()
        except OSError as exc:
            return f"the Debian mirror is unreachable ({url}: {exc}) and no guest is cached", False
    return None


@pytest.fixture(scope="module", autouse=True)
def can_boot() -> None:
    problem = unavailable()
    if problem:
        reason, fails_ci = problem
        if fails_ci and os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def template_key_fingerprints() -> set[str]:
    """The host keys debootstrap made in the template: no instance may present one of them."""
    tree = debian_guest.debian_tree()
    prints = set()
    for pub in (tree / "etc/ssh").glob("ssh_host_*_key.pub"):
        prints.add(fingerprint(base64.b64decode(pub.read_text().split()[1])))
    assert prints, "the template has host keys (the case prepare must handle)"
    return prints


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("debian12")


def vdc(*args: str, db: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VDC_MANAGE_DB": db, "TMPDIR": str(Path(db.split("///", 1)[1]).parent)}
    return subprocess.run([sys.executable, "-m", "vdcmanage", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def prepared(image: Path, db: str) -> Path:
    check = vdc("image", "prepare", str(image), "--for", "all", "--check", db=db)
    assert check.returncode == 1, check.stdout + check.stderr  # a fresh guest needs steps
    applied = vdc("image", "prepare", str(image), "--for", "all", "--zero-free", db=db)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = vdc("image", "prepare", str(image), "--for", "all", "--check", db=db)
    assert after.returncode == 0, after.stdout
    assert_released(image)
    return image


@pytest.fixture(scope="module")
def bare(workdir: Path) -> Iterator[Path]:
    image = debian_guest.bare_image(workdir / "debian12-bare.raw")
    yield prepared(image, f"sqlite:///{workdir}/catalog.db")
    image.unlink()


def boot_check(image: Path, workdir: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    log = workdir / f"{image.stem}{''.join(extra).replace('-', '')}.log"
    before = sha256(image)
    result = vdc("image", "boot-check", str(image), "-f", "json", "--timeout", str(BOOT_TIMEOUT_S), "--log", str(log),
                 *extra, db=f"sqlite:///{workdir}/catalog.db", timeout=BOOT_TIMEOUT_S + 120)  # fmt: skip
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    assert sha256(image) == before, "boot-check changed the image"
    assert Path(report["serial_log"]) == log and "Linux version" in log.read_text(errors="replace")
    assert_released(image)
    return result.returncode, report


def seconds(report: dict, name: str) -> float | None:  # type: ignore[type-arg]
    return next(m["seconds"] for m in report["milestones"] if m["name"] == name)


def assert_reachable_with_what_it_was_given(code: int, report: dict, template_keys: set[str]) -> None:  # type: ignore[type-arg]
    assert code == 0 and report["reachable"], json.dumps(report, indent=2)
    for name in ("kernel", "root", "network", "metadata", "ssh", "login", "hostname"):
        assert seconds(report, name) is not None, name
    key = report["host_key"]
    assert key["fingerprint"] not in template_keys and not key["in_image"]  # made at first boot
    assert report["image_host_keys"] == []  # prepare removed them all
    assert report["hostname_seen"] == report["metadata"]["hostname"]  # the name handed out, applied
    served = {(r["path"], r["status"]) for r in report["metadata"]["requests"]}
    assert ("/latest/meta-data/public-keys/0/openssh-key", 200) in served  # and the key it logged in with
    assert not [f for f in report["findings"] if f.startswith("FAILED unit")], report["findings"]


def test_bare_ext4_debian12_prepared_is_reachable(bare: Path, workdir: Path, template_key_fingerprints: set[str]) -> None:
    code, report = boot_check(bare, workdir)
    assert_reachable_with_what_it_was_given(code, report, template_key_fingerprints)
    assert report["boot"]["config"] == "boot/grub/grub.conf"  # no grub in the AMI: prepare wrote what pygrub reads
    assert report["boot"]["cmdline"].split() == ["ro", "root=/dev/xvda", "console=hvc0"]
    assert report["boot"]["rewrites"][0] == "root=/dev/xvda -> root=/dev/vda (qemu's disk is virtio, not Xen's)"


def test_metadata_server_down_does_not_hold_up_the_boot(
    bare: Path, workdir: Path, template_key_fingerprints: set[str]
) -> None:
    code, report = boot_check(bare, workdir, "--metadata-down")
    assert code == 0 and report["reachable"], json.dumps(report, indent=2)
    assert report["metadata"]["requests"] == [] and seconds(report, "metadata") is None
    assert report["host_key"]["fingerprint"] not in template_key_fingerprints
    ssh, prompt = seconds(report, "ssh"), seconds(report, "login-prompt")
    gave_up = next(m for m in report["milestones"] if m["name"] == "metadata")["detail"]
    assert "the script gave up at" in gave_up, gave_up
    gave_up_at = float(gave_up.rsplit("gave up at ", 1)[1].split(" s")[0])
    assert ssh is not None and prompt is not None
    assert ssh < gave_up_at and prompt < gave_up_at  # sshd and getty did not wait for the script
    assert any("the boot did not wait for it" in finding for finding in report["findings"]), report["findings"]


def test_partitioned_grub2_debian12_prepared_is_reachable(workdir: Path, template_key_fingerprints: set[str]) -> None:
    image = debian_guest.partitioned_image(workdir / "debian12-disk.raw")
    prepared(image, f"sqlite:///{workdir}/catalog.db")
    try:
        code, report = boot_check(image, workdir)
        assert_reachable_with_what_it_was_given(code, report, template_key_fingerprints)
        boot = report["boot"]
        assert boot["config"] == "boot/grub/grub.cfg" and boot["entry"] == "Debian GNU/Linux"
        assert boot["cmdline"].startswith("root=UUID=") and "console=hvc0" in boot["cmdline"].split()
        assert len(boot["rewrites"]) == 1  # root=UUID= needs no rewrite: only the serial console is added
    finally:
        image.unlink()
