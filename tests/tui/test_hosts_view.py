"""The hosts and backup storages view, with host check injected as a fake (the real check belongs to issue 3)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.tui.conftest import drive, make_app, screen_text, wait_until
from tui.hostcheck import HostCheckResult

OK_REPORT = HostCheckResult(
    True,
    [
        ("reachable", "yes"),
        ("xe", "answering"),
        ("name label", "xen62"),
        ("sr 1", "uuid=4c2a7f3e name=Local storage type=ext size=500G free=320G mounted=/var/run/sr-mount/4c2a7f3e"),
    ],
)


async def hosts_ready(pilot: Any) -> Any:
    from tui.screens.hosts import HostsScreen

    await wait_until(pilot, lambda: pilot.app.catalog_ready, what="the catalog")
    await pilot.press("3")
    await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, HostsScreen) and pilot.app.screen.host_table.row_count > 0,
        what="the hosts view",
    )
    return pilot.app.screen


def check_pane(screen: Any) -> str:
    return str(screen.query_one("#check-result").render())


def test_lists_hosts_and_backup_storages_from_the_catalog(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        text = screen_text(pilot.app)
        assert "hn-xen62a" in text and "xen62" in text and "10.0.0.5" in text
        assert "hn-xcp83b" in text and "(ssh)" in text  # port and user come from ~/.ssh/config
        assert "bkst-web0001" in text and "http://templates.example/vhd/" in text
        assert "bkst-local01" in text and "/srv/templates" in text
        pane = check_pane(screen)
        assert "hn-xen62a  xen62" in pane and "SR: 4c2a7f3e-5d1b-4a8e-9f7c-1b2d3e4f5a6b" in pane
        assert "Not checked in this session: press c to run host check." in pane
        await pilot.press("tab")  # the storages table: the pane shows the selected storage
        await wait_until(pilot, lambda: "bkst-web0001  templates" in check_pane(screen))
        assert "Server: web1.example" in check_pane(screen)

    drive(make_app(tui_catalog), scenario)


def test_check_runs_the_injected_check_and_shows_its_rows(tui_catalog: str) -> None:
    asked: list[str] = []

    def check(host_id: str) -> HostCheckResult:
        asked.append(host_id)
        return OK_REPORT

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: "host check ok" in check_pane(screen))
        pane = check_pane(screen)
        assert "(at 12:00:00 UTC)" in pane
        assert "name label  xen62" in pane
        assert "mounted=/var/run/sr-mount/4c2a7f3e" in pane
        assert screen.status.text == "✓ host check hn-xen62a: ok"
        assert str(screen.host_table.get_cell("hn-xen62a", "check")) == "ok"
        assert asked == ["hn-xen62a"]

    drive(make_app(tui_catalog, check_host=check), scenario)


def test_a_failed_check_shows_which_part_broke(tui_catalog: str) -> None:
    def check(host_id: str) -> HostCheckResult:
        return HostCheckResult(False, [("reachable", "no")], f"Cannot connect to {host_id}: connection refused")

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await pilot.press("down", "c")
        await wait_until(pilot, lambda: "FAILED" in check_pane(screen))
        assert "ERROR: Cannot connect to hn-xcp83b: connection refused" in check_pane(screen)
        assert screen.status.text == "ERROR: host check hn-xcp83b: Cannot connect to hn-xcp83b: connection refused"
        assert str(screen.host_table.get_cell("hn-xcp83b", "check")) == "FAILED"

    drive(make_app(tui_catalog, check_host=check), scenario)


def test_a_check_that_raises_is_an_error_in_the_view_not_a_crash(tui_catalog: str) -> None:
    def check(host_id: str) -> HostCheckResult:
        raise RuntimeError("paramiko exploded")

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: "FAILED" in check_pane(screen))
        assert "Unexpected failure: RuntimeError: paramiko exploded" in check_pane(screen)

    drive(make_app(tui_catalog, check_host=check), scenario)


def test_a_slow_check_never_blocks_the_keyboard_and_quitting_does_not_wait_for_it(tui_catalog: str) -> None:
    release = threading.Event()

    def check(host_id: str) -> HostCheckResult:
        release.wait(30)  # an SSH connect timeout
        return OK_REPORT

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: "Checking" in check_pane(screen))
        assert str(screen.host_table.get_cell("hn-xen62a", "check")) == "checking…"
        started = time.monotonic()
        await pilot.press("1")  # other views answer at once while the check waits
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ImagesScreen", timeout=1)
        await pilot.press("3", "down")
        await wait_until(pilot, lambda: "hn-xcp83b  xcp83" in check_pane(screen), timeout=1)
        assert "Not checked in this session" in check_pane(screen)
        assert time.monotonic() - started < 1
        await pilot.press("q")

    started = time.monotonic()
    drive(make_app(tui_catalog, check_host=check), scenario)
    assert time.monotonic() - started < 10
    release.set()


def test_new_hosts_appear_without_a_key_press(tui_catalog: str) -> None:
    from vdcmanage.catalog.db import transaction
    from vdcmanage.catalog.models import Host

    async def scenario(pilot: Any) -> None:
        await hosts_ready(pilot)
        with transaction(write=True):
            Host.create(id="hn-new00001", name="xen-new", address="10.0.0.9")
        await wait_until(pilot, lambda: "hn-new00001" in screen_text(pilot.app), timeout=2)

    drive(make_app(tui_catalog), scenario)


def test_default_check_without_the_remote_layer_says_it_is_not_available(monkeypatch: Any) -> None:
    from tui import hostcheck

    monkeypatch.setattr(hostcheck, "REMOTE_MODULE", "vdcmanage.no_such_remote_module")
    result = hostcheck.check_host("hn-xen62a")
    assert result.ok is False
    assert result.error is not None
    assert result.error.startswith("host check is not available in this installation")


def test_reports_of_the_remote_layer_become_rows() -> None:
    from tui.hostcheck import result_from_report

    report = {
        "ok": True,
        "host": "xen62",
        "xapi": True,
        "srs": [{"uuid": "4c2a", "type": "ext", "free": 1024}, {"uuid": "9f1e", "type": "lvm", "free": 0}],
    }
    result = result_from_report(report)
    assert result.ok and result.error is None
    assert result.summary == [
        ("host", "xen62"),
        ("xapi", "yes"),
        ("srs 1", "uuid=4c2a  type=ext  free=1024"),
        ("srs 2", "uuid=9f1e  type=lvm  free=0"),
    ]
    failed = result_from_report({"ok": False, "error": "auth refused", "reachable": True})
    assert failed == HostCheckResult(False, [("error", "auth refused"), ("reachable", "yes")], "auth refused")


def test_many_hanging_checks_do_not_hold_up_loading_other_views(tui_catalog: str) -> None:
    """Eight hosts that never answer (each check waits out its connect timeout): images still load at once."""
    from vdcmanage.catalog.db import transaction
    from vdcmanage.catalog.models import Host

    with transaction(write=True):
        for i in range(6):
            Host.create(id=f"hn-dead{i:04d}", name=f"dead{i}", address=f"10.9.9.{i}")
    release = threading.Event()

    def check(host_id: str) -> HostCheckResult:
        release.wait(30)
        return OK_REPORT

    async def scenario(pilot: Any) -> None:
        screen = await hosts_ready(pilot)
        await wait_until(pilot, lambda: screen.host_table.row_count == 8)
        for _ in range(8):
            await pilot.press("c", "down")
        await wait_until(pilot, lambda: sum(c.result is None for c in screen.checks.values()) == 8)
        await pilot.press("1", "slash", *"debian")
        images = pilot.app.screen
        started = time.monotonic()
        await wait_until(pilot, lambda: images.search.text == "debian" and images.total == 1, timeout=5)
        assert time.monotonic() - started < 1

    try:
        drive(make_app(tui_catalog, check_host=check), scenario)
    finally:
        release.set()


def test_default_check_against_the_real_test_host(xen_host: Any, catalog: str) -> None:
    """The adapter the hosts view uses, over the real remote layer and the real sshd test host."""
    from tui import hostcheck

    host = xen_host.add_to_catalog("xen-real")
    result = hostcheck.check_host(host.id)
    assert result.ok is True, result.error
    rows = dict(result.summary)
    assert any(xen_host.sr_uuid("ext") in value for value in rows.values())
    broken = xen_host.add_to_catalog("xen-broken", sr_role=None)
    xen_host.configure(xe_installed=False)
    failed = hostcheck.check_host(broken.id)
    assert failed.ok is False and failed.error is not None and "xe" in failed.error
