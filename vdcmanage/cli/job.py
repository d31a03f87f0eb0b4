"""``vdc-manage job ...``: watch, cancel and retry long-running jobs; run the worker."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vdcmanage.catalog.models import Job
from vdcmanage.cli.failures import notice, report
from vdcmanage.cli.main import catalog, group_app
from vdcmanage.cli.output import human_size, print_json, print_lines, print_record, print_table
from vdcmanage.cli.params import FormatOption, check_format
from vdcmanage.errors import ExitCode
from vdcmanage.jobs import queue

app = group_app("job", "Operations for long-running jobs (imports) and the worker.")


@app.command("list")
def list_(
    ctx: typer.Context,
    state: str = typer.Option(None, "--state", "-s", help=f"Only jobs in this state: {', '.join(queue.STATES)}."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="At most this many (newest first)."),
    fmt: str = FormatOption,
) -> None:
    """List jobs, newest first."""
    check_format(fmt)
    if state is not None and state not in queue.STATES:
        raise typer.BadParameter(f"{state!r} is not one of: {', '.join(queue.STATES)}", param_hint="'--state'")
    catalog(ctx)
    jobs = queue.list_jobs(queue.JobFilter(state=state, limit=limit))
    steps = queue.steps_by_job([j.id for j in jobs])
    data = [queue.job_dict(j, details=False, steps=steps[j.id]) for j in jobs]
    if fmt == "json":
        print_json(data)
        return
    print_table(
        ["ID", "Kind", "State", "Step", "Progress", "Age", "Error"],
        ((j.id, j.kind, state_label(j), step_label(d), progress_label(j, d), age_label(d["age_seconds"]), j.error)
         for j, d in zip(jobs, data, strict=True)),
    )


def state_label(job: Job) -> str:
    return f"{job.state} (stalled)" if queue.is_stalled(job) else job.state


def step_label(data: dict[str, Any]) -> str:
    """``6/10 compress``: where the job is (or stopped)."""
    if not data["step_number"]:
        return ""
    return f"{data['step_number']}/{data['steps_total']} {data['current_step'] or ''}".rstrip()


def progress_label(job: Job, data: dict[str, Any]) -> str:
    """The job's percentage, and the current step's bytes while it runs."""
    text = f"{data['percent']}%"
    if job.state == "running" and job.bytes_total:
        text += f" ({human_size(job.bytes_done)} of {human_size(job.bytes_total)})"
    return text


def age_label(seconds: float) -> str:
    """``45s``, ``12m``, ``3h``, ``2d``: since the job was submitted."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


@app.command("show")
def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="The job id (job-...)."),
    fmt: str = FormatOption,
    tail: int = typer.Option(None, "--tail", "-n", min=1, metavar="N", help="Only the last N log lines."),
) -> None:
    """Show a job: state, step k/N and percentage, every step with times, bytes and rate, and its whole log."""
    check_format(fmt)
    catalog(ctx)
    data = queue.job_dict(queue.get_job(job_id), log_lines=tail)
    if fmt == "json":
        print_json(data)
        return
    print_record(
        [
            ("ID", data["id"]),
            ("Kind", data["kind"]),
            ("State", data["state"] + (" (stalled: no heartbeat)" if data["stalled"] else "")),
            ("Current Step", data["current_step"]),
            ("Progress", f"step {data['step_number']}/{data['steps_total']}, {data['percent']}%"),
            ("SR", sr_label(data["params"])),
            ("Attempts", data["attempts"]),
            ("Worker", data["worker"]),
            ("Heartbeat", data["heartbeat_at"]),
            ("Created", data["created_at"]),
            ("Started", data["started_at"]),
            ("Finished", data["finished_at"]),
            ("Result", ", ".join(f"{k}={v}" for k, v in (data["result"] or {}).items())),
            ("Error", data["error"]),
        ]
    )
    sys.stdout.write("\n")
    print_table(
        ["Step", "State", "Started", "Finished", "Seconds", "Bytes", "Rate"],
        (
            (
                s["name"],
                s["state"],
                s["started_at"],
                s["finished_at"],
                s["seconds"],
                f"{human_size(s['bytes_done'])} / {human_size(s['bytes_total'])}" if s["bytes_total"] else "",
                f"{human_size(s['rate_bytes_per_s'])}/s" if s["rate_bytes_per_s"] else "",
            )
            for s in data["steps"]
        ),
    )
    sys.stdout.write("\nLog:\n")
    print_lines(f"  {line['at']} {line['level']:5} {line['message']}" for line in data["log"])


def sr_label(params: dict[str, object]) -> str | None:
    """The SR an import job uses and why: ``<uuid> (pool default SR)``; None before a run chose one."""
    sr = params.get("sr")
    if isinstance(sr, dict):
        return f"{sr['uuid']} ({sr['from']})"
    return str(params["sr_uuid"]) + " (--sr-uuid)" if params.get("sr_uuid") else None


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: str = typer.Argument(..., metavar="JOB_ID", help="The job id.")) -> None:
    """Cancel a job and remove what it created (staged file, VDI, partial files) on the host.

    A running job stops within seconds and cleans up itself; a failed or interrupted one is cleaned
    up here and now (no worker needed), or the error says what remains and why. A cancelled job can
    be retried: every step runs again."""
    catalog(ctx)
    from vdcmanage.jobs.runner import cancel_here

    job, outcome = cancel_here(job_id)
    if outcome is None:
        waiting = f"cancel requested; {job.worker} stops it and cleans up" if job.state != "cancelled" else "cancelled"
        notice(f"{job.id}: {waiting}")  # the worker's name is host text: through the escaping seam
        return
    if job.state != "cancelled":
        report(f"{job.error} (job {job.id})")
        raise typer.Exit(ExitCode.FAILURE)
    cleaned = [line.message for line in queue.log_tail(job.id) if line.message.startswith("clean-up: ")]
    notice(f"{job.id}: cancelled" + (f"; {cleaned[-1]}" if cleaned else ""))  # paths from the host: escaped


@app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="The failed job's id."),
    detach: bool = typer.Option(False, "--detach", help="Only queue it for a worker instead of running it here."),
    host: str = typer.Option(
        None, "--host", metavar="HOST",
        help="Run the import on this host instead (hn- id or name), e.g. when the job's host was deleted and "
        "added again; every step runs again there.",
    ),
) -> None:
    """Resume a failed job where it stopped (done steps are kept; uploads continue from what was verified).

    A job still marked running whose owner process is gone (killed, or its admin host rebooted) is
    taken over at once."""
    catalog(ctx)
    if host is not None:
        from vdcmanage.importer.request import move_to_host

        move_to_host(job_id, host)
    job = queue.retry(job_id)
    if detach:
        typer.echo(job.id)
        return
    from vdcmanage.cli.foreground import run_in_foreground

    raise typer.Exit(run_in_foreground(job.id))


@app.command("worker")
def worker(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Run what is queued now, then exit."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64, help="Jobs run at the same time."),
    stale_after: float = typer.Option(
        queue.STALE_AFTER_S, "--stale-after", min=2.0, metavar="SECONDS",
        help="Take over a running job whose heartbeat is older than this (its worker died).",
    ),
) -> None:
    """Run queued jobs (and take over stalled ones) until stopped; SIGTERM requeues running jobs."""
    catalog(ctx)
    from vdcmanage.jobs.worker import run_worker

    run_worker(concurrency=concurrency, once=once, report=notice, stale_after=stale_after)
