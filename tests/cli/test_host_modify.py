"""``vdc-manage host modify`` as a real process, checked against the real sshd test host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_host_cli import add, catalog_bytes
from tests.xenhost.fixtures import XenHost


def shown(run_cli: Any, key: str) -> dict[str, Any]:
    result = run_cli("host", "show", key, "-f", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_modify_changes_fields_in_place_and_says_what_changed(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    host_id = add(run_cli, xen_host, "xen1", "--port", "1")  # a wrong port: check fails
    assert run_cli("host", "check", "xen1").code == 100
    result = run_cli("host", "modify", "xen1", "--port", str(xen_host.port), "--clear-sr-uuid",
                     "--display-name", "xen-a")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"{host_id}: name: xen1 -> xen-a",
        f"{host_id}: port: 1 -> {xen_host.port}",
        f"{host_id}: sr_uuid: {xen_host.sr_uuid()} -> (none)",
    ]
    data = shown(run_cli, host_id)
    assert (data["id"], data["name"], data["port"], data["sr_uuid"]) == (host_id, "xen-a", xen_host.port, None)
    checked = run_cli("host", "check", "xen-a", "-f", "json")  # the record now reaches the host
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)["chosen_sr_from"] == "pool default SR"

    nfs = xen_host.sr_uuid("nfs")
    result = run_cli("host", "modify", host_id, "--sr-uuid", nfs, "--port", str(xen_host.port))
    assert result.out == f"{host_id}: sr_uuid: (none) -> {nfs}\n"  # the port was already that
    again = run_cli("host", "modify", host_id, "--sr-uuid", nfs)
    assert (again.code, again.out) == (0, f"{host_id}: nothing changed\n")


def test_ssh_config_host_takes_port_user_and_key_from_the_entry(run_cli, xen_host: XenHost) -> None:  # type: ignore[no-untyped-def]
    xen_host.trust()
    host_id = add(run_cli, xen_host, "xen1")
    (Path.home() / ".ssh" / "config").write_text(
        f"Host xenalias\n  HostName {xen_host.address}\n  Port {xen_host.port}\n  User root\n"
        f"  IdentityFile {xen_host.key_file}\n"
    )
    result = run_cli("host", "modify", "xen1", "--ssh-config-host", "xenalias")
    assert result.code == 0, result.err
    data = shown(run_cli, host_id)
    assert (data["address"], data["port"], data["user"], data["key_file"]) == ("xenalias", None, None, None)
    checked = run_cli("host", "check", "xen1")
    assert checked.code == 0, checked.out + checked.err
    assert f"root@127.0.0.1 port {xen_host.port}" in checked.out


def test_bad_modifications_are_refused_and_change_nothing(run_cli, xen_host: XenHost, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    add(run_cli, xen_host, "xen1")
    xen2 = add(run_cli, xen_host, "xen2")
    before = catalog_bytes(sqlite_url)
    refusals = [
        (["nohost", "--port", "22"], "Unknown host"),
        (["xen1"], "Nothing to change"),
        (["xen1", "--sr-uuid", "nope"], "Invalid SR uuid 'nope'"),
        (["xen1", "--sr-uuid", xen_host.sr_uuid(), "--clear-sr-uuid"], "exclude each other"),
        (["xen1", "--address", "a", "--ssh-config-host", "b"], "exclude each other"),
        (["xen1", "--ssh-config-host", "unknownalias"], "~/.ssh/config has no Host entry for 'unknownalias'"),
        (["xen1", "--port", "70000"], "Invalid port 70000"),
        (["xen1", "--user", "root;rm"], "Invalid user name"),
        (["xen1", "--address", "root@xen"], "Invalid address"),
        (["xen1", "--key-file", "/nonexistent/key"], "Key file not found"),
        (["xen1", "--display-name", "xen2"], "A host named 'xen2' already exists"),
        (["xen1", "--display-name", ""], "Name"),
    ]
    for args, message in refusals:
        result = run_cli("host", "modify", *args)
        assert result.code == 100, (args, result)
        assert result.err.startswith("ERROR: ") and message in result.err, (args, result.err)
        assert result.out == ""
    assert catalog_bytes(sqlite_url) == before
    assert run_cli("host", "del", "xen2").code == 0
    deleted = run_cli("host", "modify", xen2, "--port", "22")
    assert deleted.code == 100 and "is deleted" in deleted.err
