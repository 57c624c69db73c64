"""The agent's HTB driver against a fake tc table: the rendered tree is exactly the neutral config."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.driver.htb import MIN_RATE_BPS, allocate_minors, classid, full_build, quantum_bytes
from controller.domain.catalog import load_catalog
from controller.domain.principal import DOMAIN_MANAGER
from controller.mapping import render_router_configs
from controller.service.layer import ServiceLayer
from controller.southbound.wire import config_message
from csmm_proto import agent_pb2 as pb
from tests.unit.faketc import FakeTc, FakeTcError
from tests.unit.test_mapping import TOPOLOGY, _random_network


def _schedulers(configs) -> list[tuple[str, pb.Scheduler]]:  # type: ignore[no-untyped-def]
    found = []
    for config in configs.values():
        for iface in config_message(config, 1).interfaces:
            if iface.HasField("scheduler"):
                found.append((f"{config.router}-{iface.name}", iface.scheduler))
    return found


def _check_rendered(device: str, scheduler: pb.Scheduler) -> FakeTc:
    minors = allocate_minors(list(scheduler.classes))
    table = FakeTc()
    table.batch(full_build(device, scheduler, minors))
    built = table.devices[device].classes
    assert len(built) == len(scheduler.classes)
    assert table.devices[device].default_minor == minors[scheduler.default_leaf]
    for cls in scheduler.classes:
        tc_class = built[classid(minors[cls.name])]
        assert tc_class.parent == ("1:" if not cls.parent else classid(minors[cls.parent]))
        assert tc_class.rate_bps == max(cls.rate_bps, MIN_RATE_BPS)
        assert tc_class.ceil_bps == max(cls.ceil_bps, tc_class.rate_bps)
        assert tc_class.prio == cls.priority and tc_class.quantum == quantum_bytes(tc_class.rate_bps)
    return table


def test_the_demo_schedulers_render_to_exactly_their_trees(demo: ServiceLayer) -> None:
    schedulers = _schedulers(demo.router_configs(DOMAIN_MANAGER))
    assert {name for name, _ in schedulers} == {"core-eth3", "edge1-eth1", "edge2-eth1", "egress-eth2"}
    for device, scheduler in schedulers:
        _check_rendered(device, scheduler)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_any_mapped_network_renders_to_a_tree_the_fake_table_accepts(data: st.DataObject) -> None:
    for device, scheduler in _schedulers(render_router_configs(TOPOLOGY, _random_network(data), load_catalog())):
        _check_rendered(device, scheduler)


def test_rendering_twice_leaves_the_same_table(demo: ServiceLayer) -> None:
    device, scheduler = _schedulers(demo.router_configs(DOMAIN_MANAGER))[0]
    table = _check_rendered(device, scheduler)
    before = dict(table.devices[device].classes)
    table.batch(full_build(device, scheduler, allocate_minors(list(scheduler.classes)), qdisc_present=True))
    assert table.devices[device].classes == before
    with pytest.raises(FakeTcError, match="exists"):
        table.batch(full_build(device, scheduler, allocate_minors(list(scheduler.classes))))


def test_class_ids_stay_stable_when_classes_come_and_go() -> None:
    def classes(*names: str) -> list[pb.QosClass]:
        return [pb.QosClass(name=n) for n in names]
    first = allocate_minors(classes("root", "gold", "gold/acme", "bronze", "bronze/default"))
    assert sorted(first.values()) == [1, 2, 3, 4, 5]
    # acme moves from gold to silver: existing classes keep their ids, the new ones take free ids.
    second = allocate_minors(classes("root", "gold", "silver", "silver/acme", "bronze", "bronze/default"), first)
    assert all(second[name] == first[name] for name in ("root", "gold", "bronze", "bronze/default"))
    # the old leaf's id is not reused in the same step (it lives until after the switch) ...
    assert first["gold/acme"] not in second.values()
    assert len(set(second.values())) == len(second)
    # ... and is free again once that class is gone
    third = allocate_minors(classes("root", "gold", "gold/acme", "silver", "silver/acme", "bronze", "bronze/default"),
                            second)
    assert third["gold/acme"] == first["gold/acme"]


def test_quantum_stays_within_frame_bounds() -> None:
    assert quantum_bytes(8_000) == 1_514              # a tenth of a second would be 100 bytes
    assert quantum_bytes(4_000_000) == 50_000         # a tenth of a second at 4 Mbit/s
    assert quantum_bytes(40_000_000) == 60_000        # capped
