"""The agent protocol: checked-in generated code matches the .proto, and configs cross the wire intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.catalog import load_catalog
from controller.mapping import render_router_configs
from controller.southbound.counters import ClassRow, CounterFormatError, decode_report
from controller.southbound.wire import config_from_message, config_message
from csmm_proto import agent_pb2 as pb
from csmm_proto import configs
from csmm_proto.counters import ClassCount, encode
from tests.unit.test_mapping import TOPOLOGY, _random_network

ROOT = Path(__file__).resolve().parent.parent.parent


def test_generated_code_is_what_the_proto_file_generates(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    for name in ("agent_pb2.py", "agent_pb2.pyi", "agent_pb2_grpc.py"):
        assert (tmp_path / "csmm_proto" / name).read_bytes() == (ROOT / "csmm_proto" / name).read_bytes(), \
            f"csmm_proto/{name} is stale: run scripts/gen-proto and commit the result"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_router_config_survives_the_wire(data: st.DataObject) -> None:
    for config in render_router_configs(TOPOLOGY, _random_network(data), load_catalog()).values():
        message = config_message(config, version=7)
        decoded = pb.DesiredConfig.FromString(message.SerializeToString())
        assert (decoded.version, decoded.fingerprint) == (7, config.fingerprint())
        assert config_from_message(decoded) == config


def test_a_session_carries_hello_and_config() -> None:
    hello = pb.AgentMessage(hello=pb.Hello(router_id="edge1", agent_version="0.1.0", boot_epoch=1,
                                           capabilities=pb.KernelCapabilities(qdiscs=["htb"], nftables=True)))
    assert pb.AgentMessage.FromString(hello.SerializeToString()).WhichOneof("body") == "hello"


def test_counter_columns_carry_64_bit_values_and_the_class_list_once_per_layout() -> None:
    classes = [ClassCount("eth1", "gold/acme-hq", 2**64 - 1, 2**32 + 5, 7, 0, 1_800_000_000_123_456_789),
               ClassCount("eth1", "bronze/transit", 0, 1, 2**63, 9, -1)]
    first = pb.Counters.FromString(encode(3, 1, classes, with_keys=True).SerializeToString())
    keys = [(k.interface, k.class_name) for k in first.keys]
    assert keys == [("eth1", "gold/acme-hq"), ("eth1", "bronze/transit")]
    report = decode_report(first, keys)
    assert list(report.rows()) == [ClassRow(*c) for c in classes]       # no wrap at 2^32, signed times
    later = pb.Counters.FromString(encode(3, 1, classes, with_keys=False).SerializeToString())
    assert not later.keys and decode_report(later, keys).octets.tolist() == [2**64 - 1, 0]
    with pytest.raises(CounterFormatError, match="holds 16 bytes, not 8 for each of 3 classes of layout 1"):
        decode_report(later, [*keys, ("eth2", "x")])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_diff_turns_one_config_into_the_other(data: st.DataObject) -> None:
    """Whatever two networks the SLSs make, the agent applying the controller's diff to its copy
    holds exactly the new config (equal fingerprint, equal content up to order)."""
    catalog = load_catalog()
    before = render_router_configs(TOPOLOGY, _random_network(data), catalog)
    after = render_router_configs(TOPOLOGY, _random_network(data), catalog)
    for router in before:
        old, new = config_message(before[router], 1), config_message(after[router], 2)
        change = configs.diff(old, new)
        if change is None:   # only when an interface's frame changed: then a full snapshot goes instead
            frames = [(i.name, i.role, i.HasField("scheduler"), i.scheduler.capacity_bps) for i in old.interfaces]
            assert frames != [(i.name, i.role, i.HasField("scheduler"), i.scheduler.capacity_bps) for i in new.interfaces]
            continue
        applied = configs.apply_diff(old, change)
        assert configs.fingerprint(applied) == new.fingerprint == change.fingerprint
        assert configs.canonical(applied) == configs.canonical(new)
        assert applied.version == 2


def test_a_rate_change_is_a_one_class_diff() -> None:
    old = pb.DesiredConfig(router_id="r", version=1, interfaces=[pb.InterfaceQos(name="eth1", role="core", scheduler=pb.Scheduler(
        capacity_bps=10**7, default_leaf="bronze/default",
        classes=[pb.QosClass(name="gold/a", parent="gold", rate_bps=10**6, ceil_bps=10**6),
                 pb.QosClass(name="bronze/default", parent="bronze", rate_bps=10**6, ceil_bps=10**7)]))])
    new = pb.DesiredConfig()
    new.CopyFrom(old)
    new.version = 2
    new.interfaces[0].scheduler.classes[0].rate_bps = 2 * 10**6
    new.fingerprint = configs.fingerprint(new)
    change = configs.diff(old, new)
    assert change is not None and len(change.interfaces) == 1
    assert [c.name for c in change.interfaces[0].upsert_classes] == ["gold/a"]
    assert not change.interfaces[0].remove_classes
    assert configs.fingerprint(old) != new.fingerprint   # the digest sees the rate


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_the_fingerprint_ignores_order_and_sees_every_field(data: st.DataObject) -> None:
    for config in render_router_configs(TOPOLOGY, _random_network(data), load_catalog()).values():
        message = config_message(config, version=1)
        shuffled = pb.DesiredConfig()
        shuffled.CopyFrom(message)
        for iface in shuffled.interfaces:
            if not iface.HasField("scheduler"):   # touching .scheduler would create one
                continue
            items = list(iface.scheduler.classes)
            data.draw(st.randoms()).shuffle(items)
            copies = [pb.QosClass() for _ in items]
            for copy, item in zip(copies, items):
                copy.CopyFrom(item)
            del iface.scheduler.classes[:]
            iface.scheduler.classes.extend(copies)
        assert configs.fingerprint(shuffled) == message.fingerprint == configs.fingerprint(configs.canonical(message))
        for iface in shuffled.interfaces:
            if iface.HasField("scheduler"):
                iface.scheduler.classes[-1].ceil_bps += 8
                assert configs.fingerprint(shuffled) != message.fingerprint
                break
