"""A test double of XenServer's ``xe`` command, faithful to /work/shared/xe-facts.md.

Run as ``tests/xenhost/bin/xe`` on the test host's PATH (or directly, for its own tests). Its world
is a state directory named by ``XE_DOUBLE_STATE``:

- ``state.json``: personality, size parser, pool, hosts, SRs, VDIs (read and written under ``state.lock``
  with ``fcntl.flock``, so concurrent calls are safe; a long vdi-import releases the lock while it copies);
- ``calls.jsonl``: one JSON line per call with the exact argv and cwd, for tests to assert on;
- file SRs are directories ``<sr_mount>/<sr-uuid>`` holding ``<vdi-uuid>.vhd`` files, real dynamic VHDs
  made by ``qemu-img``. On the test host ``sr_mount`` is ``/var/run/sr-mount``, bind-mounted in sshd's
  private mount namespace, so remote code sees the paths a real host has.

Section numbers below refer to xe-facts.md. Where the facts file says nothing (a few error texts of
rarely used corners) the double's choice is marked "(double's choice)".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB
VHD_BLOCK = 2 * MiB
VHD_BLOCK_COST = VHD_BLOCK + 512  # a dynamic VHD stores each 2 MiB block after a 512-byte sector bitmap
MAX_VHD_SIZE = 2040 * GiB  # section 1 "Sizes": VHD file SRs max 2040 GiB
USAGE_HINT = "For usage run: 'xe help'"
NOT_IN_DB = "<not in database>"
CLIENT_SWITCHES_WITH_VALUE = ("-s", "-h", "-p", "-u", "-pw", "-pwf")
CLIENT_SWITCHES = ("--nossl", "--debug")
CLIENT_KEYS = ("server", "port", "username", "password", "passwordfile")
LIST_STANDARD_KEYS = ("params", "minimal")
INTERNAL_ERROR = (
    "The server failed to handle your request, due to an internal error.  "
    "The given message may give details useful for debugging the problem."
)

# Section 5. Values of software-version are illustrative of each release (brand, product, platform,
# xapi); what tests rely on is the capability columns.
PERSONALITIES: dict[str, dict[str, Any]] = {
    "xenserver-6.2": {
        "software_version": {
            "product_version": "6.2.0", "product_version_text": "6.2", "product_version_text_short": "6.2",
            "platform_name": "XCP", "platform_version": "1.8.0", "product_brand": "XenServer",
            "build_number": "70446c", "xapi": "1.3", "xen": "4.1.5", "xencenter_min": "2.0",
            "xencenter_max": "2.0", "network_backend": "openvswitch",
        },
        "type_required": True, "import_formats": None, "progress": False, "export_formats": None,
        "size_parser": "old", "large_qcow2": False,
    },
    "xenserver-6.5": {
        "software_version": {
            "product_version": "6.5.0", "product_version_text": "6.5", "product_version_text_short": "6.5",
            "platform_name": "XCP", "platform_version": "1.9.0", "product_brand": "XenServer",
            "build_number": "90233c", "xapi": "1.3", "xen": "4.4.1-xs100346", "xencenter_min": "2.3",
            "xencenter_max": "2.3", "network_backend": "openvswitch",
        },
        "type_required": True, "import_formats": ("raw", "vhd"), "progress": True, "export_formats": ("raw", "vhd"),
        "size_parser": "old", "large_qcow2": False,
    },
    "xenserver-7.1": {
        "software_version": {
            "product_version": "7.1.2", "product_version_text": "7.1", "product_version_text_short": "7.1 CU2",
            "platform_name": "XCP", "platform_version": "2.2.2", "product_brand": "XenServer",
            "build_number": "release/falcon/master/8", "xapi": "1.9", "xen": "4.7.6-6.11", "xencenter_min": "2.6",
            "xencenter_max": "2.6", "network_backend": "openvswitch",
        },
        "type_required": False, "import_formats": ("raw", "vhd"), "progress": True, "export_formats": ("raw", "vhd"),
        "size_parser": "old", "large_qcow2": False,
    },
    "xcp-ng-8.3": {
        "software_version": {
            "product_version": "8.3.0", "product_version_text": "8.3", "product_version_text_short": "8.3",
            "platform_name": "XCP", "platform_version": "3.4.0", "product_brand": "XCP-ng",
            "build_number": "cloud", "xapi": "25.27", "xapi_build": "25.27.0", "xen": "4.17.5-13",
            "xencenter_min": "2.21", "xencenter_max": "2.21", "network_backend": "openvswitch", "db_schema": "5.786",
        },
        "type_required": False, "import_formats": ("raw", "vhd", "tar", "qcow2"), "progress": True,
        "export_formats": ("raw", "vhd", "tar", "qcow2"), "size_parser": "new", "large_qcow2": True,
    },
}
DEFAULT_PERSONALITY = "xcp-ng-8.3"

# The SRs every fresh state has, by role. Sizes are physical-size in bytes.
DEFAULT_SRS: dict[str, dict[str, Any]] = {
    "ext": {"name-label": "Local storage", "type": "ext", "content-type": "user", "shared": False,
            "physical-size": 100 * GiB},
    "nfs": {"name-label": "NFS virtual disk storage", "type": "nfs", "content-type": "", "shared": True,
            "physical-size": 500 * GiB},
    "lvm": {"name-label": "Local LVM storage", "type": "lvm", "content-type": "user", "shared": False,
            "physical-size": 200 * GiB},
    "iso": {"name-label": "XenServer Tools", "type": "iso", "content-type": "iso", "shared": True,
            "physical-size": 0},
}
FILE_SR_TYPES = ("ext", "nfs")
SM_TYPES = [
    ("ext", "Local EXT3 VHD", "SR plugin representing disks as VHD files stored on a local EXT3 filesystem"),
    ("nfs", "NFS VHD", "SR plugin which stores disks as VHD files on a remote NFS filesystem"),
    ("lvm", "Local LVM", "SR plugin which represents disks as VHD disks on Logical Volumes"),
    ("iso", "ISO", "Handles CD images stored as files in iso format"),
]


class XeFailure(Exception):
    """An error xe prints on stderr, exiting 1 (section 2)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def uuid_invalid(kind: str, value: str) -> XeFailure:
    return XeFailure(f"The uuid you supplied was invalid.\ntype: {kind}\nuuid: {value}")


def cli_error(message: str) -> XeFailure:
    return XeFailure(f"Error: {message}")


def api_error(code: str, *params: str) -> XeFailure:
    return XeFailure(f"Error code: {code}\nError parameters: {', '.join(params)}")


def vdi_io_error() -> XeFailure:
    return api_error("VDI_IO_ERROR", "Device I/O errors")


# -- state ----------------------------------------------------------------------------------------------


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def make_state(
    *,
    personality: str = DEFAULT_PERSONALITY,
    size_parser: str | None = None,
    sr_mount: str = "/var/run/sr-mount",
    sr_sizes: dict[str, int] | None = None,
    host_name: str = "xenhost1",
) -> dict[str, Any]:
    """A fresh world: one pool with one host, the DEFAULT_SRS, no VDIs; the ext SR is the default SR."""
    if personality not in PERSONALITIES:
        raise ValueError(f"unknown personality {personality!r}: one of {', '.join(PERSONALITIES)}")
    host_uuid = new_uuid()
    srs = []
    for role, spec in DEFAULT_SRS.items():
        sr = {"uuid": new_uuid(), "role": role, "name-description": "", "host": host_uuid, **spec}
        if sr_sizes and role in sr_sizes:
            sr["physical-size"] = sr_sizes[role]
        sr["physical-utilisation"] = 0
        srs.append(sr)
    return {
        "personality": personality,
        "size_parser": size_parser or PERSONALITIES[personality]["size_parser"],
        "xapi_down": False,
        "password": "xenroot",
        "sr_mount": sr_mount,
        "pool": {"uuid": new_uuid(), "name-label": "", "name-description": "", "master": host_uuid,
                 "default-SR": srs[0]["uuid"]},
        "hosts": [{"uuid": host_uuid, "name-label": host_name, "name-description": "Default install",
                   "hostname": host_name, "address": "127.0.0.1", "enabled": True}],
        "srs": srs,
        "vdis": [],
        "sms": [{"uuid": new_uuid(), "type": t, "name-label": label, "name-description": desc}
                for t, label, desc in SM_TYPES],
    }


def write_state(state_dir: str, state: dict[str, Any], sr_mount_here: str | None = None) -> None:
    """Write ``state`` for a double using ``state_dir``; create the file SRs' directories at ``sr_mount_here``
    (the path of ``state["sr_mount"]`` as seen from this process) and the non-file SRs' volume dirs."""
    os.makedirs(state_dir, exist_ok=True)
    mount_here = sr_mount_here or state["sr_mount"]
    for sr in state["srs"]:
        if sr["type"] in FILE_SR_TYPES:
            os.makedirs(os.path.join(mount_here, sr["uuid"]), exist_ok=True)
        elif sr["type"] != "iso":
            os.makedirs(os.path.join(state_dir, "volumes", sr["uuid"]), exist_ok=True)
    save(state_dir, state)


def save(state_dir: str, state: dict[str, Any]) -> None:
    tmp = os.path.join(state_dir, f".state.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, ensure_ascii=False)
    os.replace(tmp, os.path.join(state_dir, "state.json"))


@contextlib.contextmanager
def locked(state_dir: str) -> Iterator[dict[str, Any]]:
    """The state under an exclusive lock; saved on normal exit."""
    with open(os.path.join(state_dir, "state.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(os.path.join(state_dir, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        before = json.dumps(state, sort_keys=True)
        yield state
        if json.dumps(state, sort_keys=True) != before:
            save(state_dir, state)


def log_call(state_dir: str, argv: list[str]) -> None:
    entry = json.dumps({"argv": argv, "cwd": os.getcwd(), "time": time.time()}, ensure_ascii=False)
    with open(os.path.join(state_dir, "calls.jsonl"), "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(entry + "\n")


# -- value formatting and records (section 1) --------------------------------------------------------


def fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if value is None:
        return NOT_IN_DB
    return str(value)


Field = tuple[str, str, bool, Callable[[dict[str, Any], dict[str, Any]], Any]]  # name, flags, default, getter


def f(name: str, flags: str, default: bool, getter: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Field:
    return (name, flags, default, getter)


def key(name: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    return lambda obj, state: obj.get(name)


def const(value: Any) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    return lambda obj, state: value


def sr_of(vdi: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in state["srs"] if s["uuid"] == vdi["sr"])


def host_name(uuid: str, state: dict[str, Any]) -> str:
    return next((h["name-label"] for h in state["hosts"] if h["uuid"] == uuid), NOT_IN_DB)


VDI_FIELDS: list[Field] = [
    f("uuid", " RO", True, key("uuid")),
    f("name-label", " RW", True, key("name-label")),
    f("name-description", " RW", True, key("name-description")),
    f("is-a-snapshot", " RO", False, const(False)),
    f("snapshot-of", " RO", False, const(NOT_IN_DB)),
    f("allowed-operations", "SRO", False, const(["forget", "generate_config", "update", "resize", "destroy",
                                                 "clone", "copy", "snapshot"])),
    f("current-operations", "SRO", False, const([])),
    f("sr-uuid", " RO", True, key("sr")),
    f("sr-name-label", " RO", False, lambda v, s: sr_of(v, s)["name-label"]),
    f("vbd-uuids", "SRO", False, const([])),
    f("virtual-size", " RO", True, key("virtual-size")),
    f("physical-utilisation", " RO", False, key("physical-utilisation")),
    f("location", " RO", False, key("uuid")),
    f("type", " RO", False, lambda v, s: v["type"].capitalize()),
    f("sharable", " RO", True, key("sharable")),
    f("read-only", " RO", True, key("read-only")),
    f("storage-lock", " RO", False, const(False)),
    f("managed", " RO", False, const(True)),
    f("parent", " RO", False, const(NOT_IN_DB)),
    f("missing", " RO", False, const(False)),
    f("other-config", "MRW", False, key("other-config")),
    f("xenstore-data", "MRO", False, const({})),
    f("sm-config", "MRO", False, key("sm-config")),
    f("on-boot", " RW", False, const("persist")),
    f("allow-caching", " RW", False, const(False)),
    f("tags", "SRW", False, const([])),
]
SR_FIELDS: list[Field] = [
    f("uuid", " RO", True, key("uuid")),
    f("name-label", " RW", True, key("name-label")),
    f("name-description", " RW", True, key("name-description")),
    f("host", " RO", True, lambda sr, s: "<shared>" if sr["shared"] else host_name(sr["host"], s)),
    f("allowed-operations", "SRO", False, const(["VDI.create", "VDI.destroy", "VDI.snapshot", "scan"])),
    f("current-operations", "SRO", False, const([])),
    f("VDIs", "SRO", False, lambda sr, s: [v["uuid"] for v in s["vdis"] if v["sr"] == sr["uuid"]]),
    f("PBDs", "SRO", False, const([])),
    f("virtual-allocation", " RO", False,
      lambda sr, s: sum(v["virtual-size"] for v in s["vdis"] if v["sr"] == sr["uuid"])),
    f("physical-utilisation", " RO", False, key("physical-utilisation")),
    f("physical-size", " RO", False, key("physical-size")),
    f("type", " RO", True, key("type")),
    f("content-type", " RO", True, key("content-type")),
    f("shared", " RW", False, key("shared")),
    f("introduced-by", " RO", False, const(NOT_IN_DB)),
    f("is-tools-sr", " RO", False, lambda sr, s: sr["type"] == "iso"),
    f("other-config", "MRW", False, const({})),
    f("sm-config", "MRO", False, const({})),
    f("blobs", "MRO", False, const({})),
    f("local-cache-enabled", " RO", False, const(False)),
    f("tags", "SRW", False, const([])),
    f("clustered", " RO", False, const(False)),
]
HOST_FIELDS: list[Field] = [
    f("uuid", " RO", True, key("uuid")),
    f("name-label", " RW", True, key("name-label")),
    f("name-description", " RW", True, key("name-description")),
    f("allowed-operations", "SRO", False, const(["VM.migrate", "provision", "VM.resume", "evacuate", "VM.start"])),
    f("current-operations", "SRO", False, const([])),
    f("enabled", " RO", False, key("enabled")),
    f("API-version-major", " RO", False, const(2)),
    f("API-version-minor", " RO", False, const(21)),
    f("API-version-vendor", " RO", False, const("XenSource")),
    # a test may make a host claim another release than its xe behaves as ("software_version" in the state)
    f("software-version", "MRO", False,
      lambda h, s: (s.get("software_version") or PERSONALITIES[s["personality"]]["software_version"])
      | {"hostname": h["hostname"]}),
    f("other-config", "MRW", False, const({})),
    f("hostname", " RO", False, key("hostname")),
    f("address", " RO", False, key("address")),
]
POOL_FIELDS: list[Field] = [
    f("uuid", " RO", True, key("uuid")),
    f("name-label", " RW", True, key("name-label")),
    f("name-description", " RW", True, key("name-description")),
    f("master", " RO", True, key("master")),
    f("default-SR", " RW", True, key("default-SR")),
    f("crash-dump-SR", " RW", False, key("default-SR")),
    f("suspend-image-SR", " RW", False, key("default-SR")),
    f("other-config", "MRW", False, const({})),
]
SM_FIELDS: list[Field] = [
    f("uuid", " RO", True, key("uuid")),
    f("name-label", " RO", True, key("name-label")),
    f("name-description", " RO", True, key("name-description")),
    f("type", " RO", False, key("type")),
    f("vendor", " RO", False, const("Citrix Systems Inc")),
    f("copyright", " RO", False, const("(C) 2008 Citrix Systems Inc")),
    f("required-api-version", " RO", False, const("1.0")),
]
CLASSES: dict[str, tuple[str, str, list[Field]]] = {  # prefix -> (state key, uuid-invalid type, fields)
    "vdi": ("vdis", "VDI", VDI_FIELDS),
    "sr": ("srs", "SR", SR_FIELDS),
    "host": ("hosts", "host", HOST_FIELDS),
    "pool": ("pool", "pool", POOL_FIELDS),
    "sm": ("sms", "SM", SM_FIELDS),
}


def objects(state: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    found = state[CLASSES[prefix][0]]
    return [found] if isinstance(found, dict) else list(found)


def find(state: dict[str, Any], prefix: str, uuid: str) -> dict[str, Any]:
    for obj in objects(state, prefix):
        if obj["uuid"] == uuid:
            return obj
    raise uuid_invalid(CLASSES[prefix][1], uuid)


def selected_fields(fields: list[Field], params: str | None) -> list[Field]:
    """Default fields, ``params=all``, or the named ones in definition order (unknown names dropped)."""
    if params is None:
        return [fd for fd in fields if fd[2]]
    if params == "all":
        return list(fields)
    wanted = set(params.split(","))
    return [fd for fd in fields if fd[0] in wanted]


def render_record(pairs: list[tuple[str, str]]) -> str:
    """Section 1 "Record layout": maxlen = 4 + longest key; first key left-aligned, others right-aligned."""
    if not pairs:
        return "\n\n"
    maxlen = 4 + max(len(k) for k, _ in pairs)
    lines = []
    for i, (label, value) in enumerate(pairs):
        padded = label.ljust(maxlen) if i == 0 else label.rjust(maxlen)
        lines.append(f"{padded}: {value}")
    return "\n".join(lines) + "\n\n\n"


def minimal_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


def field_value(fields: list[Field], obj: dict[str, Any], state: dict[str, Any], name: str) -> str | None:
    """The printed value of field ``name`` (``map:key`` for one map entry); None if no such field/key."""
    base, _, map_key = name.partition(":")
    for fname, _flags, _default, getter in fields:
        if fname == base:
            value = getter(obj, state)
            if map_key:
                return None if not isinstance(value, dict) or map_key not in value else str(value[map_key])
            return fmt_value(value)
    raise cli_error(f"Unknown field '{name}'")


def list_command(state: dict[str, Any], prefix: str, params: dict[str, str]) -> str:
    fields = CLASSES[prefix][2]
    filters = {k: v for k, v in params.items() if k not in LIST_STANDARD_KEYS}
    matching = []
    for obj in objects(state, prefix):
        # an unknown filter field fails here, so only when at least one record exists
        if all(field_value(fields, obj, state, k) == v for k, v in filters.items()):
            matching.append(obj)
    chosen = selected_fields(fields, params.get("params"))
    if "minimal" in params:
        firsts = [minimal_escape(fmt_value(chosen[0][3](obj, state))) if chosen else "" for obj in matching]
        return ",".join(firsts) + "\n"
    out = []
    for obj in matching:
        out.append(render_record([(f"{n} ({fl})", fmt_value(g(obj, state))) for n, fl, _d, g in chosen]))
    return "".join(out)


def param_list(state: dict[str, Any], prefix: str, params: dict[str, str]) -> str:
    obj = find(state, prefix, params["uuid"])
    fields = CLASSES[prefix][2]
    return render_record([(f"{n} ({fl})", fmt_value(g(obj, state))) for n, fl, _d, g in fields])


def param_get(state: dict[str, Any], prefix: str, params: dict[str, str]) -> str:
    obj = find(state, prefix, params["uuid"])
    fields = CLASSES[prefix][2]
    name = params["param-name"]
    entry = next((fd for fd in fields if fd[0] == name), None)
    if entry is None:
        raise cli_error(f"Unknown field '{name}'")  # (double's choice)
    value = entry[3](obj, state)
    if "param-key" in params:
        if not isinstance(value, dict) or params["param-key"] not in value:
            raise cli_error(f"Key {params['param-key']} not found in map")
        return f"{value[params['param-key']]}\n"
    return fmt_value(value) + "\n"


# -- parsing (section 1) -------------------------------------------------------------------------------


def parse_size(text: str, generation: str) -> int:
    """Both generations of xapi's size parser, with their exact error texts."""
    if generation == "new":
        match = re.fullmatch(r"(\d+)(b|bytes|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?", text, re.IGNORECASE)
        if match is None:
            raise cli_error(
                "Failed to parse field 'virtual-size': expecting an integer (possibly with suffix "
                f"KiB, MiB, GiB, TiB), got '{text}'"
            )
        unit = (match.group(2) or "b").lower()[0]
        return int(match.group(1)) * {"b": 1, "k": 1024, "m": MiB, "g": GiB, "t": 1024 * GiB}[unit]
    digits = re.match(r"\d*", text).group()  # type: ignore[union-attr]
    suffix = text[len(digits) :]
    multipliers = {"": 1, "bytes": 1, "KiB": 1024, "MiB": MiB, "GiB": GiB, "TiB": 1024 * GiB}
    if suffix not in multipliers or not digits:
        raise cli_error(f"Failed to parse field 'virtual-size': Unknown suffix: '{suffix}' (try KiB, MiB, GiB or TiB)")
    return int(digits) * multipliers[suffix]


def parse_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "t", "yes", "y", "1"):
        return True
    if lowered in ("false", "f", "no", "n", "0"):
        return False
    raise cli_error(f"Failed to parse parameter '{name}': expecting 'true' or 'false'")


def parse_args(args: list[str]) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """Split argv into command, parameters and client-side options (section 1 "Syntax and output")."""
    args = [a[:-1] if a.endswith("\r") else a for a in args]
    client: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in CLIENT_SWITCHES_WITH_VALUE and i + 1 < len(args):
            client[arg] = args[i + 1]
            i += 2
            continue
        if arg not in CLIENT_SWITCHES:
            rest.append(arg)
        i += 1
    if not rest:
        return None, {}, client
    command, params = rest[0], {}
    for arg in rest[1:]:
        if arg.startswith("--"):
            params[arg[2:]] = "true"
        else:
            k, _, v = arg.partition("=")
            params[k] = v
    for k in CLIENT_KEYS:
        if k in params:
            client[k] = params.pop(k)
    return command, params, client


# -- commands (section 3) ------------------------------------------------------------------------------


def personality(state: dict[str, Any]) -> dict[str, Any]:
    return PERSONALITIES[state["personality"]]


def command_table(state: dict[str, Any]) -> dict[str, tuple[list[str], list[str], str]]:
    """name -> (reqd, optn, description), per personality, as xapi's cli_frontend declares them."""
    p = personality(state)
    create_reqd = ["sr-uuid", "name-label", "type", "virtual-size"] if p["type_required"] else [
        "sr-uuid", "name-label", "virtual-size"]
    create_optn = (["sharable", "read-only", "other-config:", "xenstore-data:", "sm-config:", "tags:"]
                   + ([] if p["type_required"] else ["type"]))
    table: dict[str, tuple[list[str], list[str], str]] = {
        "help": ([], [], "Display help on a command."),
        "host-list": ([], ["params"], "List hosts."),
        "pool-list": ([], ["params"], "List pools."),
        "sr-list": ([], ["params"], "List SRs."),
        "vdi-list": ([], ["params"], "List VDIs."),
        "sm-list": ([], ["params"], "List SMs."),
        "sr-scan": (["uuid"], [], "Force an SR scan, syncing database with VDIs present in underlying storage."),
        "vdi-create": (create_reqd, create_optn, "Create a VDI. Specify the size in bytes or with a suffix."),
        # XenServer 6.2's vdi-import declares no optional parameters: format= and progress= are ignored
        "vdi-import": (["uuid", "filename"], ["format", "progress"] if p["import_formats"] else [],
                       "Import a raw VDI."),
        "vdi-destroy": (["uuid"], [], "Destroy a VDI."),
        "vdi-param-set": (["uuid"], ["name-label", "name-description", "other-config:"], "Set parameters for a VDI."),
    }
    if p["export_formats"]:
        table["vdi-export"] = (["uuid", "filename"], ["format", "base", "progress"], "Export a VDI.")
    for prefix in CLASSES:
        table[f"{prefix}-param-get"] = (["uuid", "param-name"], ["param-key"], f"Get parameters for a {prefix}.")
        table[f"{prefix}-param-list"] = (["uuid"], [], f"List parameters for a {prefix}.")
    return table


def help_command(state: dict[str, Any], params: dict[str, str]) -> str:
    table = command_table(state)
    wanted = [k for k in params if k not in ("minimal", "all")]
    if not wanted:
        names = sorted(table)
        return ("Usage: xe <command> [-s server] [-pw passwd] [-p port] [-u user] [-pwf password-file]\n"
                "  [command specific arguments]\n\nTo get help on a specific command: xe help <command>\n\n"
                "Common command list\n-------------------\n    " + ", ".join(names) + "\n")
    out = []
    for name in wanted:
        if name not in table:
            out.append(f"Unknown command '{name}'\n")
            continue
        reqd, optn, desc = table[name]
        out.append(render_record([("command name        ", name), ("reqd params     ", ", ".join(reqd)),
                                  ("optional params ", ", ".join(optn)), ("description     ", desc)]))
    return "".join(out)


def sr_dir(state: dict[str, Any], state_dir: str, sr: dict[str, Any]) -> str:
    if sr["type"] in FILE_SR_TYPES:
        return os.path.join(state["sr_mount"], sr["uuid"])
    return os.path.join(state_dir, "volumes", sr["uuid"])


def vdi_path(state: dict[str, Any], state_dir: str, vdi: dict[str, Any]) -> str:
    return os.path.join(sr_dir(state, state_dir, sr_of(vdi, state)), vdi["file"])


def used_bytes(directory: str) -> int:
    """Bytes the SR's files really occupy (staged raw images included: they share the filesystem)."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def refresh_utilisation(state: dict[str, Any], state_dir: str, sr: dict[str, Any]) -> None:
    """File SR values refresh on VDI create/delete and sr-scan only (section 3)."""
    if sr["type"] != "iso":
        sr["physical-utilisation"] = used_bytes(sr_dir(state, state_dir, sr))


RUNNING_TOOLS: list[subprocess.Popen[str]] = []


KILLING_SIGNALS = {signal.SIGTERM, signal.SIGHUP}


def run_tool(argv: list[str]) -> None:
    """Run a helper (qemu-img) that dies with this process, see :func:`die_with_children`.

    The killing signals are held back from the fork until the helper is in RUNNING_TOOLS: one
    that came in between would end this process and leave an orphan still writing the VDI."""
    signal.pthread_sigmask(signal.SIG_BLOCK, KILLING_SIGNALS)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, KILLING_SIGNALS))
        RUNNING_TOOLS.append(proc)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, KILLING_SIGNALS)
    with proc:
        _out, err = proc.communicate()
        RUNNING_TOOLS.remove(proc)
    if proc.returncode != 0:
        raise XeFailure(f"Error: xe test double: {argv[0]} failed: {err.strip()}")


def die_with_children(signum: int, _frame: object) -> None:
    """The real xe client streams an import to xapi over HTTP: when the client is killed, the
    connection closes and xapi abandons the import. The double does the work itself, so killing it
    must stop that work too, or a second import of the same VDI would meet a writer nobody runs."""
    for proc in RUNNING_TOOLS:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
            proc.wait()
    os._exit(128 + signum)


def vdi_create(state: dict[str, Any], state_dir: str, params: dict[str, str]) -> str:
    sr = find(state, "sr", params["sr-uuid"])  # the SR is looked up before the size is parsed
    size = parse_size(params["virtual-size"], state["size_parser"])
    vdi_type = params.get("type", "user")
    if vdi_type not in ("system", "user", "suspend", "crashdump"):
        raise cli_error(f"Unknown vdi type: {vdi_type}")
    sharable = parse_bool("sharable", params["sharable"]) if "sharable" in params else False
    sm_config = {k.split(":", 1)[1]: v for k, v in params.items() if k.startswith("sm-config:")}
    if sr["type"] == "iso":
        raise api_error("SR_OPERATION_NOT_SUPPORTED", f"OpaqueRef:{sr['uuid']}")  # (double's choice)
    size = max(VHD_BLOCK, math.ceil(size / VHD_BLOCK) * VHD_BLOCK)
    uuid = new_uuid()
    if sm_config.get("type") == "raw":
        filename = f"{uuid}.raw"
    elif size > MAX_VHD_SIZE:
        if not personality(state)["large_qcow2"]:
            raise api_error("SR_BACKEND_FAILURE_79", "",
                            "VDI Invalid size [opterr=VDI size must be between 1 MB and 2088960 MB]", "")
        filename = f"{uuid}.qcow2"
    else:
        filename = f"{uuid}.vhd"
    directory = sr_dir(state, state_dir, sr)
    path = os.path.join(directory, filename)
    if filename.endswith(".raw"):
        with open(path, "wb") as out:
            out.truncate(size)
    elif filename.endswith(".qcow2"):
        run_tool(["qemu-img", "create", "-q", "-f", "qcow2", path, str(size)])
    else:
        run_tool(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", path, str(size)])
    vdi = {"uuid": uuid, "name-label": params["name-label"], "name-description": "", "sr": sr["uuid"],
           "virtual-size": size, "type": vdi_type, "sharable": sharable, "read-only": False,
           "other-config": {}, "sm-config": sm_config, "file": filename,
           "physical-utilisation": os.path.getsize(path)}
    state["vdis"].append(vdi)
    refresh_utilisation(state, state_dir, sr)
    return uuid + "\n"


def image_format(path: str) -> str:
    return {".vhd": "vpc", ".qcow2": "qcow2", ".raw": "raw"}[os.path.splitext(path)[1]]


def copy_range(src: str, src_fmt: str, dst: str, dst_fmt: str, offset: int, length: int) -> None:
    """Write [offset, offset+length) of src's guest data into the same range of dst, zeros included."""
    def opts(path: str, fmt: str) -> str:
        if fmt == "raw":
            inner = f"file.driver=file,file.filename={path}"
        else:
            inner = f"file.driver={fmt},file.file.filename={path}"
        return f"driver=raw,offset={offset},size={length},{inner}"

    run_tool(["qemu-img", "convert", "-n", "-S", "0", "--image-opts", opts(src, src_fmt),
              "--target-image-opts", opts(dst, dst_fmt)])


def allocated_extents(path: str, fmt: str) -> list[tuple[int, int]]:
    """The source's allocated (data) ranges, merged, as ``qemu-img map`` reports them."""
    proc = subprocess.run(["qemu-img", "map", "--output=json", "-f", fmt, path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise vdi_io_error()
    extents: list[tuple[int, int]] = []
    for item in json.loads(proc.stdout):
        if not item.get("data"):
            continue
        if extents and extents[-1][0] + extents[-1][1] == item["start"]:
            extents[-1] = (extents[-1][0], extents[-1][1] + item["length"])
        else:
            extents.append((item["start"], item["length"]))
    return extents


def fit_extents(extents: list[tuple[int, int]], limit: int, dst_fmt: str, free: int) -> list[tuple[int, int]]:
    """The leading part of ``extents`` that lies below ``limit`` (the VDI's size) and fits into ``free``
    bytes of the SR, block by block: a VHD pays 2 MiB + its bitmap for each block it touches."""
    fitted: list[tuple[int, int]] = []
    budget, last_block = free, -1
    for start, length in extents:
        end = min(start + length, limit)
        pos = start
        while pos < end:
            block = pos // VHD_BLOCK
            piece_end = min(end, (block + 1) * VHD_BLOCK)
            cost = piece_end - pos if dst_fmt == "raw" else (VHD_BLOCK_COST if block != last_block else 0)
            if cost > budget:
                return fitted
            budget, last_block = budget - cost, block
            if fitted and sum(fitted[-1]) == pos:
                fitted[-1] = (fitted[-1][0], piece_end - fitted[-1][0])
            else:
                fitted.append((pos, piece_end - pos))
            pos = piece_end
    return fitted


def progress_frame(percent: int) -> str:
    filled = percent * 40 // 100
    return f"\r[-] {'#' * filled}>{' ' * (40 - filled)} ({percent:3d}% ETA 00:00:00) "


def vdi_import(state_dir: str, params: dict[str, str]) -> str:
    with locked(state_dir) as state:
        vdi = find(state, "vdi", params["uuid"])
        target = vdi_path(state, state_dir, vdi)
        sr = sr_of(vdi, state)
        free = sr["physical-size"] - used_bytes(sr_dir(state, state_dir, sr))
        p = personality(state)
    source = os.path.join(os.getcwd(), params["filename"])
    if not os.path.isfile(source):
        raise XeFailure(f"Operation failed. Error: file '{params['filename']}' does not exist")
    fmt = "raw"
    show_progress = False
    if p["import_formats"] is not None:  # XenServer <= 6.2 silently ignores format= and progress=
        fmt = params.get("format", "raw")
        show_progress = "progress" in params
        if fmt not in p["import_formats"]:
            raise XeFailure(f"{INTERNAL_ERROR}\nmessage: Unknown format {fmt}")
        if fmt == "tar":
            raise XeFailure("Error: xe test double: format=tar is not implemented")
    if show_progress:
        sys.stderr.write(progress_frame(0))
        sys.stderr.flush()
    started = time.monotonic()
    complete = import_data(source, fmt, target, vdi["virtual-size"], free)
    with locked(state_dir) as state:
        for current in state["vdis"]:
            if current["uuid"] == vdi["uuid"]:
                current["physical-utilisation"] = os.path.getsize(target)
    if not complete:
        raise vdi_io_error()
    if show_progress:
        elapsed = int(time.monotonic() - started)
        total = f"{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        sys.stderr.write(progress_frame(100) + f"\nTotal time: {total}\n")
    return ""  # silent on success


def import_data(source: str, fmt: str, target: str, vdi_size: int, free: int) -> bool:
    """Copy what fits; return whether everything did (else the caller reports VDI_IO_ERROR after the
    partial write, as the real import does)."""
    dst_fmt = image_format(target)
    if fmt == "raw":  # raw data is written in full, zeros included: every block gets allocated
        total = os.path.getsize(source)
        extents = [(0, total)] if total else []
        src_fmt = "raw"
    else:  # vhd, qcow2: only the source's allocated blocks are written
        src_fmt = "vpc" if fmt == "vhd" else fmt
        info = subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", src_fmt, source], capture_output=True, text=True
        )
        if info.returncode != 0:
            raise vdi_io_error()
        total = json.loads(info.stdout)["virtual-size"]
        extents = allocated_extents(source, src_fmt)
    fitting = fit_extents(extents, vdi_size, dst_fmt, free)
    for start, length in fitting:
        if src_fmt == "raw" and (start, length) == (0, total):
            copy_whole_raw(source, target, dst_fmt)
        else:
            copy_range(source, src_fmt, target, dst_fmt, start, length)
    return total <= vdi_size and fitting == extents


def copy_whole_raw(source: str, target: str, dst_fmt: str) -> None:
    """A raw file of any length (not only 512-byte multiples) into the VDI."""
    if dst_fmt == "raw":
        with open(source, "rb") as src, open(target, "r+b") as dst:
            shutil.copyfileobj(src, dst, 4 * MiB)
        return
    run_tool(["qemu-img", "convert", "-n", "-S", "0", "-f", "raw", "-O", dst_fmt, source, target])


def vdi_export(state_dir: str, params: dict[str, str]) -> str:
    with locked(state_dir) as state:
        vdi = find(state, "vdi", params["uuid"])
        source = vdi_path(state, state_dir, vdi)
        formats = personality(state)["export_formats"]
    fmt = params.get("format", "raw")
    if fmt not in formats or fmt in ("tar", "qcow2"):
        raise XeFailure(f"{INTERNAL_ERROR}\nmessage: Unknown format {fmt}")
    target = os.path.join(os.getcwd(), params["filename"])
    if os.path.exists(target):
        raise XeFailure(f"Operation failed. Error: file '{params['filename']}' already exists")  # (double's choice)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    if fmt == "vhd" and source.endswith(".vhd"):
        shutil.copyfile(source, target)
    else:
        out_fmt = "raw" if fmt == "raw" else "vpc"
        run_tool(["qemu-img", "convert", "-f", image_format(source), "-O", out_fmt, source, target])
    os.chmod(target, 0o600)
    return ""


def vdi_destroy(state: dict[str, Any], state_dir: str, params: dict[str, str]) -> str:
    vdi = find(state, "vdi", params["uuid"])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(vdi_path(state, state_dir, vdi))  # file SRs unlink at once
    state["vdis"] = [v for v in state["vdis"] if v["uuid"] != vdi["uuid"]]
    refresh_utilisation(state, state_dir, sr_of(vdi, state))
    return ""


def vdi_param_set(state: dict[str, Any], params: dict[str, str]) -> str:
    vdi = find(state, "vdi", params["uuid"])
    for name, value in params.items():
        if name == "uuid":
            continue
        if name in ("name-label", "name-description"):
            vdi[name] = value
        elif name.startswith("other-config:"):
            vdi["other-config"][name.split(":", 1)[1]] = value
        elif any(fd[0] == name for fd in VDI_FIELDS):
            raise cli_error(f"Field '{name}' is read-only.")
        else:
            raise cli_error(f"Unknown field '{name}'")  # (double's choice)
    return ""


def sr_scan(state: dict[str, Any], state_dir: str, params: dict[str, str]) -> str:
    refresh_utilisation(state, state_dir, find(state, "sr", params["uuid"]))  # foreign files are ignored
    return ""


def dispatch(state_dir: str, command: str, params: dict[str, str]) -> str:
    if command == "vdi-import":
        return vdi_import(state_dir, params)
    if command == "vdi-export":
        return vdi_export(state_dir, params)
    with locked(state_dir) as state:
        if command == "help":
            return help_command(state, params)
        if command.endswith("-list") and command[:-5] in CLASSES:
            return list_command(state, command[:-5], params)
        if command.endswith("-param-get"):
            return param_get(state, command[: -len("-param-get")], params)
        if command.endswith("-param-list"):
            return param_list(state, command[: -len("-param-list")], params)
        handlers: dict[str, Callable[[], str]] = {
            "vdi-create": lambda: vdi_create(state, state_dir, params),
            "vdi-destroy": lambda: vdi_destroy(state, state_dir, params),
            "vdi-param-set": lambda: vdi_param_set(state, params),
            "sr-scan": lambda: sr_scan(state, state_dir, params),
        }
        return handlers[command]()


USAGE = """Usage: xe <command> [-s server] [-pw passwd] [-p port] [-u user] [-pwf password-file]
  [command specific arguments]

To get help on a specific command: xe help <command>
To get a full listing of commands: xe help --all
"""


def take_fault(state_dir: str, command: str) -> str | None:
    """An error injected by the tests for ``command`` (``state["faults"]``: text and how many more
    times, None for always), printed instead of running the command."""
    with locked(state_dir) as state:
        fault = state.get("faults", {}).get(command)
        if fault is None:
            return None
        if fault.get("times") is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                del state["faults"][command]
        return str(fault["text"])


def run(args: list[str]) -> tuple[int, str, str]:
    """One xe invocation: (exit status, stdout, stderr)."""
    state_dir = os.environ.get("XE_DOUBLE_STATE")
    if not state_dir:
        return 1, "", "xe test double: XE_DOUBLE_STATE is not set\n"
    log_call(state_dir, args)
    if not args or args[0] in ("-help", "--help"):
        return 0, "", USAGE
    command, params, client = parse_args(args)
    if command is None:
        return 0, "", USAGE
    if "=" in command:
        return 1, "", f"Syntax error: \n{USAGE_HINT}\n"
    with locked(state_dir) as state:
        down, password, table = state["xapi_down"], state["password"], command_table(state)
    if down:
        return 1, "", "Error: Connection refused (calling connect )\n"
    if ("-s" in client or "server" in client) and client.get("-pw", client.get("password")) != password:
        return 1, "", f"Authentication failed\n{USAGE_HINT}\n"
    if command not in table:
        return 1, "", f"Unknown command: {command}\n{USAGE_HINT}\n"
    for required in table[command][0]:
        if required not in params:
            return 1, "", f"Required parameter not found: {required}\n{USAGE_HINT}\n"
    fault = take_fault(state_dir, command)
    if fault is not None:
        return 1, "", fault + "\n"
    try:
        return 0, dispatch(state_dir, command, params), ""
    except XeFailure as failure:
        return 1, "", failure.text + "\n"


def main(args: list[str]) -> int:
    status, out, err = run(args)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    sys.stderr.flush()
    return status


def command_main(args: list[str]) -> int:
    """``xe`` as a command (tests/xenhost/bin/xe): a killed client takes its import with it."""
    signal.signal(signal.SIGTERM, die_with_children)
    signal.signal(signal.SIGHUP, die_with_children)
    return main(args)


if __name__ == "__main__":
    sys.exit(command_main(sys.argv[1:]))
