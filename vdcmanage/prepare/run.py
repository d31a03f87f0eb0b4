"""Check, dry-run and apply over one target.

- check: plan every step on a read-only view; a step that cannot be planned (no Xen kernel, a
  symlink loop) is reported as needed, with the reason.
- dry-run: plan every step on a read-only view; any refusal stops it, as it would stop apply
  (the same checks run before either changes anything).
- apply: plan every step first (a refusal changes nothing), then carry out the plans in order,
  then plan the changed steps again to prove they are now done. A registered image gets its
  steps and new checksums recorded, also when a later step failed after earlier ones changed it.
"""

from __future__ import annotations

import enum
import posixpath
from dataclasses import dataclass, field

from vdcmanage.errors import Refused, VdcError
from vdcmanage.prepare.changes import MakeDirs, MakeSymlink, WriteFile
from vdcmanage.prepare.mounts import MountError
from vdcmanage.prepare.records import AppliedStep, file_digests, record_preparation
from vdcmanage.prepare.steps import Context, Layout, Options, Plan, Status, Step
from vdcmanage.prepare.target import OpenTarget, Target, open_target


class Mode(enum.StrEnum):
    CHECK = "check"
    DRY_RUN = "dry-run"
    APPLY = "apply"


@dataclass
class Outcome:
    step: Step
    plan: Plan
    error: str | None = None  # check: why the step could not be planned
    applied: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return Status.NEEDED if self.error else self.plan.status

    @property
    def detail(self) -> str:
        return self.error or self.plan.detail

    @property
    def remaining(self) -> bool:
        """Still needed after this run: not applied here, or a part only the operator can do."""
        return self.status == Status.NEEDED and (not self.applied or self.plan.manual is not None)


@dataclass
class Result:
    target: str
    mode: Mode
    layout: Layout | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    touched: bool = False  # apply started changing the guest
    recorded_image: str | None = None
    zeroed: str | None = None  # what --zero-free did (or, in a dry run, would do)

    @property
    def ready(self) -> bool:
        return not any(outcome.remaining for outcome in self.outcomes)

    @property
    def changed(self) -> bool:
        return any(outcome.applied for outcome in self.outcomes)


def run_prepare(target: Target, steps: list[Step], options: Options, mode: Mode) -> Result:
    result = Result(target.describe(), mode)
    try:
        with open_target(target, writable=mode == Mode.APPLY) as opened:
            result.layout = opened.layout
            ctx = Context(opened.root, options, opened.layout)
            if options.zero_free and opened.zero_free is None:
                raise Refused("--zero-free works on image files (the free blocks of their filesystem), not directories")
            if mode == Mode.CHECK:
                result.outcomes = [check_step(ctx, step) for step in steps]
            else:
                result.outcomes = [Outcome(step, step.plan(ctx)) for step in steps]
                check_writable(ctx, result.outcomes)  # a dry run refuses what apply would refuse
                if mode == Mode.APPLY and any(o.plan.changes for o in result.outcomes):
                    opened.make_writable()
                    apply_plans(ctx, result)
                if options.zero_free:
                    result.zeroed = zero_free(opened, result) if mode == Mode.APPLY else ZERO_FREE_PLAN
    except MountError:
        raise  # the image may still be mounted: its checksums cannot be taken now
    except BaseException:
        if result.touched:
            record_if_registered(target, result)
        raise
    if result.touched:
        record_if_registered(target, result)
    return result


ZERO_FREE_PLAN = "would discard the free blocks of the root filesystem (fstrim, else zerofree)"


def zero_free(opened: OpenTarget, result: Result) -> str:
    assert opened.zero_free is not None
    result.touched = True  # holes or zeros where free blocks held data: the checksums may change
    return opened.zero_free()


def check_step(ctx: Context, step: Step) -> Outcome:
    try:
        return Outcome(step, step.check(ctx))
    except Refused as exc:
        return Outcome(step, Plan(Status.NEEDED, exc.message), error=exc.message)


def check_writable(ctx: Context, outcomes: list[Outcome]) -> None:
    """Refuse, before anything changes, a plan that writes into a directory the guest lacks."""
    for outcome in outcomes:
        created: set[str] = set()
        for change in outcome.plan.changes:
            if isinstance(change, MakeDirs):
                created.add(change.path)
            elif isinstance(change, WriteFile | MakeSymlink):
                parent = posixpath.dirname(change.path)
                if parent and parent not in created and not ctx.root.is_dir(parent):
                    raise Refused(
                        f"Step {outcome.step.name} would write {change.path}, but {parent} is not a directory "
                        "in the guest; nothing was changed"
                    )


def apply_plans(ctx: Context, result: Result) -> None:
    for outcome in result.outcomes:
        if outcome.plan.changes:
            result.touched = True  # from here on the file may differ from its recorded checksums
            outcome.step.apply(ctx, outcome.plan, outcome.applied)
    for outcome in result.outcomes:
        if outcome.applied:
            verify_done(ctx, outcome)


def verify_done(ctx: Context, outcome: Outcome) -> None:
    again = outcome.step.plan(ctx)
    if again.status == Status.NEEDED and again.changes:
        raise VdcError(f"Step {outcome.step.name} still needs changes after it was applied: {again.detail}")


def record_if_registered(target: Target, result: Result) -> None:
    if target.image_id is None:
        return
    applied = [
        AppliedStep(o.step.name, o.step.purpose, "; ".join(o.applied)[:2000]) for o in result.outcomes if o.applied
    ]
    record_preparation(target.image_id, applied, file_digests(target.path))
    result.recorded_image = target.image_id
