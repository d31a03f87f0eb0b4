"""``vdc-manage image prepare``: parse, call vdcmanage.prepare, print. Registered in cli/image.py."""

from __future__ import annotations

import ipaddress

import typer

from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import print_json, print_report
from vdcmanage.cli.params import FormatOption, check_format
from vdcmanage.errors import ExitCode, Interrupted, InvalidArgument
from vdcmanage.prepare.sshd import PERMIT_ROOT_LOGIN_VALUES, YES_NO

STEPS_HELP = (
    "xen-pv: grub, fstab, console, initrd, root-password, sshd; "
    "cloud: nameserver, mac, network, ssh-host-keys, machine-id, acpiphp, logs, metadata"
)


def check_nameservers(values: list[str]) -> list[str]:
    for value in values:
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise InvalidArgument(f"--nameserver wants an IP address, not {value!r}") from exc
    return values


def check_choice(value: str | None, choices: tuple[str, ...], flag: str) -> str | None:
    if value is not None and value not in choices:
        raise InvalidArgument(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    return value


StepOption = typer.Option(None, "--step", metavar="STEP", help=f"Run only this step (repeatable). {STEPS_HELP}.")
SkipOption = typer.Option(None, "--skip", metavar="STEP", help="Leave this step out (repeatable).")
NameserverOption = typer.Option(
    None, "--nameserver", metavar="IP", help="Add this nameserver to etc/resolv.conf (repeatable; none by default)."
)


app = group_app("prepare", "Make a raw image boot on XenServer and start clean in the cloud.")


@app.command("prepare")
def prepare(
    ctx: typer.Context,
    target: str = typer.Argument(
        ...,
        metavar="TARGET",
        help="A mounted root directory, a raw image file, or an image id/name with a local raw source.",
    ),
    purpose: str = typer.Option(..., "--for", metavar="xen-pv|cloud|all", help="Which procedure's steps to run."),
    step: list[str] = StepOption,
    skip: list[str] = SkipOption,
    kernel: str = typer.Option(
        None, "--kernel", metavar="VERSION", help="The Xen kernel to boot, when several qualify."
    ),
    root_device: str = typer.Option(
        None,
        "--root-device",
        metavar="DEV",
        help="root= for grub.conf. Default: /dev/xvda (bare filesystem or directory), /dev/xvdaN (partition N).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print a unified diff of every change and the files it would remove."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Change nothing; print each step's status (done / needed / not applicable). Exit 0 only when ready.",
    ),
    nameserver: list[str] = NameserverOption,
    root_password_file: str = typer.Option(
        None,
        "--root-password-file",
        metavar="PATH",
        help="Set root's password to the first line of this file.",
    ),
    root_password_stdin: bool = typer.Option(
        False,
        "--root-password-stdin",
        help="Set root's password to the first line read from stdin.",
    ),
    rebuild_initrd: bool = typer.Option(
        False,
        "--rebuild-initrd",
        help="Rebuild the initrd with the guest's own mkinitrd in a chroot (runs guest code as root: "
        "trusted images only).",
    ),
    sshd_permit_root_login: str = typer.Option(
        None,
        "--sshd-permit-root-login",
        metavar="VALUE",
        help=f"Set PermitRootLogin ({'|'.join(PERMIT_ROOT_LOGIN_VALUES)}; OpenSSH < 7.0 guests know without-password, "
        "not prohibit-password).",
    ),
    sshd_password_authentication: str = typer.Option(
        None,
        "--sshd-password-authentication",
        metavar="yes|no",
        help="Set PasswordAuthentication.",
    ),
    zero_free: bool = typer.Option(
        False,
        "--zero-free",
        help="After the steps, discard the free blocks of the image's filesystem (fstrim, else zerofree): "
        "removed host keys and logs cannot be read back, and the image compresses smaller.",
    ),
    fmt: str = FormatOption,
) -> None:
    """Prepare a guest image for Xen PV boot and/or the cloud; --check and --dry-run change nothing.

    Each step is checked first and changes nothing when already done, so a second run changes
    nothing. A raw image is loop-mounted (root needed) and always unmounted and detached, also
    on errors and Ctrl-C. A registered image gets the steps done and its new checksums recorded.
    Exit codes: 0 ready, 1 not ready (--check found steps needed, or a step needs a manual
    action, printed as ACTION NEEDED), 100 refused, 101 failure, 130 interrupted.
    """
    from vdcmanage.prepare import password
    from vdcmanage.prepare.registry import select_steps
    from vdcmanage.prepare.report import apply_report, check_report, dry_run_report, result_data
    from vdcmanage.prepare.run import Mode, run_prepare
    from vdcmanage.prepare.steps import Options
    from vdcmanage.prepare.target import needs_catalog, resolve_target

    check_format(fmt)
    if dry_run and check:
        raise InvalidArgument("--dry-run and --check do not go together: --check reports, --dry-run shows the diff")
    if check and zero_free:
        raise InvalidArgument("--zero-free changes the image: use it without --check")
    mode = Mode.CHECK if check else Mode.DRY_RUN if dry_run else Mode.APPLY
    options = Options(
        kernel=kernel,
        root_device=root_device,
        nameservers=check_nameservers(nameserver or []),
        root_password=password.load_password(root_password_file, root_password_stdin),
        rebuild_initrd=rebuild_initrd,
        sshd_permit_root_login=check_choice(
            sshd_permit_root_login, PERMIT_ROOT_LOGIN_VALUES, "--sshd-permit-root-login"
        ),
        sshd_password_authentication=check_choice(
            sshd_password_authentication, YES_NO, "--sshd-password-authentication"
        ),
        zero_free=zero_free,
    )
    steps = select_steps(purpose, step or [], skip or [], options)
    applying = mode == Mode.APPLY
    if needs_catalog(target, applying=applying):
        catalog(ctx)
    try:
        result = run_prepare(resolve_target(target, applying=applying), steps, options, mode)
    except KeyboardInterrupt as exc:  # typer would turn it into a silent exit 130
        raise Interrupted("Interrupted (Ctrl-C)") from exc
    if fmt == "json":
        print_json(result_data(result))
    else:
        render = {Mode.CHECK: check_report, Mode.DRY_RUN: dry_run_report, Mode.APPLY: apply_report}[mode]
        print_report(render(result))
    if mode != Mode.DRY_RUN and not result.ready:
        raise typer.Exit(ExitCode.SHELL_STOPPED)
