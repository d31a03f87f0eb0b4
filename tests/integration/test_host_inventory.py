"""The host inventory core (vdcmanage.catalog.hosts): on every catalog backend, and check_host as the
dashboard calls it (a plain result, never an exception for a host's problem)."""

from __future__ import annotations

import pytest

from tests.xenhost.fixtures import XenHost
from vdcmanage.catalog import hosts
from vdcmanage.errors import AlreadyExists, InvalidArgument, NotFound
from vdcmanage.remote.check import HostCheck
from vdcmanage.remote.errors import ConnectRefused, HostKeyUnknown
from vdcmanage.remote.ssh import ConnectOptions


@pytest.mark.catalog
def test_add_get_list_delete_on_every_backend(any_catalog: str, xen_host: XenHost) -> None:
    host = hosts.add_host("xen1", "[::1]", port=2222, user="root", key_file=str(xen_host.key_file),
                          sr_uuid=xen_host.sr_uuid().upper(), uuid="hn-xen1")
    assert (host.id, host.address, host.sr_uuid) == ("hn-xen1", "::1", xen_host.sr_uuid())
    assert hosts.get_host("xen1").id == hosts.get_host("hn-xen1").id == "hn-xen1"
    with pytest.raises(AlreadyExists):
        hosts.add_host("xen1", "other")
    with pytest.raises(AlreadyExists):
        hosts.add_host("xen9", "other", uuid="hn-xen1")
    hosts.record_host_key("hn-xen1", xen_host.server.host_key_line)
    assert hosts.host_dict(hosts.get_host("xen1"))["host_key"] == xen_host.server.host_key_line
    with pytest.raises(InvalidArgument, match="different recorded key"):
        hosts.record_host_key(
            "hn-xen1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        )
    assert [h.id for h in hosts.list_hosts()] == ["hn-xen1"]
    hosts.delete_host("xen1")
    assert hosts.list_hosts() == [] and [h.id for h in hosts.list_hosts(include_deleted=True)] == ["hn-xen1"]
    with pytest.raises(NotFound):
        hosts.live_host("hn-xen1")
    hosts.add_host("xen1", "reused-name")  # a deleted host's name may be used again


def test_check_host_returns_a_report(catalog: str, xen_host: XenHost) -> None:
    host = xen_host.add_to_catalog("xen1")
    report = hosts.check_host(host.id)
    assert isinstance(report, HostCheck) and report.ok and report.error is None
    assert report.chosen_sr == xen_host.sr_uuid() and report.chosen_sr_ready
    assert report.as_dict()["ok"] is True


def test_check_host_reports_failures_instead_of_raising(catalog: str, xen_host: XenHost) -> None:
    host = xen_host.add_to_catalog("xen1", trust=False)
    report = hosts.check_host(host.id, ConnectOptions(connect_timeout=5))
    assert isinstance(report.error, HostKeyUnknown) and report.failed_stage == "host key" and report.reachable
    accepted = hosts.check_host(host.id, ConnectOptions(accept_new_host_key=True))
    assert accepted.ok and accepted.host_key_source == "accepted as new"
    assert hosts.get_host(host.id).host_key == xen_host.server.host_key_line
    assert hosts.check_host(host.id).host_key_source == "the catalog"
    xen_host.server.stop()
    try:
        down = hosts.check_host(host.id)
        assert isinstance(down.error, ConnectRefused) and not down.reachable and down.failed_stage == "connect"
    finally:
        xen_host.server.restart()
