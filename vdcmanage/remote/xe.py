"""Typed ``xe`` calls over an SSH :class:`~vdcmanage.remote.ssh.Connection`.

Every call is an argv list (``xe``, the command, ``key=value`` strings) that the connection quotes
element by element, so a name-label such as ``$(id)`` or ``x"; touch /tmp/pwned; echo "`` reaches
xe as one literal argument. xe itself has no quoting layer: it splits each argument at the first
``=``, so any value is safe as long as it is one argv element (xe-facts.md, section 1).

Output: record output (``*-list``: ``key ( RO): value`` lines, two blank lines after each record) and
``--minimal`` output (one line, comma-separated, ``\\,`` and ``\\\\`` escaped) are both parsed here.
Errors: xe's texts (xe-facts.md, section 2) become :mod:`vdcmanage.remote.errors` classes that keep
the text. Sizes are always sent as plain decimal bytes, which every xe generation accepts.

Versions differ (xe-facts.md, section 5), so :meth:`Xe.capabilities` asks the host once per
connection instead of guessing; see :func:`probe_capabilities` and :mod:`vdcmanage.remote.xecaps`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vdcmanage.remote.errors import (
    XapiUnreachable,
    XeApiError,
    XeAuthFailed,
    XeBackendFailure,
    XeCliError,
    XeError,
    XeInternalError,
    XeLocalFileMissing,
    XeMissing,
    XeReadOnlyField,
    XeRequiredParameter,
    XeSizeParseError,
    XeSyntaxError,
    XeUnknownCommand,
    XeUnknownField,
    XeUnsupported,
    XeUuidInvalid,
    XeVdiIoError,
)
from vdcmanage.remote.ssh import CommandResult, Connection
from vdcmanage.remote.xecaps import HostInfo, XeCapabilities, capabilities_from

XE = "xe"
XE_TIMEOUT_S = 120.0  # a busy pool master can take a while; imports get their own, longer timeout
IMPORT_TIMEOUT_S = 6 * 3600.0
SR_MOUNT_ROOT = "/var/run/sr-mount"
FILE_SR_TYPES = ("ext", "nfs")  # SRs whose VDIs are <uuid>.vhd files under SR_MOUNT_ROOT/<sr-uuid>
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FIELD_LINE = re.compile(r"^ *(?P<name>\S(?:.*?\S)?) \((?P<flags>[ SM]R[OW])\) *: (?P<value>.*)$")
PROGRESS_RE = re.compile(rb"\(\s*(\d{1,3})%")
# What xe prints when its toolstack is down (the xe client cannot reach xapi's socket).
XAPI_DOWN_MARKERS = ("Connection refused (calling connect", "Lost connection to the server")

Record = dict[str, str]


# -- output parsing ----------------------------------------------------------------------------------


def parse_records(text: str) -> list[Record]:
    """Records printed by ``*-list`` / ``*-param-list`` as dicts ``{field name: printed value}``.

    A record ends at two blank lines followed by a field line (or the end). Lines that are not field
    lines continue the previous value: a name-label with a newline in it does not break the parse.
    """
    records: list[Record] = []
    current: Record | None = None
    last_key: str | None = None
    blanks = 0
    for line in text.split("\n"):
        match = FIELD_LINE.match(line)
        if match and (current is None or blanks == 0 or blanks >= 2):
            if current is None or blanks >= 2:
                current = {}
                records.append(current)
            last_key = match["name"]
            current[last_key] = match["value"]
            blanks = 0
            continue
        if line == "":
            blanks += 1
            continue
        if current is not None and last_key is not None:  # a value that spans lines
            current[last_key] += "\n" * (blanks + 1) + line
        blanks = 0
    return records


def parse_minimal(text: str) -> list[str]:
    """``--minimal`` output: one line of comma-separated values (``\\,`` and ``\\\\`` escaped); empty: []."""
    line = text[:-1] if text.endswith("\n") else text
    if line == "":
        return []
    values, current, escaped = [], [], False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def parse_map(value: str) -> dict[str, str]:
    """A map field (``k: v; k2: v2``) as a dict. Values containing "; " cannot be told apart; xe's fault."""
    result: dict[str, str] = {}
    for item in value.split("; ") if value else []:
        key, _, val = item.partition(": ")
        result[key] = val
    return result


def parse_set(value: str) -> list[str]:
    return value.split("; ") if value else []


def parse_bool(value: str) -> bool:
    return value.strip().lower() in ("true", "t", "yes", "y", "1")


def parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else None


# -- errors ------------------------------------------------------------------------------------------


def xe_text(result: CommandResult) -> str:
    return (result.stderr_text.strip("\n") or result.stdout_text.strip("\n")).replace("\r", "")


def classify(result: CommandResult, where: str) -> XeError | XeMissing | XapiUnreachable:
    """The typed exception for a failed xe run; its message names the command and keeps xe's words."""
    text = xe_text(result)
    lines = text.split("\n")
    first = lines[0] if lines else ""
    command = result.argv[1] if len(result.argv) > 1 else ""
    summary = " / ".join(line for line in lines if line.strip() and not line.startswith("For usage run"))
    message = f"xe {command} failed on {where}: {summary or f'exit status {result.exit_status}'}"
    if result.exit_status == 127 and ("not found" in text or not text):
        return XeMissing(
            f"xe is not installed on {where} (the login shell found no 'xe' command): is it a XenServer/XCP-ng "
            f"host, and is {result.argv[0]} on root's PATH?"
        )
    if any(marker in text for marker in XAPI_DOWN_MARKERS):
        return XapiUnreachable(f"xe runs on {where} but xapi does not answer ({first}); is the toolstack running?")
    if first.startswith("The uuid you supplied was invalid."):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return XeUuidInvalid(message, result, text, fields.get("type", ""), fields.get("uuid", ""))
    if first.startswith("Required parameter not found: "):
        return XeRequiredParameter(message, result, text, first.split(": ", 1)[1])
    if first.startswith("Unknown command: "):
        return XeUnknownCommand(message, result, text, first.split(": ", 1)[1])
    if first.startswith("Syntax error"):
        return XeSyntaxError(message, result, text)
    if first.startswith("Authentication failed"):
        return XeAuthFailed(message, result, text)
    if first.startswith("Error code: "):
        return api_error(message, result, text, lines)
    if first.startswith("The server failed to handle your request, due to an internal error."):
        detail = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("message:")), "")
        return XeInternalError(message, result, text, detail)
    if first.startswith("Operation failed. Error: file ") and first.endswith("does not exist"):
        return XeLocalFileMissing(message, result, text)
    if first.startswith("Error: "):
        return cli_error(message, result, text, first)
    return XeError(message, result, text)


def api_error(message: str, result: CommandResult, text: str, lines: Sequence[str]) -> XeApiError:
    code = lines[0].split(": ", 1)[1].strip()
    raw = next((line.split(":", 1)[1] for line in lines[1:] if line.startswith("Error parameters:")), "")
    params = [p.strip() for p in raw[1:].split(", ")] if raw.startswith(" ") else [raw]
    if code.startswith("SR_BACKEND_FAILURE"):
        # "Error parameters: , <reason>, " -- the reason may itself contain ", ": keep it whole
        reason = raw.strip()
        reason = reason[1:] if reason.startswith(",") else reason
        reason = reason[:-1] if reason.endswith(",") else reason
        return XeBackendFailure(message, result, text, code, ["", reason.strip(), ""])
    if code == "VDI_IO_ERROR":
        return XeVdiIoError(message, result, text, code, params)
    return XeApiError(message, result, text, code, params)


def cli_error(message: str, result: CommandResult, text: str, first: str) -> XeCliError:
    detail = first[len("Error: ") :]
    unknown = re.fullmatch(r"Unknown field '(.*)'", detail)
    if unknown:
        return XeUnknownField(message, result, text, unknown.group(1))
    if detail.startswith("Failed to parse field 'virtual-size'"):
        return XeSizeParseError(message, result, text)
    if re.fullmatch(r"Field '.*' is read-only\.", detail):
        return XeReadOnlyField(message, result, text)
    return XeCliError(message, result, text)


# -- the typed calls ------------------------------------------------------------------------------------

Param = str | int | bool


def render(value: Param) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def xe_argv(
    command: str, params: Mapping[str, Param] = {}, flags: Iterable[str] = (), words: Iterable[str] = ()
) -> list[str]:
    """``xe <command> [words] key=value... --flag...``; each is one argv element, quoted by the connection."""
    argv = [XE, command, *words]
    for key, value in params.items():
        if not re.fullmatch(r"[A-Za-z0-9][^=\s]*", key):
            raise ValueError(f"not an xe parameter name: {key!r}")
        argv.append(f"{key}={render(value)}")
    argv.extend(f"--{flag}" for flag in flags)
    return argv


@dataclass
class SrInfo:
    uuid: str
    name_label: str
    type: str
    content_type: str
    physical_size: int | None
    physical_utilisation: int | None
    shared: bool
    file_based: bool = field(init=False)

    def __post_init__(self) -> None:
        self.file_based = self.type in FILE_SR_TYPES

    @property
    def free(self) -> int | None:
        if self.physical_size is None or self.physical_utilisation is None:
            return None
        return max(0, self.physical_size - self.physical_utilisation)

    @property
    def mount_path(self) -> str | None:
        return f"{SR_MOUNT_ROOT}/{self.uuid}" if self.file_based else None


class Xe:
    """``xe`` on one host, through one connection."""

    def __init__(self, connection: Connection, *, timeout: float = XE_TIMEOUT_S) -> None:
        self.connection = connection
        self.timeout = timeout

    def call(
        self,
        command: str,
        params: Mapping[str, Param] = {},
        *,
        flags: Iterable[str] = (),
        words: Iterable[str] = (),
        timeout: float | None = None,
        cwd: str | None = None,
        on_stderr: Callable[[bytes], None] | None = None,
        on_poll: Callable[[], None] | None = None,
    ) -> str:
        """Run ``xe <command> key=value... --flag...`` and return its stdout; raise the typed error on failure.

        With ``on_poll`` the call can be abandoned (whatever on_poll raises), killing the remote xe.
        """
        argv = xe_argv(command, params, flags, words)
        result = self.connection.run(
            argv, check=False, timeout=timeout or self.timeout, cwd=cwd, on_stderr=on_stderr, on_poll=on_poll
        )
        if result.exit_status != 0:
            raise classify(result, self.connection.where)
        return result.stdout_text

    # -- probing -----------------------------------------------------------------------------------

    def capabilities(self) -> XeCapabilities:
        """What this host's xe accepts; asked once per connection (two xe calls), then remembered."""
        cached = self.connection.memo.get("xe.capabilities")
        if isinstance(cached, XeCapabilities):
            return cached
        caps = probe_capabilities(self)
        self.connection.memo["xe.capabilities"] = caps
        return caps

    # -- listing -----------------------------------------------------------------------------------

    def list_records(
        self, command: str, *, params: Sequence[str] | None = None, filters: Mapping[str, str] = {}
    ) -> list[Record]:
        query: dict[str, Param] = dict(filters)
        if params is not None:
            query["params"] = ",".join(params)
        return parse_records(self.call(command, query))

    def list_minimal(self, command: str, *, params: str | None = None, filters: Mapping[str, str] = {}) -> list[str]:
        query: dict[str, Param] = dict(filters)
        if params is not None:
            query["params"] = params
        return parse_minimal(self.call(command, query, flags=["minimal"]))

    def host_list(self, params: Sequence[str] | None = None, filters: Mapping[str, str] = {}) -> list[Record]:
        return self.list_records("host-list", params=params, filters=filters)

    def pool_list(self, params: Sequence[str] | None = None) -> list[Record]:
        return self.list_records("pool-list", params=params)

    def sr_list(self, params: Sequence[str] | None = None, filters: Mapping[str, str] = {}) -> list[Record]:
        return self.list_records("sr-list", params=params, filters=filters)

    def vdi_list(self, params: Sequence[str] | None = None, filters: Mapping[str, str] = {}) -> list[Record]:
        return self.list_records("vdi-list", params=params, filters=filters)

    def srs(self) -> list[SrInfo]:
        fields = ["uuid", "name-label", "type", "content-type", "physical-size", "physical-utilisation", "shared"]
        return [sr_info(r) for r in self.sr_list(params=fields)]

    def default_sr(self) -> str | None:
        """The pool's default SR uuid, if one is set (xe prints ``<not in database>`` otherwise)."""
        values = self.list_minimal("pool-list", params="default-SR")
        return next((v for v in values if UUID_RE.fullmatch(v)), None)

    # -- param-get/-set ------------------------------------------------------------------------------

    def param_get(self, kind: str, uuid: str, name: str, key: str | None = None) -> str:
        params: dict[str, Param] = {"uuid": uuid, "param-name": name}
        if key is not None:
            params["param-key"] = key
        out = self.call(f"{kind}-param-get", params)
        return out[:-1] if out.endswith("\n") else out

    def sr_param_get(self, uuid: str, name: str, key: str | None = None) -> str:
        return self.param_get("sr", uuid, name, key)

    def vdi_param_get(self, uuid: str, name: str, key: str | None = None) -> str:
        return self.param_get("vdi", uuid, name, key)

    def vdi_param_set(self, uuid: str, values: Mapping[str, Param]) -> None:
        self.call("vdi-param-set", {"uuid": uuid, **values})

    def sr_scan(self, uuid: str) -> None:
        self.call("sr-scan", {"uuid": uuid})

    # -- VDIs ----------------------------------------------------------------------------------------

    def vdi_create(
        self,
        sr_uuid: str,
        name_label: str,
        virtual_size: int,
        *,
        vdi_type: str = "user",
        sharable: bool | None = None,
        sm_config: Mapping[str, str] | None = None,
    ) -> str:
        """Create a VDI and return its uuid. ``type`` is always sent: 6.x requires it, later ones accept it.

        The size goes as plain bytes (both size parsers accept that); the SR rounds it up (2 MiB on
        VHD file SRs). xe ignores name-description at create: set it with :meth:`vdi_param_set`.
        """
        if isinstance(virtual_size, bool) or not isinstance(virtual_size, int) or virtual_size <= 0:
            raise ValueError(f"virtual_size must be a positive number of bytes, not {virtual_size!r}")
        params: dict[str, Param] = {
            "sr-uuid": sr_uuid,
            "name-label": name_label,
            "virtual-size": virtual_size,
            "type": vdi_type,
        }
        if sharable is not None:
            params["sharable"] = sharable
        for key, value in (sm_config or {}).items():
            params[f"sm-config:{key}"] = value
        out = self.call("vdi-create", params).strip()
        if not UUID_RE.fullmatch(out):
            raise XeError(
                f"xe vdi-create on {self.connection.where} printed {out[:200]!r} instead of a VDI uuid",
                CommandResult(tuple(xe_argv("vdi-create", params)), 0, out.encode(), b""),
                out,
            )
        return out

    def vdi_import(
        self,
        uuid: str,
        filename: str,
        *,
        fmt: str = "raw",
        cwd: str | None = None,
        progress: Callable[[int], None] | None = None,
        timeout: float = IMPORT_TIMEOUT_S,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        """Import ``filename`` (on the host; relative to ``cwd``) into VDI ``uuid``.

        A format the host would not honour is refused before anything runs (XeUnsupported): on
        XenServer 6.2 ``format=vhd`` is silently ignored and the VHD's bytes would become the disk.
        ``progress`` gets percentages where the host supports ``--progress``.
        """
        caps = self.capabilities()
        if fmt not in caps.import_formats:
            raise XeUnsupported(
                f"{self.connection.where} ({caps.product}) cannot import format={fmt}: its xe vdi-import "
                f"honours {', '.join(sorted(caps.import_formats))} only"
            )
        params: dict[str, Param] = {"uuid": uuid, "filename": filename}
        if "vhd" in caps.import_formats:  # format= is understood: say what the data is
            params["format"] = fmt
        flags = ["progress"] if progress is not None and caps.import_progress else []
        on_stderr = progress_reader(progress) if flags else None
        self.call("vdi-import", params, flags=flags, timeout=timeout, cwd=cwd, on_stderr=on_stderr, on_poll=on_poll)

    def vdi_export(self, uuid: str, filename: str, *, fmt: str = "raw", cwd: str | None = None,
                   timeout: float = IMPORT_TIMEOUT_S) -> None:
        caps = self.capabilities()
        if fmt not in caps.export_formats:
            available = ", ".join(sorted(caps.export_formats)) or "nothing (no vdi-export)"
            raise XeUnsupported(f"{self.connection.where} ({caps.product}) cannot export format={fmt}: {available}")
        params: dict[str, Param] = {"uuid": uuid, "filename": filename}
        if fmt != "raw":
            params["format"] = fmt
        self.call("vdi-export", params, timeout=timeout, cwd=cwd)

    def vdi_destroy(self, uuid: str) -> None:
        self.call("vdi-destroy", {"uuid": uuid})


def progress_reader(callback: Callable[[int], None] | None) -> Callable[[bytes], None]:
    """Turn xe's ``\\r[###>   ]( 50% ETA ...)`` stderr frames into percentages for ``callback``."""
    last = -1

    def feed(chunk: bytes) -> None:
        nonlocal last
        for match in PROGRESS_RE.finditer(chunk):
            percent = min(100, int(match.group(1)))
            if percent != last and callback is not None:
                last = percent
                callback(percent)

    return feed


def sr_info(record: Record) -> SrInfo:
    return SrInfo(
        uuid=record.get("uuid", ""),
        name_label=record.get("name-label", ""),
        type=record.get("type", ""),
        content_type=record.get("content-type", ""),
        physical_size=parse_int(record.get("physical-size")),
        physical_utilisation=parse_int(record.get("physical-utilisation")),
        shared=parse_bool(record.get("shared", "false")),
    )


def probe_capabilities(xe: Xe) -> XeCapabilities:
    """Ask the host what its xe accepts: two calls, no guessing.

    1. ``xe help vdi-create vdi-import vdi-export``: xapi prints each command's required and optional
       parameters from its own command table, so this reads the capability directly (e.g. 6.2's
       vdi-import has no ``format``; 6.x's vdi-create requires ``type``). An unknown command prints
       ``Unknown command '<name>'`` in place of its table.
    2. ``xe host-list params=uuid,name-label,software-version``: brand, product and xapi version of
       every host of the pool, for the formats added by later xapi versions and for display.
    """
    help_text = xe.call("help", words=["vdi-create", "vdi-import", "vdi-export"])
    hosts = [
        HostInfo(r.get("uuid", ""), r.get("name-label", ""), parse_map(r.get("software-version", "")))
        for r in xe.host_list(params=["uuid", "name-label", "software-version"])
    ]
    return capabilities_from(help_text, hosts)
