"""`vdc-manage account ...` as real processes."""

from __future__ import annotations

import json

from tests.conftest import CliResult


def ok(result: CliResult) -> str:
    assert result.code == 0, result.err
    assert result.err == ""
    return result.out


def test_add_show_list_del(run_cli) -> None:  # type: ignore[no-untyped-def]
    account_id = ok(run_cli("account", "add", "--name", "ops", "--description", "Operations")).strip()
    assert account_id.startswith("a-") and len(account_id) == 10
    table = ok(run_cli("account", "show"))
    assert table.splitlines()[0].split() == ["UUID", "Name", "Description", "Created"]
    assert "a-shpoolxx" in table and account_id in table
    record = json.loads(ok(run_cli("account", "show", "ops", "-f", "json")))
    assert record["id"] == account_id and record["description"] == "Operations"
    ok(run_cli("account", "del", account_id))
    assert account_id not in ok(run_cli("account", "list"))
    assert account_id in ok(run_cli("account", "list", "--deleted"))


def test_chosen_uuid_and_duplicates(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert ok(run_cli("account", "add", "--uuid", "a-team1")).strip() == "a-team1"
    dup = run_cli("account", "add", "--uuid", "a-team1")
    assert (dup.code, dup.err) == (100, "ERROR: Account a-team1 already exists\n")


def test_refusals(run_cli) -> None:  # type: ignore[no-untyped-def]
    shared = run_cli("account", "del", "a-shpoolxx")
    assert shared.code == 100 and "shared system account" in shared.err
    unknown = run_cli("account", "del", "a-nobody")
    assert (unknown.code, unknown.err) == (100, "ERROR: Unknown account id: a-nobody\n")
    empty_name = run_cli("account", "add", "--name", "")
    assert (empty_name.code, empty_name.err) == (100, "ERROR: Name must not be empty\n")
