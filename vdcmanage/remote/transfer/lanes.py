"""Lanes: one running receiver on the host, fed with chunks by a sender thread, answered on a reply thread.

A lane is a byte stream to the receiver's stdin and from its stdout, carried either by the system's
OpenSSH client (:class:`OpenSshStream`, a subprocess) or by a paramiko exec channel
(:class:`ParamikoStream`). Everything above the stream is the same: the sender computes each chunk's
cksum, announces it (:class:`Expect`), writes the chunk's non-zero runs and asks for the host's
checksum; the reply thread turns ``v CHUNK CRC`` lines into :class:`Reply` events and reports how
the lane ended (:class:`LaneEnded`), classifying the failure: disk full and I/O errors are final,
anything else is a lost connection that a reconnect may cure.

Events go to one queue read by the thread that called ``upload_file``: only that thread calls the
caller's ``save`` and ``progress`` (the catalog connection and cancellation belong to it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from vdcmanage.errors import InvalidArgument
from vdcmanage.remote.errors import (
    ConnectionLost,
    RemoteNoSpace,
    RemotePathMissing,
    RemoteTimeout,
    RemoteToolMissing,
    RemoteWriteFailed,
)
from vdcmanage.remote.ssh import quote_argv
from vdcmanage.remote.transfer import receiver
from vdcmanage.remote.transfer.checksum import Cksum, PendingChecksum, start_block_sum
from vdcmanage.remote.transfer.source import Chunk, LocalSource

if TYPE_CHECKING:
    import paramiko

    from vdcmanage.remote.ssh import Connection

WRITE_PIECE = 1024 * 1024  # a stop request is noticed between two writes of this size
MAX_UNVERIFIED = 8  # chunks sent on a lane and not yet checked by the host (bounds what a drop loses)
POLL_S = 0.1
WRITE_TIMEOUT_S = 120.0
EXIT_WAIT_S = 10.0
STDERR_KEEP = 16 * 1024


class LaneLost(ConnectionLost):
    """A lane's connection or receiver ended before its work was done: reconnect and resume."""


class LaneStartFailed(ConnectionLost):
    """The receiver never said ``ready`` and did not say why (for OpenSSH: the client could not connect,
    log in or verify the host; it exits 255 then)."""


# -- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    lane: Lane
    chunk: int
    digest: str


@dataclass(frozen=True)
class Reply:
    lane: Lane
    chunk: int
    digest: str


@dataclass(frozen=True)
class Sent:
    lane: Lane
    payload: int


@dataclass(frozen=True)
class LaneEnded:
    lane: Lane
    error: Exception | None  # None: the receiver finished cleanly ("done", exit 0)


Event = Expect | Reply | Sent | LaneEnded


# -- streams --------------------------------------------------------------------------------------------


class Stream(Protocol):
    """A running receiver: its stdin, stdout, exit status and stderr."""

    description: str

    def write(self, data: memoryview | bytes) -> None: ...
    def read(self) -> bytes: ...  # b"" at end of output
    def readable(self, timeout: float) -> bool: ...
    def close_input(self) -> None: ...
    def abort(self) -> None: ...
    def exit_status(self, timeout: float) -> int | None: ...  # None: not known (yet); -1: killed / broken
    def stderr_text(self) -> str: ...


class OpenSshStream:
    """The receiver run by the system's ``ssh`` client; we write its stdin pipe and read its stdout."""

    def __init__(self, argv: list[str], description: str) -> None:
        self.description = description
        self._stderr: IO[bytes] = tempfile.TemporaryFile(prefix="vdc-ssh-stderr-")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # Ctrl-C on the terminal reaches us, not ssh: we stop it in order
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        with contextlib.suppress(OSError):  # a 1 MiB pipe: 16x fewer wake-ups than the default 64 KiB
            import fcntl

            fcntl.fcntl(self._in, getattr(fcntl, "F_SETPIPE_SZ", 1031), WRITE_PIECE)

    def write(self, data: memoryview | bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._in, view)
            view = view[written:]

    def splice(self, fd: int, offset: int, length: int) -> None:
        """Move ``length`` bytes of the file ``fd`` from ``offset`` into ssh's stdin without copying
        them through this process (page references; saves ~0.2 CPU-s per GiB). Short of data (the
        file shrank): InvalidArgument, as for any read."""
        end = offset + length
        while offset < end:
            moved = os.splice(fd, self._in, min(WRITE_PIECE, end - offset), offset_src=offset)
            if moved == 0:
                raise InvalidArgument("the local file became shorter while it was being uploaded")
            offset += moved

    def read(self) -> bytes:
        return os.read(self._out, 65536)

    def readable(self, timeout: float) -> bool:
        return bool(select.select([self._out], [], [], timeout)[0])

    def close_input(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def abort(self) -> None:
        """Stop ssh (our own child, by its pid): SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5.0)
        self.close_input()

    def exit_status(self, timeout: float) -> int | None:
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        # ssh exits 255 for its own errors (connection, login); a remote killed by a signal also shows
        # as 255 or a negative status: either way the data did not all arrive.
        return -1 if status < 0 or status == 255 else status

    def stderr_text(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_KEEP))
        return self._stderr.read().decode("utf-8", errors="replace").strip()

    def close(self) -> None:
        self.abort()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


class ParamikoStream:
    """The receiver on a paramiko exec channel of one connection (its own transport, its own thread)."""

    def __init__(self, conn: Connection, argv: list[str], description: str) -> None:
        self.description = description
        self.conn = conn
        self.channel: paramiko.Channel = conn.open_channel()
        try:
            self.channel.exec_command(quote_argv(argv))
        except Exception as exc:
            self.abort()
            raise LaneStartFailed(f"Cannot start the receiver on {conn.where}: {exc}") from exc
        self.channel.settimeout(WRITE_TIMEOUT_S)
        self._stderr = bytearray()

    def write(self, data: memoryview | bytes) -> None:
        try:
            self.channel.sendall(data)
        except TimeoutError as exc:
            raise RemoteTimeout(f"{self.conn.where} accepted no data for {WRITE_TIMEOUT_S:g} s") from exc

    def read(self) -> bytes:
        while True:
            try:
                return bytes(self.channel.recv(65536))
            except TimeoutError:
                continue  # the channel's timeout is for writes; reading waits as long as it takes

    def readable(self, timeout: float) -> bool:
        if self.channel.recv_ready() or self.channel.eof_received or self.channel.closed:
            return True
        return bool(select.select([self.channel], [], [], timeout)[0])

    def close_input(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.channel.shutdown_write()

    def abort(self) -> None:
        # Close our side first: paramiko then sends nothing when the server's close arrives, which
        # keeps its transport thread out of a known rekey livelock (paramiko issue #822).
        self.conn.forget_channel(self.channel)
        with contextlib.suppress(Exception):  # a dead transport cannot send the close: nothing to do
            self.channel.close()

    def exit_status(self, timeout: float) -> int | None:
        if not self.channel.status_event.wait(timeout):
            transport = self.channel.get_transport()
            return -1 if transport is None or not transport.is_active() or self.channel.closed else None
        return int(self.channel.exit_status)

    def stderr_text(self) -> str:
        with contextlib.suppress(OSError, socket.timeout):
            while self.channel.recv_stderr_ready():
                self._stderr += self.channel.recv_stderr(65536)
        return bytes(self._stderr[-STDERR_KEEP:]).decode("utf-8", errors="replace").strip()

    def close(self) -> None:
        self.abort()


# -- the lane -------------------------------------------------------------------------------------------


class Lane:
    """One receiver and its two threads. Chunks come in through :meth:`submit`; events go to ``events``."""

    def __init__(
        self,
        name: str,
        stream: OpenSshStream | ParamikoStream,
        events: queue.Queue[Event],
        source: LocalSource,
        tools: dict[str, str] | None,
    ) -> None:
        self.name = name
        self.stream = stream
        self.events = events
        self.source = source  # OpenSSH lanes splice from it; local checksums read it
        self.tools = tools  # sh, dd, cksum on this machine, or None (checksums by zlib from the buffer)
        self.mode = ""  # what the receiver did first: new, resume, attach
        self.final_size: int | None = None  # the staged file's size the receiver reported at the end
        self.stop = threading.Event()
        self.inbox: queue.Queue[Chunk | None] = queue.Queue(maxsize=1)
        self.unverified = threading.Semaphore(MAX_UNVERIFIED)
        self.done_seen = False
        self._pending = b""  # what followed "ready" in the first read
        self.send_error: Exception | None = None
        self._sender = threading.Thread(target=self._send_loop, name=f"upload-send-{name}", daemon=True)
        self._replies = threading.Thread(target=self._reply_loop, name=f"upload-reply-{name}", daemon=True)

    def start(self, timeout: float, tick: Callable[[], None] | None = None) -> str:
        """Wait for the receiver's ``ready``, start sending and reading replies; return what it did first.
        ``tick`` is called while waiting (it may raise: a cancel is noticed during a slow start too)."""
        line = self._first_line(timeout, tick)
        mode = receiver.parse_ready(line)
        if mode is None:
            raise self._start_error(line)
        self.mode = mode
        self._sender.start()
        self._replies.start()
        return mode

    def _start_error(self, line: bytes | None) -> Exception:
        status = self.stream.exit_status(5.0)
        stderr = self.stream.stderr_text()
        detail = error_lines(stderr) or (line or b"no answer").decode("utf-8", errors="replace")
        where = self.stream.description
        if status == receiver.EXIT_TOOL_MISSING:
            return RemoteToolMissing(f"Cannot upload ({where}): {detail}")
        if status == receiver.EXIT_NO_DIRECTORY:
            return RemotePathMissing(f"Cannot upload ({where}): {detail} on the host")
        if status == receiver.EXIT_CANNOT_CREATE:
            return RemoteWriteFailed(f"Cannot create the staged file ({where}): {detail}")
        exit_note = f"exit {status}" if status is not None and status >= 0 else "no exit status"
        return LaneStartFailed(f"the receiver via {where} did not start ({exit_note}): {detail}")

    def _first_line(self, timeout: float, tick: Callable[[], None] | None) -> bytes | None:
        deadline = time.monotonic() + timeout
        pending = b""
        while b"\n" not in pending:
            if tick is not None:
                tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.stream.readable(min(remaining, POLL_S)):
                if remaining <= 0:
                    return None
                continue
            data = self.stream.read()
            if not data:
                return pending or None
            pending += data
        line, _, rest = pending.partition(b"\n")
        self._pending = rest
        return line

    def needs_buffer(self, chunk: Chunk) -> bool:
        """Whether sending ``chunk`` reads its buffer. OpenSSH lanes send from the file by splice and
        checksum the file, so the buffer can go back to the pool after the md5; padding (past the
        local end of file) and the paramiko and zlib ways need the buffer."""
        padded = chunk.local_length < chunk.length
        return padded or self.tools is None or not isinstance(self.stream, OpenSshStream)

    def submit(self, chunk: Chunk) -> bool:
        """Queue a chunk for sending; False (and the chunk released) if the lane is stopping."""
        while not self.stop.is_set():
            try:
                self.inbox.put(chunk, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        if chunk.lane_holds:
            chunk.release()
        return False

    def finish(self) -> None:
        """No more chunks: the sender closes the receiver's input once the queue is empty."""
        while not self.stop.is_set():
            try:
                self.inbox.put(None, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def verified_one(self) -> None:
        self.unverified.release()

    def abort(self) -> None:
        """Stop now: kill the stream, join the threads, release every chunk still held."""
        self.stop.set()
        self.stream.abort()
        for thread in (self._sender, self._replies):
            if thread.is_alive():
                thread.join(timeout=5.0)
        self._drain_inbox()

    def close(self) -> None:
        self.abort()
        self.stream.close()

    # -- sender thread ------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    chunk = self.inbox.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if chunk is None:
                    self.stream.close_input()
                    return
                try:
                    self._send_chunk(chunk)
                finally:
                    if chunk.lane_holds:
                        chunk.release()
        except Exception as exc:  # reported through the reply thread's LaneEnded
            self.send_error = exc
            self.stream.abort()  # unblocks the reply thread, which reports how the receiver ended
        finally:
            self._drain_inbox()

    def _send_chunk(self, chunk: Chunk) -> None:
        while not self.unverified.acquire(timeout=POLL_S):
            if self.stop.is_set():
                return
        local_sum = self._start_checksum(chunk)
        try:
            payload = 0
            for run in chunk.runs:
                self.stream.write(receiver.write_header(run.first_block, run.length))
                for start in range(run.start, run.start + run.length, WRITE_PIECE):
                    if self.stop.is_set():
                        return
                    payload += self._send_piece(chunk, start, min(start + WRITE_PIECE, run.start + run.length))
            self.events.put(Expect(self, chunk.index, local_sum.result()))
        finally:
            local_sum.close()
        self.stream.write(receiver.verify_frame(chunk.index, [(run.first_block, run.count) for run in chunk.runs]))
        self.events.put(Sent(self, payload))

    def _start_checksum(self, chunk: Chunk) -> PendingChecksum:
        """Our cksum of what the host will check: the host's own command on the local file, running while
        the chunk is sent; or zlib over the buffer (no local tools, or padding only the buffer has)."""
        if chunk.lane_holds and (self.tools is None or chunk.local_length < chunk.length):
            digest = Cksum()
            for run in chunk.runs:
                digest.update(chunk.view[run.start : run.start + run.length])
            return PendingChecksum(value=digest.hexdigest())
        assert self.tools is not None
        runs = [(run.first_block, run.count) for run in chunk.runs]
        return start_block_sum(self.tools, str(self.source.path), runs)

    def _send_piece(self, chunk: Chunk, start: int, end: int) -> int:
        """Send the chunk's bytes [start, end): spliced from the file where it can, else from the buffer
        (paramiko needs bytes; padding past the local end of file exists only in the buffer).

        Either way the check compares the host's file with the local file (both by ``dd | cksum``):
        if the local file changed since the buffer was read, the chunk is sent again, and the upload
        ends with SourceChanged (its identity changed)."""
        if isinstance(self.stream, OpenSshStream) and end <= chunk.local_length:
            self.stream.splice(self.source.fd, chunk.offset + start, end - start)
        else:
            self.stream.write(chunk.view[start:end])
        return end - start

    def _drain_inbox(self) -> None:
        while True:
            try:
                chunk = self.inbox.get_nowait()
            except queue.Empty:
                return
            if chunk is not None and chunk.lane_holds:
                chunk.release()

    # -- reply thread -------------------------------------------------------------------------------

    def _reply_loop(self) -> None:
        pending = self._pending
        try:
            while True:
                pending = self._handle_lines(pending)
                data = self.stream.read()
                if not data:
                    break
                pending += data
            self._handle_lines(pending + b"\n")
        except (OSError, EOFError):
            pass  # the stream broke: the exit status below says how
        self.events.put(LaneEnded(self, self._ending_error()))

    def _handle_lines(self, pending: bytes) -> bytes:
        *lines, rest = pending.split(b"\n")
        for line in lines:
            reply = receiver.parse_reply(line)
            if reply is not None:
                self.events.put(Reply(self, *reply))
            elif (size := receiver.parse_done(line)) is not None:
                self.final_size = size
                self.done_seen = True
        return rest

    def _ending_error(self) -> Exception | None:
        status = self.stream.exit_status(EXIT_WAIT_S)
        if status == 0 and self.done_seen and self.send_error is None:
            return None
        stderr = error_lines(self.stream.stderr_text())
        if status == receiver.EXIT_WRITE_FAILED:
            where = self.stream.description
            if "space" in stderr.lower():
                return RemoteNoSpace(f"The host ran out of disk space writing the staged file ({where}): {stderr}")
            return RemoteWriteFailed(f"Writing the staged file failed on the host ({where}): {stderr}")
        if self.stop.is_set():
            return LaneLost(f"{self.stream.description}: stopped")
        cause = self.send_error or (stderr if stderr else None)
        status_text = "no exit status" if status is None or status < 0 else f"exit {status}"
        detail = f": {cause}" if cause else ""
        return LaneLost(f"The connection via {self.stream.description} ended ({status_text}){detail}")


def error_lines(stderr: str) -> str:
    """The receiver's error messages (``dd: ...``) without dd's per-write statistics, joined on one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    messages = [line for line in lines if ": " in line] or lines[-3:]
    return " / ".join(messages[-3:])
