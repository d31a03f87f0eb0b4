"""All steps in the order they run, and choosing them from --for / --step / --skip.

Order matters once: ``fstab`` runs before ``initrd`` because the guest's mkinitrd reads the root
device from etc/fstab.
"""

from __future__ import annotations

from vdcmanage.errors import InvalidArgument
from vdcmanage.prepare.steps import PURPOSES, Options, Step

FOR_CHOICES = (*PURPOSES, "all")


def all_steps() -> list[Step]:
    from vdcmanage.prepare.cloud import CLOUD_STEPS
    from vdcmanage.prepare.xen import XEN_STEPS

    return [*XEN_STEPS, *CLOUD_STEPS]


def step_names() -> list[str]:
    return [step.name for step in all_steps()]


def purposes_for(choice: str) -> tuple[str, ...]:
    if choice == "all":
        return PURPOSES
    if choice not in PURPOSES:
        raise InvalidArgument(f"--for must be one of {', '.join(FOR_CHOICES)}, not {choice!r}")
    return (choice,)


# Options that only make sense with one of these steps selected.
OPTION_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kernel": ("--kernel", ("grub", "initrd")),
    "root_device": ("--root-device", ("grub", "fstab")),
    "nameservers": ("--nameserver", ("nameserver",)),
    "root_password": ("--root-password-file/--root-password-stdin", ("root-password",)),
    "rebuild_initrd": ("--rebuild-initrd", ("initrd",)),
    "sshd_permit_root_login": ("--sshd-permit-root-login", ("sshd",)),
    "sshd_password_authentication": ("--sshd-password-authentication", ("sshd",)),
}


def select_steps(choice: str, only: list[str], skip: list[str], options: Options) -> list[Step]:
    """The steps to run, in order; refuses unknown names and options that no chosen step uses."""
    purposes = purposes_for(choice)
    steps = all_steps()
    known = [step.name for step in steps]
    for name in [*only, *skip]:
        if name not in known:
            raise InvalidArgument(f"Unknown step {name!r}; steps are: {', '.join(known)}")
    by_name = {step.name: step for step in steps}
    for name in only:
        if by_name[name].purpose not in purposes:
            raise InvalidArgument(f"Step {name} is part of --for {by_name[name].purpose}, not --for {choice}")
    chosen = [s for s in steps if s.purpose in purposes and (not only or s.name in only) and s.name not in skip]
    if not chosen:
        raise InvalidArgument("No step left to run (--skip removed them all)")
    check_options_used(chosen, options)
    for step in chosen:
        if step.name in only and not step.wanted(options):
            hint = [flag for flag, names in OPTION_STEPS.values() if step.name in names]
            raise InvalidArgument(f"--step {step.name} needs {' or '.join(hint)}")
    return chosen


def check_options_used(chosen: list[Step], options: Options) -> None:
    names = {step.name for step in chosen}
    for attribute, (flag, users) in OPTION_STEPS.items():
        value = getattr(options, attribute)
        if value and not names.intersection(users):
            raise InvalidArgument(f"{flag} is for step {' or '.join(users)}, which is not selected")
