"""``job worker``: claim queued (or stalled) jobs and run them, N at a time, until stopped."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from vdcmanage.jobs import queue
from vdcmanage.jobs.owner import worker_name
from vdcmanage.jobs.runner import run_job

POLL_INTERVAL_S = 1.0

Reporter = Callable[[str], None]


def work_loop(
    stop: threading.Event, once: bool, report: Reporter, kinds: tuple[str, ...] | None, stale_after: float
) -> None:
    """One worker thread: claim, run, repeat; with ``once``, return when nothing is claimable."""
    from vdcmanage.catalog.db import database

    name = worker_name()
    try:
        while not stop.is_set():
            job = queue.claim_next(name, kinds, stale_after=stale_after)
            if job is None:
                if once:
                    return
                stop.wait(POLL_INTERVAL_S)
                continue
            report(f"{job.id}: running {job.kind} (attempt {job.attempts})")
            outcome = run_job(job, name, stop_event=stop)
            report(f"{job.id}: {outcome.state}")
    finally:
        database.close()


def run_worker(
    concurrency: int = 1,
    once: bool = False,
    report: Reporter = print,
    kinds: tuple[str, ...] | None = None,
    stop: threading.Event | None = None,
    stale_after: float = queue.STALE_AFTER_S,
) -> None:
    """Run ``concurrency`` worker threads. SIGTERM/SIGINT stop them at the next chunk boundary; the
    jobs they were running go back to the queue and resume where they were."""
    stop = stop or threading.Event()
    previous = install_stop_handlers(stop, report)
    loop_args = (stop, once, report, kinds, stale_after)
    threads = [
        threading.Thread(target=work_loop, args=loop_args, name=f"worker-{i}", daemon=True) for i in range(concurrency)
    ]
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        restore_handlers(previous)


def install_stop_handlers(stop: threading.Event, report: Reporter) -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            report(f"{signal.Signals(signum).name}: stopping; running jobs return to the queue")
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_handlers(previous: dict[int, object]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)  # type: ignore[arg-type]
