"""The ``network`` step: the first Ethernet NIC comes up by DHCP, whatever the kernel names it.

Under Xen a systemd guest's NIC is ``enX0`` (predictable names), ``eth0`` without them; under
KVM ``ens3`` or ``enp0s3``. A template configured for the name it had where it was built comes
up without a network elsewhere. What each network stack gets:

- systemd-networkd (in every systemd of today): a ``.network`` file matching ``en* eth*``, and
  the service enabled (with its wait-online, which network-online.target needs);
- ifupdown configuring one NIC by DHCP: that stanza becomes a pattern (``/en*/1``, ``/eth*/1``,
  ifupdown 0.8's "first interface matching") for a logical interface;
- NetworkManager: nothing (it brings up every Ethernet NIC by DHCP on its own).

A static or multi-NIC ifupdown configuration is the operator's to adapt: reported, not guessed.
SysV guests keep their kernel names (eth0): the ``mac`` step is what they need.
"""

from __future__ import annotations

import re

from vdcmanage.prepare import systemd
from vdcmanage.prepare.changes import Change, MakeDirs, WriteFile
from vdcmanage.prepare.root import GuestRoot, encode_text
from vdcmanage.prepare.steps import Context, Plan, Step, done, needed, not_applicable

NETWORKD_DIR = "etc/systemd/network"
NETWORKD_FILE = f"{NETWORKD_DIR}/90-vdc-first-ethernet.network"  # 90: an operator's own files come first
NETWORKD_CONFIG = """\
# Written by vdc-manage image prepare: the first Ethernet NIC comes up by DHCP whatever its name
# (enX0 under Xen with predictable names, eth0 without them, ens3 or enp0s3 under KVM).
[Match]
Name=en* eth*
Type=ether

[Network]
DHCP=yes
"""
INTERFACES = "etc/network/interfaces"
LOGICAL = "vdc-first-ethernet"
IFUPDOWN_STANZA = f"""\
# vdc-manage image prepare: the first Ethernet NIC by DHCP, whatever the kernel names it
# (enX0 under Xen with predictable names, eth0 without them, ens3 or enp0s3 under KVM)
allow-hotplug /en*/1={LOGICAL} /eth*/1={LOGICAL}
iface {LOGICAL} inet dhcp
"""
IFACE = re.compile(r"^\s*iface\s+(\S+)\s+(inet6?)\s+(\S+)")
SELECTION = re.compile(r"^\s*(auto|allow-\S+)\s+(.*)$")


def ifupdown_installed(root: GuestRoot) -> bool:
    return any(root.is_file(path) for path in ("sbin/ifup", "usr/sbin/ifup"))


def configured_nics(text: str) -> dict[str, list[str]]:
    """NIC name -> its methods ("inet dhcp", "inet6 auto" ...) in an interfaces file, lo left out."""
    nics: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = IFACE.match(line)
        if match and match.group(1) != "lo":
            nics.setdefault(match.group(1), []).append(f"{match.group(2)} {match.group(3)}")
    return nics


def with_pattern_stanza(text: str, nic: str) -> str:
    """The interfaces file with the one DHCP NIC's lines (selection, iface and its options) replaced."""
    out: list[str] = []
    in_stanza = False
    for line in text.splitlines(keepends=True):
        iface = IFACE.match(line)
        selection = SELECTION.match(line)
        if iface:
            in_stanza = iface.group(1) == nic
            if in_stanza:
                continue
        elif selection:
            in_stanza = False
            names = [name for name in selection.group(2).split() if name != nic]
            if names:
                out.append(f"{selection.group(1)} {' '.join(names)}\n")
            continue
        elif in_stanza and line[:1].isspace() and line.strip():
            continue
        elif line.strip():
            in_stanza = False
        out.append(line)
    body = "".join(out).rstrip("\n")
    return (body + "\n\n" if body else "") + IFUPDOWN_STANZA


class NetworkStep(Step):
    name = "network"
    purpose = "cloud"
    title = "the first Ethernet NIC comes up by DHCP whatever its name (enX0 under Xen): systemd-networkd or ifupdown"

    def plan(self, ctx: Context) -> Plan:
        root = ctx.root
        if not systemd.is_systemd(root):
            return not_applicable("not a systemd guest: the NIC keeps its kernel name (eth0)")
        interfaces = root.read_text(INTERFACES) if root.is_file(INTERFACES) else None
        nics = configured_nics(interfaces or "")
        if interfaces is not None and ifupdown_installed(root) and (nics or LOGICAL in interfaces):
            return self.plan_ifupdown(root, interfaces, nics)
        if systemd.is_enabled(root, "NetworkManager.service"):
            return done("NetworkManager brings up every Ethernet NIC by DHCP")
        if systemd.unit_path(root, "systemd-networkd.service"):
            return self.plan_networkd(root)
        return needed(
            "no network configuration for the NIC",
            [],
            manual="install ifupdown or enable systemd-networkd in the guest; under Xen its NIC is enX0",
        )

    def plan_networkd(self, root: GuestRoot) -> Plan:
        changes: list[Change] = []
        current = root.read_bytes(NETWORKD_FILE)
        wanted = encode_text(NETWORKD_CONFIG)
        if current != wanted:
            if not root.is_dir(NETWORKD_DIR):
                changes.append(MakeDirs(NETWORKD_DIR))
            changes.append(WriteFile(root.resolve(NETWORKD_FILE), current, wanted, label="network"))
        changes += systemd.enable_changes(root, "systemd-networkd.service")
        what = f"systemd-networkd: {NETWORKD_FILE} (Name=en* eth*, DHCP)"
        return needed(f"configure {what}", changes) if changes else done(what)

    def plan_ifupdown(self, root: GuestRoot, text: str, nics: dict[str, list[str]]) -> Plan:
        if LOGICAL in text and not nics.keys() - {LOGICAL}:
            return done(f"ifupdown: {INTERFACES} brings up the first en*/eth* NIC by DHCP")
        names = sorted(nics.keys() - {LOGICAL})
        if len(names) != 1 or any(method not in ("inet dhcp", "inet6 auto", "inet6 dhcp") for method in nics[names[0]]):
            return needed(
                f"ifupdown configures {', '.join(names)} ({'; '.join(m for n in names for m in nics[n])})",
                [],
                manual=f"adapt {INTERFACES} in the guest: under Xen its NIC is enX0 (eth0 with net.ifnames=0)",
            )
        new = with_pattern_stanza(text, names[0])
        change = WriteFile(root.resolve(INTERFACES), encode_text(text), encode_text(new), label="network")
        return needed(f"ifupdown: {names[0]} becomes the first en*/eth* NIC, whatever its name", [change])
