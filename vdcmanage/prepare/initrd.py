"""Does the guest's initrd load the Xen block and network drivers, and rebuilding it when asked.

Reading: an initrd is a cpio archive ("newc"), compressed with gzip, xz, lzma, bzip2, zstd, lz4
or lzo, possibly preceded by uncompressed ones (early microcode). We list its members and look
for the driver modules by name: ``xenblk.ko``/``xennet.ko`` (Red Hat's xen kernels) or
``xen-blkfront.ko``/``xen-netfront.ko`` (pv-ops kernels; ``.ko.xz``/``.ko.zst`` too). A driver
built into the kernel (``modules.builtin``) needs no module in the initrd.

Rebuilding runs the guest's own ``/sbin/mkinitrd`` in a chroot of the guest, as the CloudStack
procedure does by hand. The chroot runs under ``unshare`` in private mount and PID namespaces:
the proc/sys/dev mounts it needs exist only there and vanish with it, and ``--kill-child`` ends
everything it started if we are stopped, so no mount or process can outlive the rebuild.
The guest's mkinitrd runs as root on this machine: only for images you trust.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from vdcmanage.errors import VdcError
from vdcmanage.prepare.kernels import Kernel
from vdcmanage.prepare.root import GuestRoot

XEN_BLOCK_MODULES = ("xenblk.ko", "xen-blkfront.ko")
XEN_NET_MODULES = ("xennet.ko", "xen-netfront.ko")
MAX_DECOMPRESSED = 1 << 30  # an initrd is tens of MiB; refuse to inflate a bomb
CPIO_MAGICS = (b"070701", b"070702")
COMPRESSED_MODULE_SUFFIXES = (".xz", ".zst", ".gz")
CPIO_HEADER = 110
REBUILD_TIMEOUT_S = 900
MKINITRD = "sbin/mkinitrd"
CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# Runs as pid 1 of a fresh PID namespace with a private mount table: mounts made here disappear
# when it exits. Mount failures are reported but not fatal: many mkinitrd runs do without them.
CHROOT_SCRIPT = """
root=$1; shift
if [ -d "$root/proc" ]; then mount -t proc proc "$root/proc" || echo "vdc-manage: no /proc in the chroot" >&2; fi
if [ -d "$root/sys" ]; then mount -t sysfs sysfs "$root/sys" || echo "vdc-manage: no /sys in the chroot" >&2; fi
if [ -d "$root/dev" ]; then mount --bind /dev "$root/dev" || echo "vdc-manage: no /dev in the chroot" >&2; fi
exec chroot "$root" "$@"
"""

ELF_MACHINES = {3: "i386", 62: "x86_64", 183: "aarch64", 40: "arm", 20: "ppc", 21: "ppc64", 22: "s390x", 8: "mips"}
HOST_ALIASES = {"i686": "i386", "i586": "i386", "amd64": "x86_64", "arm64": "aarch64"}


# -- reading ------------------------------------------------------------------------------

# Formats Python reads itself, and those read through the decompressor the distributions use
# (Debian 12 and Ubuntu compress with zstd; lz4 and lzo are kernel options too).
STDLIB_READERS: dict[str, Callable[[IO[bytes]], io.BufferedIOBase]] = {
    "gzip": lambda stream: gzip.GzipFile(fileobj=stream),
    "xz": lzma.LZMAFile,
    "lzma": lzma.LZMAFile,
    "bzip2": bz2.BZ2File,
}
TOOL_FORMATS = {"zstd": ["zstd", "-dc"], "lz4": ["lz4", "-dc"], "lzo": ["lzop", "-dc"]}
TOOL_PACKAGES = {"zstd": "zstd", "lz4": "lz4", "lzo": "lzop"}
MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x02\x21\x4c\x18", "lz4"),  # the legacy frame the kernel's lz4 initrds use (lz4 -l)
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x89LZO\x00\r\n\x1a\n", "lzo"),
)
TOOL_TIMEOUT_S = 120
CHUNK = 1 << 20


@dataclass
class Listing:
    """What an initrd holds: its member names, or why they could not be read (``names`` is then None)."""

    names: list[str] | None
    problem: str | None = None
    formats: list[str] = field(default_factory=list)  # e.g. ["cpio", "zstd"]: an early cpio, then a zstd one


def compression_of(data: bytes) -> str | None:
    return next((name for magic, name in MAGICS if data.startswith(magic)), None)


def decompress(data: bytes) -> bytes | None:
    """The decompressed bytes (at most MAX_DECOMPRESSED), or None when unknown or corrupt."""
    inner, _problem = decompressed(data)
    return inner


def decompressed(data: bytes) -> tuple[bytes | None, str | None]:
    """(bytes, None), or (None, why not): an unknown format, a missing tool, corrupt data."""
    fmt = compression_of(data)
    if fmt is None:
        return None, f"unknown format (first bytes {data[:4].hex()})"
    if fmt in STDLIB_READERS:
        try:
            with STDLIB_READERS[fmt](io.BytesIO(data)) as reader:
                return reader.read(MAX_DECOMPRESSED), None
        except (OSError, EOFError, lzma.LZMAError):
            return None, f"corrupt {fmt} data"
    return through_tool(fmt, data)


def through_tool(fmt: str, data: bytes) -> tuple[bytes | None, str | None]:
    """Decompress with the format's command-line tool, reading at most MAX_DECOMPRESSED bytes."""
    argv = TOOL_FORMATS[fmt]
    if shutil.which(argv[0]) is None:
        return None, f"{fmt}-compressed, and {argv[0]} is not installed on this machine (package {TOOL_PACKAGES[fmt]})"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    writer = threading.Thread(target=feed, args=(proc.stdin, data), daemon=True)
    writer.start()
    out = bytearray()
    try:
        while len(out) < MAX_DECOMPRESSED:
            chunk = proc.stdout.read(CHUNK)
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None and len(out) >= MAX_DECOMPRESSED:
            proc.kill()
        proc.stdout.close()
        proc.wait(timeout=TOOL_TIMEOUT_S)
        writer.join(timeout=TOOL_TIMEOUT_S)
    # Data after the compressed stream (padding, another archive) makes the tools exit non-zero
    # after writing everything: what they wrote counts when it is an archive.
    if out[:6] in CPIO_MAGICS:
        return bytes(out[:MAX_DECOMPRESSED]), None
    return None, f"corrupt {fmt} data"


def feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


def parse_newc(data: bytes, offset: int) -> tuple[list[str], int]:
    """Member names of the newc cpio archive starting at ``offset``, and where it ends."""
    names: list[str] = []
    while data[offset : offset + 6] in CPIO_MAGICS:
        header = data[offset : offset + CPIO_HEADER]
        if len(header) < CPIO_HEADER:
            break
        file_size = int(header[54:62], 16)
        name_size = int(header[94:102], 16)
        name_start = offset + CPIO_HEADER
        name = data[name_start : name_start + name_size - 1].decode("utf-8", "replace")
        offset = align4(align4(name_start + name_size) + file_size)
        if name == "TRAILER!!!":
            break
        names.append(name)
    return names, offset


def align4(value: int) -> int:
    return value + (-value % 4)


def initrd_listing(data: bytes) -> Listing:
    """Every member of an initrd: uncompressed cpio archives (early microcode) and then one
    compressed archive, which may itself hold several concatenated ones."""
    listing = Listing([])
    assert listing.names is not None
    offset = 0
    decompressed_once = False
    while offset < len(data):
        if data[offset : offset + 6] in CPIO_MAGICS:
            found, offset = parse_newc(data, offset)
            listing.names += found
            if not decompressed_once:
                listing.formats.append("cpio")
            while offset < len(data) and data[offset] == 0:
                offset += 1
            continue
        if decompressed_once:
            break
        fmt = compression_of(data[offset:])
        inner, problem = decompressed(data[offset:])
        if inner is None:
            return listing if listing.names and fmt is None else Listing(None, problem, listing.formats)
        listing.formats.append(fmt or "?")
        data, offset, decompressed_once = inner, 0, True
    return listing


def initrd_members(data: bytes) -> list[str] | None:
    """Every member name of an initrd (all its concatenated archives), or None if unreadable."""
    return initrd_listing(data).names


def module_name(path: str) -> str:
    """``xen-blkfront.ko`` for kernel/drivers/block/xen-blkfront.ko(.xz|.zst|.gz)."""
    name = os.path.basename(path.strip())
    for suffix in COMPRESSED_MODULE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def has_module(names: list[str], candidates: tuple[str, ...]) -> bool:
    return any(module_name(n) in candidates for n in names)


def builtin_modules(root: GuestRoot, version: str) -> list[str]:
    """The modules compiled into the kernel (``modules.builtin``): they need no initrd."""
    text = root.read_text(f"lib/modules/{version}/modules.builtin") or ""
    return [line.strip() for line in text.splitlines() if line.strip()]


def builtin_xen_drivers(root: GuestRoot, version: str) -> bool:
    """pv-ops kernels may have the Xen front-end drivers built in (listed in modules.builtin)."""
    return not missing_xen_modules(builtin_modules(root, version))


def missing_xen_modules(names: list[str]) -> list[str]:
    missing = [] if has_module(names, XEN_BLOCK_MODULES) else ["xenblk"]
    return missing + ([] if has_module(names, XEN_NET_MODULES) else ["xennet"])


# -- can we rebuild here? -------------------------------------------------------------------


def elf_machine(head: bytes) -> str | None:
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    code = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(code, f"ELF machine {code}")


def guest_program_machine(root: GuestRoot, path: str, depth: int = 0) -> str | None:
    """The CPU a guest program is built for; for a script, that of its interpreter."""
    head = root.read_head(path, 256)
    if head.startswith(b"#!") and depth < 4:
        interpreter = head[2:].split(b"\n", 1)[0].strip().split(b" ", 1)[0].decode("utf-8", "replace")
        return guest_program_machine(root, interpreter, depth + 1) if interpreter else None
    return elf_machine(head)


def host_machine() -> str:
    machine = os.uname().machine
    return HOST_ALIASES.get(machine, machine)


def can_run(guest: str, host: str) -> bool:
    return guest == host or (host == "x86_64" and guest == "i386")


def rebuild_blocker(root: GuestRoot) -> str | None:
    """Why the guest's mkinitrd cannot run here, or None when it can."""
    if not root.is_file(MKINITRD):
        return "the guest has no /sbin/mkinitrd"
    machine = guest_program_machine(root, MKINITRD)
    if machine is None:
        return "cannot tell which CPU the guest's /sbin/mkinitrd (or its interpreter) is for"
    if not can_run(machine, host_machine()):
        return f"the guest's programs are for {machine}, this machine is {host_machine()}"
    if os.geteuid() != 0:
        return "running the guest's mkinitrd in a chroot needs root on this machine"
    for tool in ("unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed on this machine (util-linux / coreutils)"
    return None


def mkinitrd_argv(kernel: Kernel) -> list[str]:
    """The CloudStack procedure's command: load xennet, preload xenblk, leave SCSI drivers out."""
    return [
        "/sbin/mkinitrd",
        "-f",
        "--with=xennet",
        "--preload=xenblk",
        "--omit-scsi-modules",
        f"/{kernel.initrd}",
        kernel.version,
    ]


def manual_instructions(root: GuestRoot, kernel: Kernel) -> str:
    if not root.is_file(MKINITRD) and root.exists("usr/sbin/update-initramfs"):
        return (
            f"add xen-blkfront and xen-netfront to /etc/initramfs-tools/modules in the guest, then run "
            f"'update-initramfs -u -k {kernel.version}' in it (in the running guest or a chroot of the mounted image)"
        )
    command = " ".join(mkinitrd_argv(kernel))
    return (
        f"as root, keep a copy of /{kernel.initrd}, then run '{command}' inside the guest "
        "(chroot into the mounted image), or rerun with --rebuild-initrd on a machine that can run the guest's programs"
    )


# -- rebuilding -----------------------------------------------------------------------------


def chroot_argv(root: GuestRoot, command: list[str]) -> list[str]:
    return [
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--",
        "sh", "-c", CHROOT_SCRIPT, "vdc-chroot", str(root.path), *command,
    ]  # fmt: skip


def run_in_chroot(root: GuestRoot, command: list[str]) -> str:
    """Run a guest command in a chroot; its output, or VdcError with it. Killed with us if interrupted."""
    env = {"PATH": CHROOT_PATH, "HOME": "/root", "LC_ALL": "C"}  # nothing of ours leaks into the guest
    proc = subprocess.Popen(
        chroot_argv(root, command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we end the whole group
    )
    try:
        output, _ = proc.communicate(timeout=REBUILD_TIMEOUT_S)
    except BaseException:
        kill_group(proc)
        raise
    text = output.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-10:])
        raise VdcError(f"{command[0]} failed in the guest (exit {proc.returncode}): {tail or 'no output'}")
    return text


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rebuild_initrd(root: GuestRoot, kernel: Kernel) -> None:
    """Back up the initrd (once) as .bak, run mkinitrd, verify; the old initrd is back on any failure."""
    from vdcmanage.prepare.signals import signals_held

    assert kernel.initrd is not None
    original = root.read_bytes(kernel.initrd)
    if original is None:
        raise VdcError(f"{kernel.initrd} disappeared from the guest")
    st = root.stat(kernel.initrd)
    backup = f"{kernel.initrd}.bak"
    if not root.lexists(backup):  # a .bak from an earlier run is the real original: keep it
        root.write_bytes(backup, original, st.st_mode & 0o7777 if st else 0o600)
    try:
        run_in_chroot(root, mkinitrd_argv(kernel))
        rebuilt = root.read_bytes(kernel.initrd) or b""
        names = initrd_members(rebuilt)
        if names is None or missing_xen_modules(names):
            raise VdcError(f"mkinitrd ran but /{kernel.initrd} still does not load xenblk and xennet")
    except BaseException:
        with signals_held():
            root.write_bytes(kernel.initrd, original)
        raise
