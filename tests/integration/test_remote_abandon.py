"""A remote command abandoned through on_poll (a cancelled job) is killed on the host, not left running."""

from __future__ import annotations

import time
from typing import Any

import pytest


class Abandon(Exception):
    pass


def test_abandoned_command_is_killed_on_the_host(xen_host: Any) -> None:
    conn = xen_host.connect()
    started = time.monotonic()

    def poll() -> None:
        if time.monotonic() - started > 0.5:
            raise Abandon()

    try:
        with pytest.raises(Abandon):
            conn.run(["sleep", "987"], on_poll=poll, timeout=None)
        assert time.monotonic() - started < 2
        deadline = time.monotonic() + 5
        while xen_host.ssh("pgrep", "-f", "sleep 987", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the remote command outlived its channel"
            time.sleep(0.1)
    finally:
        conn.close()


def test_polled_command_still_returns_its_output_and_status(xen_host: Any) -> None:
    conn = xen_host.connect()
    try:
        result = conn.run(["sh", "-c", "echo out; echo err >&2; exit 3"], on_poll=lambda: None, check=False)
        assert (result.exit_status, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
        progress: list[bytes] = []
        conn.run(["sh", "-c", "printf '10%%\\r'; sleep 0.3; printf '50%%\\r' >&2"], on_poll=lambda: None,
                 on_stderr=progress.append)
        assert b"50%" in b"".join(progress)
    finally:
        conn.close()
