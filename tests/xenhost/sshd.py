"""A real OpenSSH sshd on 127.0.0.1, started for tests and gone afterwards.

Each server runs ``/usr/sbin/sshd -D -e`` (foreground, log on stderr, no systemd) inside private
mount and PID namespaces made by ``unshare``:

- the mount namespace gets its own tmpfs on ``/run`` (sshd's privilege-separation directory lives
  there, and ``/var/run`` is a link to ``/run``) and, for a XenServer test host, a bind mount of a
  test directory on ``/run/sr-mount``: remote commands see ``/var/run/sr-mount/<sr-uuid>/`` exactly as
  on a real host, while the machine's own ``/run`` is untouched (nothing is created on it);
- the PID namespace makes stopping total: killing ``unshare`` (``--kill-child``) kills sshd, which is
  the namespace's init, and with it every session and command still running. No process, mount or
  file outside the server's directory survives :meth:`SshServer.stop`.

Needs root (CI runs as root), ``unshare`` (util-linux) and ``sshd`` (openssh-server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 10.0
# $1: directory to show at /run/sr-mount (or ""), $2: sshd, $3: its config, $4: an empty file.
# root's ~/.bashrc (which bash reads for commands run over SSH) is hidden behind the empty file: the
# admin machine's own dotfiles (pyenv init, ...) would slow every remote command and make the test
# host depend on this machine; a XenServer dom0's root has no such things.
LAUNCH = """set -e
mount -t tmpfs -o mode=0755,size=16m vdc-test-run /run
mkdir -p /run/sshd
if [ -n "$1" ]; then mkdir -p /run/sr-mount && mount --bind "$1" /run/sr-mount; fi
if [ -f /root/.bashrc ]; then mount --bind "$4" /root/.bashrc; fi
exec "$2" -D -e -f "$3"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "", comment: str = "vdc-test") -> Path:
    """A new key pair at ``path`` / ``path.pub`` (private file 0600, as ssh-keygen makes it)."""
    for stale in (path, Path(f"{path}.pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def public_line(private_key: Path) -> str:
    """``<type> <base64>`` of a key pair's public half (no comment)."""
    fields = Path(f"{private_key}.pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` has exited (a zombie awaiting its new parent counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)


class SshServer:
    """One sshd. ``root`` holds its config, host keys, authorized_keys and log."""

    address = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        *,
        authorized_keys: Sequence[str],
        env: Mapping[str, str] | None = None,
        sr_mount: Path | None = None,
        host_key_type: str = "ed25519",
        extra_config: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.authorized_keys = list(authorized_keys)
        self.env = dict(env or {})
        self.sr_mount = sr_mount
        self.host_key_type = host_key_type
        self.extra_config = list(extra_config)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = root / f"ssh_host_{host_key_type}_key"
        keygen(self.host_key, host_key_type, comment="vdc-test-host")
        (root / "authorized_keys").write_text("".join(f"{k}\n" for k in self.authorized_keys))
        self.empty_file = root / "empty"
        self.empty_file.write_bytes(b"")

    # -- what clients need ---------------------------------------------------------------------------

    @property
    def host_key_line(self) -> str:
        return public_line(self.host_key)

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.address}]:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return f"{self.known_hosts_name} {self.host_key_line}"

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- life cycle ----------------------------------------------------------------------------------

    def config_text(self) -> str:
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.address}",
            f"HostKey {self.host_key}",
            "PidFile none",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",  # the test's files live under /tmp, which is group/world writable
            "PrintMotd no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ]
        if self.env:
            lines.append("SetEnv " + " ".join(f'"{k}={v}"' for k, v in self.env.items()))
        return "\n".join(lines + self.extra_config) + "\n"

    def start(self) -> SshServer:
        for _attempt in range(5):  # another process may take the free port before sshd binds it
            if self.launch(free_port()):
                return self
            if "Address already in use" not in self.log():
                break
        raise RuntimeError(f"sshd did not start; its log ({self.log_path}):\n{self.log()[-3000:]}")

    def launch(self, port: int) -> bool:
        """Start sshd on ``port``; True once it listens, False (and stopped) if it did not."""
        self.port = port
        config = self.root / "sshd_config"
        config.write_text(self.config_text())
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--fork", "--pid", "--kill-child", "--mount", "--propagation", "private", "--",
                 "sh", "-c", LAUNCH, "sh", str(self.sr_mount or ""), SSHD, str(config), str(self.empty_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if self.wait_listening(log_start):
            return True
        self.stop()
        return False

    def wait_listening(self, log_start: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = f"Server listening on {self.address} port {self.port}"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            with open(self.log_path, "rb") as log:
                log.seek(log_start)
                if ready in log.read().decode(errors="replace"):
                    return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        """Kill unshare: sshd (the PID namespace's init) and everything under it die with it."""
        if self.process is None:
            return
        children = child_pids(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        for pid in children:  # sshd dies of --kill-child; make sure it is gone before returning
            wait_dead(pid)

    @property
    def listener_pid(self) -> int | None:
        """The sshd that accepts connections (the PID namespace's init), or None if not running."""
        if self.process is None:
            return None
        children = child_pids(self.process.pid)
        return children[0] if children else None

    def session_pids(self) -> list[int]:
        """Every process serving a connection to this server (sshd per connection and all it runs)."""
        listener = self.listener_pid
        if listener is None:
            return []
        found: list[int] = []
        pending = child_pids(listener)
        while pending:
            pid = pending.pop()
            found.append(pid)
            pending.extend(child_pids(pid))
        return found

    def kill_sessions(self) -> int:
        """SIGKILL every connection's processes (a dropped session, as by a crash or a network cut),
        leaving the listener running; only this server's sessions are touched. Returns how many died."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            wait_dead(pid, timeout=5.0)
        return len(pids)

    def restart(self) -> SshServer:
        """Stop and start again on the same port, e.g. after authorized_keys changed."""
        port = self.port
        self.stop()
        (self.root / "authorized_keys").write_text("".join(f"{k}\n" for k in self.authorized_keys))
        if not self.launch(port):
            raise RuntimeError(f"sshd did not restart on port {port}:\n{self.log()[-3000:]}")
        return self

    def new_host_key(self, key_type: str | None = None) -> SshServer:
        """A fresh host key (a reinstalled host, or an impostor), same address and port."""
        self.host_key_type = key_type or self.host_key_type
        self.host_key = self.root / f"ssh_host_{self.host_key_type}_key"
        keygen(self.host_key, self.host_key_type, comment="vdc-test-host")
        return self.restart()

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
