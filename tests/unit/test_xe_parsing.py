"""Parsing xe's output and errors (xe-facts.md sections 1 and 2), without a host."""

from __future__ import annotations

import pytest

from vdcmanage.errors import ExitCode
from vdcmanage.remote import errors as e
from vdcmanage.remote.ssh import CommandResult
from vdcmanage.remote.xe import (
    classify,
    parse_map,
    parse_minimal,
    parse_records,
    progress_reader,
    xe_argv,
)
from vdcmanage.remote.xecaps import HostInfo, capabilities_from, parse_help, version_tuple

VDI = "0b1c2d3e-0000-4000-8000-00000000000a"
SR = "5a6b7c8d-0000-4000-8000-00000000000b"
RECORDS = (
    f"uuid ( RO)                : {VDI}\n"
    "          name-label ( RW): Centos 6.2 x86_64\n"
    "    name-description ( RW): \n"
    f"             sr-uuid ( RO): {SR}\n"
    "        virtual-size ( RO): 10737418240\n"
    "            sharable ( RO): false\n"
    "           read-only ( RO): false\n"
    "\n\n"
    f"uuid ( RO)                : {SR}\n"
    "          name-label ( RW): second\n"
    "\n\n"
)


def test_records_with_empty_values_and_two_blank_lines() -> None:
    records = parse_records(RECORDS)
    assert records == [
        {"uuid": VDI, "name-label": "Centos 6.2 x86_64", "name-description": "", "sr-uuid": SR,
         "virtual-size": "10737418240", "sharable": "false", "read-only": "false"},
        {"uuid": SR, "name-label": "second"},
    ]
    assert parse_records("") == []


def test_records_survive_values_with_newlines() -> None:
    text = "uuid ( RO)          : u\n    name-label ( RW): line one\nline two\n\n\n"
    assert parse_records(text) == [{"uuid": "u", "name-label": "line one\nline two"}]


def test_map_and_set_fields() -> None:
    text = "uuid ( RO)                : u\n    software-version (MRO): product_version: 8.3.0; xapi: 25.27\n\n\n"
    record = parse_records(text)[0]
    assert parse_map(record["software-version"]) == {"product_version": "8.3.0", "xapi": "25.27"}
    assert parse_map("") == {}


@pytest.mark.parametrize(
    ("text", "values"),
    [("\n", []), ("", []), ("a\n", ["a"]), ("a,b\n", ["a", "b"]), ("a\\,b,c\\\\d\n", ["a,b", "c\\d"]),
     (",\n", ["", ""])],
)
def test_minimal(text: str, values: list[str]) -> None:
    assert parse_minimal(text) == values


def test_help_tables() -> None:
    text = (
        "command name            : vdi-create\n"
        "        reqd params     : sr-uuid, name-label, type, virtual-size\n"
        "        optional params : sharable, read-only, other-config:, sm-config:\n"
        "        description     : Create a VDI.\n\n\n"
        "command name            : vdi-import\n"
        "        reqd params     : uuid, filename\n"
        "        optional params : \n"
        "        description     : Import a raw VDI.\n\n\n"
        "Unknown command 'vdi-export'\n"
    )
    parsed = parse_help(text)
    assert parsed["vdi-create"]["reqd"] == ["sr-uuid", "name-label", "type", "virtual-size"]
    assert parsed["vdi-import"] == {"reqd": ["uuid", "filename"], "optn": []}
    assert "vdi-export" not in parsed
    caps = capabilities_from(text, [HostInfo("h", "x", {"product_brand": "XenServer", "product_version": "6.2.0",
                                                        "xapi": "1.3"})])
    assert caps.vdi_create_requires_type and caps.import_formats == {"raw"} and not caps.import_progress
    assert caps.export_formats == frozenset() and caps.product == "XenServer 6.2.0"


def modern_help(create_reqd: str = "sr-uuid, name-label, virtual-size") -> str:
    return (
        f"command name            : vdi-create\n        reqd params     : {create_reqd}\n"
        "        optional params : type\n        description     : x\n\n\n"
        "command name            : vdi-import\n        reqd params     : uuid, filename\n"
        "        optional params : format, progress\n        description     : x\n\n\n"
        "command name            : vdi-export\n        reqd params     : uuid, filename\n"
        "        optional params : format, base, progress\n        description     : x\n\n\n"
    )


@pytest.mark.parametrize(
    ("versions", "formats", "new_parser"),
    [
        ([{"xapi": "1.9"}], {"raw", "vhd"}, False),
        ([{"xapi": "1.249"}], {"raw", "vhd", "tar"}, False),
        ([{"xapi": "24.20", "xapi_build": "24.20.0"}], {"raw", "vhd", "tar"}, True),
        ([{"xapi": "25.27", "xapi_build": "25.27.1"}], {"raw", "vhd", "tar", "qcow2"}, True),
        ([{"xapi_build": "25.30.0"}, {"xapi": "1.249"}], {"raw", "vhd", "tar"}, False),  # the oldest host decides
        ([{}], {"raw", "vhd"}, False),  # no version: only what the help proves
    ],
)
def test_formats_follow_the_oldest_xapi(versions: list[dict[str, str]], formats: set[str], new_parser: bool) -> None:
    hosts = [HostInfo(f"h{i}", "x", v) for i, v in enumerate(versions)]
    caps = capabilities_from(modern_help(), hosts)
    assert caps.import_formats == formats and caps.case_insensitive_sizes == new_parser
    assert caps.import_progress and not caps.vdi_create_requires_type
    assert {"raw", "vhd"} <= caps.export_formats


def test_version_tuple() -> None:
    assert version_tuple("1.249.3") == (1, 249, 3)
    assert version_tuple("25.27") == (25, 27)
    assert version_tuple("24.39.1-1.xcpng8.3") == (24, 39, 1)
    assert version_tuple("") is None and version_tuple(None) is None and version_tuple("dev") is None


def failed(stderr: str, *, status: int = 1, command: str = "vdi-create") -> CommandResult:
    return CommandResult(("xe", command), status, b"", stderr.encode())


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("The uuid you supplied was invalid.\ntype: VDI\nuuid: abc\n", e.XeUuidInvalid),
        ("Required parameter not found: filename\nFor usage run: 'xe help'\n", e.XeRequiredParameter),
        ("Unknown command: vdi-export\nFor usage run: 'xe help'\n", e.XeUnknownCommand),
        ("Syntax error: \nFor usage run: 'xe help'\n", e.XeSyntaxError),
        ("Authentication failed\nFor usage run: 'xe help'\n", e.XeAuthFailed),
        ("Error: Unknown vdi type: User\n", e.XeCliError),
        ("Error: Key k not found in map\n", e.XeCliError),
        ("Error: Unknown field 'bogus'\n", e.XeUnknownField),
        ("Error: Field 'virtual-size' is read-only.\n", e.XeReadOnlyField),
        ("Error: Failed to parse field 'virtual-size': Unknown suffix: 'GB' (try KiB, MiB, GiB or TiB)\n",
         e.XeSizeParseError),
        ("Error: Failed to parse field 'virtual-size': expecting an integer (possibly with suffix KiB, MiB, GiB, "
         "TiB), got '1.5GiB'\n", e.XeSizeParseError),
        ("Error code: SOME_NEW_CODE\nError parameters: a, b\n", e.XeApiError),
        ("Error code: SR_BACKEND_FAILURE_79\nError parameters: , VDI Invalid size [opterr=VDI size must be between "
         "1 MB and 2088960 MB], \n", e.XeBackendFailure),
        ("Error code: VDI_IO_ERROR\nError parameters: Device I/O errors\n", e.XeVdiIoError),
        ("The server failed to handle your request, due to an internal error.  The given message may give details "
         "useful for debugging the problem.\nmessage: Unknown format cpio\n", e.XeInternalError),
        ("Operation failed. Error: file 'x.raw' does not exist\n", e.XeLocalFileMissing),
        ("Error: Connection refused (calling connect )\n", e.XapiUnreachable),
        ("something nobody expected\n", e.XeError),
    ],
)
def test_every_error_text_of_section_2_is_typed_and_kept(stderr: str, kind: type[Exception]) -> None:
    error = classify(failed(stderr), "host x")
    assert type(error) is kind
    if isinstance(error, e.XeError):
        assert error.xe_message == stderr.rstrip("\n")
    first = stderr.splitlines()[0].strip()
    assert first in error.message and "\n" not in error.message


def test_error_details() -> None:
    uuid = classify(failed("The uuid you supplied was invalid.\ntype: SR\nuuid: 1234\n"), "h")
    assert isinstance(uuid, e.XeUuidInvalid) and (uuid.kind, uuid.uuid) == ("SR", "1234")
    assert uuid.exit_code == ExitCode.REFUSED
    backend = classify(failed("Error code: SR_BACKEND_FAILURE_79\nError parameters: , VDI Invalid size, a, b, \n"), "h")
    assert isinstance(backend, e.XeBackendFailure)
    assert backend.number == 79 and backend.reason == "VDI Invalid size, a, b"
    io = classify(failed("Error code: VDI_IO_ERROR\nError parameters: Device I/O errors\n"), "h")
    assert isinstance(io, e.XeVdiIoError) and io.params == ["Device I/O errors"] and io.exit_code == ExitCode.FAILURE
    internal = classify(failed("The server failed to handle your request, due to an internal error.\n"
                               "message: Unknown format cpio\n"), "h")
    assert isinstance(internal, e.XeInternalError) and internal.detail == "Unknown format cpio"


def test_missing_xe_and_down_xapi_are_refusals() -> None:
    missing = classify(CommandResult(("xe", "help"), 127, b"", b"bash: line 1: xe: command not found\n"), "host x")
    assert isinstance(missing, e.XeMissing) and missing.exit_code == ExitCode.REFUSED
    down = classify(failed("Error: Connection refused (calling connect )\n"), "host x")
    assert down.exit_code == ExitCode.REFUSED


def test_argv_is_key_value_elements() -> None:
    assert xe_argv("vdi-create", {"name-label": "a b=c", "virtual-size": 1024, "sharable": False},
                   ["minimal"], ["word"]) == [
        "xe", "vdi-create", "word", "name-label=a b=c", "virtual-size=1024", "sharable=false", "--minimal"]
    for bad in ("", "-s", "a=b", "a b"):
        with pytest.raises(ValueError):
            xe_argv("vdi-list", {bad: "x"})


def test_progress_frames() -> None:
    seen: list[int] = []
    feed = progress_reader(seen.append)
    feed(b"\r[-] >          (  0% ETA 00:00:00) \r[-] ###>  ( 50% ETA 00:00:12) ")
    feed(b"\r[-] ###>  ( 50% ETA 00:00:11) \r[-] #####> (100% ETA 00:00:00) \nTotal time: 00:00:03\n")
    assert seen == [0, 50, 100]
