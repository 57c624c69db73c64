"""The agent protocol: checked-in generated code matches the .proto, and configs cross the wire intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.catalog import load_catalog
from controller.mapping import render_router_configs
from controller.southbound.wire import config_from_message, config_message
from csmm_proto import agent_pb2 as pb
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
    counters = pb.ClassCounters(interface="eth1", class_name="gold/acme-hq", bytes=2**64 - 1)
    assert pb.ClassCounters.FromString(counters.SerializeToString()).bytes == 2**64 - 1  # 64-bit, no wrap at 2^32
