"""The browse queries the dashboard pages through, on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.tui.data import NOW, fill_catalog
from vdcmanage.catalog import browse
from vdcmanage.errors import InvalidArgument
from vdcmanage.jobs import browse as job_browse

pytestmark = pytest.mark.catalog


@pytest.fixture
def filled(any_catalog: str) -> str:
    fill_catalog()
    return any_catalog


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_words_match_id_name_description_and_account_any_case(filled: str) -> None:
    def search(text: str) -> list[str]:
        return ids(browse.image_page(browse.ImageSearch(text=text, sort="id"), 0, 100))

    assert search("UBUNTU") == ["wmi-lucid0", "wmi-lucid32"]
    assert search("cloud-init") == ["wmi-lucid0"]
    assert search("TENANT two") == ["wmi-broken1", "wmi-gentoo1"]
    assert search("a-tenant01") == ["wmi-debian7", "wmi-win2008"]
    assert search("wmi-cent") == ["wmi-centos62"]
    assert search("ubuntu 32bit") == ["wmi-lucid32"]
    assert search("%") == []  # LIKE wildcards are literal
    assert search("Ubuntu_10") == []  # "_" would match the space of "Ubuntu 10.04"
    assert search("x86_64") == ["wmi-centos62"]
    assert search("deleted") == []  # deleted images are not listed
    assert ids(browse.image_page(browse.ImageSearch(text="deleted", include_deleted=True), 0, 10)) == ["wmi-old0001"]


@pytest.mark.parametrize("sort", list(browse.IMAGE_SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_pages_of_every_ordering_tile_it_and_positions_agree(filled: str, sort: str, descending: bool) -> None:
    search = browse.ImageSearch(sort=sort, descending=descending)
    everything = ids(browse.image_page(search, 0, 100))
    assert sorted(everything) == sorted(
        ["wmi-lucid0", "wmi-centos62", "wmi-debian7", "wmi-win2008", "wmi-broken1", "wmi-lucid32", "wmi-gentoo1"]
    )
    paged = [i for offset in range(0, 7, 3) for i in ids(browse.image_page(search, offset, 3))]
    assert paged == everything
    assert browse.count_images(search) == 7
    for position, image_id in enumerate(everything):
        assert browse.image_position(search, image_id) == position
    assert browse.image_position(search, "wmi-old0001") is None


def test_orderings_are_the_ones_asked_for(filled: str) -> None:
    by_size = browse.image_page(browse.ImageSearch(sort="size", descending=True), 0, 100)
    assert [row["size"] for row in by_size] == sorted((row["size"] for row in by_size), reverse=True)
    by_name = browse.image_page(browse.ImageSearch(sort="name"), 0, 2)
    assert ids(by_name) == ["wmi-centos62", "wmi-debian7"]
    by_created = browse.image_page(browse.ImageSearch(), 0, 100)
    assert ids(by_created)[0] == "wmi-lucid0"


def test_bad_searches_are_refused(filled: str) -> None:
    with pytest.raises(InvalidArgument, match="Unknown sort key 'colour'"):
        browse.image_page(browse.ImageSearch(sort="colour"), 0, 10)
    with pytest.raises(InvalidArgument, match="Search text is too long"):
        browse.count_images(browse.ImageSearch(text="x" * 201))
    with pytest.raises(InvalidArgument, match="Bad page"):
        browse.image_page(browse.ImageSearch(), -1, 10)
    with pytest.raises(InvalidArgument, match="Bad page"):
        browse.image_page(browse.ImageSearch(), 0, 100_000)
    with pytest.raises(InvalidArgument, match="Unknown job state 'stuck'"):
        job_browse.count_jobs(job_browse.JobSearch(state="stuck"))


def test_change_tokens_change_with_every_kind_of_change(filled: str) -> None:
    from vdcmanage.catalog.images import delete_image, modify_image, set_features

    seen = {browse.images_token()}
    for change in (
        lambda: modify_image("wmi-lucid0", description="new"),
        lambda: set_features("wmi-lucid0", virtio=True),
        lambda: delete_image("wmi-debian7"),
    ):
        change()
        token = browse.images_token()
        assert token not in seen
        seen.add(token)
    assert browse.images_token() == browse.images_token()  # stable while nothing changes


def test_job_pages_carry_the_current_steps_start_and_a_label(filled: str) -> None:
    rows = job_browse.job_page(job_browse.JobSearch(), 0, 100)
    assert [row.id for row in rows][:2] == ["job-cncl0001", "job-done0001"]  # newest first
    running = next(row for row in rows if row.id == "job-run00001")
    assert running.label == "ubuntu-14.04.raw"
    assert running.step_started_at == NOW - dt.timedelta(minutes=1)
    queued = next(row for row in rows if row.id == "job-queue001")
    assert queued.step_started_at is None
    search = job_browse.JobSearch(text="no space")
    assert [row.id for row in job_browse.job_page(search, 0, 10)] == ["job-fail0001"]
    assert job_browse.count_jobs(job_browse.JobSearch(state="running")) == 2
    for position, row in enumerate(rows):
        assert job_browse.job_position(job_browse.JobSearch(), row.id) == position


def test_progress_figures_and_stalled_at_a_given_time() -> None:
    start = NOW - dt.timedelta(seconds=100)
    figures = job_browse.progress_figures(100 << 20, 300 << 20, start, NOW)
    assert figures.rate == pytest.approx((100 << 20) / 100)
    assert figures.eta_seconds == pytest.approx(200)
    assert job_browse.progress_figures(0, 300, start, NOW) == job_browse.Figures(None, None)
    assert job_browse.progress_figures(10, 300, None, NOW) == job_browse.Figures(None, None)
    assert not job_browse.is_stalled_at("running", NOW - dt.timedelta(seconds=59), NOW)
    assert job_browse.is_stalled_at("running", NOW - dt.timedelta(seconds=61), NOW)
    assert job_browse.is_stalled_at("running", None, NOW)
    assert not job_browse.is_stalled_at("failed", None, NOW)


def test_job_detail_has_every_step_and_the_log_tail(filled: str) -> None:
    detail = job_browse.job_detail("job-run00001", NOW)
    assert detail["state"] == "running" and not detail["stalled"]
    steps = {step["name"]: step for step in detail["steps"]}
    assert steps["vdi-import"]["state"] == "running"
    assert steps["vdi-import"]["seconds"] == 60
    assert steps["vdi-import"]["rate"] == pytest.approx(1200 * (1 << 20) / 60)
    assert steps["inspect"]["state"] == "done" and steps["inspect"]["seconds"] == 30
    assert steps["cleanup"]["state"] == "pending" and steps["cleanup"]["seconds"] is None
    assert [line["message"] for line in detail["log"]] == [
        "queued import-xen",
        "claimed by admin1:4242:1",
        "step vdi-import started",
    ]
    assert job_browse.job_detail("job-stall001", NOW)["stalled"] is True


def test_inventory_lists_live_records_without_host_keys(filled: str) -> None:
    hosts = browse.live_hosts()
    assert [h["id"] for h in hosts] == ["hn-xen62a", "hn-xcp83b"]
    assert "host_key" not in hosts[0]
    assert [s["id"] for s in browse.live_backup_storages()] == ["bkst-web0001", "bkst-local01"]
    assert {a["id"] for a in browse.live_accounts()} == {"a-shpoolxx", "a-tenant01", "a-tenant02"}


@pytest.mark.parametrize("any_catalog_url", ["postgresql"], indirect=True)  # the only backend with such indexes
def test_postgresql_answers_a_three_letter_word_from_trigram_indexes(filled: str) -> None:
    """The dashboard's filter must not read every image on PostgreSQL (a word matching nothing took
    ~210 ms at 100,000 images that way)."""
    from vdcmanage.catalog.db import database
    from vdcmanage.catalog.models import Image

    indexes = {row[0] for row in database.execute_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'image'")}
    assert {f"image_{column}_trgm" for column in ("id", "display_name", "description", "account_id")} <= indexes
    now = dt.datetime(2026, 1, 1)
    Image.insert_many(  # enough rows that reading them all costs the planner more than the indexes do
        [(f"wmi-fill{i:04d}", "a-shpoolxx", f"file:///images/fill{i}.raw", "x86_64", "available",
          f"filler {i}", "a description long enough to be worth an index " * 4, "raw", 1, 1, "0" * 32, "0" * 64, now, now)
         for i in range(5000)],
        fields=[Image.id, Image.account, Image.source_uri, Image.arch, Image.state, Image.display_name,
                Image.description, Image.file_format, Image.size, Image.virtual_size, Image.md5, Image.sha256,
                Image.created_at, Image.updated_at],
    ).execute()
    database.execute_sql("VACUUM ANALYZE image")  # as autovacuum would: moves new rows into the GIN indexes
    sql, params = browse.filtered_images(browse.ImageSearch(text="two"), Image.id).sql()  # "two": an account's name
    plan = "\n".join(row[0] for row in database.execute_sql(f"EXPLAIN {sql}", params))
    assert "Seq Scan on image" not in plan and "_trgm" in plan, plan
    assert ids(browse.image_page(browse.ImageSearch(text="two", sort="id"), 0, 10)) == ["wmi-broken1", "wmi-gentoo1"]
