"""``vdc-manage image boot-check``: parse, call vdcmanage.bootcheck, print. Registered in cli/image.py."""

from __future__ import annotations

from pathlib import Path

import typer

from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import print_json, print_report
from vdcmanage.cli.params import FormatOption, check_format
from vdcmanage.errors import ExitCode, Interrupted, InvalidArgument

ACCELS = ("auto", "kvm", "tcg")

app = group_app("boot-check", "Boot a raw image under qemu and prove the instance is reachable.")


@app.command("boot-check")
def boot_check(
    ctx: typer.Context,
    target: str = typer.Argument(
        ..., metavar="TARGET", help="A raw image file, or an image id/name with a local raw source."
    ),
    timeout: float = typer.Option(
        300.0, "--timeout", metavar="S", help="Give up after this many seconds of boot (TCG is slow: allow minutes)."
    ),
    metadata_down: bool = typer.Option(
        False,
        "--metadata-down",
        help="Boot with no metadata server at all: proves the boot does not wait for it (no login is possible).",
    ),
    accel: str = typer.Option(
        "auto", "--accel", metavar="auto|kvm|tcg", help="qemu accelerator: auto uses KVM when /dev/kvm is usable."
    ),
    log: str = typer.Option(
        None,
        "--log",
        metavar="PATH",
        help="Where to keep the serial console log (default: $XDG_CACHE_HOME/vdc-manage/boot-check/).",
    ),
    fmt: str = FormatOption,
) -> None:
    """Boot an image as XenServer's pygrub would, on a throw-away overlay, and check it is reachable.

    The kernel, initrd and command line of the default entry of the image's grub.cfg (or grub.conf)
    are booted under qemu (KVM when usable, else TCG) on a copy-on-write overlay: the image is never
    changed. A stand-in EC2-style metadata server at 169.254.169.254 hands out a fresh host name and
    SSH key. Reports with times: kernel started, root mounted, network up, metadata fetched, SSH port
    answering, login with the handed-out key, hostname applied. Keeps the serial console log.
    Exit codes: 0 reachable, 1 not reachable, 100 refused (no qemu, not a raw image, nothing to boot),
    101 failure, 130 interrupted.
    """
    from vdcmanage.bootcheck.report import json_report, text_report
    from vdcmanage.bootcheck.run import Options, boot_check
    from vdcmanage.prepare.target import needs_catalog, resolve_target

    check_format(fmt)
    if accel not in ACCELS:
        raise InvalidArgument(f"--accel must be one of {', '.join(ACCELS)}, not {accel!r}")
    if timeout <= 0:
        raise InvalidArgument("--timeout must be a positive number of seconds")
    if needs_catalog(target, applying=False):
        catalog(ctx)
    options = Options(timeout=timeout, metadata_down=metadata_down, accel=accel, log=Path(log) if log else None)
    try:
        result = boot_check(resolve_target(target, applying=False), options)
    except KeyboardInterrupt as exc:
        raise Interrupted("Interrupted (Ctrl-C); qemu was stopped and the overlay removed") from exc
    if fmt == "json":
        print_json(json_report(result))
    else:
        print_report(text_report(result))
    if not result.reachable:
        raise typer.Exit(ExitCode.SHELL_STOPPED)
