"""Signals during mounts: stopping must never leave a mount or a loop device behind.

Two tools:

- :func:`stop_signals_raise`: SIGTERM and SIGHUP (a closed SSH session) raise :class:`Interrupted`
  like Ctrl-C raises KeyboardInterrupt, so ``finally`` blocks run instead of the process dying;
- :func:`signals_held`: SIGINT/SIGTERM/SIGHUP are held (blocked, then delivered) for the few
  moments between a system change and our record of it (attach + remember the device) and
  while undoing it, so an impatient second Ctrl-C cannot interrupt a cleanup half-way.
  Child processes started meanwhile inherit the block: ``losetup`` and ``umount`` finish.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from vdcmanage.errors import Interrupted

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold the stop signals until the block ends; they are delivered (and act) right after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    raise Interrupted(f"Stopped by {name}")


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Interrupted (only possible in the main thread)."""
    if not in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
