"""What a host's ``xe`` accepts, read from the host itself: ``xe help`` and the hosts' software versions.

:func:`vdcmanage.remote.xe.probe_capabilities` makes the two calls; this module decides from their
output (xe-facts.md, section 5), and says which ``vdi-import`` path an import takes and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def parse_help(text: str) -> dict[str, dict[str, list[str]]]:
    """``xe help <cmd> ...`` output: for each command, its ``reqd`` and ``optn`` parameter names.

    xapi prints each command as a table (cli_frontend.ml, rio_help)::

        command name            : vdi-import
                reqd params     : uuid, filename
                optional params : format, progress
                description     : Import a raw VDI.
    """
    commands: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "command name":
            current = commands.setdefault(value, {"reqd": [], "optn": []})
        elif current is not None and key in ("reqd params", "optional params"):
            names = [v.strip() for v in value.split(",") if v.strip()]
            current["reqd" if key == "reqd params" else "optn"] = names
    return commands


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``"1.249.3"`` -> (1, 249, 3); None if it does not start with a number."""
    if not text:
        return None
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts) or None


@dataclass(frozen=True)
class HostInfo:
    uuid: str
    name_label: str
    software_version: dict[str, str]


@dataclass(frozen=True)
class XeCapabilities:
    """What the host's xe accepts, as read from the host itself (see :func:`probe_capabilities`)."""

    hosts: tuple[HostInfo, ...]
    product: str  # "XenServer 6.2.0", "XCP-ng 8.3.0"; "unknown" if software-version says nothing
    xapi_version: tuple[int, ...] | None
    vdi_create_requires_type: bool
    import_formats: frozenset[str]  # formats vdi-import honours; {"raw"} where format= is silently ignored
    import_progress: bool  # vdi-import takes --progress
    export_formats: frozenset[str]  # empty: no vdi-export (XenServer 6.2)
    case_insensitive_sizes: bool  # xapi >= 24.20's size parser (informational: we send plain bytes)
    import_path_note: str | None = None  # the release implies another vdi-import than xe help shows

    @property
    def upload_format(self) -> str:
        """VHD where vdi-import honours it (6.5 and later): only the image's data travels; raw otherwise."""
        return "vhd" if "vhd" in self.import_formats else "raw"

    def import_path(self) -> str:
        """Which path an import takes and why, for ``host check`` and the job log."""
        why = "xe help shows format= for vdi-import" if self.upload_format == "vhd" else (
            "xe help shows no format= for vdi-import (it would be ignored)")
        text = f"{self.upload_format} ({why})"
        return f"{text}; {self.import_path_note}" if self.import_path_note else text

    def as_dict(self) -> dict[str, object]:
        return {
            "product": self.product,
            "xapi_version": ".".join(map(str, self.xapi_version)) if self.xapi_version else None,
            "vdi_create_requires_type": self.vdi_create_requires_type,
            "import_formats": sorted(self.import_formats),
            "import_progress": self.import_progress,
            "export_formats": sorted(self.export_formats),
            "case_insensitive_sizes": self.case_insensitive_sizes,
            "import_path": self.upload_format,
            "import_path_reason": self.import_path(),
        }


XAPI_TAR = (1, 126)  # xapi 1.126 (2018) added tar to vdi-import/export
XAPI_NEW_SIZE_PARSER = (24, 20)
XAPI_QCOW2 = (25, 27)


def capabilities_from(help_text: str, hosts: Sequence[HostInfo]) -> XeCapabilities:
    """Decide what xe accepts from ``xe help vdi-create vdi-import vdi-export`` and the hosts' versions.

    - ``type`` in vdi-create's *required* params: XenServer <= 6.5 (we always send type=user anyway).
    - ``format`` among vdi-import's params: 6.5+, which honours raw and vhd; without it (6.2) a
      ``format=`` is silently ignored, so only raw may be imported. tar and qcow2 come with the xapi
      versions that added them (1.126, 25.27); the oldest host of a pool decides.
    - ``progress`` among vdi-import's params: ``--progress`` is honoured.
    - vdi-export missing from the help (``Unknown command``): no export at all.
    """
    commands = parse_help(help_text)
    create = commands.get("vdi-create", {"reqd": [], "optn": []})
    importing = commands.get("vdi-import", {"reqd": [], "optn": []})
    exporting = commands.get("vdi-export")
    versions = [v for v in (xapi_version_of(h) for h in hosts) if v is not None]
    xapi = min(versions) if versions else None
    formats = {"raw"}
    if "format" in importing["optn"]:
        formats.add("vhd")
        if xapi is not None and xapi >= XAPI_TAR:
            formats.add("tar")
        if xapi is not None and xapi >= XAPI_QCOW2:
            formats.add("qcow2")
    export_formats: set[str] = set()
    if exporting is not None:
        export_formats = {"raw"} | ({"vhd"} | (formats - {"raw"}) if "format" in exporting["optn"] else set())
    return XeCapabilities(
        hosts=tuple(hosts),
        product=product_of(hosts),
        xapi_version=xapi,
        vdi_create_requires_type="type" in create["reqd"],
        import_formats=frozenset(formats),
        import_progress="progress" in importing["optn"],
        export_formats=frozenset(export_formats),
        case_insensitive_sizes=xapi is not None and xapi >= XAPI_NEW_SIZE_PARSER,
        import_path_note=release_disagrees(hosts, "vhd" in formats),
    )


VHD_IMPORT_SINCE = (6, 5)  # XenServer 6.5 added format= to vdi-import (xe-facts.md, section 5)


def release_disagrees(hosts: Sequence[HostInfo], probed_vhd: bool) -> str | None:
    """When the hosts' release implies the other vdi-import than xe help shows, say so: the help is what
    this xe accepts (a patched or odd build), so it decides, but the operator should know."""
    implied = [implies_vhd(h.software_version) for h in hosts]
    if not implied or None in implied:
        return None
    release = product_of(hosts)
    if all(implied) and not probed_vhd:
        return f"{release} normally imports VHD, but this host's xe help offers raw only: importing raw"
    if not all(implied) and probed_vhd:
        return f"{release} normally imports raw only, but this host's xe help offers format=vhd: importing VHD"
    return None


def implies_vhd(software: Mapping[str, str]) -> bool | None:
    """XCP-ng and Citrix Hypervisor always; XenServer from 6.5; None for a release we cannot place."""
    brand = software.get("product_brand", "")
    if brand in ("XCP-ng", "Citrix Hypervisor"):
        return True
    version = version_tuple(software.get("product_version"))
    if brand != "XenServer" or version is None:
        return None
    return version >= VHD_IMPORT_SINCE


def xapi_version_of(host: HostInfo) -> tuple[int, ...] | None:
    software = host.software_version
    return version_tuple(software.get("xapi_build")) or version_tuple(software.get("xapi"))


def product_of(hosts: Sequence[HostInfo]) -> str:
    if not hosts:
        return "unknown"
    software = hosts[0].software_version
    brand = software.get("product_brand") or software.get("platform_name") or ""
    version = software.get("product_version") or software.get("platform_version") or ""
    return f"{brand} {version}".strip() or "unknown"
