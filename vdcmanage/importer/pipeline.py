"""The XenServer import as a job: a machine image in, a published ``.vhd.bz2`` template and a catalog image out.

The CloudStack "Importing Amazon Machine Images" procedure, step by step (design.md, xe-facts.md §4):

- ``inspect``: what the file is (format, virtual size, checksums) and what the host can do: its
  ``xe vdi-import`` takes ``format=vhd`` on XenServer 6.5 and later, raw only on 6.2; the SR must be
  file-based (ext, nfs) so the VDI is one ``<uuid>.vhd`` file in its mount.
- ``convert``: the upload file is made here: a dynamic VHD with only the image's data where the host
  takes VHD; raw otherwise (a raw source is uploaded as it is).
- ``stage``: the upload into the SR mount: holes skipped, resumable, verified by checksums computed
  on the host.
- ``vdi-create``: a VDI of the image's size rounded up as the SR rounds (2 MiB), tagged with the job.
- ``vdi-import``: the staged file into the VDI.
- ``compress``: ``<vdi-uuid>.vhd`` to ``.vhd.bz2`` on the host, with lbzip2 or pbzip2 where the host has one.
- ``publish``: streamed through the admin host to the backup storage, under a temporary name, renamed.
- ``verify``: the published file's checksum where it landed, and the host's, against what we streamed.
- ``register``: the image in the catalog (format vhd, the published URL, size, md5, sha256).
- ``cleanup``: the staged and compressed files on the host, local work files. The VDI stays: it is
  the template on the XenServer host.

Every step can run again: a step already done is skipped by the runner; a step that was interrupted
finds what it saved (a VDI uuid, uploaded chunks) and goes on from there. ``cleanup()`` (job cancel)
removes everything the job created; a failure xe reports (a full SR, a backend error) does the same
for the host side, while a dropped connection keeps everything for ``job retry``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from vdcmanage.catalog.db import transaction
from vdcmanage.catalog.models import BackupStorage, Host, Image
from vdcmanage.catalog.storages import published_uri
from vdcmanage.config import load_settings
from vdcmanage.errors import ChecksumMismatch, NotFound, VdcError
from vdcmanage.images.reader import FileIdentity, check_unchanged
from vdcmanage.importer import hostfiles
from vdcmanage.importer.request import STEPS, ImportParams
from vdcmanage.jobs import queue
from vdcmanage.jobs.runner import StepContext
from vdcmanage.remote.check import SrChoice, SrReport, choose_sr, ready_sr
from vdcmanage.remote.errors import ConnectionLost, HostUnusable, RemoteTimeout, XeError
from vdcmanage.remote.ssh import Connection
from vdcmanage.remote.xe import Xe
from vdcmanage.safefiles import remove_temporaries

SR_GRANULARITY = 2 * 1024 * 1024  # file SRs round VHD sizes up to 2 MiB (xe-facts.md §1, "Sizes")
RECONNECTS = 3
T = TypeVar("T")


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def is_resumable(exc: BaseException) -> bool:
    """Failures that leave the host's state worth keeping for `job retry`."""
    return isinstance(exc, ConnectionLost | RemoteTimeout | HostUnusable)


class ImportPipeline:
    steps: ClassVar[list[str]] = STEPS

    def __init__(self, job_id: str, params: dict[str, Any]) -> None:
        self.job_id = job_id
        self.params = ImportParams(**params)
        self.settings = load_settings()
        self._host: Connection | None = None
        self._web: Connection | None = None

    # -- plumbing --------------------------------------------------------------------------------

    def run_step(self, ctx: StepContext) -> None:
        try:
            getattr(self, "step_" + ctx.step.replace("-", "_"))(ctx)
        except XeError as exc:
            self.translate_xe_error(ctx, exc)
            raise

    def translate_xe_error(self, ctx: StepContext, exc: XeError) -> None:
        """Keep xe's words verbatim in the job log; make the error say what they mean and what to do."""
        from vdcmanage.importer.xeadvice import Situation, explain

        ctx.log(f"xe said (verbatim, exit status {exc.exit_status}):\n{exc.xe_message}", "error")
        sr = (self.params.sr or {}).get("uuid") or self.params.sr_uuid or "(not chosen yet)"
        exc.message = explain(exc, Situation(ctx.step, self.params.host_id, sr, self.job_id))

    def detail(self, step: str) -> dict[str, Any]:
        return queue.step_detail(self.job_id, step)

    def host_record(self) -> Host:
        host = Host.get_or_none(Host.id == self.params.host_id)
        if host is None or host.deleted_at is not None:
            raise NotFound(
                f"Host {self.params.host_id} is no longer in the catalog "
                f"(retry on another host with 'vdc-manage job retry {self.job_id} --host HOST')"
            )
        return host

    def open_host(self) -> Connection:
        from vdcmanage.catalog.hosts import ssh_target
        from vdcmanage.remote.options import connect_options

        return Connection(ssh_target(self.host_record()), connect_options(self.settings)).open()

    def host(self) -> Connection:
        if self._host is None or not self._host.is_open:
            self._host = self.open_host()
        return self._host

    def drop_host(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None

    def on_host(self, action: Callable[[Connection], T]) -> T:
        """Run an idempotent action on the host, reconnecting after a dropped connection."""
        for attempt in range(RECONNECTS + 1):
            try:
                return action(self.host())
            except ConnectionLost:
                self.drop_host()
                if attempt == RECONNECTS:
                    raise
                time.sleep(min(2**attempt, 10))
        raise AssertionError("unreachable")

    def web(self, storage: BackupStorage) -> Connection:
        from vdcmanage.catalog.storages import ssh_target
        from vdcmanage.remote.options import connect_options

        if self._web is None or not self._web.is_open:
            self._web = Connection(ssh_target(storage), connect_options(self.settings)).open()
        return self._web

    def close(self) -> None:
        for conn in (self._host, self._web):
            if conn is not None:
                conn.close()
        self._host = self._web = None

    def storage(self) -> BackupStorage:
        storage = BackupStorage.get_or_none(BackupStorage.id == self.params.backup_storage_id)
        if storage is None or storage.deleted_at is not None:
            raise NotFound(f"Backup storage {self.params.backup_storage_id} is no longer in the catalog")
        return storage

    def destination(self) -> Any:
        from vdcmanage.importer.publish import LocalDestination, SshDestination

        storage = self.storage()
        if storage.storage_type == "local":
            return LocalDestination(storage)
        return SshDestination(storage, self.web(storage))

    def work_file(self, suffix: str) -> Path:
        return self.settings.work_dir / f"{self.job_id}{suffix}"

    # -- the SR ----------------------------------------------------------------------------------

    def sr_uuid(self) -> str:
        uuid = self.params.sr["uuid"] if self.params.sr else self.params.sr_uuid
        assert uuid, "the SR is chosen before any step that needs it"
        return uuid

    def sr_mount(self) -> str | None:
        """The chosen SR's mount directory; None while no run has chosen one (nothing is on the host)."""
        if self.params.sr:
            return self.params.sr["mount"]
        mount = self.detail("inspect").get("sr_mount")  # jobs queued before the choice was recorded
        return str(mount) if mount else None

    def sr_choice_source(self) -> str:
        return self.params.sr["from"] if self.params.sr else "--sr-uuid"

    def host_work_started(self) -> bool:
        """Whether this job has put anything on the host yet: its SR is settled then."""
        steps = queue.steps_of(self.job_id)
        first = STEPS.index("stage")
        return any(s.state != "pending" or s.detail for s in steps if STEPS.index(s.name) >= first)

    def settle_sr(self, conn: Connection) -> SrReport:
        """Choose the SR as ``host check`` does (--sr-uuid, the host record's, the pool's default SR now),
        check it, and record it and the choice's source in the job's parameters. Once the job has
        files or a VDI on the host, the recorded SR is kept: the pool's default may have changed."""
        xe = Xe(conn)
        recorded = self.params.sr
        if recorded and self.host_work_started():
            choice = SrChoice(recorded["uuid"], recorded["from"])
        else:
            choice = choose_sr(xe, requested=self.params.sr_uuid, host_record=self.host_record().sr_uuid)
        sr = ready_sr(conn, xe, choice)
        chosen = {"uuid": sr.uuid, "from": choice.source, "mount": str(sr.mount_path)}
        if chosen != recorded:
            queue.update_params(self.job_id, sr=chosen)
            self.params.sr = chosen
            queue.log(self.job_id, f"SR {sr.uuid} ({choice.source}): {sr.name_label}, {sr.type}")
        return sr

    # -- preflight -------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> None:
        """At the start of every run (first, retried, taken over), before anything is hashed, converted or
        sent: the host is reachable with the expected key, login works, xe answers, the SR (chosen as
        ``host check`` chooses) exists, is a mounted file SR, and it and the backup storage have room."""
        from vdcmanage.importer import preflight as room

        self.settings.compress_chunk_bytes  # noqa: B018  (a bad [import] compress_chunk_mib is refused now)
        conn = self.host()  # connect, host key, login: HostUnusable with the reason
        caps = Xe(conn).capabilities()
        sr = self.on_host(self.settle_sr)
        done = {s.name for s in queue.steps_of(self.job_id) if s.state in ("done", "skipped")}
        sizes = room.source_sizes(Path(self.params.path), self.detail("inspect"))
        needs = room.room_needed(sizes, caps.upload_format, set(STEPS) - done)
        lines = [room.check_sr_room(f"SR {sr.uuid} ({sr.name_label})", sr.free, needs)]
        if needs.storage:
            storage = self.storage()
            free = (room.local_free(storage.path) if storage.storage_type == "local"
                    else room.remote_free(self.web(storage), storage.path))
            lines.append(room.check_storage_room(f"backup storage {storage.id} ({storage.path})", free, needs.storage))
        ctx.log("preflight: " + "; ".join(lines))

    # -- steps -----------------------------------------------------------------------------------

    def step_inspect(self, ctx: StepContext) -> None:
        from dataclasses import asdict

        from vdcmanage.images.source import inspect_and_hash

        source = inspect_and_hash(Path(self.params.path), progress=ctx.progress)
        info, digests = source.info, source.digests
        caps = self.on_host(lambda conn: Xe(conn).capabilities())
        sr = self.on_host(self.settle_sr)
        upload_format = caps.upload_format
        ctx.save(
            source_format=info.format,
            virtual_size=info.virtual_size,
            vdi_size=round_up(info.virtual_size, SR_GRANULARITY),
            source_size=digests.size,
            source_md5=digests.md5,
            source_sha256=digests.sha256,
            upload_format=upload_format,
            product=caps.product,
            source_identity=asdict(source.identity),  # what convert and stage check they read
        )
        ctx.log(
            f"{info.format} image, virtual size {info.virtual_size} bytes, md5 {digests.md5}; "
            f"{caps.product}: uploading {upload_format} into SR {sr.uuid} ({sr.type}, {self.sr_choice_source()})"
        )
        ctx.log(f"import path: {caps.import_path()}", "warning" if caps.import_path_note else "info")

    def step_convert(self, ctx: StepContext) -> None:
        from vdcmanage.importer.localimage import convert

        inspected = self.detail("inspect")
        source_format, target = inspected["source_format"], inspected["upload_format"]
        if target == "raw" and source_format == "raw":
            self.check_source()
            ctx.save(local_file=self.params.path)
            ctx.log("raw image: uploaded as it is (holes and zero blocks skipped)")
            return
        local = self.work_file(f".{target}")
        kind = "dynamic VHD" if target == "vhd" else "sparse raw file"
        convert(Path(self.params.path), source_format, local, target, inspected["virtual_size"], ctx.progress,
                identity=self.source_identity())
        ctx.save(local_file=str(local))
        ctx.log(f"converted the {source_format} image into a {kind} of {local.stat().st_size} bytes")

    def step_stage(self, ctx: StepContext) -> None:
        from vdcmanage.remote.transfer import upload_file

        local = Path(self.detail("convert")["local_file"])
        staged = hostfiles.staging_path(str(self.sr_mount()), self.job_id)
        if str(local) == self.params.path:
            self.check_source()  # the upload reads the source itself: still the file inspected and hashed
        result = upload_file(
            self.open_host,
            local,
            staged,
            state=ctx.detail.get("upload"),
            save=lambda state: ctx.save(upload=state),
            progress=ctx.progress,
            pad_to=512,
            log=ctx.log,
            compute_md5=False,  # every chunk is verified against an md5 computed on the host
        )
        ctx.log(
            f"uploaded {result.bytes_sent} bytes in {result.seconds:.1f} s "
            f"({result.bytes_skipped_sparse} bytes of holes and zeros skipped), verified on the host"
        )
        ctx.save(staged=staged, staged_size=result.bytes_total, bytes_sent=result.bytes_sent)
        if str(local) == self.params.path:
            self.check_source()

    def source_identity(self) -> FileIdentity | None:
        saved = self.detail("inspect").get("source_identity")
        return FileIdentity(**saved) if saved else None  # None: a job inspected by an older vdc-manage

    def check_source(self) -> None:
        identity = self.source_identity()
        if identity is not None:
            check_unchanged(self.params.path, identity)

    def step_vdi_create(self, ctx: StepContext) -> None:
        inspected = self.detail("inspect")

        def create(conn: Connection) -> str:
            xe = Xe(conn)
            known = ctx.detail.get("vdi_uuid")
            if known and xe.vdi_list(params=["uuid"], filters={"uuid": known}):
                return str(known)
            leftover = xe.vdi_list(params=["uuid"], filters={"other-config:vdc-manage-job": self.job_id})
            if leftover:  # created before a crash that kept us from saving its uuid
                return str(leftover[0]["uuid"])
            uuid = xe.vdi_create(self.sr_uuid(), self.params.name_label, inspected["vdi_size"])
            ctx.save(vdi_uuid=uuid)
            xe.vdi_param_set(uuid, {"other-config:vdc-manage-job": self.job_id})
            return uuid

        uuid = self.on_host(create)
        ctx.save(vdi_uuid=uuid)
        ctx.log(f"VDI {uuid} ({inspected['vdi_size']} bytes) on SR {self.sr_uuid()}")

    def step_vdi_import(self, ctx: StepContext) -> None:
        inspected, staged = self.detail("inspect"), self.detail("stage")
        vdi = self.detail("vdi-create")["vdi_uuid"]
        total = int(inspected["vdi_size"])
        sr_mount = str(self.sr_mount())

        def run(conn: Connection) -> tuple[str, int | None]:
            xe = Xe(conn)
            xe.vdi_import(
                vdi,
                os.path.basename(staged["staged"]),
                fmt=inspected["upload_format"],
                cwd=sr_mount,
                progress=lambda percent: ctx.progress(total * percent // 100, total),
                on_poll=ctx.check,
            )
            vhd = f"{sr_mount}/{xe.vdi_param_get(vdi, 'location')}.vhd"
            return vhd, hostfiles.file_size(conn, vhd)

        vhd, size = self.on_host(run)
        if size is None:
            sr = self.sr_uuid()
            raise VdcError(f"The imported VDI's file {vhd} is not on the host (is SR {sr} file-based?)")
        ctx.save(vhd=vhd, vhd_size=size)
        ctx.log(f"imported into {vhd} ({size} bytes on the SR)")

    def step_compress(self, ctx: StepContext) -> None:
        """Chunk by chunk (hostfiles.compress); a dropped connection or a retried job goes on after the
        last chunk recorded in the step's detail (``partial``), not from zero."""
        imported = self.detail("vdi-import")
        out = hostfiles.compressed_path(str(self.sr_mount()), self.job_id)

        def run(conn: Connection) -> tuple[str, int | None]:
            compressor = hostfiles.find_compressor(conn)
            job = hostfiles.CompressJob(
                compressor, imported["vhd"], out, int(imported["vhd_size"]), saved=ctx.detail.get("partial"),
                save=lambda partial: ctx.save(partial=partial), progress=ctx.progress, check=ctx.check, log=ctx.log,
                chunk_bytes=self.settings.compress_chunk_bytes,
            )
            hostfiles.compress(conn, job)
            return compressor, hostfiles.file_size(conn, out)

        compressor, size = self.on_host(run)
        if size is None:
            raise VdcError(f"The compressed template {out} is missing on the host after compression")
        ctx.save(compressed=out, compressed_size=size, compressor=compressor)
        ctx.log(f"{compressor}: {imported['vhd_size']} -> {size} bytes")

    def file_name(self) -> str:
        """The published name: the image id, safe in any URL or shell whatever the name label holds."""
        return f"{self.params.image_id}.vhd.bz2"

    def step_publish(self, ctx: StepContext) -> None:
        from vdcmanage.importer.publish import stream_to

        compressed = self.detail("compress")
        # from the start again after a dropped connection: the partial file is removed, and a new
        # destination reconnects to the web server if that was the connection that broke
        published = self.on_host(
            lambda conn: stream_to(
                conn, compressed["compressed"], self.destination(), self.file_name(),
                compressed["compressed_size"], ctx.progress,
            )
        )
        uri = published_uri(self.storage(), published.file_name)
        ctx.save(file_name=published.file_name, size=published.size, md5=published.md5, sha256=published.sha256,
                 uri=uri)
        ctx.log(f"published {uri} ({published.size} bytes, sha256 {published.sha256})")

    def step_verify(self, ctx: StepContext) -> None:
        compressed, published = self.detail("compress"), self.detail("publish")
        host_md5 = self.on_host(lambda conn: hostfiles.md5_of(conn, compressed["compressed"], ctx.check))
        if host_md5 != published["md5"]:
            raise ChecksumMismatch(
                f"The template read from the host does not match the host's file: md5 {published['md5']} "
                f"streamed, {host_md5} on the host"
            )
        destination = self.destination()
        landed = destination.sha256(published["file_name"])
        if landed != published["sha256"]:
            destination.remove(published["file_name"])
            raise ChecksumMismatch(
                f"The published template differs from what was sent: sha256 {published['sha256']} sent, "
                f"{landed} at {destination.label}; the published file was removed"
            )
        ctx.log(f"verified: md5 {host_md5} on the host, sha256 {landed} at the storage")

    def step_register(self, ctx: StepContext) -> None:
        from vdcmanage.catalog.accounts import live_account

        published = self.detail("publish")
        vdi = self.detail("vdi-create")["vdi_uuid"]
        virtual_size = int(self.on_host(lambda conn: Xe(conn).vdi_param_get(vdi, "virtual-size")))
        p = self.params
        with transaction(write=True):
            if Image.get_or_none(Image.id == p.image_id) is not None:
                return  # registered before an interruption
            Image.create(
                id=p.image_id,
                account=live_account(p.account_id).id,
                boot_type="local",
                source_uri=published["uri"],
                arch=p.arch,
                state="available",
                display_name=p.display_name,
                description=p.description,
                file_format="vhd",
                size=published["size"],
                virtual_size=virtual_size,
                md5=published["md5"],
                sha256=published["sha256"],
                job=self.job_id,
            )
        ctx.log(f"registered {p.image_id}")

    def step_cleanup(self, ctx: StepContext) -> None:
        sr_mount = str(self.sr_mount())
        staged, out = hostfiles.staging_path(sr_mount, self.job_id), hostfiles.compressed_path(sr_mount, self.job_id)
        self.on_host(lambda conn: hostfiles.remove(conn, staged, out))
        self.remove_work_files()
        ctx.log("removed the staged and compressed files on the host; the VDI stays as the template")

    def remove_work_files(self) -> None:
        for suffix in (".vhd", ".raw", ".vhd.part", ".raw.part"):
            self.work_file(suffix).unlink(missing_ok=True)
            remove_temporaries(self.settings.work_dir, self.work_file(suffix).name)

    def result(self) -> dict[str, Any]:
        return {
            "image_id": self.params.image_id,
            "vdi_uuid": self.detail("vdi-create").get("vdi_uuid"),
            "published_uri": self.detail("publish").get("uri"),
        }

    # -- undoing ---------------------------------------------------------------------------------

    def cleanup(self, ctx: StepContext) -> None:
        """Job cancelled: remove everything this job created, wherever it is, and log what that was.
        What cannot be removed is named in the error, with the reason. An image already registered
        keeps its VDI and published file (``image del`` is for those)."""
        registered = self.registered()
        removed = self.undo_host_side_saying_what_remains(ctx, keep_vdi=registered)
        published = self.detail("publish")
        if published.get("file_name") and not registered:
            try:
                self.destination().remove(published["file_name"])
            except VdcError as exc:
                storage = self.params.backup_storage_id
                raise VdcError(f"the published file {published['file_name']} remains in {storage}: {exc}") from exc
            removed.append(f"the published file {published['file_name']}")
        self.remove_work_files()
        kept = f"; image {self.params.image_id} is registered and keeps its VDI" if registered else ""
        ctx.log(f"clean-up: removed {', '.join(removed) or 'nothing (the job had left nothing)'}{kept}")

    def registered(self) -> bool:
        return Image.get_or_none(Image.id == self.params.image_id) is not None

    def steps_undone_by_cleanup(self) -> list[str]:
        """After a cancel: the steps whose work the clean-up removed, for `job retry` to redo."""
        if self.registered():
            return []
        converted = self.detail("convert").get("local_file")
        keep = {"inspect"} | ({"convert"} if converted == self.params.path else set())
        return [step for step in self.steps if step not in keep]

    def on_failure(self, ctx: StepContext, exc: VdcError) -> None:
        """A failure xe reported (full SR, backend error, bad data) cannot be resumed as is: remove the VDI
        and the staged file, and make `job retry` redo them. A dropped connection keeps everything."""
        if ctx.step in ("vdi-create", "vdi-import") and isinstance(exc, XeError) and not is_resumable(exc):
            self.undo_host_side(ctx)
            queue.reset_steps(self.job_id, ["stage", "vdi-create", "vdi-import"])
            ctx.log("removed the VDI and the staged file; 'job retry' uploads again")

    def undo_host_side(self, ctx: StepContext, keep_vdi: bool = False) -> list[str]:
        """Destroy the job's VDIs (unless ``keep_vdi``), remove its staged and compressed files on the
        host; return what was there and is now gone."""
        sr_mount = self.sr_mount()
        if not sr_mount:
            return []
        vdi = self.detail("vdi-create").get("vdi_uuid")

        def undo(conn: Connection) -> list[str]:
            removed: list[str] = []
            if not keep_vdi:
                removed += [f"VDI {uuid}" for uuid in self.destroy_vdis(Xe(conn), vdi)]
            files = [hostfiles.staging_path(sr_mount, self.job_id), hostfiles.compressed_path(sr_mount, self.job_id)]
            removed += [f"{path} on the host" for path in files if hostfiles.file_size(conn, path) is not None]
            hostfiles.remove(conn, *files)
            return removed

        removed = self.on_host(undo)
        self.drop_host()
        return removed

    def destroy_vdis(self, xe: Xe, known: str | None) -> list[str]:
        tagged = xe.vdi_list(params=["uuid"], filters={"other-config:vdc-manage-job": self.job_id})
        present = {r["uuid"] for r in tagged}
        if known and xe.vdi_list(params=["uuid"], filters={"uuid": known}):
            present.add(known)
        for uuid in sorted(present):
            xe.vdi_destroy(uuid)
        return sorted(present)

    def undo_host_side_saying_what_remains(self, ctx: StepContext, keep_vdi: bool) -> list[str]:
        try:
            return self.undo_host_side(ctx, keep_vdi)
        except VdcError as exc:
            raise VdcError(f"{self.host_leftovers(keep_vdi)} may remain on host {self.params.host_id}: {exc}") from exc

    def host_leftovers(self, keep_vdi: bool) -> str:
        """What the job may have left on the host, named as precisely as its saved details allow."""
        sr_mount = self.sr_mount() or ""
        vdi = self.detail("vdi-create").get("vdi_uuid")
        things = [] if keep_vdi else [f"VDI {vdi}" if vdi else f"a VDI with other-config:vdc-manage-job={self.job_id}"]
        things += [hostfiles.staging_path(sr_mount, self.job_id), hostfiles.compressed_path(sr_mount, self.job_id)]
        return ", ".join(things)

