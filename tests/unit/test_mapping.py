"""The mapping function, FAUCET-style: config as data, checked against golden files and properties."""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.catalog import ClassBounds, ServiceClassName, load_catalog
from controller.domain.principal import DOMAIN_MANAGER
from controller.domain.sla import CustomerKind, LifecycleState, Sla
from controller.domain.sls import Sls
from controller.mapping import RouterQos, render_router_configs
from controller.mapping.text import describe
from controller.service.layer import ServiceLayer
from tests.unit.builders import GOLD, M, business_terms, lab_topology, sls

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "demo-router-configs.json"
CATALOG = load_catalog()
TOPOLOGY = lab_topology()
ACCESS = [("edge1", "eth2"), ("edge1", "eth3"), ("edge2", "eth2")]


def test_demo_configs_match_the_golden_file(demo: ServiceLayer) -> None:
    """Regenerate after an intended change with CSMM_UPDATE_GOLDEN=1 and review the diff."""
    configs = {name: {"fingerprint": c.fingerprint(), **c.to_dict()} for name, c in demo.router_configs(DOMAIN_MANAGER).items()}
    rendered = json.dumps(configs, indent=1, sort_keys=True) + "\n"
    if os.environ.get("CSMM_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text()


def test_demo_edge_router_remarks_shapes_and_classifies_by_customer(demo: ServiceLayer) -> None:
    edge1 = demo.router_configs(DOMAIN_MANAGER)["edge1"]
    access = {i.name: i for i in edge1.interfaces}
    assert [(r.prefix, r.dscp) for r in access["eth2"].remarks] == [("198.19.1.0/24", 34)]  # acme: silver
    assert access["eth2"].default_dscp == 0
    uplink = access["eth1"].scheduler
    assert uplink is not None and uplink.capacity_bps == 40 * M
    acme = uplink.leaf("silver/acme-hq")
    assert (acme.rate_bps, acme.ceil_bps, acme.members) == (5 * M, 5 * M, ("acme-hq",))
    assert uplink.leaf("gold/globex-main").rate_bps == 2 * M
    assert uplink.leaf("bronze").ceil_bps == 40 * M  # Bronze may borrow the whole link
    text = describe(edge1)
    assert "198.19.1.0/24" in text and "silver/acme-hq" in text and "DSCP 34 (AF41)" in text


def test_core_classifies_transit_by_dscp_into_per_class_aggregates(demo: ServiceLayer) -> None:
    core = demo.router_configs(DOMAIN_MANAGER)["core"]
    (uplink,) = [i for i in core.interfaces if i.name == "eth3"]
    assert uplink.scheduler is not None
    assert [(m.dscp, m.leaf) for m in uplink.scheduler.by_dscp] == [(34, "silver/transit"), (46, "gold/transit")]
    assert uplink.scheduler.by_prefix == ()
    silver = uplink.scheduler.leaf("silver/transit")
    assert silver.rate_bps == 8 * M and set(silver.members) == {"acme-hq", "umbrella-lab"}


def test_an_sls_change_moves_the_customer_to_another_leaf(demo: ServiceLayer) -> None:
    from controller.domain.principal import Channel, Principal, Role
    before = demo.router_configs(DOMAIN_MANAGER)
    demo.change_sls(Principal(Role.CUSTOMER, "acme"), "acme-hq", "gold", 3 * M, Channel.CLI)
    after = demo.router_configs(DOMAIN_MANAGER)
    assert after["edge1"].fingerprint() != before["edge1"].fingerprint()
    uplink = next(i.scheduler for i in after["edge1"].interfaces if i.name == "eth1")
    assert uplink is not None and uplink.leaf("gold/acme-hq").rate_bps == 3 * M
    assert [m.leaf for m in uplink.by_prefix if m.sla == "acme-hq"] == ["gold/acme-hq"]


# ----------------------------------------------------------------------------- properties

def _random_network(data: st.DataObject) -> list[tuple[Sla, Sls]]:
    pairs = []
    count = data.draw(st.integers(0, 12), label="customers")
    for index in range(count):
        router, interface = ACCESS[index % len(ACCESS)]
        terms = business_terms(router=router, interface=interface, prefixes=(f"198.19.{index}.0/24",),
                               gold=ClassBounds(min=M, max=2 * M), silver=ClassBounds(min=M, max=3 * M))
        state = data.draw(st.sampled_from([LifecycleState.OPERATIONAL, LifecycleState.OPERATIONAL,
                                           LifecycleState.INSTALLED_TESTED, LifecycleState.NEGOTIATED,
                                           LifecycleState.DEINSTALLED]))
        service_class = data.draw(st.sampled_from(list(ServiceClassName)))
        bandwidth = data.draw(st.integers(terms.bounds[service_class].min, terms.bounds[service_class].max))
        sla = Sla(index + 1, f"c{index:02d}", f"c{index:02d}", CustomerKind.CUSTOMER, terms, state,
                  TOPOLOGY.path_to_egress(router))
        pairs.append((sla, replace(sls(service_class, bandwidth), sla_id=sla.id)))
    return pairs


def _check_tree(config: RouterQos) -> None:
    for iface in config.interfaces:
        scheduler = iface.scheduler
        if scheduler is None:
            continue
        by_name = {c.name: c for c in scheduler.classes}
        assert by_name["root"].rate_bps == by_name["root"].ceil_bps == scheduler.capacity_bps
        for cls in scheduler.classes:
            children = [c for c in scheduler.classes if c.parent == cls.name]
            if children:
                assert sum(c.rate_bps for c in children) <= cls.rate_bps, (config.router, iface.name, cls.name)
            assert 0 <= cls.rate_bps <= cls.ceil_bps
            if cls.parent is not None:
                assert cls.ceil_bps <= by_name[cls.parent].ceil_bps
        leaves = {m.leaf for m in scheduler.by_prefix} | {m.leaf for m in scheduler.by_dscp} | {scheduler.default_leaf}
        assert leaves <= set(by_name), "a classifier points at a missing class"


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_children_never_exceed_their_parent(data: st.DataObject) -> None:
    for config in render_router_configs(TOPOLOGY, _random_network(data), CATALOG).values():
        _check_tree(config)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_every_active_customer_is_in_exactly_one_leaf_per_interface_it_crosses(data: st.DataObject) -> None:
    pairs = _random_network(data)
    configs = render_router_configs(TOPOLOGY, pairs, CATALOG)
    for sla, current in pairs:
        active = sla.state in (LifecycleState.OPERATIONAL, LifecycleState.INSTALLED_TESTED)
        hops = TOPOLOGY.hops_from(sla.terms.attachment.router)
        crossed = {TOPOLOGY.sending_end(TOPOLOGY.link(name), hops) for name in sla.path}
        for config in configs.values():
            for iface in config.interfaces:
                if iface.scheduler is None:
                    continue
                holding = [c for c in iface.scheduler.classes if sla.name in c.members]
                expected = 1 if active and any((e.router, e.interface) == (config.router, iface.name) for e in crossed) else 0
                assert len(holding) == expected, (sla.name, config.router, iface.name, holding)
                if holding:
                    assert holding[0].name.startswith(current.service_class.value + "/")
        access = next((i for i in configs[sla.terms.attachment.router].interfaces if i.name == sla.terms.attachment.interface), None)
        remarked = [r for r in (access.remarks if access else ()) if r.sla == sla.name]
        assert [r.dscp for r in remarked] == ([CATALOG.classes[current.service_class].dscp] if active else [])


@settings(max_examples=60, deadline=None)
@given(st.data(), st.randoms(use_true_random=False))
def test_output_is_deterministic_whatever_the_input_order(data: st.DataObject, rng: random.Random) -> None:
    pairs = _random_network(data)
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    first = render_router_configs(TOPOLOGY, pairs, CATALOG)
    second = render_router_configs(TOPOLOGY, shuffled, CATALOG)
    assert {r: c.fingerprint() for r, c in first.items()} == {r: c.fingerprint() for r, c in second.items()}
    assert first == second


def test_gold_and_silver_get_exactly_the_joint_slss_and_bronze_the_rest() -> None:
    terms = [business_terms(router=r, interface=i, prefixes=(f"198.19.{n}.0/24",)) for n, (r, i) in enumerate(ACCESS)]
    pairs = [(Sla(n + 1, f"c{n}", f"c{n}", CustomerKind.CUSTOMER, t, LifecycleState.OPERATIONAL,
                  TOPOLOGY.path_to_egress(t.attachment.router)),
              replace(sls(c, b), sla_id=n + 1))
             for n, (t, (c, b)) in enumerate(zip(terms, [(GOLD, 3 * M), (ServiceClassName.SILVER, 6 * M),
                                                        (GOLD, 2 * M)]))]
    core = next(i.scheduler for i in render_router_configs(TOPOLOGY, pairs, CATALOG)["core"].interfaces if i.name == "eth3")
    assert core is not None
    assert core.leaf("gold").rate_bps == core.leaf("gold").ceil_bps == 5 * M
    assert core.leaf("silver").rate_bps == 6 * M
    assert core.leaf("bronze").rate_bps == 40 * M - 11 * M and core.leaf("bronze").ceil_bps == 40 * M


def test_a_router_no_customer_crosses_gets_no_scheduler_and_its_access_ports_remark_to_best_effort() -> None:
    configs = render_router_configs(TOPOLOGY, [], CATALOG)
    assert set(configs) == {"core", "edge1", "edge2", "egress"}
    assert "no QoS" in describe(configs["core"])
    assert all(i.scheduler is None for config in configs.values() for i in config.interfaces)
    ports = {(config.router, i.name): (i.remarks, i.default_dscp) for config in configs.values() for i in config.interfaces}
    # Customer ports and the peer port remark anything to best effort; the egress point toward the
    # internet is not a customer port.
    assert ports == {("edge1", "eth2"): ((), 0), ("edge1", "eth3"): ((), 0), ("edge2", "eth2"): ((), 0),
                     ("egress", "eth3"): ((), 0)}
