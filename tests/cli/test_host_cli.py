"""``vdc-manage host ...`` as real processes, against the real sshd test host."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.xenhost.fixtures import SshKeys, XenHost
from tests.xenhost.netns import BLACKHOLE, run_isolated
from tests.xenhost.sshd import SshServer, public_line
from vdcmanage.remote.known_hosts import PublicKey


def catalog_bytes(url: str) -> bytes:
    path = Path(url.split("://", 1)[1])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def add(run_cli, xen_host: XenHost, name: str = "xen1", *extra: str) -> str:  # type: ignore[no-untyped-def]
    result = run_cli(*xen_host.host_add_args(name), *extra)
    assert result.code == 0 and result.err == "", result
    return str(result.out.strip())


# -- inventory -------------------------------------------------------------------------------------------


def test_add_show_list_del(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    host_id = add(run_cli, xen_host, "xen1", "--uuid", "hn-xen1")
    assert host_id == "hn-xen1"
    shown = run_cli("host", "show", "xen1")
    assert shown.code == 0 and "UUID: hn-xen1" in shown.out and f"Port: {xen_host.port}" in shown.out
    data = json.loads(run_cli("host", "show", "hn-xen1", "-f", "json").out)
    assert (data["address"], data["user"], data["key_file"], data["sr_uuid"]) == (
        "127.0.0.1", "root", str(xen_host.key_file), xen_host.sr_uuid())
    listed = run_cli("host", "list")
    assert listed.code == 0 and "hn-xen1" in listed.out and "xen1" in listed.out
    assert run_cli("host", "del", "xen1").code == 0
    assert "hn-xen1" not in run_cli("host", "list").out
    assert "hn-xen1" in run_cli("host", "list", "--deleted").out
    again = run_cli("host", "del", "hn-xen1")
    assert (again.code, again.err) == (100, "ERROR: Host hn-xen1 is deleted\n")


def test_address_may_be_an_ssh_config_alias(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    (Path.home() / ".ssh" / "config").write_text(
        f"Host xenalias\n  HostName {xen_host.address}\n  Port {xen_host.port}\n  User root\n"
        f"  IdentityFile {xen_host.key_file}\n"
    )
    assert run_cli("host", "add", "aliased", "--address", "xenalias").code == 0
    result = run_cli("host", "check", "aliased")
    assert result.code == 0, result
    assert f"root@127.0.0.1 port {xen_host.port}" in result.out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--address", "root@xen"], 100, "Invalid address 'root@xen'"),
        (["--address", "-oProxyCommand=x"], 100, "Invalid address"),
        (["--address", "x y"], 100, "Invalid address"),
        (["--address", ""], 100, "Address must not be empty"),
        (["--address", "xen", "--port", "70000"], 100, "Invalid port 70000"),
        (["--address", "xen", "--port", "ssh"], 2, "--port"),
        (["--address", "xen", "--user", "root;id"], 100, "Invalid user name"),
        (["--address", "xen", "--key-file", "/nonexistent/key"], 100, "Key file not found: /nonexistent/key"),
        (["--address", "xen", "--sr-uuid", "not-a-uuid"], 100, "Invalid SR uuid"),
        (["--address", "xen", "--uuid", "wmi-abc"], 100, "Invalid host id"),
        ([], 2, "--address"),
    ],
)
def test_bad_input_is_refused_and_nothing_recorded(run_cli, args: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("host", "add", "xen", *args)
    assert result.code == code and message in result.err and result.out == "", result
    assert run_cli("host", "list", "-f", "json").out.strip() == "[]"


def test_public_key_file_and_duplicate_names_are_refused(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    pub = run_cli("host", "add", "x", "--address", "xen", "--key-file", f"{xen_host.key_file}.pub")
    assert pub.code == 100 and "is a public key" in pub.err
    add(run_cli, xen_host, "xen1")
    again = run_cli(*xen_host.host_add_args("xen1"))
    assert again.code == 100 and "A host named 'xen1' already exists" in again.err


def test_underscore_option_spellings(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("host", "add", "u", "--address", "xen", "--key_file", str(xen_host.key_file),
                     "--sr_uuid", xen_host.sr_uuid())
    assert result.code == 0, result


# -- check -----------------------------------------------------------------------------------------------


def test_check_reports_everything_as_a_table_and_json(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    add(run_cli, xen_host)
    table = run_cli("host", "check", "xen1")
    assert table.code == 0 and table.err == "", table
    for expected in ("reachable", "yes", "host key", PublicKey.parse(xen_host.server.host_key_line).fingerprint,
                     "XCP-ng 8.3.0", "xenhost1", "Local storage", "ext", "100.0 GiB",
                     f"/var/run/sr-mount/{xen_host.sr_uuid()}", "ready"):
        assert expected in table.out
    data = json.loads(run_cli("host", "check", "xen1", "-f", "json").out)
    assert data["ok"] and data["reachable"] and data["authenticated"] and data["xe_ok"]
    assert data["host_names"] == ["xenhost1"] and data["chosen_sr"] == xen_host.sr_uuid()
    srs = {sr["type"]: sr for sr in data["srs"]}
    assert srs["ext"]["file_based"] and srs["ext"]["mounted"] and not srs["lvm"]["file_based"]
    assert srs["ext"]["physical_size"] == 100 * 1024**3


def test_check_without_sr_uses_the_pool_default(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    run_cli(*xen_host.host_add_args("xen1", sr_role=None))
    data = json.loads(run_cli("host", "check", "xen1", "-f", "json").out)
    assert (data["chosen_sr"], data["chosen_sr_from"], data["ok"]) == (xen_host.sr_uuid(), "pool default SR", True)


@pytest.mark.xen(personality="xenserver-6.2")
def test_check_on_an_old_host(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    add(run_cli, xen_host)
    data = json.loads(run_cli("host", "check", "xen1", "-f", "json").out)
    assert data["product"] == "XenServer 6.2.0" and data["capabilities"]["import_formats"] == ["raw"]
    assert data["capabilities"]["vdi_create_requires_type"]


def check_fails(run_cli, name: str, *extra: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = run_cli("host", "check", name, *extra)
    assert result.code == 100, result
    assert result.err.startswith("ERROR: ") and result.err.count("\n") == 1
    assert time.monotonic() - started < 15
    return result.out, result.err


def test_unknown_host_key(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    add(run_cli, xen_host)
    out, err = check_fails(run_cli, "xen1")
    fingerprint = PublicKey.parse(xen_host.server.host_key_line).fingerprint
    assert "is not known" in err and fingerprint in err and "REFUSED" in out
    data = json.loads(run_cli("host", "check", "xen1", "-f", "json").out)
    assert (data["failed_stage"], data["error_kind"], data["host_key"]) == ("host key", "HostKeyUnknown", fingerprint)


def test_accept_new_host_key_at_add_records_it(run_cli, xen_host: XenHost, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    add(run_cli, xen_host, "xen1", "--accept-new-host-key")
    shown = json.loads(run_cli("host", "show", "xen1", "-f", "json").out)
    assert shown["host_key"] == xen_host.server.host_key_line
    assert shown["host_key_fingerprint"].endswith(PublicKey.parse(xen_host.server.host_key_line).fingerprint)
    result = run_cli("host", "check", "xen1")
    assert result.code == 0 and "the catalog" in result.out, result


def test_accept_new_host_key_at_check_records_it(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    add(run_cli, xen_host)
    assert run_cli("host", "check", "xen1", "--accept-new-host-key").code == 0
    assert json.loads(run_cli("host", "show", "xen1", "-f", "json").out)["host_key"] == xen_host.server.host_key_line
    assert run_cli("host", "check", "xen1").code == 0


def test_accept_new_is_not_recorded_when_known_hosts_knows_the_key(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    add(run_cli, xen_host, "xen1", "--accept-new-host-key")
    assert json.loads(run_cli("host", "show", "xen1", "-f", "json").out)["host_key"] is None


def test_changed_host_key(run_cli, ssh_server_factory, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    server: SshServer = ssh_server_factory("reinstalled")
    old = PublicKey.parse(server.host_key_line).fingerprint
    result = run_cli("host", "add", "xen2", "--address", server.address, "--port", str(server.port),
                     "--key-file", str(ssh_keys.authorized), "--accept-new-host-key")
    assert result.code == 0, result
    server.new_host_key()
    new = PublicKey.parse(server.host_key_line).fingerprint
    for extra in ((), ("--accept-new-host-key",)):
        _, err = check_fails(run_cli, "xen2", *extra)
        assert "HOST KEY CHANGED" in err and old in err and new in err
    refused = run_cli("host", "add", "xen3", "--address", server.address, "--port", str(server.port),
                      "--accept-new-host-key")
    assert refused.code == 0  # a different host record: its own first sight
    assert json.loads(run_cli("host", "show", "xen2", "-f", "json").out)["host_key"] != server.host_key_line


def test_wrong_key_is_an_auth_error(run_cli, xen_host: XenHost, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    run_cli("host", "add", "xen1", "--address", xen_host.address, "--port", str(xen_host.port),
            "--key-file", str(ssh_keys.stranger))
    out, err = check_fails(run_cli, "xen1")
    assert "Authentication refused by root@127.0.0.1" in err and "login" in out


def test_encrypted_key_without_terminal_or_agent(run_cli, xen_host: XenHost, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    run_cli("host", "add", "xen1", "--address", xen_host.address, "--port", str(xen_host.port),
            "--key-file", str(ssh_keys.encrypted))
    _, err = check_fails(run_cli, "xen1")
    assert "is encrypted: load it into ssh-agent" in err


def test_port_closed(run_cli, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run_cli("host", "add", "gone", "--address", "127.0.0.1", "--port", str(port),
            "--key-file", str(ssh_keys.authorized))
    out, err = check_fails(run_cli, "gone")
    assert f"Connection refused by 127.0.0.1 port {port}" in err and "FAILED" in out


def test_blackholed_address_times_out_within_the_bound(run_cli, sqlite_url: str, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    import os

    assert run_cli("host", "add", "dark", "--address", BLACKHOLE, "--key-file", str(ssh_keys.authorized)).code == 0
    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url}
    started = time.monotonic()
    proc = run_isolated([sys.executable, "-m", "vdcmanage", "host", "check", "dark", "--connect-timeout", "2"], env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 100, proc
    assert proc.stderr == f"ERROR: Timed out after 2 s connecting to {BLACKHOLE} port 22 (host down, address " \
                          "wrong, or a firewall dropping the packets)\n"
    assert elapsed < 2 + 3  # the timeout plus the interpreter's start-up


def test_connect_timeout_from_the_config_file(run_cli, sqlite_url: str, ssh_keys: SshKeys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    config = tmp_path / "config.toml"
    config.write_text("[ssh]\nconnect_timeout = 1\n")
    run_cli("host", "add", "dark", "--address", BLACKHOLE, "--key-file", str(ssh_keys.authorized))
    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url, "VDC_MANAGE_CONFIG": str(config)}
    proc = run_isolated([sys.executable, "-m", "vdcmanage", "host", "check", "dark"], env=env)
    assert proc.returncode == 100 and "Timed out after 1 s" in proc.stderr, proc


def test_unresolvable_name(run_cli, sqlite_url: str, ssh_keys: SshKeys) -> None:  # type: ignore[no-untyped-def]
    import os

    run_cli("host", "add", "nowhere", "--address", "xen.does-not-exist.invalid", "--key-file", str(ssh_keys.authorized))
    env = {**os.environ, "VDC_MANAGE_DB": sqlite_url}
    proc = run_isolated([sys.executable, "-m", "vdcmanage", "host", "check", "nowhere"], env=env)
    assert proc.returncode == 100, proc
    assert proc.stderr.startswith("ERROR: Cannot resolve host name 'xen.does-not-exist.invalid'")


def test_xe_missing_and_xapi_down(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    add(run_cli, xen_host)
    xen_host.configure(xe_installed=False)
    out, err = check_fails(run_cli, "xen1")
    assert "xe is not installed" in err and "xe/xapi" in out and "FAILED" in out
    xen_host.configure(xe_installed=True, xapi_down=True)
    _, err = check_fails(run_cli, "xen1")
    assert "xapi does not answer" in err and "Connection refused (calling connect )" in err


def test_unknown_and_unsuitable_srs(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    run_cli(*xen_host.host_add_args("ghost", sr_role=None), "--sr-uuid", "12345678-1234-1234-1234-123456789abc")
    _, err = check_fails(run_cli, "ghost")
    assert "SR 12345678-1234-1234-1234-123456789abc (host record) does not exist" in err
    run_cli(*xen_host.host_add_args("blocks", sr_role="lvm"))
    out, err = check_fails(run_cli, "blocks")
    assert "is of type lvm: imports need a file-based SR (ext or nfs)" in err and "NOT USABLE" in out
    run_cli(*xen_host.host_add_args("unmounted", sr_role="nfs"))
    (xen_host.sr_path("nfs")).rmdir()
    _, err = check_fails(run_cli, "unmounted")
    assert "is not mounted at /var/run/sr-mount/" in err
    xen_host.update_state(lambda state: state["pool"].update({"default-SR": None}))
    run_cli(*xen_host.host_add_args("nosr", sr_role=None))
    _, err = check_fails(run_cli, "nosr")
    assert "No SR chosen" in err


def test_unknown_deleted_and_bad_timeout(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("host", "check", "hn-nothere")
    assert (result.code, result.err) == (100, "ERROR: Unknown host id: hn-nothere\n")
    host_id = add(run_cli, xen_host)
    for bad in ("0", "-1", "soon"):
        result = run_cli("host", "check", host_id, "--connect-timeout", bad)
        assert result.code == 2 and "--connect-timeout" in result.err, result
    run_cli("host", "del", host_id)
    result = run_cli("host", "check", host_id)
    assert (result.code, result.err) == (100, f"ERROR: Host {host_id} is deleted\n")


def test_no_secret_reaches_the_catalog_or_the_command_line(run_cli, xen_host: XenHost, ssh_keys: SshKeys,  # type: ignore[no-untyped-def]
                                                          sqlite_url: str) -> None:
    xen_host.trust()
    run_cli("host", "add", "xen1", "--address", xen_host.address, "--port", str(xen_host.port),
            "--key-file", str(ssh_keys.authorized), "--sr-uuid", xen_host.sr_uuid(), "--accept-new-host-key")
    assert run_cli("host", "check", "xen1").code == 0
    stored = catalog_bytes(sqlite_url)
    private = ssh_keys.authorized.read_text()
    body = "".join(line for line in private.splitlines() if "PRIVATE KEY" not in line)
    assert body[:40].encode() not in stored and ssh_keys.passphrase.encode() not in stored
    with sqlite3.connect(sqlite_url.split("://", 1)[1]) as db:
        (row,) = db.execute("SELECT key_file, host_key FROM host").fetchall()
    assert row == (str(ssh_keys.authorized), None)  # a path, and no key at all since known_hosts knows it
    for call in xen_host.calls():  # what ran on the host: xe arguments only
        assert body[:40] not in " ".join(call["argv"])
    assert public_line(ssh_keys.authorized) not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                                  text=True).stdout


def test_every_host_command_has_help(run_cli) -> None:  # type: ignore[no-untyped-def]
    for command in ("add", "show", "list", "del", "check"):
        result = run_cli("host", command, "--help")
        assert result.code == 0 and "Usage:" in result.out and len(result.out.splitlines()) > 3
