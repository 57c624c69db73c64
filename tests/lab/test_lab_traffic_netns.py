"""The traffic runner against real iperf3: `run_scenario` through `LocalNodes` on two namespaces of
our own (`csmm-t<pid>-tx` sends, `csmm-t<pid>-rx` is the sink; one veth pair, 198.18.200.0/24 only).
A UDP flow marked AF41 and a TCP flow marked EF arrive whole, the run directory is complete, the
analysis passes, and nothing the run started is left in the namespaces. About 4 s."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulation.traffic import LocalNodes, parse_scenario, run_scenario
from emulation.verify import OK, Sls, analyse, plot
from tests.lab.support import lab_unready, namespace


def _unready() -> str | None:
    reason = lab_unready()
    if reason is None:
        for tool in ("iperf3", "ss"):
            if shutil.which(tool) is None:
                return f"needs {tool} (./scripts/test installs iperf3 and iproute2)"
    return reason


pytestmark = [pytest.mark.lab, pytest.mark.skipif(_unready() is not None, reason=str(_unready()))]

SINK = "198.18.200.130"


@pytest.fixture
def nodes() -> Iterator[LocalNodes]:
    """tx (198.18.200.1) -- veth -- rx (198.18.200.130), both /24."""
    with namespace("tx", veths=(("eth1", "peer1"),)) as tx, namespace("rx") as rx:
        subprocess.run(["ip", "-n", tx, "link", "set", "peer1", "netns", rx], check=True)
        subprocess.run(["ip", "-n", rx, "link", "set", "peer1", "name", "eth1"], check=True)
        for ns, address in ((tx, "198.18.200.1/24"), (rx, f"{SINK}/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", address, "dev", "eth1"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "eth1", "up"], check=True)
        yield LocalNodes({"tx": tx, "rx": rx})


def test_a_scenario_runs_through_iperf3_in_namespaces(nodes: LocalNodes, tmp_path: Path) -> None:
    scenario = parse_scenario({
        "name": "netns", "duration": 2, "sink": "rx", "sink_address": SINK, "interval": 0.5,
        "flows": [{"customer": "acme-hq", "node": "tx", "dscp": "AF41", "rate": "8M"},
                  {"customer": "globex-main", "node": "tx", "dscp": "EF", "rate": "10M", "protocol": "tcp",
                   "start": 0.5}],
    })
    result = run_scenario(scenario, nodes, tmp_path / "run")

    assert result.ok, [(f.client_rc, f.server_rc) for f in result.flows]
    assert result.flows[1].started_s >= 0.5
    for flow, tos in zip(result.flows, (34 << 2, 46 << 2)):
        for name in (flow.client_json, flow.server_json):
            output = json.loads((tmp_path / "run" / name).read_text())
            assert "error" not in output
            assert output["start"]["test_start"]["tos"] == tos
    for ns in nodes.namespaces.values():
        assert subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split() == []

    report = analyse(tmp_path / "run", {"acme-hq": Sls("silver", 10_000_000), "globex-main": Sls("gold", 12_000_000)})
    udp, tcp = report.flows
    assert udp.received_bps == pytest.approx(8e6, rel=0.03) and udp.lost_packets == 0
    assert tcp.received_bps == pytest.approx(10e6, rel=0.03)
    assert [f.verdict for f in report.flows] == [OK, OK], report.table()
    assert plot(report, tmp_path / "netns.png").stat().st_size > 10_000
