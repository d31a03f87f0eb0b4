"""What ``image prepare`` prints: the readiness report, the dry-run diff, the apply summary.

Plain text built here (no rich), so the shell, scripts and the dashboard can all use it.
"""

from __future__ import annotations

from typing import Any

from vdcmanage.prepare.run import Outcome, Result
from vdcmanage.prepare.steps import Status
from vdcmanage.textsafe import visible


def printable(text: str) -> str:
    """Guest text may hold undecodable bytes (kept as surrogates): show them as U+FFFD, never crash."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    headers = ("STEP", "FOR", "STATUS", "DETAIL")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:3])]
    lines = []
    for row in [headers, *rows]:
        cells = [value.ljust(widths[i]) for i, value in enumerate(row[:3])]
        lines.append("  ".join([*cells, visible(row[3])]).rstrip())
    return lines


def header(result: Result) -> str:
    where = f" ({result.layout.describe()})" if result.layout else ""
    return f"Target: {visible(result.target)}{visible(where)}"


def manual_lines(outcomes: list[Outcome]) -> list[str]:
    return [f"ACTION NEEDED ({o.step.name}): {visible(o.plan.manual)}" for o in outcomes if o.plan.manual]


def check_report(result: Result) -> str:
    rows = [(o.step.name, o.step.purpose, str(o.status), o.detail) for o in result.outcomes]
    lines = [header(result), *table(rows), *manual_lines(result.outcomes)]
    needed = [o.step.name for o in result.outcomes if o.status == Status.NEEDED]
    if needed:
        lines.append(f"Not ready: {len(needed)} step(s) needed: {', '.join(needed)}")
    else:
        lines.append("Ready: every step is done or not applicable")
    return printable("\n".join(lines) + "\n")


def dry_run_report(result: Result) -> str:
    parts = [header(result) + "\n"]
    for outcome in result.outcomes:
        title = f"== {outcome.step.name} ({outcome.step.purpose}): {outcome.plan.status}: {visible(outcome.detail)}\n"
        parts.append(title)
        parts.extend(change.describe() for change in outcome.plan.changes)
        if outcome.plan.manual:
            parts.append(f"ACTION NEEDED: {visible(outcome.plan.manual)}\n")
    if result.zeroed:
        parts.append(f"== zero-free: {result.zeroed}\n")
    to_change = [o.step.name for o in result.outcomes if o.plan.changes]
    parts.append(f"Dry run: nothing was changed; {len(to_change)} step(s) would change the guest\n")
    return printable("".join(parts))


def apply_report(result: Result) -> str:
    lines = [header(result)]
    for outcome in result.outcomes:
        if outcome.applied:
            lines.append(f"{outcome.step.name}: changed: {visible('; '.join(outcome.applied))}")
        else:
            lines.append(f"{outcome.step.name}: {outcome.status}: {visible(outcome.detail)}")
    lines.extend(manual_lines(result.outcomes))
    if result.zeroed:
        lines.append(f"zero-free: {result.zeroed}")
    if result.recorded_image:
        lines.append(f"Catalog: recorded the steps done on {result.recorded_image} and its new md5/sha256")
    changed = sum(1 for o in result.outcomes if o.applied)
    state = "ready" if result.ready else "not ready (see ACTION NEEDED)"
    lines.append(f"Prepared: {changed} step(s) changed the guest; {state}")
    return printable("\n".join(lines) + "\n")


def result_data(result: Result) -> dict[str, Any]:
    """The result for ``-f json``."""
    return {
        "target": result.target,
        "layout": result.layout.describe() if result.layout else None,
        "mode": str(result.mode),
        "ready": result.ready,
        "recorded_image": result.recorded_image,
        "zero_free": result.zeroed,
        "steps": [
            {
                "step": o.step.name,
                "purpose": o.step.purpose,
                "status": str(o.status),
                "detail": printable(o.detail),
                "manual": o.plan.manual,
                "changes": [printable(c.describe()) for c in o.plan.changes] if str(result.mode) == "dry-run" else [],
                "applied": o.applied,
            }
            for o in result.outcomes
        ],
    }
