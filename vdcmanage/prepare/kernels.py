"""Finding the guest's Xen kernel: a version with modules, vmlinuz and initrd that can run as a PV guest.

The CloudStack procedure's example guest has kernels such as ``2.6.18-164.el5`` (not Xen),
``2.6.18-164.el5xen`` and ``2.6.18-194.el5xen``; only a version with all three of
``lib/modules/<v>``, ``boot/vmlinuz-<v>`` and ``boot/initrd-<v>.img`` can boot. Those are the
Xen kernels of the 2.6.18 world, named for it. Today's kernels (pv-ops, Linux 2.6.37 and later:
Debian's ``6.1.0-28-amd64``) run as PV guests when built with the Xen front-end drivers, which
``modules.builtin`` or ``modules.dep`` list; one such kernel is chosen when no ``xen`` kernel is.
"""

from __future__ import annotations

from dataclasses import dataclass

from vdcmanage.errors import Refused
from vdcmanage.prepare.root import GuestRoot

VMLINUZ_PREFIX = "vmlinuz-"
# Red Hat 5 names the initrd initrd-<v>.img, Red Hat 6+ (dracut) initramfs-<v>.img; Debian/Ubuntu
# initrd.img-<v>.
INITRD_NAMES = ("initrd-{v}.img", "initrd.img-{v}", "initramfs-{v}.img")


class KernelNotFound(Refused):
    """No kernel, or several, fit; the message lists what the guest has."""


@dataclass(frozen=True)
class Kernel:
    version: str
    has_modules: bool
    has_vmlinuz: bool
    initrd: str | None  # guest path of the initrd, when there is one

    @property
    def vmlinuz(self) -> str:
        return f"boot/{VMLINUZ_PREFIX}{self.version}"

    @property
    def complete(self) -> bool:
        return self.has_modules and self.has_vmlinuz and self.initrd is not None

    def missing(self) -> list[str]:
        parts = [] if self.has_modules else [f"lib/modules/{self.version}"]
        parts += [] if self.has_vmlinuz else [self.vmlinuz]
        parts += [] if self.initrd else [f"boot/initrd-{self.version}.img"]
        return parts

    def describe(self) -> str:
        missing = self.missing()
        return f"{self.version} (missing {', '.join(missing)})" if missing else f"{self.version} (complete)"


def initrd_path(root: GuestRoot, version: str) -> str | None:
    for pattern in INITRD_NAMES:
        path = f"boot/{pattern.format(v=version)}"
        if root.is_file(path):
            return path
    return None


def versions_in(root: GuestRoot) -> set[str]:
    versions = set(root.listdir("lib/modules"))
    for name in root.listdir("boot"):
        if name.startswith(VMLINUZ_PREFIX):
            versions.add(name[len(VMLINUZ_PREFIX) :])
        elif name.startswith("initrd-") and name.endswith(".img"):
            versions.add(name[len("initrd-") : -len(".img")])
        elif name.startswith("initrd.img-"):
            versions.add(name[len("initrd.img-") :])
        elif name.startswith("initramfs-") and name.endswith(".img"):
            versions.add(name[len("initramfs-") : -len(".img")])
    return {v for v in versions if v and not v.endswith((".bak", ".old"))}


def list_kernels(root: GuestRoot) -> list[Kernel]:
    """Every kernel version the guest mentions anywhere, with what it has."""
    return [
        Kernel(
            version=v,
            has_modules=root.is_dir(f"lib/modules/{v}"),
            has_vmlinuz=root.is_file(f"boot/{VMLINUZ_PREFIX}{v}"),
            initrd=initrd_path(root, v),
        )
        for v in sorted(versions_in(root))
    ]


def found_listing(kernels: list[Kernel]) -> str:
    return "; ".join(k.describe() for k in kernels) if kernels else "no kernel at all in boot/ or lib/modules/"


def is_pv_ops(version: str) -> bool:
    """A kernel that is not one of the 2.6.18-era Xen kernels (their consoles are xvc0, pv-ops' hvc0)."""
    return not version.endswith("xen")


def has_xen_frontends(root: GuestRoot, version: str) -> bool:
    """The kernel was built with Xen's block front-end, as a module or built in."""
    for name in ("modules.builtin", "modules.dep"):
        if "/xen-blkfront.ko" in (root.read_text(f"lib/modules/{version}/{name}") or ""):
            return True
    return False


def find_xen_kernel(root: GuestRoot, wanted: str | None = None) -> Kernel:
    """The one kernel to boot under Xen PV, or a refusal that lists what was found."""
    kernels = list_kernels(root)
    if wanted is not None:
        return chosen_kernel(kernels, wanted)
    qualifying = [k for k in kernels if k.version.endswith("xen") and k.complete]
    if not qualifying:
        qualifying = [k for k in kernels if k.complete and has_xen_frontends(root, k.version)]
    if len(qualifying) == 1:
        return qualifying[0]
    if not qualifying:
        raise KernelNotFound(
            "No Xen kernel in the guest: a version ending in 'xen', or a kernel with the Xen front-end drivers "
            "(xen-blkfront in modules.builtin or modules.dep), with lib/modules/V, boot/vmlinuz-V and its initrd. "
            f"Found: {found_listing(kernels)}. Install the guest's Xen kernel (CentOS 5: kernel-xen) or choose "
            "one with --kernel V"
        )
    names = ", ".join(k.version for k in qualifying)
    raise KernelNotFound(f"Several Xen kernels qualify: {names}; choose one with --kernel V")


def chosen_kernel(kernels: list[Kernel], wanted: str) -> Kernel:
    for kernel in kernels:
        if kernel.version == wanted:
            if not kernel.complete:
                missing = ", ".join(kernel.missing())
                raise KernelNotFound(f"Kernel {wanted} is incomplete in the guest: missing {missing}")
            return kernel
    raise KernelNotFound(f"Kernel {wanted} is not in the guest. Found: {found_listing(kernels)}")
