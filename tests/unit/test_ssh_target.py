"""Target resolution through ~/.ssh/config, and argv quoting, without a server."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from vdcmanage.errors import InvalidArgument
from vdcmanage.remote.ssh import prefer, quote_argv
from vdcmanage.remote.target import SYSTEM_KNOWN_HOSTS, SshTarget, resolve_endpoint


def write_config(text: str) -> Path:
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(text)
    return ssh_dir


def test_defaults_without_config() -> None:
    endpoint = resolve_endpoint(SshTarget("xen1"))
    home = Path.home()
    assert (endpoint.hostname, endpoint.port, endpoint.user) == ("xen1", 22, "root")
    assert not endpoint.explicit_identity
    assert endpoint.identity_files == tuple(home / ".ssh" / n for n in ("id_rsa", "id_ecdsa", "id_ed25519"))
    assert endpoint.known_hosts_files == (home / ".ssh/known_hosts", home / ".ssh/known_hosts2", *SYSTEM_KNOWN_HOSTS)
    assert endpoint.host_key_name == "xen1"


def test_ssh_config_alias_and_precedence() -> None:
    ssh_dir = write_config(
        "Host xen1\n  HostName 10.1.2.3\n  Port 2222\n  User admin\n  IdentityFile ~/.ssh/xen_key\n"
        "  UserKnownHostsFile ~/.ssh/xen_known ~/.ssh/more_known\n  HostKeyAlias xen1-key\n"
        "Host *\n  User nobody\n"
    )
    endpoint = resolve_endpoint(SshTarget("xen1"))
    assert (endpoint.hostname, endpoint.port, endpoint.user) == ("10.1.2.3", 2222, "admin")
    assert endpoint.identity_files == (ssh_dir / "xen_key",) and endpoint.explicit_identity
    assert endpoint.known_hosts_files[:2] == (ssh_dir / "xen_known", ssh_dir / "more_known")
    assert endpoint.host_key_name == "[xen1-key]:2222"
    explicit = resolve_endpoint(SshTarget("xen1", port=22, user="root", key_file="/k"))
    assert (explicit.port, explicit.user, explicit.identity_files) == (22, "root", (Path("/k"),))
    assert resolve_endpoint(SshTarget("other")).user == "nobody"


def test_jump_hosts_and_bad_ports_are_refused() -> None:
    write_config("Host viajump\n  ProxyJump bastion\nHost badport\n  Port http\n")
    with pytest.raises(InvalidArgument, match="proxyjump"):
        resolve_endpoint(SshTarget("viajump"))
    with pytest.raises(InvalidArgument, match="not a TCP port"):
        resolve_endpoint(SshTarget("badport"))


HOSTILE = ['x"; touch /tmp/pwned; echo "', "$(id)", "`id`", "a\nb", "it's", "naïve ✓", "-rf", "", "a\\b", "*"]


@pytest.mark.parametrize("arg", HOSTILE)
def test_quoted_argv_reaches_a_posix_shell_as_one_literal_argument(arg: str, tmp_path: Path) -> None:
    line = quote_argv(["printf", "%s\\0", arg, "next"], cwd=str(tmp_path))
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    assert out == arg.encode() + b"\0next\0"
    assert line == f"cd -- {shlex.quote(str(tmp_path))} && " + shlex.join(["printf", "%s\\0", arg, "next"])


def test_argv_must_be_strings_without_nul() -> None:
    with pytest.raises(ValueError):
        quote_argv([])
    with pytest.raises(TypeError):
        quote_argv(["echo", 1])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument):
        quote_argv(["echo", "a\0b"])


def test_prefer_reorders_only_what_is_available() -> None:
    assert prefer(("a", "b", "c"), ("c", "x", "b")) == ("c", "b", "a")


def test_a_session_that_breaks_before_the_command_starts_is_a_lost_connection() -> None:
    """paramiko's exec_command re-raises the transport's error (a reset socket) when the session dies
    between opening the channel and starting the command: callers must see ConnectionLost to reconnect."""
    from vdcmanage.remote.errors import ConnectionLost
    from vdcmanage.remote.ssh import Connection

    class ResetChannel:
        def exec_command(self, command: str) -> None:
            raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(ConnectionLost, match="broke while starting: true"):
        Connection(SshTarget("xen1")).start_command(ResetChannel(), "true")
