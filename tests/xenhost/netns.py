"""Run a command in a private network namespace that has a real blackhole and no DNS.

Inside the namespace (``unshare --net``) there is only a loopback and a veth pair whose peer end has no
address: packets to ``BLACKHOLE`` (192.0.2.1, TEST-NET-1 of RFC 5737) are sent to the peer's MAC,
arrive there, are not for any local address and, forwarding being off, are dropped without an answer,
exactly as a firewall that drops packets. No route leads out of the namespace, so nothing of it ever
reaches another machine, and name lookups fail at once (the resolver is unreachable).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

BLACKHOLE = "192.0.2.1"
SETUP = r"""set -e
ip link set lo up
ip link add vdc-bh0 type veth peer name vdc-bh1
ip addr add 192.0.2.2/24 dev vdc-bh0
ip link set vdc-bh0 up
ip link set vdc-bh1 up
mac=$(ip -o link show vdc-bh1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip neigh replace 192.0.2.1 lladdr "$mac" dev vdc-bh0 nud permanent
exec "$@"
"""


def run_isolated(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``argv`` in a fresh network namespace with the blackhole set up; its output as text."""
    return subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", SETUP, "sh", *argv],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
    )
