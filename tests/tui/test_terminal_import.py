"""Issue 12's end-to-end run in a real terminal (tmux, 80x24, NO_COLOR): an import started from the form with
a chosen SR on the real sshd test host (xe double), run by a ``job worker`` process on the same catalog,
followed to ``succeeded`` in the jobs screen, its event read in the message log, ctrl+c to quit."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.importer.test_import_e2e import ext4_image
from tests.tui.test_terminal import VDC_MANAGE, Tmux, pytestmark, running  # noqa: F401 - tmux skip


def import_catalog(url: str, xen_host: Any, www: Path) -> str:
    """A catalog with the test host (no SR of its own: the pool's default applies) and a local storage."""
    from vdcmanage.catalog import storages
    from vdcmanage.catalog.db import close_catalog, open_catalog

    open_catalog(url)
    try:
        host = xen_host.add_to_catalog("xen-real", sr_role=None)
        storages.add_backup_storage("local", "http://templates.example/vdc", str(www), display_name="www")
        return str(host.id)
    finally:
        close_catalog()


def job_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("job-")), "")


def test_import_from_the_form_to_success_then_the_log_and_ctrl_c(
    xen_host: Any, sqlite_url: str, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    import_catalog(sqlite_url, xen_host, www)
    source = ext4_image(tmp_path, size=16 * 1024 * 1024)
    nfs = xen_host.sr_uuid("nfs")  # the double's second SR: not the pool's default
    env = {"LANG": "C.UTF-8", "HOME": os.environ["HOME"], "VDC_MANAGE_CONFIG": os.environ["VDC_MANAGE_CONFIG"],
           "TERM": "screen", "NO_COLOR": "1"}  # fmt: skip
    tmux = Tmux([str(VDC_MANAGE), "--db", sqlite_url, "tui"], env)
    worker: subprocess.Popen[str] | None = None
    try:
        tmux.wait_for(lambda s: "0 images" in s, "the empty images table")
        tmux.keys("2")
        tmux.wait_for(lambda s: "0 jobs" in s, "the empty jobs view")
        tmux.keys("i")
        text = tmux.wait_for(lambda s: "SR              Local storage (ext)" in s, "the form, the default SR chosen")
        assert "(default)" in sr_row(text) and "…" in sr_row(text)  # a cut label keeps its mark and says so
        tmux.keys(str(source), literal=True)
        tmux.keys("Tab", "Tab")  # past the host (the only one, chosen) to the SR picker
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "(nfs)" in s, "the SR list")
        order = [sr["uuid"] for sr in xen_host.state()["srs"]]  # the list's order; the default highlighted
        for _ in range(order.index(nfs) - order.index(xen_host.sr_uuid("ext"))):
            tmux.keys("Down")
            time.sleep(0.1)
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "SR              " in s and "(nfs)" in sr_row(s), "the NFS SR chosen")
        tmux.keys("C-s")
        text = tmux.wait_for(lambda s: "1 job" in s and "job-" in s, "the queued job in the jobs view")
        job_id = job_line(text).split()[0]

        worker = subprocess.Popen(
            [str(VDC_MANAGE), "--db", sqlite_url, "job", "worker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        text = tmux.wait_for(lambda s: "succeeded" in job_line(s), "the job's success", timeout=120)
        assert job_line(text).split()[:2] == [job_id, "succeeded"] and "100%" in job_line(text)
        assert params(sqlite_url, job_id)["sr_uuid"] == nfs  # the chosen SR went into the job
        vdis = [v for v in xen_host.state()["vdis"] if v["sr"] == nfs]
        assert vdis, "the VDI was made in the chosen SR"

        tmux.keys("m")
        text = tmux.wait_for(lambda s: "Times UTC" in s and f"{job_id}" in s, "the message log")
        assert any(job_id in line and "succeeded" in line for line in text.splitlines()), text
        assert any(job_id in line and "queued" in line for line in text.splitlines()), text

        pid = tmux.pane_pid()
        tmux.keys("C-c")
        deadline = time.monotonic() + 10
        while (tmux.alive() or running(pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive() and not running(pid)  # the dashboard process exited
    finally:
        if worker is not None:
            worker.kill()
            worker.communicate()
        tmux.kill()


def sr_row(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("│ SR ")), "")


def params(url: str, job_id: str) -> dict[str, Any]:
    from vdcmanage.catalog.db import close_catalog, open_catalog
    from vdcmanage.jobs.queue import get_job, params_of

    open_catalog(url)
    try:
        return params_of(get_job(job_id))
    finally:
        close_catalog()
