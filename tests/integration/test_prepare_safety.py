"""Checks that agree with apply, and images in use left alone: on real raw images.

- an ext4 image whose journal needs recovery is checked and dry-run read-only (ro,noload);
- an image another process holds open for writing (a running VM) is refused in every mode,
  one another process reads is refused for changes;
- ``--zero-free`` makes what prepare removed unreadable from the image file's bytes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.guests import bare_image, ubuntu1004_tree, write
from tests.integration.test_prepare_images import assert_released, loop_capable, mount_dir, sha256, statuses

__all__ = ["loop_capable", "mount_dir"]  # fixtures shared with test_prepare_images

SECRET = b"-----PRIVATE HOST KEY vdc-zero-free-marker 8c1f2e-----"


@pytest.fixture
def cli(run_cli, mount_dir: Path):  # type: ignore[no-untyped-def]
    def run(*args: str):  # type: ignore[no-untyped-def]
        return run_cli(*args, env={"TMPDIR": str(mount_dir)})

    return run


def needs_recovery(image: Path) -> bool:
    out = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True).stdout
    features = next(line for line in out.splitlines() if line.startswith("Filesystem features:"))
    return "needs_recovery" in features


def test_an_image_whose_journal_needs_recovery_is_checked_read_only(cli, tmp_path: Path) -> None:
    image = bare_image(ubuntu1004_tree(tmp_path / "tree"), tmp_path / "dirty.img")
    # what an image copied from a running VM, or a host that crashed, looks like to the kernel
    subprocess.run(["debugfs", "-w", "-R", "feature needs_recovery", str(image)], check=True, capture_output=True)
    assert needs_recovery(image)
    before = sha256(image)

    check = cli("image", "prepare", str(image), "--for", "cloud", "--check")
    assert check.code == 1, check.err  # steps needed, not a failure
    assert "its journal needs recovery: read as last written, without replaying it" in check.out
    assert statuses(check.out)["ssh-host-keys"] == "needed"
    dry = cli("image", "prepare", str(image), "--for", "cloud", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would remove etc/ssh/ssh_host_rsa_key" in dry.out
    assert sha256(image) == before and needs_recovery(image)  # never written

    applied = cli("image", "prepare", str(image), "--for", "cloud")
    assert applied.code == 0, applied.out + applied.err  # the kernel replays the journal on the writable device
    assert cli("image", "prepare", str(image), "--for", "cloud", "--check").code == 0
    assert_released(image)


def holder(image: Path, mode: str) -> subprocess.Popen[bytes]:
    """Another process with the image open, as a running VM (r+b) or a copy under way (rb) has it."""
    code = f"import sys, time\nf = open({str(image)!r}, {mode!r})\nprint('open', flush=True)\ntime.sleep(120)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"open\n"
    return proc


def test_an_image_open_for_writing_elsewhere_is_refused(cli, tmp_path: Path) -> None:
    image = bare_image(ubuntu1004_tree(tmp_path / "tree"), tmp_path / "running.img")
    before = sha256(image)
    vm = holder(image, "r+b")
    try:
        for mode in (["--check"], ["--dry-run"], []):
            result = cli("image", "prepare", str(image), "--for", "cloud", *mode)
            assert result.code == 100, (mode, result.out, result.err)
            assert f"{image} is open by pid {vm.pid} (python" in result.err and "for writing" in result.err
    finally:
        vm.kill()
        vm.wait()
    assert sha256(image) == before
    reader = holder(image, "rb")
    try:
        assert cli("image", "prepare", str(image), "--for", "cloud", "--check").code == 1  # reading alongside: fine
        refused = cli("image", "prepare", str(image), "--for", "cloud")
        assert refused.code == 100 and f"pid {reader.pid} (python" in refused.err and "for reading" in refused.err
    finally:
        reader.kill()
        reader.wait()
    assert sha256(image) == before
    assert_released(image)


def test_zero_free_leaves_nothing_removed_in_the_file(cli, tmp_path: Path) -> None:
    tree = ubuntu1004_tree(tmp_path / "tree")
    write(tree, "etc/ssh/ssh_host_rsa_key", SECRET * 200, 0o600)  # 10 KiB: in data blocks of its own
    image = bare_image(tree, tmp_path / "secret.img")
    assert SECRET in image.read_bytes()

    plain = cli("image", "prepare", str(image), "--for", "cloud")
    assert plain.code == 0, plain.out + plain.err
    assert SECRET in image.read_bytes()  # removed from the filesystem, still in its free blocks

    allocated = image.stat().st_blocks
    zeroed = cli("image", "prepare", str(image), "--for", "cloud", "--zero-free")
    assert zeroed.code == 0, zeroed.out + zeroed.err
    assert "zero-free: fstrim discarded the free blocks" in zeroed.out
    assert SECRET not in image.read_bytes()
    assert image.stat().st_blocks <= allocated  # holes where the free blocks were
    assert cli("image", "prepare", str(image), "--for", "cloud", "--check").code == 0
    assert_released(image)


def test_zero_free_is_refused_for_a_directory_and_with_check(cli, tmp_path: Path) -> None:
    tree = ubuntu1004_tree(tmp_path / "tree")
    directory = cli("image", "prepare", str(tree), "--for", "cloud", "--zero-free")
    assert directory.code == 100 and "--zero-free works on image files" in directory.err
    image = bare_image(tree, tmp_path / "x.img")
    check = cli("image", "prepare", str(image), "--for", "cloud", "--check", "--zero-free")
    assert check.code == 100 and "--zero-free changes the image" in check.err
