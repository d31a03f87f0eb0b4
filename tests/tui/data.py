"""Fixed catalog contents for the dashboard tests: the same ids, names and times on every run."""

from __future__ import annotations

import datetime as dt
import json

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.models import SHARED_ACCOUNT_ID, Account, BackupStorage, Host, Image, Job, JobLog, JobStep
from vdcmanage.importer.request import STEPS

NOW = dt.datetime(2024, 5, 1, 12, 0, 0)  # the dashboard's clock in these tests (naive UTC)
GiB = 1 << 30
MiB = 1 << 20


def at(minutes_before: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_before)


IMAGES = [
    # id, name, account, arch, format, size, virtual size, state, minutes before NOW, description
    (
        "wmi-lucid0",
        "Ubuntu 10.04 64bit",
        SHARED_ACCOUNT_ID,
        "x86_64",
        "qcow2",
        612 * MiB,
        10 * GiB,
        "available",
        600,
        "Ubuntu 10.04 64bit\nwith cloud-init",
    ),
    (
        "wmi-centos62",
        "Centos 6.2 x86_64",
        SHARED_ACCOUNT_ID,
        "x86_64",
        "vhd",
        150 * MiB,
        10 * GiB,
        "available",
        540,
        "CentOS 6.2 template (AMI)",
    ),
    ("wmi-debian7", "Debian 7 minimal", "a-tenant01", "x86_64", "raw", 2 * GiB, 2 * GiB, "available", 480, None),
    (
        "wmi-win2008",
        "Windows 2008 R2",
        "a-tenant01",
        "x86_64",
        "vhd",
        9 * GiB,
        40 * GiB,
        "available",
        420,
        "licensed, tenant 01 only",
    ),
    (
        "wmi-broken1",
        "Fedora 20 (bad upload)",
        "a-tenant02",
        "x86_64",
        "qcow2",
        3 * MiB,
        8 * GiB,
        "broken",
        360,
        "checksum did not match",
    ),
    (
        "wmi-lucid32",
        "Ubuntu 10.04 32bit",
        SHARED_ACCOUNT_ID,
        "x86",
        "qcow2",
        540 * MiB,
        10 * GiB,
        "available",
        300,
        None,
    ),
    ("wmi-gentoo1", "Gentoo stage3", "a-tenant02", "x86_64", "raw", 5 * GiB, 5 * GiB, "creating", 240, None),
    ("wmi-old0001", "Old deleted image", SHARED_ACCOUNT_ID, "x86_64", "raw", GiB, GiB, "deleted", 200, None),
]

JOBS = [
    # id, state, current step, done, total, heartbeat (minutes before NOW), step started, error, name label
    ("job-run00001", "running", "vdi-import", 1200 * MiB, 4 * GiB, 0.02, 1.0, None, "ubuntu-14.04.raw"),
    ("job-stall001", "running", "compress", 300 * MiB, 2 * GiB, 10.0, 12.0, None, "centos-7.raw"),
    (
        "job-fail0001",
        "failed",
        "publish",
        90 * MiB,
        150 * MiB,
        30.0,
        31.0,
        "Step publish failed: No space left on device on bkst-web0001",
        "debian-7.raw",
    ),
    ("job-queue001", "queued", None, 0, 0, None, None, None, "fedora-20.raw"),
    ("job-done0001", "succeeded", "cleanup", 150 * MiB, 150 * MiB, 100.0, 101.0, None, "centos-6.2.raw"),
    ("job-cncl0001", "cancelled", "stage", 20 * MiB, 2 * GiB, 200.0, 201.0, "cancelled by operator", "arch.raw"),
]


def fill_catalog() -> None:
    """Accounts, images (one deleted), jobs in every state (one stalled), hosts and backup storages."""
    with transaction(write=True):
        add_accounts()
        add_images()
        for index, spec in enumerate(JOBS):
            add_job(index, *spec)
        add_inventory()


def add_accounts() -> None:
    Account.create(id="a-tenant01", name="tenant one", created_at=at(900), updated_at=at(900))
    Account.create(id="a-tenant02", name="tenant two", created_at=at(900), updated_at=at(900))


def add_images() -> None:
    for image_id, name, account, arch, file_format, size, vsize, state, minutes, description in IMAGES:
        Image.create(
            id=image_id,
            account=account,
            source_uri=f"file:///srv/images/{image_id}.{file_format}",
            arch=arch,
            is_public=account == SHARED_ACCOUNT_ID,
            state=state,
            display_name=name,
            description=description,
            file_format=file_format,
            size=size,
            virtual_size=vsize,
            md5=image_id.encode().hex().ljust(32, "0")[:32],
            sha256=image_id.encode().hex().ljust(64, "f")[:64],
            created_at=at(minutes),
            updated_at=at(minutes),
            deleted_at=at(minutes - 10) if state == "deleted" else None,
        )


def add_job(
    index: int,
    job_id: str,
    state: str,
    step: str | None,
    done: int,
    total: int,
    heartbeat: float | None,
    step_started: float | None,
    error: str | None,
    label: str,
) -> None:
    created = at(300 - index * 10)
    params = {
        "path": f"/srv/images/{label}",
        "host_id": "hn-xen62a",
        "account_id": SHARED_ACCOUNT_ID,
        "backup_storage_id": "bkst-web0001",
        "name_label": label,
    }
    Job.create(
        id=job_id,
        kind="import-xen",
        params=json.dumps(params, sort_keys=True),
        state=state,
        current_step=step,
        bytes_done=done,
        bytes_total=total,
        error=error,
        attempts=0 if state == "queued" else 1,
        worker="admin1:4242:1" if state == "running" else None,
        heartbeat_at=at(heartbeat) if heartbeat is not None else None,
        created_at=created,
        updated_at=at(heartbeat) if heartbeat is not None else created,
        started_at=at(step_started + 5) if step_started is not None else None,
        finished_at=at(heartbeat) if state in ("failed", "succeeded", "cancelled") and heartbeat else None,
    )
    reached = STEPS.index(step) if step else -1
    for position, name in enumerate(STEPS):
        add_step(job_id, state, position, name, reached, done, total, step_started, error)
    JobLog.create(job=job_id, at=created, message="queued import-xen")
    if step:
        JobLog.create(job=job_id, at=at(step_started + 5), message="claimed by admin1:4242:1")
        JobLog.create(job=job_id, at=at(step_started), message=f"step {step} started")
    if error and state == "failed":
        JobLog.create(job=job_id, at=at(heartbeat or 0), level="error", message=f"job failed: {error}")


def add_step(
    job_id: str,
    state: str,
    position: int,
    name: str,
    reached: int,
    done: int,
    total: int,
    step_started: float | None,
    error: str | None,
) -> None:
    """Steps before the current one are done (half a minute each), the current one is in the job's state."""
    step_state, started, finished = "pending", None, None
    if step_started is not None and position <= reached:
        started = at(step_started + (reached - position) * 0.5)
        finished = at(step_started + (reached - position) * 0.5 - 0.5)
        if position < reached or state == "succeeded":
            step_state = "done"
        elif state == "running":
            step_state, finished = "running", None
        else:
            step_state = "failed"
    current = position == reached
    JobStep.create(
        job=job_id,
        position=position,
        name=name,
        state=step_state,
        bytes_done=done if current else 0,
        bytes_total=total if current else 0,
        started_at=started,
        finished_at=finished,
        error=error if current and step_state == "failed" else None,
    )


def add_inventory() -> None:
    Host.create(
        id="hn-xen62a",
        name="xen62",
        address="10.0.0.5",
        port=22,
        user="root",
        sr_uuid="4c2a7f3e-5d1b-4a8e-9f7c-1b2d3e4f5a6b",
        created_at=at(1000),
        updated_at=at(1000),
    )
    Host.create(
        id="hn-xcp83b",
        name="xcp83",
        address="xcp83.example",
        port=None,
        user=None,
        sr_uuid=None,
        created_at=at(990),
        updated_at=at(990),
    )
    BackupStorage.create(
        id="bkst-web0001",
        display_name="templates",
        storage_type="ssh",
        base_uri="http://templates.example/vhd/",
        path="/var/www/vhd",
        address="web1.example",
        created_at=at(1000),
        updated_at=at(1000),
    )
    BackupStorage.create(
        id="bkst-local01",
        display_name="local",
        storage_type="local",
        base_uri="http://admin.example/templates/",
        path="/srv/templates",
        created_at=at(995),
        updated_at=at(995),
    )


# -- hostile text: markup, terminal escapes and control characters in every free-text field ---------------

# One line (names are refused with a newline), with Rich/Textual markup, ESC, a C1 CSI and DEL.
HOSTILE_NAME = "[/]evil [bold]x[link=https://e.example]y\x1b[2J\x9b31m\x7f"
# Free text may span lines: a forged ERROR: line, an OSC title change with BEL, a tab.
HOSTILE_TEXT = HOSTILE_NAME + "\nERROR: forged\x1b]0;owned\x07\tend"


def add_hostile_records() -> None:
    """An account, image, host, backup storage and failed job whose every free-text field is hostile."""
    with transaction(write=True):
        Account.create(id="a-evil0001", name=HOSTILE_NAME, description=HOSTILE_TEXT, created_at=NOW, updated_at=NOW)
        Image.create(
            id="wmi-evil0001", account="a-evil0001", source_uri=f"file:///srv/{HOSTILE_NAME}.raw", arch="x86_64",
            is_public=False, state="available", display_name=HOSTILE_NAME, description=HOSTILE_TEXT,
            file_format="raw", size=MiB, virtual_size=MiB, md5="0" * 32, sha256="0" * 64,
            created_at=at(700), updated_at=at(700),  # the oldest: the first row of the images view
        )  # fmt: skip
        Host.create(
            id="hn-evil0001", name=HOSTILE_NAME, address=f"{HOSTILE_NAME}.example", port=22, user="root",
            key_file=f"/keys/{HOSTILE_NAME}", sr_uuid=None, created_at=NOW, updated_at=NOW,
        )  # fmt: skip
        BackupStorage.create(
            id="bkst-evil0001", display_name=HOSTILE_NAME, storage_type="ssh", base_uri=f"http://{HOSTILE_NAME}/",
            path=f"/var/www/{HOSTILE_NAME}", address=HOSTILE_NAME, created_at=NOW, updated_at=NOW,
        )  # fmt: skip
        add_job(-10, "job-evil0001", "failed", "publish", MiB, 2 * MiB, 1.0, 2.0, HOSTILE_TEXT, HOSTILE_NAME)
        JobLog.create(job="job-evil0001", at=at(0.5), level="error", message=HOSTILE_TEXT)
