"""The interactive shell: piped scripts, -e, --tx modes, and a real terminal session (pty)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from tests.cli.test_account_cli import ok


def accounts(run_cli) -> set[str]:  # type: ignore[no-untyped-def]
    return {a["name"] for a in json.loads(ok(run_cli("account", "list", "-f", "json")))}


def test_piped_script_runs_line_by_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    script = "# a comment\n\naccount add --name one\naccount add \\\n  --name two\naccount show one -f json\n"
    result = run_cli(input=script)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert lines[0].startswith("a-") and lines[1].startswith("a-")
    assert '"name": "one"' in result.out
    assert "vdc-manage>>" not in result.out  # no prompt when stdin is not a terminal
    assert {"one", "two"} <= accounts(run_cli)


def test_errors_continue_without_e_and_stop_with_e(run_cli) -> None:  # type: ignore[no-untyped-def]
    script = "account add --name a1\naccount del a-nobody\naccount add --name a2\n"
    result = run_cli(input=script)
    assert result.code == 0  # like sh: the status of the last line
    assert result.err == "ERROR: Unknown account id: a-nobody\n"
    assert {"a1", "a2"} <= accounts(run_cli)
    stopped = run_cli("-e", input=script.replace("a1", "b1").replace("a2", "b2"))
    assert stopped.code == 1
    names = accounts(run_cli)
    assert "b1" in names and "b2" not in names


def test_bulk_commits_at_the_end_and_rolls_back_a_failing_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--tx", "bulk", input="account add --name c1\naccount add --uuid a-BAD\naccount add --name c2\n")
    assert result.code == 0 and "Invalid account id" in result.err
    assert {"c1", "c2"} <= accounts(run_cli)


def test_bulk_with_e_rolls_back_the_whole_session(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--tx", "bulk", "-e", input="account add --name d1\naccount del a-nobody\naccount add --name d2\n")
    assert result.code == 1
    assert not {"d1", "d2"} & accounts(run_cli)


def test_tx_none_and_each(run_cli) -> None:  # type: ignore[no-untyped-def]
    for mode in ("none", "each"):
        result = run_cli("--tx", mode, input=f"account add --name {mode}1\n")
        assert result.code == 0
    assert {"none1", "each1"} <= accounts(run_cli)
    bad = run_cli("--tx", "later", input="")
    assert bad.code == 2 and "'later' is not one of" in bad.err


def test_unparsable_line_and_exit(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(input='account add --name "unclosed\nexit\naccount add --name never\n')
    assert result.code == 2 and "Cannot parse line: No closing quotation" in result.err
    assert "never" not in accounts(run_cli)


class Terminal:
    """vdc-manage on a pseudo-terminal, as an operator's shell would start it."""

    def __init__(self, sqlite_url: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            env = {**os.environ, "VDC_MANAGE_DB": sqlite_url, "TERM": "xterm"}
            os.execve(sys.executable, [sys.executable, "-m", "vdcmanage"], env)
        self.output = b""

    def expect(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"did not see {text!r} in {self.output.decode(errors='replace')!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096)
                except OSError:
                    break
        return self.output.decode(errors="replace")

    def expect_prompts(self, count: int) -> None:
        """Wait until the shell has shown its prompt ``count`` times in all."""
        deadline = time.monotonic() + 15
        while self.expect("vdc-manage>> ").count("vdc-manage>> ") < count:
            assert time.monotonic() < deadline, self.output
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                self.output += os.read(self.fd, 4096)

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)
                raise AssertionError(f"the shell did not exit: {self.output!r}")
            time.sleep(0.05)


def test_interactive_prompt_completion_and_ctrl_c(sqlite_url: str) -> None:
    term = Terminal(sqlite_url)
    term.expect("vdc-manage>> ")
    term.send("acc\t")
    term.expect("account ")
    term.send("a\t")
    term.expect("account add ")
    term.send("--na\t")
    term.expect("--name ")
    term.send("tty-made\r")
    term.expect_prompts(2)
    term.send("half a line")
    term.expect("half a line")
    time.sleep(0.2)  # CPython's readline loop can miss a SIGINT that lands while it is still handling keys
    term.send("\x03")  # Ctrl-C discards the line, the shell stays
    term.expect_prompts(3)
    term.send("account show tty-made \\\r")
    term.expect(" > ")
    time.sleep(0.2)
    term.send("-f json\r")
    term.expect('"name": "tty-made"')
    term.expect_prompts(4)  # keys typed before readline reads are flushed by the terminal mode switch
    term.send("\x04")  # Ctrl-D ends the session
    assert term.close() == 0
    listed = subprocess.run(
        [sys.executable, "-m", "vdcmanage", "account", "list"],
        capture_output=True, text=True, env={**os.environ, "VDC_MANAGE_DB": sqlite_url}, check=True,
    )
    assert "tty-made" in listed.stdout
