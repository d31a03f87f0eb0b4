"""From an image to the job that made it and back (g, and Enter in a job's detail); y copies the selected id
with OSC 52; r retries a cancelled job as well as a failed one."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, settled, wait_until
from tests.tui.test_jobs_view import job_state, jobs_ready, line_of, select


def link_image_to_job(image_id: str, job_id: str) -> None:
    from vdcmanage.catalog.models import Image, Job

    Image.update(job_id=job_id).where(Image.id == image_id).execute()
    Job.update(result=f'{{"image_id": "{image_id}"}}').where(Job.id == job_id).execute()


def screen_name(app: Any) -> str:
    return str(app.screen.__class__.__name__)


def test_from_an_image_to_its_job_and_back(tui_catalog: str) -> None:
    link_image_to_job("wmi-win2008", "job-done0001")

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        screen.table.cursor_row = screen.table.find("wmi-win2008")
        await pilot.press("g")
        await wait_until(pilot, lambda: "job-done0001  import-xen  succeeded" in screen_text(pilot.app))
        assert screen_name(pilot.app) == "JobDetailScreen"
        screen.query_one("#filter").value = "ubuntu"  # hides the image: going back must still find it
        await settled(pilot, screen)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        await settled(pilot, screen)
        assert screen.table.selected["id"] == "wmi-win2008"
        assert screen.query_one("#filter").value == ""

    drive(make_app(tui_catalog), scenario)


def test_from_a_job_in_the_list_to_its_image(tui_catalog: str) -> None:
    link_image_to_job("wmi-gentoo1", "job-done0001")

    async def scenario(pilot: Any) -> None:
        jobs = await jobs_ready(pilot)
        await select(pilot, jobs, "job-done0001")
        await pilot.press("g")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "ImagesScreen")
        images = pilot.app.screen
        await wait_until(pilot, lambda: images.table.selected is not None and images.table.selected["id"] == "wmi-gentoo1")
        assert images.query_one("TopBar").current == "images"

    drive(make_app(tui_catalog), scenario)


def test_g_says_why_there_is_nowhere_to_go(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        images = await images_ready(pilot)
        await pilot.press("g")
        assert images.status.text == "ERROR: wmi-lucid0 was not made by a job (it was added with image add)"
        jobs_screen = await jobs_ready(pilot)
        await select(pilot, jobs_screen, "job-run00001")
        await pilot.press("g")
        await wait_until(pilot, lambda: "job-run00001" in jobs_screen.status.text)
        assert jobs_screen.status.text == "ERROR: job-run00001 makes no image"  # the test jobs carry no image id
        from vdcmanage.catalog.models import Job

        Job.update(params='{"image_id": "wmi-coming1"}').where(Job.id == "job-run00001").execute()
        await pilot.press("g")
        await wait_until(pilot, lambda: "wmi-coming1" in jobs_screen.status.text)
        assert jobs_screen.status.text == (
            "wmi-coming1 is not in the catalog yet: job-run00001 registers it when it succeeds"
        )
        assert screen_name(pilot.app) == "JobsScreen"

    drive(make_app(tui_catalog), scenario)


def test_y_copies_the_selected_id(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        images = await images_ready(pilot)
        await pilot.press("down", "y")
        assert pilot.app.clipboard == "wmi-centos62"
        assert images.status.text == "Copied wmi-centos62 (sent to the terminal's clipboard with OSC 52)"
        jobs = await jobs_ready(pilot)
        await select(pilot, jobs, "job-fail0001")
        await pilot.press("y")
        assert pilot.app.clipboard == "job-fail0001"
        await pilot.press("3")
        await wait_until(pilot, lambda: screen_name(pilot.app) == "HostsScreen")
        await wait_until(pilot, lambda: pilot.app.screen.host_table.row_count > 0)
        await pilot.press("y")
        assert pilot.app.clipboard == "hn-xen62a"
        await pilot.press("tab", "y")
        assert pilot.app.clipboard == "bkst-web0001"

    drive(make_app(tui_catalog), scenario)


def test_retry_starts_a_cancelled_job_over(tui_catalog: str) -> None:
    from vdcmanage.catalog.models import JobStep

    async def scenario(pilot: Any) -> None:
        screen = await jobs_ready(pilot)
        await select(pilot, screen, "job-cncl0001")
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.status.text == "✓ job-cncl0001 queued again")
        assert job_state("job-cncl0001") == ("queued", False, 1)
        steps = JobStep.select().where(JobStep.job == "job-cncl0001")
        assert {(step.state, step.bytes_done) for step in steps} == {("pending", 0)}  # every step runs again
        await wait_until(pilot, lambda: line_of(screen_text(pilot.app), "job-cncl0001").split()[1] == "queued")

    drive(make_app(tui_catalog), scenario)
