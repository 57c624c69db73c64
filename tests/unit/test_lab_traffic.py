"""Traffic scenarios and QoS verification, without a kernel: the scenario format's refusals, the iperf3
command lines, the runner's orchestration against fake nodes, and the analysis of real iperf3 runs.

The run directories under data/iperf3/ are real `run_scenario` output (iperf3 3.12, namespaces,
198.18.200.0/24): `clean` (UDP AF41 8M and TCP EF 20M, no shaper), `lossy` (UDP EF 10M through a
router with `tbf rate 5mbit`), `congested` (EF 5M, AF41 2M, BE 12M UDP and BE 3M TCP through an HTB
of 10mbit: EF ceil 4mbit, AF41 ceil 3mbit, the rest default). See data/iperf3/README.md.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from emulation.traffic import (
    MAX_UDP_LOAD_BPS,
    Nodes,
    ScenarioError,
    TrafficError,
    client_argv,
    dscp_value,
    load_scenario,
    parse_scenario,
    run_scenario,
    server_argv,
)
from emulation.verify import (
    BEST_EFFORT,
    FAIL,
    NO_DATA,
    NO_SLS,
    OK,
    RunDirectoryError,
    Sls,
    analyse,
    class_series,
    in_window,
    plot,
    plot_series,
)

DATA = Path(__file__).parent / "data" / "iperf3"
ROOT = Path(__file__).resolve().parents[2]

# The demo provisioning's SLSes (labs/containerlab/gsb-provisioning.yaml), except globex-main: the
# congested fixture gave EF a 4mbit ceiling, so globex-main gets a gold SLS of 4M there.
DEMO_SLS = {
    "acme-hq": Sls("silver", 5_000_000),
    "globex-main": Sls("gold", 4_000_000),
    "initech-office": Sls("bronze", 8_000_000),
    "umbrella-lab": Sls("silver", 3_000_000),
}
UDP_PAYLOAD_RATIO = 1200 / 1242   # a 1200-byte datagram in an Ethernet frame


def scenario(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "duration": 10, "sink": "internet", "sink_address": "198.18.100.10", "interval": 0.5,
        "flows": [
            {"customer": "acme-hq", "node": "acme", "dscp": "AF41", "rate": "12M"},
            {"customer": "globex-main", "node": "globex", "dscp": 46, "rate": "3M", "protocol": "tcp", "start": 1,
             "duration": 5},
            {"customer": "initech-office", "node": "initech", "dscp": "CS0", "rate": "10M"},
        ],
    }
    base.update(changes)
    return copy.deepcopy(base)


def with_flow(index: int, **changes: Any) -> dict[str, Any]:
    data = scenario()
    data["flows"][index].update(changes)
    return data


def refusal(data: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    return caught.value


# ------------------------------------------------------------------------------------ the format


def test_a_scenario_fills_in_defaults_and_numbers() -> None:
    parsed = parse_scenario(scenario(), default_name="demo")
    assert parsed.name == "demo"
    acme, globex, initech = parsed.flows
    assert (acme.dscp, acme.rate_bps, acme.protocol, acme.start_s, acme.duration_s) == (34, 12_000_000, "udp", 0, 10)
    assert (globex.dscp, globex.protocol, globex.start_s, globex.end_s) == (46, "tcp", 1, 6)
    assert initech.dscp == 0
    assert [parsed.port(i) for i in range(3)] == [5201, 5202, 5203]


def test_the_shipped_congestion_scenario_is_valid() -> None:
    parsed = load_scenario(ROOT / "labs" / "containerlab" / "scenarios" / "congestion.yaml")
    assert parsed.name == "congestion"
    assert {f.customer for f in parsed.flows} == {"acme-hq", "globex-main", "umbrella-lab", "initech-office"}


def test_a_scenario_survives_its_own_record() -> None:
    parsed = parse_scenario(scenario(), default_name="demo")
    assert parse_scenario(parsed.to_dict()) == parsed


def test_a_zero_rate_is_refused_naming_the_flow_and_field() -> None:
    error = refusal(with_flow(2, rate=0))
    assert str(error) == "flows[2].rate: 0 is not a positive rate"
    assert (error.field, error.bound, error.value) == ("flows[2].rate", 0, 0)


@pytest.mark.parametrize("rate", ["fast", "12X", True, -3])
def test_a_rate_that_is_no_rate_is_refused(rate: object) -> None:
    assert refusal(with_flow(0, rate=rate)).field == "flows[0].rate"


def test_unknown_keys_are_refused_where_they_are() -> None:
    assert refusal(with_flow(1, colour="red")).field == "flows[1].colour"
    assert refusal(scenario(sinks="x")).field == "sinks"


@pytest.mark.parametrize("dscp, expected", [("EF", 46), ("af41", 34), ("CS0", 0), ("BE", 0), ("cs6", 48), (10, 10)])
def test_dscp_names_and_numbers(dscp: object, expected: int) -> None:
    assert dscp_value(dscp) == expected


@pytest.mark.parametrize("dscp, message", [(64, "64 is outside 0..63"), (-1, "-1 is outside 0..63"),
                                           ("AF51", "'AF51' is not a DSCP name"), (True, "not a DSCP")])
def test_a_bad_dscp_is_refused(dscp: object, message: str) -> None:
    error = refusal(with_flow(0, dscp=dscp))
    assert error.field == "flows[0].dscp" and message in str(error)


def test_more_than_150_mbits_of_udp_at_once_is_refused() -> None:
    data = with_flow(0, rate="100M")
    data["flows"][2]["rate"] = "51M"
    error = refusal(data)
    assert error.field == "flows" and error.bound == MAX_UDP_LOAD_BPS and error.value == 151_000_000
    assert "151 Mbit/s of UDP offered at once" in str(error)


def test_udp_load_counts_only_flows_that_overlap_and_not_tcp() -> None:
    data = with_flow(0, rate="100M", duration=4)
    data["flows"][2].update(rate="100M", start=4, duration=4)   # after acme-hq's flow
    data["flows"][1].update(rate="500M")                        # TCP
    parse_scenario(data)


def test_a_customer_sends_one_flow_at_a_time() -> None:
    data = scenario()
    data["flows"].append({"customer": "acme-hq", "node": "acme", "dscp": "EF", "rate": "1M", "start": 8,
                          "duration": 2})
    error = refusal(data)
    assert error.field == "flows[3].start" and "already sends flows[0]" in str(error)
    data["flows"][0]["duration"] = 8
    parse_scenario(data)


@pytest.mark.parametrize("duration, message", [(2.5, "not a whole number of seconds"),
                                               (1, "shorter than 3 report intervals"),
                                               (0, "not a positive number of seconds"),
                                               ("10s", "not a number of seconds")])
def test_flow_durations_are_whole_seconds_of_at_least_three_reports(duration: object, message: str) -> None:
    error = refusal(with_flow(1, duration=duration))
    assert error.field == "flows[1].duration" and message in str(error)


def test_required_fields_addresses_and_the_sink_itself() -> None:
    data = scenario()
    del data["flows"][0]["customer"]
    assert str(refusal(data)) == "flows[0].customer: is required"
    assert refusal(scenario(sink_address="internet.example")).field == "sink_address"
    assert refusal(with_flow(2, node="internet")).field == "flows[2].node"
    assert refusal(with_flow(0, protocol="sctp")).field == "flows[0].protocol"
    assert refusal(scenario(flows=[])).field == "flows"
    assert refusal(scenario(interval=0.05)).field == "interval"
    assert refusal([1, 2]).field == "scenario"


def test_iperf3_command_lines() -> None:
    parsed = parse_scenario(scenario())
    assert server_argv(parsed, 1) == ["iperf3", "-s", "-1", "-J", "-i", "0.5", "-B", "198.18.100.10", "-p", "5202"]
    assert client_argv(parsed, 0) == ["iperf3", "-c", "198.18.100.10", "-p", "5201", "-u", "-b", "12000000",
                                      "-l", "1200", "--dscp", "34", "-t", "10", "-J", "-i", "0.5"]
    assert client_argv(parsed, 1) == ["iperf3", "-c", "198.18.100.10", "-p", "5202", "-b", "3000000",
                                      "-l", "8192", "--dscp", "46", "-t", "5", "-J", "-i", "0.5"]


# ---------------------------------------------------------------------------- running, faked nodes


class FakeNodes:
    """Nodes whose iperf3 is a Python process printing a captured output; `ss` lists the servers' ports.

    `fail_server` makes that flow's server exit at once with iperf3's bind error, `deaf_server` one
    that never listens, `interrupt_client` a Ctrl-C when that client is started. Like iperf3 -s -1, a
    healthy server exits only after its client has started (a marker file), so a slow machine cannot
    make it look like a server that died on its own.
    """

    def __init__(self, fixture: Path, *, fail_server: int | None = None, deaf_server: int | None = None,
                 interrupt_client: int | None = None) -> None:
        self.fixture = fixture
        self.fail_server = fail_server
        self.deaf_server = deaf_server
        self.interrupt_client = interrupt_client
        self.calls: list[tuple[str, list[str]]] = []
        self.started: list[subprocess.Popen[bytes]] = []
        self.listening: list[str] = ["0.0.0.0:22", "127.0.0.1:5204"]   # not the sink's: must not count
        self.markers = Path(tempfile.mkdtemp(prefix="fake-iperf3-"))

    def popen(self, node: str, argv: Sequence[str], *, stdout: IO[bytes],
              stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        argv = list(argv)
        self.calls.append((node, argv))
        if argv[0] == "ss":
            listing = "".join(f"LISTEN 0 5 {local} 0.0.0.0:*\n" for local in self.listening)
            return self._python(f"import sys; sys.stdout.write({listing!r})", stdout, stderr)
        port = int(argv[argv.index("-p") + 1])
        index = port - 5201
        if argv[1] == "-s":
            if index == self.fail_server:
                error = json.dumps({"error": "unable to start listener for connections: Cannot assign requested "
                                             "address"})
                return self._python(f"import sys; sys.stdout.write({error!r}); sys.exit(1)", stdout, stderr)
            if index == self.deaf_server:
                return self._python("import time; time.sleep(60)", stdout, stderr)
            self.listening.append(f"{argv[argv.index('-B') + 1]}:{port}")
            return self._python(self._replay(index, "server", after=self.markers / str(index)), stdout, stderr)
        if index == self.interrupt_client:
            raise KeyboardInterrupt
        (self.markers / str(index)).touch()
        return self._python(self._replay(index, "client"), stdout, stderr)

    def _replay(self, index: int, side: str, *, after: Path | None = None) -> str:
        """Code printing the captured output; with `after`, once that file exists (at most 30 s)."""
        (path,) = self.fixture.glob(f"{index}-*-{side}.json")
        code = "import os, sys, time\n"
        if after is not None:
            code += "end = time.monotonic() + 30\n"
            code += f"while not os.path.exists({str(after)!r}) and time.monotonic() < end:\n"
            code += "    time.sleep(0.01)\n"
        return code + f"sys.stdout.write(open({str(path)!r}).read())\n"

    def _python(self, code: str, stdout: IO[bytes], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=stdout, stderr=stderr)
        self.started.append(process)
        return process


def fixture_scenario(name: str) -> Any:
    return parse_scenario(json.loads((DATA / name / "scenario.json").read_text())["scenario"])


def test_the_fake_nodes_satisfy_the_protocol() -> None:
    nodes: Nodes = FakeNodes(DATA / "clean")
    assert nodes is not None


def test_a_run_starts_servers_first_then_clients_at_their_offsets_and_records_everything(tmp_path: Path) -> None:
    parsed = fixture_scenario("congested")
    nodes = FakeNodes(DATA / "congested")
    result = run_scenario(parsed, nodes, tmp_path / "run")
    assert result.ok
    iperf = [(node, argv) for node, argv in nodes.calls if argv[0] == "iperf3"]
    assert [argv[1] for _, argv in iperf] == ["-s"] * 4 + ["-c"] * 4
    assert {node for node, argv in iperf if argv[1] == "-s"} == {"k"}
    assert [node for node, argv in iperf if argv[1] == "-c"] == ["s1", "s2", "s1", "s2"]
    assert iperf[4][1] == client_argv(parsed, 0)
    assert [f.started_s for f in result.flows][3] >= 0.5       # umbrella-lab starts at 0.5 s
    assert max(f.started_s for f in result.flows[:3]) < 0.5
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == sorted(["scenario.json"] + [f"{i}-{c}-{side}.json" for i, c in enumerate(
        ["globex-main", "acme-hq", "initech-office", "umbrella-lab"]) for side in ("client", "server")])
    record = json.loads((tmp_path / "run" / "scenario.json").read_text())
    assert parse_scenario(record["scenario"]) == parsed
    assert [f["server_json"] for f in record["flows"]][1] == "1-acme-hq-server.json"
    assert all(p.poll() is not None for p in nodes.started)
    assert analyse(tmp_path / "run", DEMO_SLS).ok


def test_a_server_that_cannot_start_stops_the_run_and_its_siblings(tmp_path: Path) -> None:
    nodes = FakeNodes(DATA / "congested", fail_server=2)
    with pytest.raises(TrafficError, match="flow 2 .*Cannot assign requested address"):
        run_scenario(fixture_scenario("congested"), nodes, tmp_path / "run")
    assert not [argv for _, argv in nodes.calls if argv[:2] == ["iperf3", "-c"]]
    assert all(p.poll() is not None for p in nodes.started)


def test_servers_that_do_not_listen_in_time_stop_the_run(tmp_path: Path) -> None:
    nodes = FakeNodes(DATA / "congested", deaf_server=3)
    with pytest.raises(TrafficError, match="not listening after 0.3 s on 198.18.200.130 ports 5204"):
        run_scenario(fixture_scenario("congested"), nodes, tmp_path / "run", listen_timeout_s=0.3)
    assert all(p.poll() is not None for p in nodes.started)


def test_an_interrupt_kills_every_process_the_run_started(tmp_path: Path) -> None:
    nodes = FakeNodes(DATA / "congested", interrupt_client=1)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(fixture_scenario("congested"), nodes, tmp_path / "run")
    assert len(nodes.started) > 4
    assert all(p.poll() is not None for p in nodes.started)


# ---------------------------------------------------------------------------------- the analysis


def server_intervals(run: str, stem: str) -> list[dict[str, Any]]:
    return [i["sum"] for i in json.loads((DATA / run / f"{stem}-server.json").read_text())["intervals"]]


def test_received_is_the_receivers_bytes_in_the_steady_window() -> None:
    (flow,) = analyse(DATA / "lossy", DEMO_SLS).flows
    # 3 s at 0.5 s: the window is 0.5-2.5 s, reports 1 to 4 (the first, the last and the 0.1 s tail are out)
    steady = server_intervals("lossy", "0-globex-main")[1:5]
    expected = sum(i["bytes"] for i in steady) * 8 / sum(i["end"] - i["start"] for i in steady)
    assert flow.window == (0.5, 2.5)
    assert flow.received_bps == pytest.approx(expected)
    # the router's tbf rate 5mbit, as 1200-byte payloads in 1242-byte frames
    assert flow.received_bps == pytest.approx(5e6 * UDP_PAYLOAD_RATIO, rel=0.01)
    assert flow.offered_bps == pytest.approx(10e6, rel=0.01)


def test_lost_packets_are_the_receivers_totals() -> None:
    (flow,) = analyse(DATA / "lossy", DEMO_SLS).flows
    totals = json.loads((DATA / "lossy" / "0-globex-main-server.json").read_text())["end"]["sum"]
    assert (flow.lost_packets, flow.packets, flow.lost_percent) == (
        totals["lost_packets"], totals["packets"], totals["lost_percent"])
    assert 45 < flow.lost_percent < 52


def test_an_unshaped_run_delivers_what_was_offered() -> None:
    udp, tcp = analyse(DATA / "clean", DEMO_SLS).flows
    assert udp.received_bps == pytest.approx(8e6, rel=0.01) and udp.offered_bps == pytest.approx(8e6, rel=0.01)
    assert (udp.lost_packets, udp.lost_percent) == (0, 0)
    assert tcp.received_bps == pytest.approx(20e6, rel=0.01) and tcp.offered_bps == 20e6
    assert (tcp.lost_packets, tcp.retransmits) == (None, 0)


def test_gold_receiving_less_than_its_sls_fails() -> None:
    # globex-main offered 5M as EF; the router gave EF 4mbit: not enough for a gold SLS of 5M
    report = analyse(DATA / "congested", {**DEMO_SLS, "globex-main": Sls("gold", 5_000_000)})
    gold = report.flows[0]
    assert gold.verdict == FAIL and not report.ok
    assert gold.needed_bps == pytest.approx(0.97 * 5e6 * UDP_PAYLOAD_RATIO)
    assert gold.received_bps == pytest.approx(4e6 * UDP_PAYLOAD_RATIO, rel=0.01)   # the EF class's ceil
    needed = f"{gold.received_bps / 1e6:.2f} of {gold.needed_bps / 1e6:.2f} Mbit/s"
    assert report.table().splitlines()[-1] == f"FAIL: globex-main (FAIL: {needed})"


def test_offering_more_than_the_sls_is_only_owed_the_sls() -> None:
    report = analyse(DATA / "congested", DEMO_SLS)
    gold = report.flows[0]
    assert gold.offered_bps == pytest.approx(5e6, rel=0.01)
    assert gold.needed_bps == pytest.approx(0.97 * 4e6 * UDP_PAYLOAD_RATIO)
    assert gold.received_bps < gold.offered_bps * 0.8
    assert gold.verdict == OK


def test_silver_offering_less_than_its_sls_is_owed_what_it_offered() -> None:
    silver = analyse(DATA / "congested", DEMO_SLS).flows[1]
    assert silver.needed_bps == pytest.approx(0.97 * silver.offered_bps)
    assert silver.verdict == OK


def test_bronze_is_best_effort_and_still_reported() -> None:
    report = analyse(DATA / "congested", DEMO_SLS)
    bronze = report.flows[2]
    assert bronze.customer == "initech-office" and bronze.verdict == BEST_EFFORT and bronze.ok
    assert bronze.lost_percent > 30 and bronze.received_bps < bronze.offered_bps / 2
    assert report.ok
    (line,) = [row for row in report.table().splitlines() if row.startswith("initech-office")]
    assert line.endswith("best effort") and "12.00" in line


def test_a_customer_without_an_sls_is_not_verified() -> None:
    report = analyse(DATA / "clean", {"acme-hq": DEMO_SLS["acme-hq"]})
    assert [f.verdict for f in report.flows] == [OK, NO_SLS]
    assert not report.ok and "no SLS for globex-main" in report.table()


def test_a_failed_iperf3_is_reported_as_no_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "clean", run)
    (run / "1-globex-main-server.json").write_text(json.dumps({"start": {}, "intervals": [], "end": {},
                                                              "error": "the client has unexpectedly closed"}))
    (run / "0-acme-hq-client.json").unlink()
    acme, globex = analyse(run, DEMO_SLS).flows
    assert acme.verdict == OK and acme.offered_bps == 8e6 and "offered is the target" in acme.note
    assert globex.verdict == NO_DATA and "unexpectedly closed" in globex.note


def test_a_directory_without_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="scenario.json"):
        analyse(tmp_path, DEMO_SLS)


def test_an_sls_is_a_class_and_a_positive_bandwidth() -> None:
    with pytest.raises(ValueError, match="platinum"):
        Sls("platinum", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bandwidth_bps"):
        Sls("gold", 0)


def test_the_table_lists_every_flow_with_its_numbers() -> None:
    report = analyse(DATA / "congested", DEMO_SLS)
    lines = report.table().splitlines()
    for flow in report.flows:
        (row,) = [line for line in lines if line.startswith(flow.customer + " ")]
        assert f"{flow.received_bps / 1e6:.2f}" in row and row.endswith(flow.verdict)
    header = next(line for line in lines if line.startswith("customer"))
    assert header.index("received") < header.index("verdict")
    assert lines[-1] == "PASS: every gold and silver flow received what its SLS guarantees."


# -------------------------------------------------------------------------------------- the plot


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    png = plot(analyse(DATA / "congested", DEMO_SLS), tmp_path / "out" / "congested.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_the_plot_can_start_from_a_run_directory(tmp_path: Path) -> None:
    png = plot(DATA / "lossy", tmp_path / "lossy.png", sls=DEMO_SLS)
    assert png.stat().st_size > 10_000


def test_the_plotted_lines_agree_with_the_table() -> None:
    report = analyse(DATA / "congested", DEMO_SLS)
    for flow, line in zip(report.flows, plot_series(report)):
        steady = [v for t, v in zip(line.times_s, line.mbps) if line.window[0] <= t <= line.window[1]]
        assert len(steady) >= 2
        assert sum(steady) / len(steady) == pytest.approx(flow.received_bps / 1e6, rel=0.01)
        assert line.received_mbps == pytest.approx(flow.received_bps / 1e6)
        assert line.window == flow.window
        assert line.sls_mbps == pytest.approx(DEMO_SLS[flow.customer].bandwidth_bps * UDP_PAYLOAD_RATIO / 1e6,
                                              rel=0.02)
        assert line.colour == {"gold": "#d4a000", "silver": "#6f7b87", "bronze": "#a0522d"}[flow.sls.service_class]
        assert all(in_window(i, flow.window) == (flow.window[0] <= i.mid_s <= flow.window[1]) for i in flow.received)


def test_the_per_class_panel_adds_up_the_customers_of_each_class() -> None:
    report = analyse(DATA / "congested", DEMO_SLS)
    per_customer = plot_series(report)
    per_class = {line.service_class: line for line in class_series(report)}
    assert set(per_class) == {line.service_class for line in per_customer}
    for service_class, line in per_class.items():
        members = [c for c in per_customer if c.service_class == service_class]
        # the class's total volume over the run is its customers' total volume
        assert sum(line.mbps) == pytest.approx(sum(sum(c.mbps) for c in members), rel=1e-9)
        assert len(line.times_s) >= max(len(c.times_s) for c in members)
        if service_class != "bronze":
            assert line.sls_mbps == pytest.approx(sum(c.sls_mbps or 0 for c in members))
