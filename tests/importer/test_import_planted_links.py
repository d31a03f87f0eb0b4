"""An import into a storage directory and an SR where links were planted at every name it writes.

The real sshd test host and the xe double; links at the staged file, the compressed file, their old
``.part`` names and the published name (the old ``.part`` included) all point at a victim file.
"""

from __future__ import annotations

from pathlib import Path

from tests.importer.conftest import ImportWorld
from tests.importer.test_import_e2e import check_published, ext4_image

VICTIM_TEXT = b"root:x:0:0:root:/root:/bin/sh\n"


def test_links_planted_at_every_name_are_never_followed(world: ImportWorld, tmp_path: Path) -> None:
    victim = tmp_path / "passwd"
    victim.write_bytes(VICTIM_TEXT)
    source = ext4_image(tmp_path)
    queued = world.cli(*world.import_args(source, "--detach"))
    assert queued.code == 0, queued.err
    job_id = queued.out.strip()
    image_id = world.job(job_id)["params"]["image_id"]
    sr = world.xen.sr_path()
    planted = [
        sr / f"vdc-manage-{job_id}.staging",
        sr / f"vdc-manage-{job_id}.staging.part",
        sr / f"vdc-manage-{job_id}.vhd.bz2",
        sr / f"vdc-manage-{job_id}.vhd.bz2.part",
        world.www / f".{image_id}.vhd.bz2.part",
        world.www / f"{image_id}.vhd.bz2",
    ]
    for link in planted:
        link.symlink_to(victim)
    worker = world.cli("job", "worker", "--once")
    assert worker.code == 0, worker.err
    assert victim.read_bytes() == VICTIM_TEXT
    for link in planted[:4]:  # the links in the SR were replaced (renamed over), then cleaned up
        assert not link.is_symlink() or link.name.endswith(".part")
    assert world.job(job_id)["state"] == "succeeded"
    leftovers = [name for name in world.sr_leftovers() if not name.endswith(".part")]
    assert leftovers == []
    published = world.www / f"{image_id}.vhd.bz2"
    assert not published.is_symlink()
    for link in (sr / f"vdc-manage-{job_id}.staging.part", sr / f"vdc-manage-{job_id}.vhd.bz2.part"):
        link.unlink()  # the old names are not ours any more: the check below wants an SR without them
    check_published(world, image_id, source)
