"""``vdc-manage host ...``: XenServer/XCP-ng host nodes reached over SSH."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vdcmanage.catalog import hosts
from vdcmanage.catalog.models import Host
from vdcmanage.cli.main import catalog, group_app, state
from vdcmanage.cli.output import human_size, print_json, print_lines, print_record, print_table, when
from vdcmanage.cli.params import FormatOption, check_format
from vdcmanage.textsafe import visible

app = group_app("host", "Operations for XenServer host nodes.")

TimeoutOption = typer.Option(
    None,
    "--connect-timeout",
    "--timeout",
    metavar="SECONDS",
    help="Give up connecting after this long. Default: connect_timeout in [ssh] of the config file, else 10.",
)


def connect_options(ctx: typer.Context, timeout: float | None, accept_new_host_key: bool) -> Any:
    """SSH options from the flags and the config file; a passphrase prompt only on a terminal."""
    from vdcmanage.config import load_settings
    from vdcmanage.remote.options import connect_options as options_from_settings

    if timeout is not None and timeout <= 0:
        raise typer.BadParameter("must be a positive number of seconds", param_hint="'--connect-timeout'")
    return options_from_settings(
        load_settings(state(ctx).db_flag),
        timeout=timeout,
        accept_new_host_key=accept_new_host_key,
        passphrase_prompt=terminal_prompt if sys.stdin.isatty() else None,
    )


def terminal_prompt(path: str) -> str | None:
    import getpass

    try:
        return getpass.getpass(f"Passphrase for key {visible(path)}: ") or None
    except (EOFError, KeyboardInterrupt):
        return None


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="A unique name for the host."),
    address: str = typer.Option(..., "--address", "-a", help="Host name, IP address, or a ~/.ssh/config Host alias."),
    port: int = typer.Option(None, "--port", "-p", help="SSH port. Default: ~/.ssh/config, else 22."),
    user: str = typer.Option(None, "--user", "-l", help="Login user. Default: ~/.ssh/config, else root."),
    key_file: str = typer.Option(
        None,
        "--key-file",
        "-i",
        help="Private key file. Default: ~/.ssh/config, the ssh-agent, ~/.ssh/id_*.",
    ),
    sr_uuid: str = typer.Option(
        None, "--sr-uuid", help="SR to import into. Default: the pool's default SR."
    ),
    uuid: str = typer.Option(None, "--uuid", "-u", help="Choose the new id (hn-[a-z0-9]+); default: generated."),
    accept_new_host_key: bool = typer.Option(
        False,
        "--accept-new-host-key",
        help="Connect now and record the host's key in the catalog if known_hosts does not know it "
        "(like StrictHostKeyChecking=accept-new). A changed key is always refused.",
    ),
    timeout: float = TimeoutOption,
) -> None:
    """Add a host node and print its id. Nothing is contacted unless --accept-new-host-key is given."""
    catalog(ctx)
    options = connect_options(ctx, timeout, accept_new_host_key) if accept_new_host_key else None
    host = hosts.add_host(
        name,
        address,
        port=port,
        user=user,
        key_file=key_file,
        sr_uuid=sr_uuid,
        uuid=uuid,
        accept_new_host_key=accept_new_host_key,
        connect=options,
    )
    typer.echo(host.id)


@app.command("show")
def show(
    ctx: typer.Context,
    host_id: str = typer.Argument(None, metavar="[HOST_ID]", help="Host id or name; omit for the table."),
    fmt: str = FormatOption,
) -> None:
    """Show the hosts as a table, or every field of one."""
    check_format(fmt)
    catalog(ctx)
    if host_id is None:
        print_hosts(hosts.list_hosts(), fmt)
        return
    data = hosts.host_dict(hosts.get_host(host_id))
    if fmt == "json":
        print_json(data)
        return
    print_record(
        [
            ("UUID", data["id"]),
            ("Name", data["name"]),
            ("Address", data["address"]),
            ("Port", data["port"]),
            ("User", data["user"]),
            ("Key file", data["key_file"]),
            ("SR uuid", data["sr_uuid"]),
            ("Host key", data["host_key_fingerprint"]),
            ("Created", data["created_at"]),
            ("Updated", data["updated_at"]),
            ("Deleted", data["deleted_at"]),
        ]
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted hosts."),
    fmt: str = FormatOption,
) -> None:
    """List host nodes."""
    check_format(fmt)
    catalog(ctx)
    print_hosts(hosts.list_hosts(include_deleted=deleted), fmt)


def print_hosts(rows: list[Host], fmt: str) -> None:
    if fmt == "json":
        print_json([hosts.host_dict(h) for h in rows])
        return
    print_table(
        ["UUID", "Name", "Address", "Port", "User", "SR uuid", "Created"],
        [(h.id, h.name, h.address, h.port, h.user, h.sr_uuid, when(h.created_at)) for h in rows],
    )


@app.command("del")
def delete(ctx: typer.Context, host_id: str = typer.Argument(..., metavar="HOST_ID", help="Host id or name.")) -> None:
    """Delete a host node (its record stays, marked deleted)."""
    catalog(ctx)
    hosts.delete_host(host_id)


@app.command("modify")
def modify(
    ctx: typer.Context,
    host_id: str = typer.Argument(..., metavar="HOST_ID", help="Host id or name."),
    sr_uuid: str = typer.Option(None, "--sr-uuid", help="SR to import into."),
    clear_sr_uuid: bool = typer.Option(False, "--clear-sr-uuid", help="Forget the SR: use the pool's default SR."),
    address: str = typer.Option(None, "--address", "-a", help="Host name, IP address, or a ~/.ssh/config Host alias."),
    ssh_config_host: str = typer.Option(
        None, "--ssh-config-host", metavar="ALIAS",
        help="Reach the host through this ~/.ssh/config Host entry: sets the address and clears port, user and "
        "key file so that the entry gives them (unless given here too).",
    ),
    port: int = typer.Option(None, "--port", "-p", help="SSH port."),
    user: str = typer.Option(None, "--user", "-l", help="Login user."),
    key_file: str = typer.Option(None, "--key-file", "-i", help="Private key file."),
    display_name: str = typer.Option(None, "--display-name", "--name", help="The host's unique name."),
) -> None:
    """Change a host's record in place (its id stays, so its jobs can be retried); print what changed."""
    catalog(ctx)
    changes = hosts.HostChanges(
        name=display_name, address=address, ssh_config_host=ssh_config_host, port=port, user=user,
        key_file=key_file, sr_uuid=sr_uuid, clear_sr_uuid=clear_sr_uuid,
    )
    host, changed = hosts.modify_host(host_id, changes)
    # the values are operator text (names, addresses): through the escaping seam
    print_lines([f"{host.id}: {name}: {shown(old)} -> {shown(new)}" for name, old, new in changed]
                or [f"{host.id}: nothing changed"])


def shown(value: object) -> str:
    return "(none)" if value is None else str(value)


@app.command("check")
def check(
    ctx: typer.Context,
    host_id: str = typer.Argument(..., metavar="HOST_ID", help="Host id or name."),
    timeout: float = TimeoutOption,
    accept_new_host_key: bool = typer.Option(
        False,
        "--accept-new-host-key",
        help="Record the host's key in the catalog if it is seen for the first time.",
    ),
    fmt: str = FormatOption,
) -> None:
    """Connect to a host and report: reachable, host key, login, xe/xapi, SRs and the chosen SR.

    Exits 100 with the reason when something that imports need is broken.
    """
    check_format(fmt)
    catalog(ctx)
    report = hosts.check_host(host_id, connect_options(ctx, timeout, accept_new_host_key))
    if fmt == "json":
        print_json(report.as_dict())
    else:
        print_check(report)
    if report.error is not None:
        raise report.error


def yes_no(value: bool, detail: str | None = None) -> str:
    word = "yes" if value else "no"
    return f"{word} ({detail})" if detail else word


def print_check(report: Any) -> None:
    failed = report.failed_stage
    rows: list[tuple[str, str]] = [
        ("host", f"{report.target}" + (f" -> {report.endpoint}" if report.endpoint else "")),
        ("reachable", "FAILED" if failed == "connect" else yes_no(report.reachable, seconds(report.connect_seconds))),
    ]
    if report.host_key:
        status = "REFUSED" if failed == "host key" else f"ok, {report.host_key_source}"
        rows.append(("host key", f"{report.host_key} ({status})"))
    if report.reachable and failed != "host key":
        rows.append(("login", "FAILED" if failed == "login" else yes_no(report.authenticated)))
    if report.authenticated:
        xe_detail = f"{report.product}, xapi {report.xapi_version or '?'}" if report.xe_ok else None
        rows.append(("xe/xapi", "FAILED" if failed == "xe" else yes_no(report.xe_ok, xe_detail)))
    if report.host_names:
        rows.append(("host name-label", ", ".join(report.host_names)))
    if report.capabilities:
        caps = report.capabilities
        rows.append(("vdi-import formats", ", ".join(caps["import_formats"])))
        rows.append(("import path", caps["import_path_reason"]))
    if report.chosen_sr or failed == "SR":
        rows.append(("chosen SR", chosen_sr_text(report)))
    print_table(["CHECK", "RESULT"], rows)
    if report.srs:
        sys.stdout.write("\n")
        print_table(
            ["SR UUID", "NAME-LABEL", "TYPE", "SIZE", "FREE", "FILE-BASED", "MOUNTED AT"],
            [
                (sr.uuid, sr.name_label, sr.type, human_size(sr.physical_size), human_size(sr.free),
                 yes_no(sr.file_based), mount_text(sr))
                for sr in report.srs
            ],
        )


def seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} s"


def chosen_sr_text(report: Any) -> str:
    if report.chosen_sr is None:
        return "none (no --sr-uuid, no pool default SR)"
    sr = report.chosen()
    status = "ready" if report.chosen_sr_ready else "NOT USABLE"
    if sr is None:
        return f"{report.chosen_sr} ({report.chosen_sr_from}): unknown to the host"
    return f"{sr.uuid} ({report.chosen_sr_from}): {sr.type}, {status}"


def mount_text(sr: Any) -> str:
    if sr.mount_path is None:
        return ""
    return sr.mount_path if sr.mounted else f"{sr.mount_path} (missing)"
