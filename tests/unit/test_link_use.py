"""Measured per-class link use: rates from successive counter samples, placed on each link's ends."""

from __future__ import annotations

from controller.domain.topology import Endpoint, Interface, Link, Router, Topology
from controller.northbound.web.console import link_use
from controller.southbound.counters import ClassRow
from controller.southbound.server import sample_after


def row(octets: int, at_s: float) -> ClassRow:
    return ClassRow("eth1", "gold", octets, octets // 1000, 0, 0, int(at_s * 1e9))


def test_a_rate_is_the_octets_between_two_samples_over_their_time() -> None:
    first = sample_after(None, row(1_000_000, 10.0))
    assert first.rate_bps is None                                  # one sample: no rate yet
    second = sample_after(first, row(1_250_000, 12.0))
    assert second.rate_bps == 1_000_000.0                          # 250 kB in 2 s = 1 Mbit/s
    assert sample_after(second, row(10, 13.0)).rate_bps is None    # a counter reset gives no rate
    assert sample_after(second, row(2_000_000, 12.0)).rate_bps is None   # no time passed


def test_link_use_reads_each_end_egress_interface() -> None:
    topology = Topology(
        routers=(Router("a", "198.18.0.1", (Interface("a", "eth1", 40_000_000, "core"),
                                            Interface("a", "eth2", 100_000_000, "peering"))),
                 Router("b", "198.18.0.2", (Interface("b", "eth1", 40_000_000, "core"),))),
        links=(Link("a-b", Endpoint("a", "eth1"), Endpoint("b", "eth1"), 40_000_000),
               Link("out", Endpoint("a", "eth2"), None, 100_000_000)))
    rates = {("a", "eth1", "gold"): 2e6, ("a", "eth1", "gold/transit"): 2e6, ("b", "eth1", "silver"): 1e6,
             ("a", "eth2", "bronze"): 5e6}
    uses = {u.link: u for u in link_use(topology, rates)}
    assert uses["a-b"].forward == {"gold": 2e6} and uses["a-b"].backward == {"silver": 1e6}
    assert uses["out"].forward == {"bronze": 5e6} and uses["out"].backward == {}
