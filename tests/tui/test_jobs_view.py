"""The jobs view driven with the pilot: progress, failed and stalled jobs, detail, cancel, retry, import form."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tests.tui.conftest import drive, make_app, screen_text, settled, wait_until
from tests.tui.data import NOW


async def jobs_ready(pilot: Any) -> Any:
    from tui.screens.jobs import JobsScreen

    await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
    await pilot.press("2")
    await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, JobsScreen) and pilot.app.screen.total is not None,
        what="the jobs view",
    )
    return pilot.app.screen


def job_state(job_id: str) -> tuple[str, bool, int]:
    from vdcmanage.jobs.queue import get_job

    job = get_job(job_id)
    return job.state, bool(job.cancel_requested), job.attempts


def line_of(text: str, job_id: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(job_id))


async def select(pilot: Any, screen: Any, job_id: str) -> None:
    index = screen.table.find(job_id)
    assert index is not None, job_id
    screen.table.cursor_row = index
    await pilot.pause(0.05)


def test_jobs_show_state_step_progress_rate_and_eta(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        text = screen_text(pilot.app)
        assert screen.total == 6
        header = text.splitlines()[2]
        assert header.split() == ["ID", "State", "Image", "Step", "Progress", "Done", "ETA"]  # Rate: wider terminals
        running = line_of(text, "job-run00001")
        # step 5 of 10, 1200 MiB of 4 GiB: (4 + 0.29) / 10 of the job; 20 MiB/s since vdi-import started a
        # minute ago, 2896 MiB left: 2 min 25 s
        assert running.split() == [
            "job-run00001",
            "running",
            "ubuntu-14…",
            "5/10",
            "vdi-import",
            "█░░░░░",
            "1.2G/4.0G",
            "42%",
            "2:25",
        ]
        assert "FAILED" in line_of(text, "job-fail0001")
        assert "STALLED" in line_of(text, "job-stall001")  # running, but no heartbeat for 10 minutes
        assert line_of(text, "job-stall001").split()[-2:] == ["300M/2.0G", "51%"]  # no ETA for a stalled job
        assert line_of(text, "job-queue001").split()[1:] == ["queued", "fedora-20…"]  # no step yet
        assert line_of(text, "job-done0001").split()[3:] == ["10/10", "cleanup", "██████", "150M/150M", "100%"]

    drive(make_app(tui_catalog), scenario)


def test_a_wide_terminal_adds_rate_kind_and_created(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        text = screen_text(pilot.app)
        assert text.splitlines()[2].split()[-6:] == ["Done", "Rate", "ETA", "Kind", "Created", "(UTC)"]
        assert line_of(text, "job-run00001").split()[-6:] == ["42%", "20.0M/s", "2:25", "import-xen", "2024-05-01", "07:00"]

    drive(make_app(tui_catalog), scenario, size=(160, 40))


def test_failed_and_stalled_rows_stand_out_in_style_too(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        table = screen.table
        failed = next(row for _, row in table.loaded_rows() if row.id == "job-fail0001")
        stalled = next(row for _, row in table.loaded_rows() if row.id == "job-stall001")
        assert table.row_class(failed) == "lazy-table--failed"
        assert table.row_class(stalled) == "lazy-table--warning"
        assert table.get_component_rich_style("lazy-table--failed").bold

    drive(make_app(tui_catalog), scenario)


def test_state_filter_and_text_filter(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await pilot.press("f")  # running
        await settled(pilot, screen)
        assert sorted(row.id for _, row in screen.table.loaded_rows()) == ["job-run00001", "job-stall001"]
        assert "2 jobs · running" in screen_text(pilot.app)
        await pilot.press("f")  # failed
        await settled(pilot, screen)
        assert [row.id for _, row in screen.table.loaded_rows()] == ["job-fail0001"]
        for _ in range(4):
            await pilot.press("f")  # queued, succeeded, cancelled, all
        await settled(pilot, screen)
        assert screen.search.state is None
        await pilot.press("slash", *"space left")  # words of the error
        await settled(pilot, screen)
        assert [row.id for _, row in screen.table.loaded_rows()] == ["job-fail0001"]
        screen.query_one("#filter").value = ""
        await pilot.press(*"/images/centos")  # in the filter, "/" is text: the parameters hold paths
        await settled(pilot, screen)
        assert screen.query_one("#filter").value == "/images/centos"
        assert sorted(row.id for _, row in screen.table.loaded_rows()) == ["job-done0001", "job-stall001"]

    drive(make_app(tui_catalog), scenario)


def test_detail_shows_each_steps_times_and_the_log_tail(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-fail0001")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Steps (times UTC)" in screen_text(pilot.app))
        text = screen_text(pilot.app)
        assert "job-fail0001  import-xen  FAILED" in text
        assert "Error: Step publish failed: No space left on device" in text
        inspect = next(line for line in text.splitlines() if line.strip().startswith("inspect"))
        assert inspect.split() == ["inspect", "done", "11:26:00", "11:26:30", "30s"]
        await pilot.press("pagedown")
        await pilot.pause(0.1)
        text = screen_text(pilot.app)
        publish = next(line for line in text.splitlines() if line.strip().startswith("publish"))
        assert publish.split() == ["publish", "failed", "11:29:00", "11:29:30", "30s", "90.0M/150M", "3.0M/s"]
        await pilot.press("pagedown", "pagedown")
        await pilot.pause(0.1)
        text = screen_text(pilot.app)
        assert "11:30:00 error job failed: Step publish failed" in text  # the log tail, newest last
        assert "07:20:00 info  queued import-xen" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: pilot.app.screen is screen)

    drive(make_app(tui_catalog), scenario)


def test_cancel_asks_then_cancels_a_queued_job(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-queue001")
        await pilot.press("c")
        await wait_until(pilot, lambda: "Cancel job job-queue001 (fedora-20.raw)?" in screen_text(pilot.app))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.status.text == "✓ Cancelled job-queue001")
        assert job_state("job-queue001") == ("cancelled", False, 0)
        await wait_until(pilot, lambda: "cancelled" in line_of(screen_text(pilot.app), "job-queue001"))

    drive(make_app(tui_catalog), scenario)


def test_cancel_of_a_running_job_asks_it_to_stop(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-run00001")
        await pilot.press("c", "y")
        await wait_until(pilot, lambda: job_state("job-run00001") == ("running", True, 1))
        await wait_until(pilot, lambda: "cancelling" in line_of(screen_text(pilot.app), "job-run00001"))

    drive(make_app(tui_catalog), scenario)


def test_refused_cancel_and_retry_show_why_and_change_nothing(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-done0001")
        await pilot.press("c", "y")
        await wait_until(pilot, lambda: screen.status.has_class("-error"))
        assert screen.status.text == "ERROR: cancel job-done0001: Job job-done0001 is already succeeded"
        assert job_state("job-done0001") == ("succeeded", False, 1)
        await select(pilot, screen, "job-run00001")
        from vdcmanage.catalog.models import Job, utcnow

        # its owner on another admin host lives: a fresh heartbeat by the real clock (a stale one is retried)
        Job.update(heartbeat_at=utcnow()).where(Job.id == "job-run00001").execute()
        await pilot.press("r")
        await wait_until(pilot, lambda: "retry job-run00001:" in screen.status.text)
        assert "Job job-run00001 is running on admin1:4242:1 (heartbeat " in screen.status.text
        assert job_state("job-run00001") == ("running", False, 1)

    drive(make_app(tui_catalog), scenario)


def test_retry_queues_a_failed_job_again(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-fail0001")
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.status.text == "✓ job-fail0001 queued again")
        assert job_state("job-fail0001") == ("queued", False, 1)
        await wait_until(pilot, lambda: "queued" in line_of(screen_text(pilot.app), "job-fail0001"))

    drive(make_app(tui_catalog), scenario)


def test_cancel_and_retry_from_the_detail_view(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-fail0001")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "FAILED" in screen_text(pilot.app))
        await pilot.press("r")
        await wait_until(pilot, lambda: job_state("job-fail0001")[0] == "queued")
        await wait_until(pilot, lambda: "job-fail0001  import-xen  queued" in screen_text(pilot.app))
        await pilot.press("c", "y")
        await wait_until(pilot, lambda: job_state("job-fail0001")[1] is True)  # it ran before: cleanup queued

    drive(make_app(tui_catalog), scenario)


def test_live_progress_and_a_new_job_keep_the_selection(tui_catalog: str) -> None:
    """A worker's heartbeat moves the bar without a key press; a job queued elsewhere does not move the cursor."""
    from vdcmanage.catalog.models import Job
    from vdcmanage.jobs import queue

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-fail0001")
        Job.update(bytes_done=3 << 30, heartbeat_at=NOW, updated_at=dt.datetime.now()).where(
            Job.id == "job-run00001"
        ).execute()
        await wait_until(pilot, lambda: "3.0G/4.0G" in line_of(screen_text(pilot.app), "job-run00001"), timeout=3)
        queue.submit("import-xen", {"path": "/srv/images/new.raw"}, ["inspect"])
        await wait_until(pilot, lambda: screen.total == 7, timeout=3)
        assert screen.table.selected.id == "job-fail0001"
        assert screen.table.cursor_row == 4

    drive(make_app(tui_catalog), scenario)


def test_a_job_whose_heartbeat_stops_becomes_stalled_without_a_key_press(tui_catalog: str) -> None:
    clock = {"now": NOW}

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        assert "running" in line_of(screen_text(pilot.app), "job-run00001")
        clock["now"] = NOW + dt.timedelta(minutes=2)  # no heartbeat for two minutes
        await wait_until(pilot, lambda: "STALLED" in line_of(screen_text(pilot.app), "job-run00001"), timeout=3)
        assert screen.table.row_class(screen.table.selected or screen.table.row_at(5)) is not None

    drive(make_app(tui_catalog, clock=lambda: clock["now"]), scenario)


def import_form(pilot: Any) -> Any:
    return pilot.app.screen


async def open_import_form(pilot: Any) -> Any:
    await pilot.press("i")
    await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ImportDialog")
    form = pilot.app.screen
    await wait_until(pilot, lambda: "choose a host" in str(form.query_one("#host").prompt))
    return form


def count_jobs() -> int:
    from vdcmanage.catalog.models import Job

    return Job.select().count()


def test_import_form_queues_a_detached_job(tui_catalog: str, tmp_path: Path) -> None:
    image = tmp_path / "my image.raw"
    image.write_bytes(b"\0" * 4096)

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        form = await open_import_form(pilot)
        assert form.query_one("#account").value == "a-shpoolxx"  # the shared account by default
        form.query_one("#path").value = str(image)
        form.query_one("#host").value = "hn-xen62a"
        form.query_one("#storage").value = "bkst-local01"
        form.query_one("#description").value = "from the dashboard"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        assert count_jobs() == 7
        await wait_until(pilot, lambda: screen.total == 7)
        job = screen.table.row_at(0)
        assert screen.status.text == f"✓ Queued {job.id}: import of my image.raw"
        from vdcmanage.jobs.queue import get_job, params_of

        params = params_of(get_job(job.id))
        assert params["path"] == str(image)
        assert params["host_id"] == "hn-xen62a"
        assert params["backup_storage_id"] == "bkst-local01"
        assert params["sr_uuid"] is None  # chosen when the job runs, as `host check` chooses
        assert params["description"] == "from the dashboard"
        assert get_job(job.id).state == "queued"

    drive(make_app(tui_catalog), scenario)


def test_import_form_shows_refusals_inline_and_queues_nothing(tui_catalog: str, tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)

    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        form = await open_import_form(pilot)
        error = form.query_one("#form-error")
        attempts = [
            ({"path": str(tmp_path / "missing.raw"), "host": "hn-xen62a"}, f"File not found: {tmp_path}/missing.raw"),
            ({"path": str(image), "host": None}, "The host id must not be empty"),
            # a host without an SR of its own is fine (the pool's default SR is used): the storage is not
            ({"path": str(image), "host": "hn-xcp83b"}, "Several backup storages are defined"),
            ({"path": str(image), "host": "hn-xen62a"}, "Several backup storages are defined"),
        ]
        for values, expected in attempts:
            form.query_one("#path").value = values["path"]
            if values["host"] is None:
                form.query_one("#host").clear()
            else:
                form.query_one("#host").value = values["host"]
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda expected=expected: expected in str(error.render()), what=expected)
            assert str(error.render()).startswith("ERROR: ")
            assert pilot.app.screen is form
        assert count_jobs() == 6

    drive(make_app(tui_catalog), scenario)


def test_import_form_lists_the_hosts_srs_and_queues_the_chosen_one(
    tui_catalog: str, xen_host: Any, tmp_path: Path
) -> None:
    """Against the real sshd test host and xe double: the SRs with free space, the pool default marked and
    preselected (left on it, nothing is stored); another SR and a name label chosen go into the job."""
    from vdcmanage.catalog.models import Job
    from vdcmanage.jobs.queue import params_of

    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 4096)
    host = xen_host.add_to_catalog("xen-real", sr_role=None)  # no SR of its own: the pool's default applies
    ext, nfs = xen_host.sr_uuid("ext"), xen_host.sr_uuid("nfs")

    async def fill_and_queue(pilot: Any, sr: str | None, name_label: str) -> dict[str, Any]:
        screen = pilot.app.screen
        form = await open_import_form(pilot)
        form.query_one("#path").value = str(image)
        form.query_one("#storage").value = "bkst-local01"
        form.query_one("#host").value = host.id
        select = form.query_one("#sr")
        await wait_until(pilot, lambda: select.value == ext, what="the default SR preselected")
        options = {value: str(prompt) for prompt, value in select._options if isinstance(value, str)}
        assert set(options) == {record["uuid"] for record in xen_host.state()["srs"]}
        assert options[ext].startswith("Local storage (ext) (default)") and options[ext].endswith(ext)
        assert "free" in options[ext] and "(default)" not in options[nfs]
        if sr is not None:
            select.value = sr
        form.query_one("#name-label").value = name_label
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the form to close")
        return params_of(Job.select().order_by(Job.created_at.desc(), Job.id.desc()).get())

    async def scenario(pilot: Any) -> None:
        await jobs_ready(pilot)
        chosen = await fill_and_queue(pilot, nfs, "web base 2024")
        assert chosen["sr_uuid"] == nfs and chosen["name_label"] == "web base 2024"
        assert chosen["host_id"] == host.id
        default = await fill_and_queue(pilot, None, "left on default")
        assert default["sr_uuid"] is None and default["name_label"] == "left on default"

    drive(make_app(tui_catalog), scenario, size=(120, 40))


def test_detail_shows_the_whole_log_scrollable_with_a_hint(tui_catalog: str) -> None:
    """300 log lines at 80x24: every one is in the detail (not a tail), the view says it scrolls and where,
    and End / Home reach the newest and the oldest line."""
    from vdcmanage.jobs import queue

    job = queue.submit("import-xen", {"path": "/srv/images/long.raw"}, ["inspect"])
    for n in range(300):
        queue.log(job.id, f"line {n:03d} of the long log")

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, job.id)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Steps (times UTC)" in screen_text(pilot.app), what="the detail")
        detail = pilot.app.screen
        body = str(detail.query_one("#job-detail-text").render())
        assert all(f"line {n:03d} of the long log" in body for n in range(300))
        assert "Log (301 lines, oldest first)" in body  # the submit's "queued" line and ours
        hint = lambda: str(detail.query_one("#scroll-hint").render())  # noqa: E731
        await wait_until(pilot, lambda: hint().startswith("↑↓ PgUp PgDn Home End scroll · 0%"), what="the hint")
        assert hint() in screen_text(pilot.app)
        await pilot.press("end")
        await wait_until(pilot, lambda: "line 299 of the long log" in screen_text(pilot.app), what="the end")
        await wait_until(pilot, lambda: "· 100% ·" in hint())
        assert "line 000 of the long log" not in screen_text(pilot.app)
        queue.log(job.id, "a new line while it is queued")  # at the end, the view follows new lines
        await wait_until(pilot, lambda: "a new line while it is queued" in screen_text(pilot.app), what="following")
        assert "log of 302 lines" in hint()
        await pilot.press("home")
        await wait_until(pilot, lambda: f"{job.id}  import-xen" in screen_text(pilot.app), what="the top")
        await wait_until(pilot, lambda: "· 0% ·" in hint())

    drive(make_app(tui_catalog), scenario)
