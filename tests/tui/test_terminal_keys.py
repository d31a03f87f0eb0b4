"""The keys of issue 12 in a real terminal (tmux, 80x24, NO_COLOR): y puts the id on the clipboard through
OSC 52 (tmux, with set-clipboard on, keeps it as a paste buffer), m shows the message log, ctrl+c quits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tests.tui.test_terminal import VDC_MANAGE, Tmux, dashboard, hues, pytestmark  # noqa: F401 - fixture, tmux skip


def test_copy_an_id_read_the_log_and_quit_with_ctrl_c(dashboard: Callable[..., Tmux]) -> None:  # noqa: F811
    tmux = dashboard(TERM="screen", NO_COLOR="1")
    assert tmux.run("set-option", "-s", "set-clipboard", "on").returncode == 0
    tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
    tmux.keys("Down", "y")
    text = tmux.wait_for(lambda s: "Copied wmi-centos62" in s, "the copy's status line")
    assert "(sent to the terminal's clipboard with OSC 52)" in text
    deadline = time.monotonic() + 5
    while tmux.run("show-buffer").stdout != "wmi-centos62" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tmux.run("show-buffer").stdout == "wmi-centos62"  # what the terminal received: OSC 52
    tmux.keys("m")
    text = tmux.wait_for(lambda s: "Times UTC" in s, "the message log")
    entry = next(line for line in text.splitlines() if "Copied wmi-centos62" in line)
    assert entry.split()[0].count(":") == 2 and entry.endswith("(sent to the terminal's clipboard with OSC")  # wraps
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table again")
    tmux.keys("/")
    tmux.keys("ubu", literal=True)  # ctrl+c quits from the filter box too
    tmux.wait_for(lambda s: "2 images" in s, "the filtered table")
    tmux.keys("C-c")
    deadline = time.monotonic() + 5
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive()  # the dashboard ended, and with it the only window


def test_a_monochrome_terminal_gets_greys_and_words(tui_catalog: str) -> None:
    """TERM=vt100 (no colours in its terminfo entry) without NO_COLOR: the dashboard draws as under NO_COLOR.
    tmux sets TERM for the programs in its panes, so the command sets it itself (as ssh would pass it on)."""
    env = {"LANG": "C.UTF-8", "HOME": os.environ["HOME"], "VDC_MANAGE_CONFIG": os.environ["VDC_MANAGE_CONFIG"]}
    tmux = Tmux(["env", "TERM=vt100", str(VDC_MANAGE), "--db", tui_catalog, "tui"], env)
    try:
        tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
        tmux.keys("2")
        text = tmux.wait_for(lambda s: "job-fail0001" in s, "the jobs view")
        assert "FAILED" in text and "STALLED" in text
        assert hues(tmux.screen(escapes=True)) == set(), "a monochrome terminal: only shades of grey may be drawn"
        tmux.keys("C-c")
    finally:
        tmux.kill()
