"""The console script's entry point: ``image show`` without building the Typer app, everything else through it.

Scripts call ``vdc-manage image show <id>`` in loops, and its budget is 8x ``python -c pass``.
Importing typer + click costs ~55 ms here and peewee ~50 ms; together they are already ~8x (README,
"Start-up"). So the exact, common forms of ``image show`` are recognised here and run with the
same core function and the same printer the Typer command uses (cli/image_views.py), importing
neither typer nor click. Anything else — ``--help``, an unknown option, another command, a form
this matcher does not know — goes through the full command line, which also produces every usage
error. tests/cli/test_entry.py checks that both paths print the same for the same arguments.
"""

from __future__ import annotations

import sys

FORMATS = ("table", "json")


def parse_image_show(args: list[str]) -> tuple[str | None, str | None, str] | None:
    """``[--db URL] image show [IMAGE_ID] [-f|--format table|json]`` -> (db, image_id, fmt); None for anything else."""
    db = None
    while args and args[0].startswith("--db"):
        if args[0] == "--db" and len(args) > 1:
            db, args = args[1], args[2:]
        elif args[0].startswith("--db="):
            db, args = args[0][len("--db=") :], args[1:]
        else:
            return None
    if args[:2] != ["image", "show"]:
        return None
    image_id, fmt, rest = None, "table", args[2:]
    while rest:
        word = rest.pop(0)
        if word in ("-f", "--format") and rest and rest[0] in FORMATS:
            fmt = rest.pop(0)
        elif word.startswith("--format=") and word[len("--format=") :] in FORMATS:
            fmt = word[len("--format=") :]
        elif not word.startswith("-") and image_id is None and word:
            image_id = word
        else:
            return None
    return db, image_id, fmt


def run_image_show(db: str | None, image_id: str | None, fmt: str) -> int:
    from vdcmanage.cli.failures import finish_output, report, report_unexpected
    from vdcmanage.errors import ExitCode, VdcError

    try:
        from vdcmanage.catalog.db import open_catalog
        from vdcmanage.cli.image_views import show_images
        from vdcmanage.config import load_settings

        open_catalog(load_settings(db).db_url)
        show_images(image_id, fmt)
    except VdcError as exc:
        report(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        report("Interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return finish_output(ExitCode.OK)
    except Exception as exc:  # as the full command line does: one clear line, never a traceback
        return report_unexpected(exc)
    return finish_output(ExitCode.OK)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    fast = parse_image_show(list(args))
    if fast is not None:
        return run_image_show(*fast)
    from vdcmanage.cli.main import main as full_main

    return full_main(args)
