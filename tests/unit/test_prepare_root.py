"""GuestRoot: every guest path resolves inside the guest, never on the admin host."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vdcmanage.prepare.root import GuestPathError, GuestRoot, is_linux_root


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def guest(tmp_path: Path) -> GuestRoot:
    (tmp_path / "etc").mkdir()
    (tmp_path / "bin").mkdir()
    return GuestRoot(tmp_path)


def test_absolute_symlink_is_resolved_inside_the_guest(guest: GuestRoot) -> None:
    host_fstab = sha256("/etc/fstab") if os.path.exists("/etc/fstab") else None
    (guest.path / "etc/fstab.d").mkdir()
    (guest.path / "etc/fstab.d/main").write_text("/dev/sda1 / ext3 defaults 1 1\n")
    os.symlink("/etc/fstab.d/main", guest.path / "etc/fstab")

    assert guest.resolve("etc/fstab") == "etc/fstab.d/main"
    assert guest.read_text("etc/fstab") == "/dev/sda1 / ext3 defaults 1 1\n"
    guest.write_text("etc/fstab", "/dev/xvda / ext3 defaults 1 1\n")

    assert (guest.path / "etc/fstab.d/main").read_text() == "/dev/xvda / ext3 defaults 1 1\n"
    assert (guest.path / "etc/fstab").is_symlink()
    if host_fstab is not None:
        assert sha256("/etc/fstab") == host_fstab


def test_symlink_to_the_same_absolute_path_is_a_loop_inside_the_guest(guest: GuestRoot) -> None:
    os.symlink("/etc/fstab", guest.path / "etc/fstab")
    with pytest.raises(GuestPathError, match="too many levels of symbolic links"):
        guest.read_text("etc/fstab")
    with pytest.raises(GuestPathError):
        guest.write_text("etc/fstab", "x")


def test_dotdot_never_climbs_above_the_root(guest: GuestRoot) -> None:
    (guest.path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("../../../../../../etc/passwd", guest.path / "etc/link")
    assert guest.resolve("etc/link") == "etc/passwd"
    assert guest.resolve("../../etc/../etc/passwd") == "etc/passwd"
    assert guest.read_text("etc/link") == "root:x:0:0::/root:/bin/sh\n"


def test_symlinked_directory_on_the_way_is_followed_inside(guest: GuestRoot) -> None:
    (guest.path / "private/etc").mkdir(parents=True)
    (guest.path / "private/etc/hosts").write_text("127.0.0.1 localhost\n")
    os.symlink("/private/etc", guest.path / "cfg")
    assert guest.resolve("cfg/hosts") == "private/etc/hosts"
    assert guest.host_path("cfg/hosts") == guest.path / "private/etc/hosts"


def test_dangling_absolute_link_points_inside_never_outside(guest: GuestRoot) -> None:
    os.symlink("/tmp", guest.path / "scratch")  # /tmp exists on the host, not in the guest
    assert guest.resolve("scratch/x") == "tmp/x"
    assert not guest.exists("scratch/x")
    with pytest.raises(GuestPathError, match="does not exist in the guest"):
        guest.write_text("scratch/x", "never on the host")


def test_write_keeps_mode_and_replaces_atomically(guest: GuestRoot) -> None:
    shadow = guest.path / "etc/shadow"
    shadow.write_text("root:!:1::::::\n")
    shadow.chmod(0o400)
    inode_before = shadow.stat().st_ino
    guest.write_text("etc/shadow", "root:$6$x$y:2::::::\n")
    assert shadow.read_text() == "root:$6$x$y:2::::::\n"
    assert shadow.stat().st_mode & 0o777 == 0o400
    assert shadow.stat().st_ino != inode_before  # renamed into place, never half-written
    assert not [p for p in (guest.path / "etc").iterdir() if "vdc-prepare" in p.name]


def test_remove_and_symlink_act_on_the_link_not_its_target(guest: GuestRoot) -> None:
    (guest.path / "etc/real").write_text("keep me\n")
    os.symlink("/etc/real", guest.path / "etc/alias")
    guest.remove("etc/alias")
    assert (guest.path / "etc/real").read_text() == "keep me\n"
    guest.symlink("etc/real", "/dev/null")
    assert os.readlink(guest.path / "etc/real") == "/dev/null"


def test_walk_files_does_not_follow_symlinks(guest: GuestRoot) -> None:
    (guest.path / "var/log/sub").mkdir(parents=True)
    (guest.path / "var/log/a").write_text("a")
    (guest.path / "var/log/sub/b").write_text("b")
    os.symlink("/etc", guest.path / "var/log/etc-link")
    found = [path for path, _st in guest.walk_files("var/log")]
    assert sorted(found) == ["var/log/a", "var/log/etc-link", "var/log/sub/b"]


def test_linux_root_needs_etc_fstab_and_system_dirs(tmp_path: Path) -> None:
    root = GuestRoot(tmp_path)
    assert not is_linux_root(root)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/fstab").write_text("")
    assert not is_linux_root(root)
    (tmp_path / "sbin").mkdir()
    assert is_linux_root(root)
    (tmp_path / "etc/fstab").unlink()
    os.symlink("/etc/fstab", tmp_path / "etc/fstab")  # counts: the fstab step says what is wrong
    assert is_linux_root(root)
