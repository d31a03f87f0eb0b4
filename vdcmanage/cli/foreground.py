"""Running a job in this process with progress on stderr: ``image import xen`` and ``job retry``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import typer

from vdcmanage.cli.failures import report
from vdcmanage.cli.progress import ProgressPrinter
from vdcmanage.errors import ExitCode, Refused
from vdcmanage.jobs import queue
from vdcmanage.jobs.owner import worker_name
from vdcmanage.jobs.runner import StopSignal, run_job


class StepProgress:
    """Announces each step on its own line and draws the byte progress of the current one."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.printer: ProgressPrinter | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self.step:
            self.finish()
            self.step = step
            self.printer = ProgressPrinter(f"{step}:")
        assert self.printer is not None
        self.printer(done, total)

    def finish(self) -> None:
        if self.printer is not None:
            self.printer.finish()
            self.printer = None


STOP_REASONS = {signal.SIGHUP: "terminal closed (SIGHUP)", signal.SIGTERM: "terminated (SIGTERM)"}


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGHUP (the terminal or the SSH session to the admin host went away) and SIGTERM stop the job
    as Ctrl-C does: marked interrupted at once, resumable with ``job retry``. Without this the
    process would die with the job still "running" until a worker judged it stalled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in STOP_REASONS:  # the clean-up that follows must not be cut short by a second signal
            signal.signal(sig, signal.SIG_IGN)
        if signum == signal.SIGHUP:
            silence_terminal()
        raise StopSignal(STOP_REASONS[signal.Signals(signum)])

    previous = {sig: signal.signal(sig, handler) for sig in STOP_REASONS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def silence_terminal() -> None:
    """A hung-up terminal fails every write (EIO): progress and the final message go nowhere instead."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def run_in_foreground(job_id: str) -> int:
    """Claim the job for this process, run it to the end, print its result; return the exit code."""
    worker = worker_name()
    job = queue.claim_next(worker, job_id=job_id)
    if job is None:
        current = queue.get_job(job_id)
        raise Refused(f"Job {job_id} is {current.state}" + (f" on {current.worker}" if current.worker else ""))
    progress = StepProgress()
    try:
        with stop_signals_interrupt():
            outcome = run_job(job, worker, on_progress=progress)
    finally:
        progress.finish()
    finished = queue.get_job(job_id)
    if outcome.state == "succeeded":
        result = queue.job_dict(finished, details=False)["result"] or {}
        typer.echo(result.get("image_id", finished.id))
        return ExitCode.OK
    message = finished.error or outcome.state
    if outcome.state == "failed":
        message += f" (job {job_id}; see 'vdc-manage job show {job_id}', resume with 'vdc-manage job retry {job_id}')"
    report(message)
    return outcome.exit_code
