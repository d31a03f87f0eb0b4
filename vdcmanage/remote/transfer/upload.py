"""``upload_file``: one call uploads a local file to the host, sparse, verified and resumable.

One call runs attempts until every chunk is verified on the host. An attempt: connect, start the
lanes (the first receiver prepares the staged file: keeps it when resuming and its size is right,
else creates it sparse), and let a reader thread feed chunks to them while this thread handles
their events: it compares the host's checksums with ours, re-sends a chunk that differs, records
verified chunks through ``save``, and reports through ``progress`` (which may raise to cancel: the
lanes stop within ~0.1 s and the state stays valid). A lost connection ends the attempt; the next
one (after a backoff, at most ``max_reconnects``) sends only the chunks not yet verified.

The whole file's md5 is computed by a thread fed in file order by the same reads that feed the
lanes; it continues across attempts, so a reconnect neither re-reads nor re-hashes what it had.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vdcmanage.errors import InvalidArgument
from vdcmanage.remote.errors import (
    ConnectFailed,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    RemoteTimeout,
    RemoteWriteFailed,
    SourceChanged,
    UploadVerifyFailed,
)
from vdcmanage.remote.ssh import Connection
from vdcmanage.remote.transfer import receiver
from vdcmanage.remote.transfer.checksum import local_tools
from vdcmanage.remote.transfer.lanes import (
    POLL_S,
    Event,
    Expect,
    Lane,
    LaneEnded,
    LaneLost,
    LaneStartFailed,
    OpenSshStream,
    ParamikoStream,
    Reply,
    Sent,
)
from vdcmanage.remote.transfer.openssh import OpenSshAccess, find_ssh
from vdcmanage.remote.transfer.source import BufferPool, Chunk, Layout, LocalSource
from vdcmanage.remote.transfer.state import UploadState

DataPath = Literal["auto", "openssh", "paramiko"]
DATA_PATHS = ("auto", "openssh", "paramiko")
OPENSSH_LANES = 1  # one ssh process already keeps both cores busy (its crypto + sshd's); see __init__
PARAMIKO_LANES = 2  # two transports encrypt in two threads (cryptography releases the GIL)
# 4 x 32 MiB: the memory bound. Two paramiko lanes each send one chunk while the reader and the md5
# have the next; OpenSSH lanes send from the file, so their chunks' buffers return right after the md5.
POOL_BUFFERS = 4
MAX_RESENDS = 3
PROGRESS_EVERY_S = 0.25
STALL_TIMEOUT_S = 300.0  # nothing sent or verified for this long: treat the connection as lost
READY_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 120.0
EMPTY_SAVE_EVERY_S = 1.0  # chunks with no data are cheap to redo: their saves are coalesced
BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0
RECONNECTABLE = (ConnectionLost, RemoteTimeout, ConnectRefused, ConnectTimeout, ConnectFailed)


@dataclass
class UploadResult:
    bytes_total: int  # size of the local file (the remote file is this rounded up to pad_to)
    bytes_sent: int  # payload bytes actually sent in this call (a resume sends less; re-sends count)
    bytes_skipped_sparse: int  # holes and all-zero blocks not sent
    md5: str  # md5 of the whole local file, computed in the same read pass ("" if not asked for)
    seconds: float
    remote_size: int = 0
    data_path: str = ""  # "openssh" or "paramiko" (the last attempt's)
    reconnects: int = 0
    chunks_resumed: int = 0  # chunks verified by an earlier call, not sent again
    restart_reason: str | None = None  # why a saved state was not used, if it was not


def upload_file(
    connect: Callable[[], Connection],
    local_path: Path,
    remote_path: str,
    *,
    state: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
    progress: Callable[[int, int], None] | None = None,
    max_reconnects: int = 5,
    pad_to: int = 1,
    data_path: DataPath = "auto",
    log: Callable[[str], None] | None = None,
    compute_md5: bool = True,
) -> UploadResult:
    """Upload ``local_path`` to ``remote_path`` on the host (see the package docstring).

    ``data_path``: "auto" (OpenSSH when it works, else paramiko), or force one. ``log`` receives
    one-line notes for the job log (a restart and why, reconnects, re-sends, the fallback).
    ``compute_md5=False`` leaves ``md5`` empty and saves ~1.6 CPU-s per GiB, for a caller that already
    has the file's md5 (e.g. from inspecting it).
    """
    check_remote_path(remote_path)
    if data_path not in DATA_PATHS:
        raise InvalidArgument(f"data_path must be one of {', '.join(DATA_PATHS)}, not {data_path!r}")
    if max_reconnects < 0:
        raise InvalidArgument("max_reconnects cannot be negative")
    started = time.monotonic()
    source = LocalSource(Path(local_path))
    try:
        layout = Layout.for_size(source.identity.size, pad_to)
        upload_state, restart_reason = UploadState.restore(state, source.identity, remote_path, layout.remote_size)
        run = UploadRun(connect, source, layout, upload_state, save, progress, log, data_path, compute_md5)
        if restart_reason:
            run.log(f"{source.path}: {restart_reason}")
        resumed = len(upload_state.verified)
        md5 = run.run(max_reconnects)
        run.check_source_unchanged()
        return UploadResult(
            bytes_total=layout.local_size,
            bytes_sent=run.bytes_sent,
            bytes_skipped_sparse=run.bytes_skipped,
            md5=md5,
            seconds=time.monotonic() - started,
            remote_size=layout.remote_size,
            data_path=run.data_path_used,
            reconnects=run.reconnects,
            chunks_resumed=resumed,
            restart_reason=restart_reason,
        )
    finally:
        source.close()


def remove_remote(conn: Connection, remote_path: str) -> None:
    """Remove a staged file (after a cancel or a failure); nothing to remove is fine."""
    check_remote_path(remote_path)
    conn.run(["rm", "-f", "--", remote_path], timeout=60)


def check_remote_path(remote_path: str) -> None:
    if not isinstance(remote_path, str) or not remote_path.startswith("/") or remote_path.endswith("/"):
        raise InvalidArgument(f"The remote path must be an absolute file path, not {remote_path!r}")
    if "\0" in remote_path:
        raise InvalidArgument("The remote path contains a NUL character")


class Md5Pass:
    """The whole file's md5, fed chunk by chunk in file order (by whichever attempt's reader)."""

    def __init__(self, layout: Layout, enabled: bool = True) -> None:
        self.layout = layout
        self.enabled = enabled
        self.next_chunk = 0
        self._hash = hashlib.md5(usedforsecurity=False)  # a catalog checksum, not a security boundary
        self._queue: queue.Queue[Chunk | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="upload-md5", daemon=True)
        self._thread.start()

    def feed(self, chunk: Chunk) -> None:
        assert chunk.index == self.next_chunk
        self.next_chunk += 1
        self._queue.put(chunk)

    def _loop(self) -> None:
        while (chunk := self._queue.get()) is not None:
            try:
                if self.enabled:
                    self._hash.update(chunk.view[: self.layout.local_length(chunk.index)])
            finally:
                chunk.release()

    def hexdigest(self) -> str:
        self.stop()
        assert self.next_chunk == self.layout.chunks
        return self._hash.hexdigest() if self.enabled else ""

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


@dataclass(frozen=True)
class Planned:
    """The reader looked at a chunk to send: how many of its local bytes are holes or zeros."""

    chunk: int
    skipped: int


@dataclass(frozen=True)
class NothingToSend:
    """A chunk all holes and zeros: verified as it is (the staged file is sparse there)."""

    chunk: int


@dataclass(frozen=True)
class ReaderFailed:
    error: Exception


class Reader:
    """Reads chunks in file order for the md5 and for the lanes; then serves re-send requests."""

    def __init__(self, run: UploadRun, lanes: list[Lane], todo: set[int], events: queue.Queue[Any]) -> None:
        self.run = run
        self.lanes = lanes
        self.todo = todo
        self.events = events
        self.resends: queue.Queue[int] = queue.Queue()
        self.stop = threading.Event()
        self._turn = 0
        self._thread = threading.Thread(target=self._loop, name="upload-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=60)
        if self._thread.is_alive():  # a read stuck that long: another attempt must not race its md5 feed
            raise RuntimeError("the upload's reader thread did not stop")

    def _loop(self) -> None:
        try:
            for index in range(self.run.layout.chunks):
                if self.stop.is_set():
                    return
                self._process(index, resend=False)
            while not self.stop.is_set():
                try:
                    index = self.resends.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                self._process(index, resend=True)
        except Exception as exc:  # a local read error: the main thread raises it
            self.events.put(ReaderFailed(exc))

    def _process(self, index: int, *, resend: bool) -> None:
        md5 = self.run.md5
        need_md5 = not resend and index == md5.next_chunk
        need_send = resend or index in self.todo
        if not (need_md5 or need_send):
            return
        buffer = self.run.pool.get(self.stop)
        if buffer is None:
            return
        chunk = Chunk(index, *self.run.layout.span(index), buffer, self.run.pool)
        try:
            self.run.source.read_chunk(chunk, self.run.layout)
        except BaseException:
            chunk.hold(0)
            raise
        if self.stop.is_set():  # feed nothing now: the md5 must not skip a chunk the next attempt feeds
            chunk.hold(0)
            return
        send = need_send and bool(chunk.runs)
        lane = self._next_lane() if send else None
        chunk.lane_holds = lane is not None and lane.needs_buffer(chunk)
        chunk.hold(int(need_md5) + int(chunk.lane_holds))
        if need_md5:
            md5.feed(chunk)
        if need_send and not resend:
            local = self.run.layout.local_length(index)
            self.events.put(Planned(index, max(0, local - chunk.data_bytes)))
        if need_send and not chunk.runs:
            self.events.put(NothingToSend(index))
        if lane is not None:
            chunk.resend = resend
            lane.submit(chunk)

    def _next_lane(self) -> Lane:
        self._turn = (self._turn + 1) % len(self.lanes)
        return self.lanes[self._turn]


class UploadRun:
    """Everything one ``upload_file`` call keeps across its attempts."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        source: LocalSource,
        layout: Layout,
        state: UploadState,
        save: Callable[[dict[str, Any]], None],
        progress: Callable[[int, int], None] | None,
        log: Callable[[str], None] | None,
        data_path: DataPath,
        compute_md5: bool = True,
    ) -> None:
        self.connect = connect
        self.source = source
        self.layout = layout
        self.state = state
        self._save = save
        self._progress = progress
        self._log = log
        self.data_path = data_path
        self.pool = BufferPool(POOL_BUFFERS)
        self.tools = local_tools()  # sh, dd, cksum here: local checksums in child processes
        self.md5 = Md5Pass(layout, compute_md5)
        self.bytes_sent = 0
        self.bytes_skipped = 0
        self.reconnects = 0
        self.data_path_used = ""
        self.openssh_unusable = False
        self.connected_once = False
        self.done_bytes = 0  # the local bytes of verified chunks: what progress reports
        self._last_progress = 0.0
        self.last_save = time.monotonic()
        self.unsaved = False  # verified chunks not yet saved (empty ones are saved in batches)

    # -- the caller's callbacks (this thread only) --------------------------------------------------------

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def save(self) -> None:
        self._save(self.state.to_dict())
        self.last_save = time.monotonic()
        self.unsaved = False

    @property
    def bytes_done(self) -> int:
        return sum(self.layout.local_length(chunk) for chunk in self.state.verified)

    def report(self, *, force: bool = False) -> None:
        """Progress after each verified chunk of data, else at most every PROGRESS_EVERY_S (it may
        raise: cancel, worker stopping)."""
        now = time.monotonic()
        if self._progress is not None and (force or now - self._last_progress >= PROGRESS_EVERY_S):
            self._last_progress = now
            self._progress(self.done_bytes, self.layout.local_size)

    # -- attempts -------------------------------------------------------------------------------------------

    def run(self, max_reconnects: int) -> str:
        """Attempt until done; returns the md5. Gives up after ``max_reconnects`` lost connections."""
        try:
            self.done_bytes = self.bytes_done
            self.report(force=True)
            while True:
                try:
                    self.attempt()
                    return self.md5.hexdigest()
                except RECONNECTABLE as exc:
                    if not self.connected_once:
                        raise
                    self.reconnects += 1
                    if self.reconnects > max_reconnects:
                        raise ConnectionLost(self.give_up_message(exc, max_reconnects)) from exc
                    delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (self.reconnects - 1))
                    self.log(f"{exc}; reconnecting in {delay:g} s ({self.reconnects}/{max_reconnects})")
                    self.pause(delay)
        finally:
            if self.unsaved:
                with contextlib.suppress(Exception):
                    self.save()
            self.md5.stop()

    def check_source_unchanged(self) -> None:
        if self.source.current_identity() != self.source.identity:
            raise SourceChanged(
                f"{self.source.path} changed while it was being uploaded; upload it again when it is stable"
            )

    def give_up_message(self, exc: Exception, max_reconnects: int) -> str:
        return (
            f"{exc}. Gave up after {max_reconnects} reconnects; {self.bytes_done} of {self.layout.local_size} bytes "
            f"are on the host and verified, and retrying resumes from there"
        )

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, POLL_S))
            self.report()

    def attempt(self) -> None:
        with self.connect() as conn:
            conn.open()
            self.connected_once = True
            with self.lanes(conn) as lanes:
                self.transfer(lanes)

    @contextlib.contextmanager
    def lanes(self, conn: Connection) -> Iterator[list[Lane]]:
        """Started lanes (the first one prepared the staged file); all closed on the way out."""
        events: queue.Queue[Event] = queue.Queue()
        closers: list[Callable[[], None]] = []
        try:
            lanes = []
            if self.data_path != "paramiko" and not self.openssh_unusable:
                lanes = self.start_openssh_lanes(conn, events, closers)
            if not lanes:
                lanes = self.start_paramiko_lanes(conn, events, closers)
            yield lanes
        finally:
            for close in reversed(closers):
                with contextlib.suppress(Exception):
                    close()

    def first_mode(self) -> str:
        return "resume" if self.state.verified else "new"

    def prepared(self, mode: str) -> None:
        """The first lane prepared the staged file: a resume that found it missing starts over."""
        if mode == "new" and self.state.verified:
            self.log(f"the staged file {self.state.remote_path} is missing or has another size: starting over")
            self.state.verified.clear()
            self.done_bytes = 0
        self.save()

    def start_openssh_lanes(
        self, conn: Connection, events: queue.Queue[Event], closers: list[Callable[[], None]]
    ) -> list[Lane]:
        """OpenSSH lanes, or [] (and paramiko from now on) if the client is missing or cannot log in."""
        ssh = find_ssh()
        if ssh is None:
            if self.data_path == "openssh":
                raise InvalidArgument("The OpenSSH client (ssh) is not installed on this machine")
            self.openssh_unusable = True
            self.log("no OpenSSH client (ssh) on this machine: uploading through paramiko")
            return []
        access = OpenSshAccess(conn, ssh)
        closers.append(access.close)
        lanes: list[Lane] = []
        try:
            for index in range(OPENSSH_LANES):
                mode = self.first_mode() if index == 0 else "attach"
                argv = access.argv(receiver.receive_argv(self.state.remote_path, self.layout.remote_size, mode))
                stream = OpenSshStream(argv, f"ssh to {conn.where}")
                lane = Lane(f"openssh-{index}", stream, events, self.source, self.tools)
                closers.append(lane.close)
                done = lane.start(READY_TIMEOUT_S, tick=self.report)
                lanes.append(lane)
                if index == 0:
                    self.prepared(done)
        except LaneStartFailed as exc:
            if self.data_path == "openssh" or not conn.is_open:
                raise
            self.openssh_unusable = True
            self.log(f"the OpenSSH client cannot be used here ({exc}): uploading through paramiko")
            for lane in lanes:
                lane.close()
            return []
        self.data_path_used = "openssh"
        return lanes

    def start_paramiko_lanes(
        self, conn: Connection, events: queue.Queue[Event], closers: list[Callable[[], None]]
    ) -> list[Lane]:
        lanes: list[Lane] = []
        for index in range(PARAMIKO_LANES):
            lane_conn = conn
            if index > 0:  # its own transport: its own thread encrypting
                lane_conn = self.connect()
                closers.append(lane_conn.close)
                lane_conn.open()
            mode = self.first_mode() if index == 0 else "attach"
            argv = receiver.receive_argv(self.state.remote_path, self.layout.remote_size, mode)
            stream = ParamikoStream(lane_conn, argv, f"paramiko to {conn.where}")
            lane = Lane(f"paramiko-{index}", stream, events, self.source, self.tools)
            closers.append(lane.close)
            done = lane.start(READY_TIMEOUT_S, tick=self.report)
            lanes.append(lane)
            if index == 0:
                self.prepared(done)
        self.data_path_used = "paramiko"
        return lanes

    # -- one attempt's transfer ------------------------------------------------------------------------------

    def transfer(self, lanes: list[Lane]) -> None:
        events = lanes[0].events
        todo = set(range(self.layout.chunks)) - self.state.verified
        pending = set(todo)
        reader = Reader(self, lanes, todo, events)
        session = TransferSession(self, reader, pending)
        reader.start()
        try:
            session.until_verified(events)
            if self.unsaved:
                self.save()
            self.report(force=True)
            session.finish(lanes, events)
            self.check_final_size(lanes)
        finally:
            reader.stop.set()
            for lane in lanes:
                lane.abort()
            reader.join()

    def check_final_size(self, lanes: list[Lane]) -> None:
        size = lanes[-1].final_size
        if size != self.layout.remote_size:
            raise RemoteWriteFailed(
                f"The staged file {self.state.remote_path} ({lanes[-1].stream.description}) has "
                f"{size if size is not None else 'an unknown number of'} bytes, not {self.layout.remote_size}: "
                f"something else changed it during the upload"
            )


class TransferSession:
    """The event loop of one attempt: checksums compared, chunks verified or re-sent, lanes watched."""

    def __init__(self, run: UploadRun, reader: Reader, pending: set[int]) -> None:
        self.run = run
        self.reader = reader
        self.pending = pending
        self.expected: dict[int, str] = {}
        self.resends: dict[int, int] = {}
        self.last_activity = time.monotonic()

    def until_verified(self, events: queue.Queue[Any]) -> None:
        while self.pending:
            self.handle_next(events)

    def handle_next(self, events: queue.Queue[Any]) -> None:
        try:
            event = events.get(timeout=PROGRESS_EVERY_S)
        except queue.Empty:
            event = None
        if event is not None:
            self.handle(event)
        elif time.monotonic() - self.last_activity > STALL_TIMEOUT_S:
            raise RemoteTimeout(f"Nothing was sent or verified for {STALL_TIMEOUT_S:g} s: the connection seems dead")
        self.run.report()

    def handle(self, event: Any) -> None:
        self.last_activity = time.monotonic()
        if isinstance(event, Expect):
            self.expected[event.chunk] = event.digest
        elif isinstance(event, Reply):
            event.lane.verified_one()
            self.checked(event.chunk, event.digest)
        elif isinstance(event, Sent):
            self.run.bytes_sent += event.payload
        elif isinstance(event, Planned):
            self.run.bytes_skipped += event.skipped
        elif isinstance(event, NothingToSend):
            self.verified(event.chunk, had_data=False)
        elif isinstance(event, LaneEnded):
            if event.error is not None:
                raise event.error
            if self.pending:
                raise LaneLost(f"The receiver ({event.lane.stream.description}) ended before the upload was done")
        elif isinstance(event, ReaderFailed):
            raise event.error

    def checked(self, chunk: int, digest: str) -> None:
        if chunk not in self.pending:
            return
        if self.expected.get(chunk) == digest:
            self.verified(chunk, had_data=True)
            return
        count = self.resends.get(chunk, 0) + 1
        self.resends[chunk] = count
        offset, length = self.run.layout.span(chunk)
        if count > MAX_RESENDS:
            self.run.check_source_unchanged()
            raise UploadVerifyFailed(
                f"The host's checksum of bytes {offset}-{offset + length - 1} of the staged file still differs "
                f"from ours after {MAX_RESENDS} re-sends (the host's disk or memory may be failing)"
            )
        self.run.log(f"checksum mismatch at byte {offset} on the host: sending those {length} bytes again")
        self.reader.resends.put(chunk)

    def verified(self, chunk: int, *, had_data: bool) -> None:
        self.pending.discard(chunk)
        self.run.state.verified.add(chunk)
        self.run.done_bytes += self.run.layout.local_length(chunk)
        self.run.unsaved = True
        if had_data or time.monotonic() - self.run.last_save >= EMPTY_SAVE_EVERY_S:
            self.run.save()
        self.run.report(force=had_data)

    def finish(self, lanes: list[Lane], events: queue.Queue[Any]) -> None:
        """Close the lanes' input and wait for each receiver's clean end (all checksums were answered)."""
        for lane in lanes:
            lane.finish()
        open_lanes = set(lanes)
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while open_lanes:
            if time.monotonic() > deadline:
                raise RemoteTimeout(f"The receiver on the host did not finish within {FINISH_TIMEOUT_S:g} s")
            try:
                event = events.get(timeout=PROGRESS_EVERY_S)
            except queue.Empty:
                self.run.report()
                continue
            if isinstance(event, LaneEnded):
                if event.error is not None:
                    raise event.error
                open_lanes.discard(event.lane)
            elif isinstance(event, Sent):
                self.run.bytes_sent += event.payload
