"""What an import is asked to do, checked before anything is queued, and submitted as a job."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from vdcmanage.catalog.accounts import live_account
from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.hosts import check_sr_uuid
from vdcmanage.catalog.ids import new_id
from vdcmanage.catalog.images import ARCHES, default_display_name, resolve_image_file
from vdcmanage.catalog.models import BackupStorage, Host, Job
from vdcmanage.catalog.records import find_live
from vdcmanage.catalog.validate import NAME_MAX, check_choice, check_description, check_name, check_text
from vdcmanage.errors import InvalidArgument, NotFound, Refused
from vdcmanage.jobs import queue

KIND = "import-xen"
# The pipeline's steps, in order (importer/pipeline.py implements each).
STEPS = [
    "inspect",
    "convert",
    "stage",
    "vdi-create",
    "vdi-import",
    "compress",
    "publish",
    "verify",
    "register",
    "cleanup",
]


@dataclass
class ImportRequest:
    path: str
    host: str  # id or name
    account_id: str
    backup_storage: str | None = None  # id or display name; default: the only one defined
    sr_uuid: str | None = None  # default: the host's
    name_label: str | None = None  # default: the file name
    arch: str = "x86_64"
    description: str | None = None
    display_name: str | None = None


@dataclass
class ImportParams:
    """The job's parameters as stored (JSON): resolved ids and an absolute path, no secrets."""

    image_id: str  # allocated at submission: the published file is named after it
    path: str
    host_id: str
    account_id: str
    backup_storage_id: str
    sr_uuid: str | None  # --sr-uuid; None: the host record's SR, else the pool's default SR, chosen at run time
    name_label: str
    arch: str
    description: str | None
    display_name: str
    sr: dict[str, str] | None = None  # the SR a run chose: {"uuid", "from", "mount"} (ImportPipeline.settle_sr)


def live_host(key: str) -> Host:
    host = find_live(Host, "host", key, Host.name)
    if host.deleted_at is not None:
        raise NotFound(f"Host {host.id} is deleted")
    return host


def live_backup_storage(key: str | None) -> BackupStorage:
    if key is not None:
        storage = find_live(BackupStorage, "backup storage", key, BackupStorage.display_name)
        if storage.deleted_at is not None:
            raise NotFound(f"Backup storage {storage.id} is deleted")
        return storage
    defined = list(BackupStorage.select().where(BackupStorage.deleted_at.is_null()).limit(2))
    if len(defined) == 1:
        return defined[0]
    if not defined:
        raise InvalidArgument("No backup storage is defined: add one with 'vdc-manage backupstorage add'")
    raise InvalidArgument("Several backup storages are defined: choose one with --backup-storage")


def resolve(request: ImportRequest) -> ImportParams:
    """Check everything that can be checked without touching the host; return the job's parameters."""
    check_choice("arch", request.arch, ARCHES)
    description = check_description(request.description)
    path = resolve_image_file(request.path)
    # xe takes any name label (newlines included, as one argument); the catalog's display name is one line
    name_label = request.name_label if request.name_label is not None else default_display_name(path)
    check_text("Name label", name_label, max_length=NAME_MAX, single_line=False)
    display_name = request.display_name or default_display_name(Path(name_label.replace("/", "?")))
    check_name("Display name", display_name)
    host = live_host(request.host)
    sr_uuid = check_sr_uuid(request.sr_uuid)
    account = live_account(request.account_id)
    storage = live_backup_storage(request.backup_storage)
    return ImportParams(
        image_id=new_id("image"),
        path=os.fsdecode(path),
        host_id=host.id,
        account_id=account.id,
        backup_storage_id=storage.id,
        sr_uuid=sr_uuid,
        name_label=name_label,
        arch=request.arch,
        description=description,
        display_name=display_name,
    )


def submit_import(request: ImportRequest) -> Job:
    """Validate an import and queue it as a job (state ``queued``); a worker or the foreground runs it."""
    with transaction():
        params = resolve(request)
    return queue.submit(KIND, asdict(params), STEPS)


def move_to_host(job_id: str, host_key: str) -> None:
    """Point a failed import at another host (``job retry JOB --host HOST``), e.g. the one re-added after
    its old record was deleted. Every step runs again there, the SR is chosen anew; on the same
    machine the job's leftovers are found and reused (the staged file's name and the VDI's tag carry
    the job id), on another machine they stay where they are and the job log says so."""
    with transaction(write=True):
        job = queue.get_job(job_id)
        if job.kind != KIND:
            raise Refused(f"Job {job.id} is a {job.kind} job: --host applies to imports")
        if job.state != "failed":
            raise Refused(f"Job {job.id} is {job.state}; only failed jobs can be retried")
        host = live_host(host_key)
        old = queue.params_of(job)["host_id"]
        if old == host.id:
            return
        queue.update_params(job.id, host_id=host.id, sr=None)
        queue.reset_steps(job.id, STEPS)
        queue.log(
            job.id,
            f"moved from host {old} to {host.id}: every step runs again; anything the job left on {old} "
            f"(vdc-manage-{job.id}.* in the SR mount, a VDI with other-config:vdc-manage-job={job.id}) "
            "is reused if it is the same machine, else left there",
        )
