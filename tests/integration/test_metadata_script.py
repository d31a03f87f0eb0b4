"""The metadata init script (share/metadata/vdc-metadata.sh), run for real under several POSIX shells.

A small HTTP server on 127.0.0.1 stands in for the metadata server at 169.254.169.254; a fake
root directory (``ROOT=``) stands in for the guest's /. The script fetches with curl and with
wget, and is run with dash, sh, busybox sh and bash in POSIX mode.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.guests import write

SCRIPT = Path(__file__).resolve().parents[2] / "share/metadata/vdc-metadata.sh"
SHELLS = {"dash": ["dash"], "sh": ["sh"], "busybox": ["busybox", "sh"], "bash-posix": ["bash", "--posix"]}
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf6Fz3+zJ6Hk1mQ9cW1l7bU2m8sM6z7b0hV1YkzYc6Q operator@admin"


@dataclass
class MetadataServer:
    """Answers GET /latest/meta-data/<key> from ``routes``; anything else is a 404."""

    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/latest/meta-data"

    def serve(self, port: int = 0) -> http.server.ThreadingHTTPServer:
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append(self.path)
                key = self.path.removeprefix("/latest/meta-data/")
                status, body = state.routes.get(key, (404, b"<html>404 Not Found</html>"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def standard_routes() -> dict[str, tuple[int, bytes]]:
    return {
        "instance-id": (200, b"i-4f5a6b7c"),
        "local-hostname": (200, b"web01.example.com\n"),
        "local-ipv4": (200, b"10.1.2.3"),
        "public-keys/0/openssh-key": (200, PUBLIC_KEY.encode() + b"\n"),
    }


@pytest.fixture
def server() -> Iterator[MetadataServer]:
    metadata = MetadataServer(standard_routes())
    http_server = metadata.serve()
    yield metadata
    http_server.shutdown()
    http_server.server_close()


def fake_root(path: Path, family: str = "debian", host_keys: bool = False) -> Path:
    if family == "debian":
        write(path, "etc/debian_version", "squeeze/sid\n")
        write(path, "etc/hostname", "ubuntu\n")
        write(path, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tubuntu\n")
    else:
        write(path, "etc/redhat-release", "CentOS release 5.5 (Final)\n")
        write(path, "etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost.localdomain\n")
        write(path, "etc/hosts", "127.0.0.1\tlocalhost.localdomain localhost\n")
    (path / "etc/ssh").mkdir(parents=True, exist_ok=True)
    (path / "var/log").mkdir(parents=True, exist_ok=True)
    (path / "root").mkdir(mode=0o700, exist_ok=True)
    if host_keys:
        for key_type in ("rsa", "dsa", "ecdsa", "ed25519"):
            write(path, f"etc/ssh/ssh_host_{key_type}_key", "already there\n", 0o600)
    return path


def run_script(
    root: Path,
    url: str,
    *,
    shell: str = "dash",
    http: str = "curl",
    tries: int = 3,
    delay: str = "0",
    timeout: int = 60,
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "ROOT": str(root),
        "VDC_METADATA_URL": url,
        "VDC_METADATA_HTTP": http,
        "VDC_METADATA_TRIES": str(tries),
        "VDC_METADATA_DELAY": delay,
        "VDC_METADATA_TIMEOUT": "3",
    }
    return subprocess.run(
        [*SHELLS[shell], str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def log_of(root: Path) -> str:
    return (root / "var/log/vdc-metadata.log").read_text()


@pytest.mark.parametrize("http", ["curl", "wget"])
@pytest.mark.parametrize("shell", list(SHELLS))
def test_sets_hostname_installs_key_and_is_idempotent(
    server: MetadataServer, tmp_path: Path, shell: str, http: str
) -> None:
    root = fake_root(tmp_path / "root", host_keys=True)
    hostname_before = socket.gethostname()
    result = run_script(root, server.url, shell=shell, http=http)
    assert result.returncode == 0, result.stderr
    assert (root / "etc/hostname").read_text() == "web01.example.com\n"
    assert "127.0.1.1\tweb01.example.com web01\n" in (root / "etc/hosts").read_text()
    assert "127.0.1.1\tubuntu" not in (root / "etc/hosts").read_text()
    ssh_dir, keys = root / "root/.ssh", root / "root/.ssh/authorized_keys"
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.read_text() == PUBLIC_KEY + "\n"
    assert "host name set to web01.example.com" in log_of(root)
    assert "public key installed" in log_of(root)

    again = run_script(root, server.url, shell=shell, http=http)
    assert again.returncode == 0, again.stderr
    assert keys.read_text() == PUBLIC_KEY + "\n"  # once
    assert "public key already in" in log_of(root)
    assert socket.gethostname() == hostname_before  # with ROOT set, no live command runs


def test_redhat_host_name_goes_to_sysconfig_network(server: MetadataServer, tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root", family="redhat", host_keys=True)
    result = run_script(root, server.url, shell="sh")
    assert result.returncode == 0, result.stderr
    assert (root / "etc/sysconfig/network").read_text() == "NETWORKING=yes\nHOSTNAME=web01.example.com\n"
    assert not (root / "etc/hostname").exists()
    assert "127.0.1.1\tweb01.example.com web01\n" in (root / "etc/hosts").read_text()


def test_missing_host_keys_are_made_with_ssh_keygen(server: MetadataServer, tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    write(root, "etc/ssh/ssh_host_rsa_key", "kept as it is\n", 0o600)
    result = run_script(root, server.url, shell="busybox")
    assert result.returncode == 0, result.stderr
    assert (root / "etc/ssh/ssh_host_rsa_key").read_text() == "kept as it is\n"
    for key_type in ("ed25519", "ecdsa"):
        key = root / f"etc/ssh/ssh_host_{key_type}_key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=True)
        assert key_type.upper() in fingerprint.stdout
        assert f"made SSH host key {key}" in log_of(root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("shell", "http"), [("dash", "curl"), ("busybox", "wget")])
def test_unreachable_server_changes_nothing_but_host_keys(tmp_path: Path, shell: str, http: str) -> None:
    root = fake_root(tmp_path / "root")
    hosts_before = (root / "etc/hosts").read_text()
    started = time.monotonic()
    result = run_script(root, f"http://127.0.0.1:{free_port()}/latest/meta-data", shell=shell, http=http, tries=3)
    assert result.returncode == 0
    assert time.monotonic() - started < 30
    assert (root / "etc/hostname").read_text() == "ubuntu\n"
    assert (root / "etc/hosts").read_text() == hosts_before
    assert not (root / "root/.ssh").exists()
    assert "unreachable after 3 tries" in log_of(root) and "nothing else changed" in log_of(root)
    assert (root / "etc/ssh/ssh_host_ed25519_key").exists()  # sshd must be able to start anyway


FETCHERS = [("dash", "curl"), ("dash", "wget"), ("busybox", "wget")]  # busybox sh runs BusyBox's own wget


@pytest.mark.parametrize(("shell", "http"), FETCHERS)
def test_404_everywhere_changes_nothing(server: MetadataServer, tmp_path: Path, shell: str, http: str) -> None:
    server.routes.clear()
    root = fake_root(tmp_path / "root", host_keys=True)
    result = run_script(root, server.url, shell=shell, http=http, tries=30, delay="1")
    assert result.returncode == 0
    assert server.requests.count("/latest/meta-data/instance-id") == 1  # a 404 is an answer: no waiting
    assert (root / "etc/hostname").read_text() == "ubuntu\n"
    assert not (root / "root/.ssh").exists()
    assert "no local-hostname" in log_of(root) and "no public key offered" in log_of(root)


@pytest.mark.parametrize(
    ("hostname", "key"),
    [
        (b"<html><body>Service Unavailable</body></html>", b"<html>oops</html>"),
        (b"bad_host name!", b"ssh-rsa"),
        (b"-leadingdash", b"\x00\x01\x02binary\xff"),
        (b"a" * 300, b"ssh-ed25519 AAAA\x1bcontrol"),
    ],
)
def test_garbage_answers_are_not_applied(server: MetadataServer, tmp_path: Path, hostname: bytes, key: bytes) -> None:
    server.routes["local-hostname"] = (200, hostname)
    server.routes["public-keys/0/openssh-key"] = (200, key)
    root = fake_root(tmp_path / "root", host_keys=True)
    result = run_script(root, server.url, shell="dash")
    assert result.returncode == 0
    assert (root / "etc/hostname").read_text() == "ubuntu\n"
    assert not (root / "root/.ssh/authorized_keys").exists()
    assert "not a valid host name" in log_of(root)
    assert "is not an OpenSSH public key" in log_of(root)


def test_waits_for_the_network_to_come_up(tmp_path: Path) -> None:
    port = free_port()
    root = fake_root(tmp_path / "root", host_keys=True)
    metadata = MetadataServer(standard_routes())
    holder: list[http.server.ThreadingHTTPServer] = []
    timer = threading.Timer(1.5, lambda: holder.append(metadata.serve(port)))
    timer.start()
    try:
        result = run_script(root, f"http://127.0.0.1:{port}/latest/meta-data", tries=40, delay="0.2")
    finally:
        timer.join()
        for server in holder:
            server.shutdown()
            server.server_close()
    assert result.returncode == 0, result.stderr
    assert (root / "etc/hostname").read_text() == "web01.example.com\n"


def test_script_is_posix_for_every_shell() -> None:
    for argv in SHELLS.values():
        subprocess.run([*argv, "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


APPLETS = ("sh", "sed", "awk", "grep", "date", "cat", "tr", "mkdir", "chmod", "chown", "rm", "id", "ls", "sleep",
           "timeout", "head")


def busybox_chroot(path: Path, *, shell: str) -> Path:
    """A root with a static busybox (its applets as links, wget not among them) and the script.

    ``shell="busybox"``: busybox's own sh, which knows every applet (wget too) as a command;
    ``shell="dash"``: the host's dash with its libraries and busybox renamed, so that the guest has
    a shell and the tools the script needs, but no HTTP client of any kind.
    """
    (path / "bin").mkdir(parents=True)
    busybox = "busybox" if shell == "busybox" else "bb"
    shutil.copy2("/usr/bin/busybox", path / "bin" / busybox)
    for applet in APPLETS:
        if applet != "sh" or shell == "busybox":
            (path / "bin" / applet).symlink_to(busybox)
    if shell == "dash":
        copy_with_libraries("/usr/bin/dash", path)
        (path / "bin/sh").symlink_to("/usr/bin/dash")
    (path / "tmp").mkdir(mode=0o1777)
    (path / "dev").mkdir()
    os.mknod(path / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    shutil.copy2(SCRIPT, path / "vdc-metadata")
    return path


def copy_with_libraries(program: str, root: Path) -> None:
    listing = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = [program] + [word for word in listing.split() if word.startswith("/")]
    for path in paths:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


def run_in_chroot(chroot: Path, url: str) -> subprocess.CompletedProcess[str]:
    """ROOT=/guest: the script acts on a directory inside the chroot and runs no live command."""
    env = {"PATH": "/bin", "ROOT": "/guest", "VDC_METADATA_URL": url, "VDC_METADATA_TRIES": "3",
           "VDC_METADATA_DELAY": "0"}  # fmt: skip
    if os.geteuid() != 0:
        pytest.fail("chroot needs root (the tests run as root, as CI does)")
    chroot_tool = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot_tool, str(chroot), "/bin/sh", "/vdc-metadata"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_a_guest_with_only_busybox_fetches_with_busybox_wget(server: MetadataServer, tmp_path: Path) -> None:
    chroot = busybox_chroot(tmp_path / "chroot", shell="busybox")
    guest = fake_root(chroot / "guest", host_keys=True)
    result = run_in_chroot(chroot, server.url)
    assert result.returncode == 0, result.stderr
    assert (guest / "etc/hostname").read_text() == "web01.example.com\n"
    assert (guest / "root/.ssh/authorized_keys").read_text() == PUBLIC_KEY + "\n"


def test_a_guest_without_any_http_client_says_so_and_changes_nothing(server: MetadataServer, tmp_path: Path) -> None:
    chroot = busybox_chroot(tmp_path / "chroot", shell="dash")
    guest = fake_root(chroot / "guest", host_keys=True)
    result = run_in_chroot(chroot, server.url)
    assert result.returncode == 0, result.stderr
    assert "no HTTP client (curl, wget, busybox wget or python): metadata not fetched" in log_of(guest)
    assert server.requests == []
    assert (guest / "etc/hostname").read_text() == "ubuntu\n"


@pytest.mark.parametrize("python", ["python3"])
def test_python_is_the_last_resort_fetcher(server: MetadataServer, tmp_path: Path, python: str) -> None:
    root = fake_root(tmp_path / "root", host_keys=True)
    result = run_script(root, server.url, http="python")
    assert result.returncode == 0, result.stderr
    assert (root / "etc/hostname").read_text() == "web01.example.com\n"
    assert (root / "root/.ssh/authorized_keys").read_text() == PUBLIC_KEY + "\n"
    server.routes.clear()
    again = run_script(fake_root(tmp_path / "other", host_keys=True), server.url, http="python", tries=30, delay="1")
    assert again.returncode == 0
    assert server.requests.count("/latest/meta-data/instance-id") == 2  # a 404 is an answer: no waiting


def test_the_deadline_bounds_the_wait_whatever_the_tries(tmp_path: Path) -> None:
    """A server that never answers (connections dropped): 1000 tries, but 3 s of them."""
    root = fake_root(tmp_path / "root", host_keys=True)
    env = {
        "PATH": os.environ["PATH"],
        "ROOT": str(root),
        "VDC_METADATA_URL": f"http://127.0.0.1:{free_port()}/latest/meta-data",
        "VDC_METADATA_TRIES": "1000",
        "VDC_METADATA_DELAY": "0.5",
        "VDC_METADATA_DEADLINE": "3",
    }
    started = time.monotonic()
    result = subprocess.run(["dash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0
    assert elapsed < 10, elapsed
    assert "unreachable after" in log_of(root) and "nothing else changed" in log_of(root)


def test_host_keys_only_makes_the_types_this_openssh_supports(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    env = {"PATH": os.environ["PATH"], "ROOT": str(root), "VDC_METADATA_URL": "http://127.0.0.1:1/x"}
    result = subprocess.run(["dash", str(SCRIPT), "--host-keys"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*_key"))
    assert made == ["ssh_host_ecdsa_key", "ssh_host_ed25519_key", "ssh_host_rsa_key"]  # OpenSSH 9: no DSA
    assert "local-hostname" not in log_of(root) and "unreachable" not in log_of(root)  # --host-keys fetches nothing


def test_units_run_the_script_as_installed() -> None:
    share = SCRIPT.parent
    keys = (share / "vdc-ssh-host-keys.service").read_text()
    metadata = (share / "vdc-metadata.service").read_text()
    assert "Before=ssh.service sshd.service" in keys and "Type=oneshot" in keys
    assert "After=network-online.target" in metadata and "Wants=network-online.target" in metadata
    assert "Type=exec" in metadata  # nothing waits for it
    for unit in (keys, metadata):
        assert "ExecStart=/usr/local/sbin/vdc-metadata" in unit and "WantedBy=multi-user.target" in unit
