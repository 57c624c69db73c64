"""Traffic scenarios: the YAML format, its strict validation, and running one with iperf3 in the lab's nodes.

A scenario is a list of flows, each a customer's host sending UDP or TCP at a fixed rate with a DSCP
of its choosing to one sink node. `run_scenario` starts one iperf3 server per flow on the sink, then
each client at its start offset, and leaves a run directory that `emulation.verify.analyse` reads:

    scenario.json                       the scenario as run, with each flow's actual start offset
    <index>-<customer>-client.json      iperf3 -J output of the sender
    <index>-<customer>-server.json      iperf3 -J output of the receiver (what arrived, per interval)
    <index>-<customer>-{client,server}.stderr   only when iperf3 wrote to stderr

Scenario file:

    name: congestion          # optional; defaults to the file name
    duration: 10              # seconds, default for every flow
    sink: internet            # node that runs the iperf3 servers
    sink_address: 198.18.100.10
    interval: 0.5             # iperf3 report interval (both sides)
    flows:
      - customer: acme-hq     # the SLA name: verify looks its SLS up by this name
        node: acme            # node that sends
        dscp: AF41            # name (EF, AF41, CS0, BE, ...) or number 0..63: what the customer marks
        rate: 12M             # offered rate, bit/s with k/M/G suffixes
        protocol: udp         # udp (default) | tcp
        start: 0              # seconds after the scenario starts (default 0)
        duration: 10          # default: the scenario's

One flow per customer at a time: a flow is judged against its customer's whole SLS.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import yaml

from controller.domain.units import format_bandwidth, parse_bandwidth

FIRST_PORT = 5201
MAX_UDP_LOAD_BPS = 150_000_000   # offered at any one moment; iperf3 on a 2-core machine loses packets itself above
MAX_FLOWS = 32
MIN_INTERVAL_S = 0.1             # iperf3's smallest report interval
MAX_DURATION_S = 600
UDP_PAYLOAD_BYTES = 1200         # -l: below the lab's MTU whatever the tunnel overhead
TCP_BLOCK_BYTES = 8192           # -l: with the default 128 KiB, -b 3M sends 1 or 2 blocks per 0.5 s interval

# DiffServ code point names (RFC 2474, 2597, 3246, 8622) -> DSCP.
DSCP_NAMES: dict[str, int] = {
    "BE": 0, "DF": 0, "LE": 1, "EF": 46, "VOICE-ADMIT": 44,
    **{f"CS{n}": 8 * n for n in range(8)},
    **{f"AF{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)},
}

_SCENARIO_KEYS = {"name", "duration", "sink", "sink_address", "interval", "flows"}
_FLOW_KEYS = {"customer", "node", "dscp", "rate", "protocol", "start", "duration"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; `field` is where (`flows[2].rate`), `bound` what it must meet."""

    def __init__(self, field: str, message: str, *, bound: Any = None, value: Any = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.bound = bound
        self.value = value


class TrafficError(RuntimeError):
    """iperf3 could not be started or did not finish in the lab."""


@dataclass(frozen=True)
class Flow:
    customer: str
    node: str
    dscp: int
    rate_bps: int
    protocol: Literal["udp", "tcp"]
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Scenario:
    name: str
    sink: str
    sink_address: str
    interval_s: float
    duration_s: float
    flows: tuple[Flow, ...]

    def port(self, index: int) -> int:
        """The sink port of flow `index` (one iperf3 server each)."""
        return FIRST_PORT + index

    def to_dict(self) -> dict[str, Any]:
        """The validated scenario in file form (numbers instead of names), for `scenario.json`."""
        return {
            "name": self.name, "duration": self.duration_s, "sink": self.sink, "sink_address": self.sink_address,
            "interval": self.interval_s,
            "flows": [{"customer": f.customer, "node": f.node, "dscp": f.dscp, "rate": f.rate_bps,
                       "protocol": f.protocol, "start": f.start_s, "duration": f.duration_s} for f in self.flows],
        }


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; the name defaults to the file's stem.

    Raises:
        ScenarioError: the file is not YAML, or a field is missing, unknown or out of bounds.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ScenarioError(str(path), f"not valid YAML: {error}") from None
    return parse_scenario(data, default_name=path.stem)


def parse_scenario(data: Any, *, default_name: str = "scenario") -> Scenario:
    """Validate a scenario given as data (the YAML file's content, or `Scenario.to_dict()`).

    Raises:
        ScenarioError: naming the field (`flows[2].rate`), the bound and the value.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError("scenario", f"must be a mapping with keys {sorted(_SCENARIO_KEYS)}, not {data!r}")
    _no_unknown_keys(data, _SCENARIO_KEYS, "")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ScenarioError("name", f"{name!r} is not a name (letters, digits, '.', '_', '-')", value=name)
    duration = _whole_seconds(_required(data, "duration", ""), "duration")
    sink = _node_name(_required(data, "sink", ""), "sink")
    address = _required(data, "sink_address", "")
    try:
        sink_address = str(ipaddress.ip_address(str(address)))
    except ValueError:
        raise ScenarioError("sink_address", f"{address!r} is not an IP address", value=address) from None
    interval = _seconds(data.get("interval", 1.0), "interval", positive=True)
    if interval < MIN_INTERVAL_S:
        raise ScenarioError("interval", f"{interval} s is below iperf3's smallest interval of {MIN_INTERVAL_S} s",
                            bound=MIN_INTERVAL_S, value=interval)
    flows_data = _required(data, "flows", "")
    if not isinstance(flows_data, list) or not flows_data:
        raise ScenarioError("flows", "must be a non-empty list of flows", value=flows_data)
    if len(flows_data) > MAX_FLOWS:
        raise ScenarioError("flows", f"{len(flows_data)} flows is more than {MAX_FLOWS}", bound=MAX_FLOWS,
                            value=len(flows_data))
    flows = tuple(_flow(item, f"flows[{i}]", duration, interval, sink) for i, item in enumerate(flows_data))
    _one_flow_per_customer_at_a_time(flows)
    _udp_load_within_bound(flows)
    return Scenario(name, sink, sink_address, interval, duration, flows)


def dscp_value(value: Any, field: str = "dscp") -> int:
    """A DSCP given as a name (EF, AF41, CS0, BE; any case) or a number 0..63."""
    if isinstance(value, bool):
        raise ScenarioError(field, f"{value!r} is not a DSCP name or a number 0..63", value=value)
    if isinstance(value, int):
        if not 0 <= value <= 63:
            raise ScenarioError(field, f"{value} is outside 0..63", bound=(0, 63), value=value)
        return value
    if isinstance(value, str) and value.upper() in DSCP_NAMES:
        return DSCP_NAMES[value.upper()]
    raise ScenarioError(field, f"{value!r} is not a DSCP name ({', '.join(sorted(DSCP_NAMES))}) or a number 0..63",
                        value=value)


def dscp_name(dscp: int) -> str:
    """The usual name of a DSCP (46 -> EF, 0 -> BE), or its number."""
    preferred = {0: "BE", 46: "EF"}
    if dscp in preferred:
        return preferred[dscp]
    for name, value in DSCP_NAMES.items():
        if value == dscp and name not in ("DF",):
            return name
    return str(dscp)


def _flow(item: Any, where: str, default_duration: float, interval: float, sink: str) -> Flow:
    if not isinstance(item, Mapping):
        raise ScenarioError(where, f"must be a mapping with keys {sorted(_FLOW_KEYS)}, not {item!r}")
    _no_unknown_keys(item, _FLOW_KEYS, where + ".")
    customer = _required(item, "customer", where + ".")
    if not isinstance(customer, str) or not _NAME.match(customer):
        raise ScenarioError(f"{where}.customer", f"{customer!r} is not an SLA name", value=customer)
    node = _node_name(_required(item, "node", where + "."), f"{where}.node")
    if node == sink:
        raise ScenarioError(f"{where}.node", f"{node!r} is the sink itself: its traffic would cross no network",
                            value=node)
    dscp = dscp_value(_required(item, "dscp", where + "."), f"{where}.dscp")
    rate = _required(item, "rate", where + ".")
    try:
        rate_bps = parse_bandwidth(rate)
    except ValueError:
        raise ScenarioError(f"{where}.rate", f"{rate!r} is not a rate (bit/s with k/M/G suffixes, e.g. 12M)",
                            value=rate) from None
    if rate_bps <= 0:
        raise ScenarioError(f"{where}.rate", f"{rate} is not a positive rate", bound=0, value=rate)
    protocol = item.get("protocol", "udp")
    if protocol not in ("udp", "tcp"):
        raise ScenarioError(f"{where}.protocol", f"{protocol!r} is neither udp nor tcp", value=protocol)
    start = _seconds(item.get("start", 0), f"{where}.start", positive=False)
    duration = _whole_seconds(item.get("duration", default_duration), f"{where}.duration")
    if duration < 3 * interval:
        # verification drops the first and the last report interval; one must remain
        raise ScenarioError(f"{where}.duration", f"{duration} s is shorter than 3 report intervals ({3 * interval} s)",
                            bound=3 * interval, value=duration)
    if start + duration > MAX_DURATION_S:
        raise ScenarioError(f"{where}.duration", f"the flow ends at {start + duration} s, after {MAX_DURATION_S} s",
                            bound=MAX_DURATION_S, value=duration)
    return Flow(customer, node, dscp, rate_bps, protocol, start, duration)


def _no_unknown_keys(data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ScenarioError(f"{prefix}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})",
                            value=unknown[0])


def _required(data: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in data or data[key] is None:
        raise ScenarioError(f"{prefix}{key}", "is required")
    return data[key]


def _seconds(value: Any, field: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(field, f"{value!r} is not a number of seconds", value=value)
    if positive and value <= 0:
        raise ScenarioError(field, f"{value} is not a positive number of seconds", bound=0, value=value)
    if value < 0:
        raise ScenarioError(field, f"{value} is negative", bound=0, value=value)
    if value > MAX_DURATION_S:
        raise ScenarioError(field, f"{value} s is more than {MAX_DURATION_S} s", bound=MAX_DURATION_S, value=value)
    return float(value)


def _whole_seconds(value: Any, field: str) -> float:
    seconds = _seconds(value, field, positive=True)
    if not seconds.is_integer():
        # iperf3 -t reads an integer: 2.5 would run 2 s
        raise ScenarioError(field, f"{value} is not a whole number of seconds (iperf3 -t)", value=value)
    return seconds


def _node_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ScenarioError(field, f"{value!r} is not a node name", value=value)
    return value


def _one_flow_per_customer_at_a_time(flows: tuple[Flow, ...]) -> None:
    for i, flow in enumerate(flows):
        for j, other in enumerate(flows[:i]):
            if other.customer == flow.customer and flow.start_s < other.end_s and other.start_s < flow.end_s:
                raise ScenarioError(
                    f"flows[{i}].start", f"customer {flow.customer} already sends flows[{j}] from {other.start_s} s "
                    f"to {other.end_s} s; one flow per customer at a time (a flow is judged against the whole SLS)",
                    value=flow.start_s)


def _udp_load_within_bound(flows: tuple[Flow, ...]) -> None:
    # the peak is reached at some flow's start
    for flow in flows:
        at = flow.start_s
        load = sum(f.rate_bps for f in flows if f.protocol == "udp" and f.start_s <= at < f.end_s)
        if load > MAX_UDP_LOAD_BPS:
            raise ScenarioError(
                "flows", f"{format_bandwidth(load)} of UDP offered at once (at {at} s) is more than "
                f"{format_bandwidth(MAX_UDP_LOAD_BPS)}: iperf3 itself would drop packets on a 2-core machine",
                bound=MAX_UDP_LOAD_BPS, value=load)


# ------------------------------------------------------------------------------------------ running


class Nodes(Protocol):
    """A way to run a command inside a lab node (the deployer's `Lab`, or `LocalNodes`)."""

    def popen(self, node: str, argv: Sequence[str], *, stdout: IO[bytes],
              stderr: IO[bytes]) -> subprocess.Popen[bytes]: ...


class LocalNodes:
    """Nodes that are network namespaces of this host: `ip netns exec <namespace> argv`."""

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.namespaces = dict(namespaces)

    def popen(self, node: str, argv: Sequence[str], *, stdout: IO[bytes],
              stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        try:
            namespace = self.namespaces[node]
        except KeyError:
            raise TrafficError(f"no namespace for node {node!r} (nodes: {', '.join(self.namespaces)})") from None
        # `ip netns exec` execs argv: the returned PID is iperf3's own
        return subprocess.Popen(["ip", "netns", "exec", namespace, *argv], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL)


@dataclass(frozen=True)
class FlowRun:
    index: int
    customer: str
    port: int
    started_s: float          # when the client was started, seconds after the scenario's start
    client_json: str          # file names inside the run directory
    server_json: str
    client_rc: int
    server_rc: int


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    scenario: Scenario
    started_at: str           # wall clock, ISO 8601 UTC
    flows: tuple[FlowRun, ...]

    @property
    def ok(self) -> bool:
        """Every client and server exited 0."""
        return all(f.client_rc == 0 and f.server_rc == 0 for f in self.flows)


def file_stem(index: int, customer: str) -> str:
    return f"{index}-{customer}"


def server_argv(scenario: Scenario, index: int) -> list[str]:
    # the server reports at its own -i (the client's is not passed on; default 1 s)
    return ["iperf3", "-s", "-1", "-J", "-i", _number(scenario.interval_s), "-B", scenario.sink_address,
            "-p", str(scenario.port(index))]


def client_argv(scenario: Scenario, index: int) -> list[str]:
    flow = scenario.flows[index]
    argv = ["iperf3", "-c", scenario.sink_address, "-p", str(scenario.port(index))]
    if flow.protocol == "udp":
        argv += ["-u", "-b", str(flow.rate_bps), "-l", str(UDP_PAYLOAD_BYTES)]
    else:
        argv += ["-b", str(flow.rate_bps), "-l", str(TCP_BLOCK_BYTES)]
    return argv + ["--dscp", str(flow.dscp), "-t", _number(flow.duration_s), "-J", "-i", _number(scenario.interval_s)]


def run_scenario(scenario: Scenario, nodes: Nodes, out_dir: str | Path, *, listen_timeout_s: float = 5.0,
                 finish_grace_s: float = 10.0) -> RunResult:
    """Run every flow of `scenario` through `nodes`; write the run directory `out_dir` (created).

    Servers first (waiting until each listens, at most `listen_timeout_s`), then each client at its
    start offset; returns when all have exited, or kills those still running `finish_grace_s` after
    the scenario's last flow should have ended. Only processes started here are ever killed, by PID,
    also on errors and KeyboardInterrupt.

    Raises:
        TrafficError: a server did not come up (its stderr or iperf3 error is in the message).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    files: list[IO[bytes]] = []

    def start(node: str, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        stdout = open(out / f"{name}.json", "wb")
        stderr = open(out / f"{name}.stderr", "wb")
        files.extend((stdout, stderr))
        process = nodes.popen(node, argv, stdout=stdout, stderr=stderr)
        started.append(process)
        return process

    flows = scenario.flows
    stems = [file_stem(i, f.customer) for i, f in enumerate(flows)]
    try:
        servers = [start(scenario.sink, server_argv(scenario, i), f"{stems[i]}-server") for i in range(len(flows))]
        _wait_listening(scenario, nodes, servers, out, stems, listen_timeout_s)
        started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        t0 = time.monotonic()
        clients: list[subprocess.Popen[bytes] | None] = [None] * len(flows)
        offsets = [0.0] * len(flows)
        for i in sorted(range(len(flows)), key=lambda k: flows[k].start_s):
            delay = t0 + flows[i].start_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            offsets[i] = round(time.monotonic() - t0, 3)
            clients[i] = start(flows[i].node, client_argv(scenario, i), f"{stems[i]}-client")
        deadline = t0 + max(f.end_s for f in flows) + finish_grace_s
        client_rcs = [_wait_until(p, deadline) for p in clients if p is not None]
        # a server whose client failed may wait for a test forever: give it a second
        server_rcs = [_wait_until(p, deadline if rc == 0 else time.monotonic() + 1.0)
                      for p, rc in zip(servers, client_rcs)]
    finally:
        _stop(started)
        for handle in files:
            handle.close()
    for stem in stems:
        for side in ("client", "server"):
            stderr = out / f"{stem}-{side}.stderr"
            if stderr.exists() and stderr.stat().st_size == 0:
                stderr.unlink()
    runs = tuple(FlowRun(i, f.customer, scenario.port(i), offsets[i], f"{stems[i]}-client.json",
                         f"{stems[i]}-server.json", client_rcs[i], server_rcs[i]) for i, f in enumerate(flows))
    result = RunResult(out, scenario, started_at, runs)
    record = {"scenario": scenario.to_dict(), "started_at": started_at, "flows": [asdict(r) for r in runs]}
    (out / "scenario.json").write_text(json.dumps(record, indent=2) + "\n")
    return result


def _wait_listening(scenario: Scenario, nodes: Nodes, servers: list[subprocess.Popen[bytes]], out: Path,
                    stems: list[str], timeout_s: float) -> None:
    """Poll the sink's listening TCP sockets (iperf3's control port, UDP tests too) until all servers are up."""
    wanted = {scenario.port(i) for i in range(len(servers))}
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        for i, server in enumerate(servers):
            if server.poll() is not None:
                raise TrafficError(f"iperf3 server for flow {i} on {scenario.sink} "
                                   f"({scenario.sink_address}:{scenario.port(i)}) exited with {server.returncode}: "
                                   f"{_failure_text(out, stems[i] + '-server')}")
        missing = wanted - _listening_ports(nodes, scenario.sink, scenario.sink_address)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TrafficError(f"iperf3 servers on {scenario.sink} not listening after {timeout_s} s "
                               f"on {scenario.sink_address} ports {', '.join(map(str, sorted(missing)))}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _listening_ports(nodes: Nodes, node: str, address: str) -> set[int]:
    """The TCP ports listening on `address` in `node` (`ss -Hltn`: state, queues, local address, peer)."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = nodes.popen(node, ["ss", "-Hltn"], stdout=stdout, stderr=stderr)
        try:
            process.wait(timeout=5)
        finally:
            _stop([process])
        stdout.seek(0)
        text = stdout.read().decode(errors="replace")
    host = f"[{address}]" if ":" in address else address
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].startswith(host + ":"):
            port = fields[3][len(host) + 1:]
            if port.isdigit():
                ports.add(int(port))
    return ports


def _failure_text(out: Path, stem: str) -> str:
    """iperf3's own error: the `error` of its JSON, else its stderr."""
    try:
        error = json.loads((out / f"{stem}.json").read_text()).get("error")
        if error:
            return str(error)
    except (OSError, ValueError):
        pass
    try:
        return (out / f"{stem}.stderr").read_text().strip() or "no output"
    except OSError:
        return "no output"


def _wait_until(process: subprocess.Popen[bytes], deadline: float) -> int:
    try:
        return process.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        _stop([process])
        return process.returncode if process.returncode is not None else -9


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate (iperf3 then still writes its JSON), then kill, our own processes that still run."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
