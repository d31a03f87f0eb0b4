"""The dashboard in a real terminal: tmux runs the installed ``vdc-manage tui`` on a test catalog,
send-keys types what an operator would, capture-pane reads what they would see.

Each run has its own tmux server (``-L`` socket name), so parallel runs never meet. Terminal
flavours: TERM=xterm-256color, screen (what tmux itself reports by default), tmux-256color when
its terminfo exists, and NO_COLOR with TERM=screen, where no hue may reach the screen.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

VDC_MANAGE = Path(sys.executable).parent / "vdc-manage"
TERMINFO = (
    subprocess.run(["infocmp", "tmux-256color"], capture_output=True).returncode == 0
    if shutil.which("infocmp")
    else False
)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is in .ci/apt-packages.txt")


class Tmux:
    """One private tmux server with one 80x24 window running a command."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"vdc-tui-{os.getpid()}-{secrets.token_hex(4)}"
        args = ["new-session", "-d", "-x", "80", "-y", "24", "-s", "main"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        self.run(*args, " ".join(quote(part) for part in command))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=20
        )

    def screen(self, *, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "main").stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "main", *(["-l"] if literal else []), *keys)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never appeared; the screen shows:\n{text}")
            time.sleep(0.1)

    def pane_pid(self) -> int:
        return int(self.run("display", "-p", "-t", "main", "#{pane_pid}").stdout.strip())

    def alive(self) -> bool:
        return self.run("has-session", "-t", "main").returncode == 0

    def kill(self) -> None:
        self.run("kill-server")
        base = os.environ.get("TMUX_TMPDIR") or "/tmp"
        Path(base, f"tmux-{os.getuid()}", self.socket).unlink(missing_ok=True)  # tmux leaves its socket file


def quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


@pytest.fixture
def dashboard(tui_catalog: str) -> Iterator[Callable[..., Tmux]]:
    started: list[Tmux] = []

    def start(**env: str) -> Tmux:
        tmux = Tmux(
            [str(VDC_MANAGE), "--db", tui_catalog, "tui"],
            {
                "LANG": "C.UTF-8",
                "HOME": os.environ["HOME"],
                "VDC_MANAGE_CONFIG": os.environ["VDC_MANAGE_CONFIG"],
                **env,
            },
        )
        started.append(tmux)
        return tmux

    yield start
    for tmux in started:
        tmux.kill()


FLAVOURS = [
    pytest.param({"TERM": "xterm-256color"}, id="xterm-256color"),
    pytest.param({"TERM": "screen"}, id="screen"),
    pytest.param(
        {"TERM": "tmux-256color"},
        id="tmux-256color",
        marks=pytest.mark.skipif(not TERMINFO, reason="no tmux-256color terminfo here"),
    ),
    pytest.param({"TERM": "screen", "NO_COLOR": "1"}, id="screen-NO_COLOR"),
]


@pytest.mark.parametrize("env", FLAVOURS)
def test_filter_detail_and_jobs_as_an_operator_sees_them(dashboard: Callable[..., Tmux], env: dict[str, str]) -> None:
    tmux = dashboard(**env)
    text = tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
    lines = text.splitlines()
    assert lines[0].startswith(" vdc-manage  1 Images  2 Jobs  3 Hosts") and lines[0].rstrip().endswith("live")
    assert "7 images" in lines[1]
    assert lines[3].split()[:3] == ["wmi-lucid0", "Ubuntu", "10.04"]
    assert any("/  Filter" in line for line in lines[-3:]) and any("q  Quit" in line for line in lines[-3:])
    assert all(len(line) <= 80 for line in lines) and len(lines) <= 24

    tmux.keys("/")
    tmux.keys("ubuntu", literal=True)
    text = tmux.wait_for(lambda s: "2 images" in s, "the filtered table")
    assert "wmi-lucid0" in text and "wmi-lucid32" in text and "wmi-centos62" not in text
    tmux.keys("Enter")  # back to the table
    time.sleep(0.3)
    tmux.keys("Enter")  # the detail of the selected image
    text = tmux.wait_for(lambda s: "SHA256" in s, "the detail pane")
    assert "Source: file:///srv/images/wmi-lucid0.qcow2" in text
    assert "SHA256: 776d692d6c7563696430ffff" in text
    assert "MD5: 776d692d6c756369643000000000000" in text

    tmux.keys("2")
    text = tmux.wait_for(lambda s: "job-run00001" in s, "the jobs view")
    assert re.search(r"job-fail0001 FAILED ", text)
    assert re.search(r"job-stall001 STALLED ", text)  # the test data's heartbeats are long gone
    assert "90.0M/150M" in text

    if env.get("NO_COLOR"):
        assert hues(tmux.screen(escapes=True)) == set(), "NO_COLOR: only shades of grey may be drawn"

    pid = tmux.pane_pid()
    tmux.keys("q")
    deadline = time.monotonic() + 10
    while (tmux.alive() or running(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive() and not running(pid)


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def hues(escaped: str) -> set[tuple[int, int, int]]:
    """Colours with a hue in SGR sequences: 24-bit colours whose channels differ, and 256/16-colour codes
    of the colour ranges (greys are 232-255 and 0, 7, 8, 15)."""
    found: set[tuple[int, int, int]] = set()
    for params in re.findall(r"\x1b\[([0-9;:]*)m", escaped):
        codes = [int(c) for c in re.split("[;:]", params) if c.isdigit()]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in (38, 48) and i + 1 < len(codes) and codes[i + 1] == 2:
                r, g, b = codes[i + 2 : i + 5]
                if not r == g == b:
                    found.add((r, g, b))
                i += 5
            elif code in (38, 48) and i + 1 < len(codes) and codes[i + 1] == 5:
                n = codes[i + 2]
                if 16 <= n <= 231 or n in (1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14):
                    found.add((n, n, n))
                i += 3
            else:
                if 31 <= code <= 36 or 41 <= code <= 46 or 91 <= code <= 96 or 101 <= code <= 106:
                    found.add((code, code, code))
                i += 1
    return found


def test_a_dropped_session_ends_the_dashboard_and_loses_nothing(
    dashboard: Callable[..., Tmux], tui_catalog: str
) -> None:
    """The SSH connection drops: the terminal hangs up; the dashboard must not linger, the catalog is intact."""
    from vdcmanage.catalog.browse import ImageSearch, count_images

    tmux = dashboard(TERM="screen")
    tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
    tmux.keys("e")  # an open form: the only thing a dropped session may lose
    tmux.wait_for(lambda s: "Edit image wmi-lucid0" in s, "the edit form")
    pid = tmux.pane_pid()
    tmux.run("kill-session", "-t", "main")  # SIGHUP, as sshd sends when the connection drops
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid)
    assert count_images(ImageSearch()) == 7


def test_hosts_screen_shows_hostile_names_in_a_real_terminal(
    dashboard: Callable[..., Tmux], run_cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """The issue's crash, as an operator meets it: ``host add '[/]evil' …`` then the hosts screen. The
    names also carry a window-title change (OSC 2) and a clear-screen: shown spelled out, never obeyed."""
    name = "[/]evil\x1b]2;owned\x07\x1b[2J[bold]x"
    shown = "[/]evil\\x1b]2;owned\\x07\\x1b[2J[bold]x"
    assert run_cli("host", "add", name, "--address", "10.9.9.9", "--uuid", "hn-evil0001").code == 0
    added = run_cli("backupstorage", "add", "--storage-type", "local", "--base-uri", "http://t.example/",
                    "--path", str(tmp_path), "--display-name", name, "--uuid", "bkst-evil0001")  # fmt: skip
    assert added.code == 0, added
    tmux = dashboard(TERM="xterm-256color")
    tmux.wait_for(lambda s: "wmi-gentoo1" in s, "the images table")
    title = tmux.run("display", "-p", "-t", "main", "#{pane_title}").stdout.strip()
    tmux.keys("3")
    text = tmux.wait_for(lambda s: "hn-evil0001" in s and "bkst-evil0001" in s, "the hosts view")
    assert "[/]evil\\x1b]2;" in text  # in the tables, cut to their columns
    tmux.keys("Down", "Down")  # the new host: its pane shows the whole name
    text = tmux.wait_for(lambda s: f"hn-evil0001  {shown}" in s, "the new host's pane")
    tmux.keys("Tab", "Down", "Down")  # the backup storage's pane
    text = tmux.wait_for(lambda s: f"bkst-evil0001  {shown}" in s, "the new storage's pane")
    assert text.splitlines()[0].startswith(" vdc-manage  1 Images  2 Jobs  3 Hosts")  # nothing cleared the screen
    assert tmux.run("display", "-p", "-t", "main", "#{pane_title}").stdout.strip() == title != "owned"
    assert tmux.alive()
    tmux.keys("q")
