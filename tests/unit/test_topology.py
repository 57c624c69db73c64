from decimal import Decimal

import pytest

from controller.domain.errors import InvalidValue, NotFound
from controller.domain.topology import ClassShares, Endpoint, Link, Topology
from tests.unit.builders import M, lab_topology


def test_path_from_an_edge_runs_through_the_core_to_every_egress_point() -> None:
    assert lab_topology().path_to_egress("edge1") == ("core-egress", "edge1-core", "internet")
    assert lab_topology().path_to_egress("egress") == ("internet",)


def test_default_class_shares_are_thirty_and_eighty_percent() -> None:
    link = lab_topology().link("edge1-core")
    assert link.shares == ClassShares(Decimal("0.30"), Decimal("0.80"))
    assert (link.gold_limit(), link.gold_silver_limit()) == (12 * M, 32 * M)
    assert link.gold_limit(Decimal("1.5")) == 18 * M


def test_shares_must_be_ordered_fractions() -> None:
    with pytest.raises(InvalidValue, match="gold_silver"):
        ClassShares(Decimal("0.9"), Decimal("0.8"))


def test_a_router_without_a_path_to_egress_is_refused() -> None:
    topo = lab_topology()
    cut = Topology(topo.routers, tuple(link for link in topo.links if link.name != "edge2-core"))
    with pytest.raises(InvalidValue, match="no path"):
        cut.path_to_egress("edge2")


def test_validation_refuses_links_on_access_interfaces_and_reused_interfaces() -> None:
    topo = lab_topology()
    on_access = Topology(topo.routers, (*topo.links, Link("bad", Endpoint("edge1", "eth2"), Endpoint("edge2", "eth2"), M)))
    with pytest.raises(InvalidValue, match="access interface"):
        on_access.validate()
    reused = Topology(topo.routers, (*topo.links, Link("again", Endpoint("edge1", "eth1"), Endpoint("core", "eth3"), M)))
    with pytest.raises(InvalidValue, match="used by links"):
        reused.validate()
    dangling = Topology(topo.routers, (Link("x", Endpoint("edge1", "eth9"), Endpoint("core", "eth1"), M),))
    with pytest.raises(NotFound, match="eth9"):
        dangling.validate()


def test_order_does_not_matter_for_equality() -> None:
    topo = lab_topology()
    assert Topology(tuple(reversed(topo.routers)), tuple(reversed(topo.links))) == topo
