"""What every step shares: its status, its plan, the options and the context it reads.

A step is named (``grub``, ``logs`` ...), belongs to one purpose (``xen-pv`` or ``cloud``) and
has three operations:

- ``check``: done / needed / not applicable, with a one-line detail (``--check``);
- ``plan``: the same, plus the exact file changes it would make (``--dry-run`` prints them);
- ``apply``: make those changes. A step whose status is "done" plans no change, which is what
  makes a second run change nothing.

A step that is needed but cannot be done here (an initrd that needs the guest's own tools) plans
no change and says in ``manual`` what the operator has to do.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vdcmanage.prepare.changes import Change
from vdcmanage.prepare.root import GuestRoot

PURPOSES = ("xen-pv", "cloud")


class Status(enum.StrEnum):
    DONE = "done"
    NEEDED = "needed"
    NOT_APPLICABLE = "not applicable"


@dataclass
class Plan:
    status: Status
    detail: str
    changes: list[Change] = field(default_factory=list)
    manual: str | None = None  # needed, but only the operator can do it: what to do


def done(detail: str) -> Plan:
    return Plan(Status.DONE, detail)


def needed(detail: str, changes: list[Change], manual: str | None = None) -> Plan:
    return Plan(Status.NEEDED, detail, changes, manual)


def not_applicable(detail: str) -> Plan:
    return Plan(Status.NOT_APPLICABLE, detail)


@dataclass
class Options:
    """What the operator asked for, beyond the choice of steps. Nothing here is printed as is."""

    kernel: str | None = None
    root_device: str | None = None
    nameservers: list[str] = field(default_factory=list)
    root_password: str | None = field(default=None, repr=False)
    rebuild_initrd: bool = False
    sshd_permit_root_login: str | None = None
    sshd_password_authentication: str | None = None
    zero_free: bool = False  # after apply: clear the free blocks (nothing removed can be read back)


@dataclass(frozen=True)
class Layout:
    """How the root was found: a directory, a whole-file filesystem (the AMI case) or a partition."""

    kind: str  # directory | filesystem | partition
    partition: int | None = None
    uuid: str | None = None  # the root filesystem's UUID, when it was read from an image
    note: str | None = None  # how it was read, when that matters (a journal not replayed)

    def describe(self) -> str:
        if self.kind == "partition":
            where = f"partition {self.partition} of a partitioned disk"
        else:
            where = "a bare filesystem image" if self.kind == "filesystem" else "a directory"
        return f"{where}; {self.note}" if self.note else where


class Context:
    """The guest root and everything steps look up about it (computed once, on first use)."""

    def __init__(self, root: GuestRoot, options: Options, layout: Layout) -> None:
        self.root = root
        self.options = options
        self.layout = layout
        self.cache: dict[str, Any] = {}  # what several steps look up once (the kernel, the boot config)

    def root_device(self) -> str:
        """The guest's root device once it runs as a Xen PV guest with this disk as xvda."""
        if self.options.root_device:
            return self.options.root_device
        if self.layout.kind == "partition":
            return f"/dev/xvda{self.layout.partition}"
        return "/dev/xvda"

    def device_layout(self) -> str:
        """partition when the root is a partition of xvda (found so, or --root-device /dev/xvdaN), else filesystem."""
        if self.options.root_device:
            return "partition" if self.options.root_device[-1:].isdigit() else "filesystem"
        return "partition" if self.layout.kind == "partition" else "filesystem"

    @functools.cached_property
    def family(self) -> str:
        """debian, redhat or unknown: decides where files such as rc.local live."""
        if self.root.exists("etc/debian_version"):
            return "debian"
        if self.root.exists("etc/redhat-release") or self.root.exists("etc/centos-release"):
            return "redhat"
        return "unknown"

    @functools.cached_property
    def distribution_name(self) -> str:
        for path in ("etc/redhat-release", "etc/centos-release"):
            text = self.root.read_text(path)
            if text and text.strip():
                return text.strip().splitlines()[0]
        for path, key in (("etc/lsb-release", "DISTRIB_DESCRIPTION="), ("etc/os-release", "PRETTY_NAME=")):
            for line in (self.root.read_text(path) or "").splitlines():
                if line.startswith(key):
                    return line.split("=", 1)[1].strip().strip('"')
        return "Linux"


class Step:
    """Base of every step; subclasses set the class attributes and implement ``plan``."""

    name: ClassVar[str]
    purpose: ClassVar[str]
    title: ClassVar[str]  # one line for help texts and the README

    def plan(self, ctx: Context) -> Plan:
        raise NotImplementedError

    def check(self, ctx: Context) -> Plan:
        return self.plan(ctx)

    def apply(self, ctx: Context, plan: Plan, done_list: list[str]) -> None:
        """Carry out the plan's changes in order, noting each in ``done_list`` as soon as it is done."""
        for change in plan.changes:
            change.apply(ctx.root)
            done_list.append(change.summary())

    def wanted(self, options: Options) -> bool:
        """Whether the operator's options ask this step for anything (False: not applicable)."""
        return True
