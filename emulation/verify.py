"""QoS verification of a traffic run: what each customer offered and received against its SLS.

`analyse` reads a run directory written by `emulation.traffic.run_scenario` and judges every flow:

* received is the receiver's count (the iperf3 server's per-interval bytes), over the flow's steady
  window: its duration without the first and the last report interval (start-up, queue fill and the
  tail are not a rate the network settled on);
* offered is what the UDP client sent over the same window, or the `-b` target of a TCP flow
  (TCP's sending rate is itself the network's doing);
* gold and silver pass when received >= tolerance x min(offered, SLS); a customer offering more than
  its SLS is only guaranteed its SLS. Bronze has no guarantee: shown as "best effort".

All rates are iperf3 payload rates. The routers' shapers count Ethernet frames, so the SLS is
compared as the payload it carries: 1200-byte UDP datagrams travel in 1242-byte frames, and an SLS of
4 Mbit/s delivers 3.86 Mbit/s of iperf3 payload (measured: HTB rate 4mbit gave 3.86-3.88).

`plot` draws the same numbers over time: one line per customer coloured by class, its SLS dashed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emulation.traffic import Scenario, ScenarioError, dscp_name, parse_scenario

ServiceClass = Literal["gold", "silver", "bronze"]
GUARANTEED: tuple[ServiceClass, ...] = ("gold", "silver")
CLASS_COLOURS: dict[str, str] = {"gold": "#d4a000", "silver": "#6f7b87", "bronze": "#a0522d"}

# Bytes a shaper counts per packet beyond iperf3's payload: Ethernet 14 + IPv4 20 / IPv6 40 + UDP 8 / TCP 20+12
# (the timestamps option, which tcp_mss_default already leaves room for).
HEADER_BYTES: dict[tuple[str, int], int] = {
    ("udp", 4): 14 + 20 + 8, ("udp", 6): 14 + 40 + 8,
    ("tcp", 4): 14 + 20 + 32, ("tcp", 6): 14 + 40 + 32,
}
_DEFAULT_PAYLOAD = {"udp": 1200, "tcp": 1448}

OK = "OK"
FAIL = "FAIL"
BEST_EFFORT = "best effort"
NO_SLS = "no SLS"
NO_DATA = "no data"


class RunDirectoryError(ValueError):
    """The run directory is not one `run_scenario` wrote (no or unreadable scenario.json)."""


@dataclass(frozen=True)
class Sls:
    """What a customer bought: a class and a bandwidth (bit/s, as the routers shape it)."""

    service_class: ServiceClass
    bandwidth_bps: int

    def __post_init__(self) -> None:
        if self.service_class not in CLASS_COLOURS:
            raise ValueError(f"service_class: {self.service_class!r} is not gold, silver or bronze")
        if self.bandwidth_bps <= 0:
            raise ValueError(f"bandwidth_bps: {self.bandwidth_bps} is not positive")


@dataclass(frozen=True)
class Interval:
    """One receiver report, in seconds after the scenario's start."""

    start_s: float
    end_s: float
    bytes: int

    @property
    def bps(self) -> float:
        return self.bytes * 8 / (self.end_s - self.start_s) if self.end_s > self.start_s else 0.0

    @property
    def mid_s(self) -> float:
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True)
class FlowResult:
    index: int
    customer: str
    node: str
    protocol: str
    dscp: int
    target_bps: int                     # iperf3 -b
    offered_bps: float | None           # payload: sent by a UDP client in the window, or the TCP target
    received_bps: float | None          # payload: the receiver's count in the window
    lost_packets: int | None            # UDP, the receiver's totals for the whole flow
    packets: int | None
    lost_percent: float | None
    retransmits: int | None             # TCP, the sender's count
    payload_ratio: float                # payload bytes per Ethernet frame byte
    sls: Sls | None
    needed_bps: float | None            # payload the SLS guarantees for this offer, x tolerance
    verdict: str                        # OK, FAIL, best effort, no SLS, no data
    window: tuple[float, float]         # steady window, seconds after the scenario's start
    received: tuple[Interval, ...]      # every receiver report (the plot's line)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in (OK, BEST_EFFORT)

    @property
    def service_class(self) -> ServiceClass:
        """The SLS's class, or the one the marking asks for when there is no SLS (for colours)."""
        if self.sls is not None:
            return self.sls.service_class
        return "gold" if self.dscp == 46 else "silver" if self.dscp == 34 else "bronze"

    @property
    def sls_payload_bps(self) -> float | None:
        return self.sls.bandwidth_bps * self.payload_ratio if self.sls is not None else None


@dataclass(frozen=True)
class Report:
    scenario: Scenario
    run_dir: Path
    started_at: str
    tolerance: float
    flows: tuple[FlowResult, ...]

    @property
    def ok(self) -> bool:
        """Every gold and silver flow got its due, every flow has data and an SLS."""
        return all(flow.ok for flow in self.flows)

    def table(self) -> str:
        """An aligned text table, one line per flow, with the rules it applied and a verdict line."""
        return _table(self)


def analyse(run_dir: str | Path, sls: Mapping[str, Sls], *, tolerance: float = 0.97) -> Report:
    """Judge every flow of the run in `run_dir` against the SLS of its customer (`sls[customer]`).

    Raises:
        RunDirectoryError: no readable scenario.json in `run_dir`.
    """
    if not 0 < tolerance <= 1:
        raise ValueError(f"tolerance: {tolerance} is not in (0, 1]")
    run = Path(run_dir)
    try:
        record = json.loads((run / "scenario.json").read_text())
        scenario = parse_scenario(record["scenario"])
        runs = {int(item["index"]): item for item in record["flows"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        kind = "invalid scenario" if isinstance(error, ScenarioError) else "cannot read"
        raise RunDirectoryError(f"{run / 'scenario.json'}: {kind}: {error}") from None
    flows = tuple(_flow(run, scenario, index, runs.get(index, {}), sls.get(flow.customer), tolerance)
                  for index, flow in enumerate(scenario.flows))
    return Report(scenario, run, str(record.get("started_at", "")), tolerance, flows)


def _flow(run: Path, scenario: Scenario, index: int, record: Mapping[str, Any], sls: Sls | None,
          tolerance: float) -> FlowResult:
    flow = scenario.flows[index]
    started = float(record.get("started_s", flow.start_s))
    window = (started + scenario.interval_s, started + flow.duration_s - scenario.interval_s)
    client, client_error = _load(run, record.get("client_json"))
    server, server_error = _load(run, record.get("server_json"))
    ipv = 6 if ":" in scenario.sink_address else 4
    payload = _payload_bytes(client, flow.protocol)
    ratio = payload / (payload + HEADER_BYTES[(flow.protocol, ipv)])
    base = dict(index=index, customer=flow.customer, node=flow.node, protocol=flow.protocol, dscp=flow.dscp,
                target_bps=flow.rate_bps, payload_ratio=ratio, sls=sls, window=window)

    received = tuple(Interval(started + i["start"], started + i["end"], int(i["bytes"]))
                     for i in (iv["sum"] for iv in (server or {}).get("intervals", [])))
    if server_error is not None or not received:
        return FlowResult(**base, offered_bps=None, received_bps=None, lost_packets=None, packets=None,
                          lost_percent=None, retransmits=None, needed_bps=None, verdict=NO_DATA, received=received,
                          note=server_error or client_error or "the receiver reported no intervals")

    # the receiver's report is what counts; without the sender's, offered falls back to the target
    notes = [client_error] if client_error else []
    if client_error:
        client = None
    received_bps = _rate_in(received, window)
    if flow.protocol == "udp":
        sent = tuple(Interval(started + i["start"], started + i["end"], int(i["bytes"]))
                     for i in (iv["sum"] for iv in client.get("intervals", []))) if client else ()
        offered_bps = _rate_in(sent, window) if sent else float(flow.rate_bps)
        if not sent:
            notes.append("no client report: offered is the target")
        elif offered_bps < 0.95 * flow.rate_bps:
            notes.append(f"the sender reached only {_mbps(offered_bps)} of {_mbps(flow.rate_bps)} Mbit/s")
        totals = server["end"]["sum"]
        lost, packets, lost_percent = int(totals["lost_packets"]), int(totals["packets"]), float(totals["lost_percent"])
        retransmits = None
    else:
        offered_bps = float(flow.rate_bps)
        lost = packets = lost_percent = None
        retransmits = (client or {}).get("end", {}).get("sum_sent", {}).get("retransmits")

    if sls is None:
        needed, verdict = None, NO_SLS
        notes.append(f"no SLS for {flow.customer}")
    else:
        needed = tolerance * min(offered_bps, sls.bandwidth_bps * ratio)
        if sls.service_class not in GUARANTEED:
            verdict = BEST_EFFORT
        else:
            verdict = OK if received_bps >= needed else FAIL
    return FlowResult(**base, offered_bps=offered_bps, received_bps=received_bps, lost_packets=lost, packets=packets,
                      lost_percent=lost_percent, retransmits=retransmits, needed_bps=needed, verdict=verdict,
                      received=received, note="; ".join(notes))


def _load(run: Path, name: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """An iperf3 JSON output, or why there is none (missing file, cut off, iperf3's own error)."""
    if not name:
        return None, "not run"
    try:
        data = json.loads((run / name).read_text())
    except OSError:
        return None, f"{name} is missing"
    except ValueError:
        return None, f"{name} is not JSON (iperf3 was killed?)"
    if data.get("error"):
        return data, f"iperf3: {data['error']}"
    return data, None


def _payload_bytes(client: Mapping[str, Any] | None, protocol: str) -> int:
    start = (client or {}).get("start", {})
    if protocol == "udp":
        return int(start.get("test_start", {}).get("blksize") or _DEFAULT_PAYLOAD["udp"])
    return int(start.get("tcp_mss_default") or _DEFAULT_PAYLOAD["tcp"])


def in_window(interval: Interval, window: tuple[float, float]) -> bool:
    """A report belongs to the steady window when its middle does (iperf3's intervals drift by ms)."""
    return window[0] <= interval.mid_s <= window[1]


def _rate_in(intervals: Sequence[Interval], window: tuple[float, float]) -> float:
    chosen = [i for i in intervals if in_window(i, window)]
    seconds = sum(i.end_s - i.start_s for i in chosen)
    return sum(i.bytes for i in chosen) * 8 / seconds if seconds > 0 else 0.0


# ------------------------------------------------------------------------------------------ table


def _mbps(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.2f}"


def _table(report: Report) -> str:
    header = ("customer", "sender", "proto", "DSCP", "class", "SLS", "offered", "received", "needs",
              "lost", "loss %", "verdict")
    units = ("", "", "", "", "", "Mbit/s", "Mbit/s", "Mbit/s", "Mbit/s", "packets", "", "")
    right = {5, 6, 7, 8, 9, 10}
    rows = []
    for f in report.flows:
        lost = (str(f.lost_packets) if f.lost_packets is not None
                else f"{f.retransmits} retr" if f.retransmits is not None else "-")
        rows.append((f.customer, f.node, f.protocol, dscp_name(f.dscp), f.sls.service_class if f.sls else "-",
                     _mbps(f.sls.bandwidth_bps) if f.sls else "-", _mbps(f.offered_bps), _mbps(f.received_bps),
                     _mbps(f.needed_bps) if f.verdict != BEST_EFFORT else "-", lost,
                     f"{f.lost_percent:.2f}" if f.lost_percent is not None else "-", f.verdict))
    widths = [max(len(r[c]) for r in (header, units, *rows)) for c in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if c in right else cell.ljust(w)
                         for c, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    scenario = report.scenario
    count = f"{len(report.flows)} flow{'s' if len(report.flows) != 1 else ''}"
    out = [f"Scenario {scenario.name}: {count} to {scenario.sink} ({scenario.sink_address})"
           + (f", started {report.started_at}" if report.started_at else ""),
           "", line(header), line(units), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out += ["",
            "Rates are iperf3 payload over each flow's steady window (its duration without the first and",
            f"the last {scenario.interval_s:g} s report). Received and lost are the receiver's counts; offered is",
            "what a UDP client sent, or a TCP flow's -b target.",
            f"needs = {report.tolerance:g} x min(offered, SLS as payload): shapers count Ethernet frames, "
            f"{1200 + HEADER_BYTES[('udp', 4)]} bytes",
            "per 1200-byte UDP datagram. Bronze has no guarantee: best effort."]
    notes = [f"  {f.customer}: {f.note}" for f in report.flows if f.note]
    if notes:
        out += ["", "Notes:", *notes]
    failed = [f for f in report.flows if not f.ok]
    if not failed:
        out += ["", "PASS: every gold and silver flow received what its SLS guarantees."]
    else:
        out += ["", "FAIL: " + "; ".join(
            f"{f.customer} ({f.verdict}" + (f": {_mbps(f.received_bps)} of {_mbps(f.needed_bps)} Mbit/s"
                                            if f.verdict == FAIL else "") + ")" for f in failed)]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------- plot


@dataclass(frozen=True)
class PlotSeries:
    """One customer's line as drawn: receiver reports (middle, Mbit/s), its SLS level and steady window."""

    customer: str
    service_class: ServiceClass
    colour: str
    times_s: tuple[float, ...]
    mbps: tuple[float, ...]
    sls_mbps: float | None              # the SLS as payload, the level `needs` is computed from
    window: tuple[float, float]
    received_mbps: float | None         # the table's number
    label: str


def plot_series(report: Report) -> tuple[PlotSeries, ...]:
    """The lines `plot` draws, from the same flows and windows as the table."""
    series = []
    for f in report.flows:
        sls_mbps = f.sls_payload_bps / 1e6 if f.sls_payload_bps is not None else None
        received = f.received_bps / 1e6 if f.received_bps is not None else None
        contract = f"{f.sls.service_class} {_mbps(f.sls.bandwidth_bps)}" if f.sls else "no SLS"
        label = (f"{f.customer} ({contract}; {dscp_name(f.dscp)} {f.protocol}): "
                 + (f"{received:.2f} Mbit/s {f.verdict}" if received is not None else f.verdict))
        series.append(PlotSeries(f.customer, f.service_class, CLASS_COLOURS[f.service_class],
                                 tuple(i.mid_s for i in f.received), tuple(i.bps / 1e6 for i in f.received),
                                 sls_mbps, f.window, received, label))
    return tuple(series)


@dataclass(frozen=True)
class ClassSeries:
    """One service class's throughput over time: the sum of its customers' receiver reports."""

    service_class: ServiceClass
    colour: str
    times_s: tuple[float, ...]
    mbps: tuple[float, ...]
    sls_mbps: float | None              # the class's customers' SLSs together, as payload


def class_series(report: Report) -> tuple[ClassSeries, ...]:
    """Per class, the customers' received Mbit/s added up per report interval. Reports of flows
    that started at other offsets fall on the same half-interval grid, which is what they are
    summed on."""
    half = report.scenario.interval_s / 2
    sums: dict[ServiceClass, dict[int, float]] = {}
    sls: dict[ServiceClass, float] = {}
    for line in plot_series(report):
        bins = sums.setdefault(line.service_class, {})
        for t, v in zip(line.times_s, line.mbps):
            bins[round(t / half)] = bins.get(round(t / half), 0.0) + v
        if line.sls_mbps is not None:
            sls[line.service_class] = sls.get(line.service_class, 0.0) + line.sls_mbps
    out = []
    classes: tuple[ServiceClass, ...] = ("gold", "silver", "bronze")
    for service_class in classes:
        bins = sums.get(service_class, {})
        if bins:
            keys = sorted(bins)
            out.append(ClassSeries(service_class, CLASS_COLOURS[service_class], tuple(k * half for k in keys),
                                   tuple(bins[k] for k in keys), sls.get(service_class)))
    return tuple(out)


def plot(source: Report | str | Path, png_path: str | Path, *, sls: Mapping[str, Sls] | None = None) -> Path:
    """Draw received throughput over time per customer into `png_path` (PNG, no display needed).

    `source` is a Report, or a run directory analysed with `sls` (colours then follow the marking
    for customers without an SLS). Returns the PNG's path.
    """
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state or a display

    report = source if isinstance(source, Report) else analyse(source, sls or {})
    figure = Figure(figsize=(11, 9), layout="constrained")
    axes, per_class = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    markers = "osD^v<>ph*"
    shaded: set[tuple[float, float]] = set()
    for n, (flow, line) in enumerate(zip(report.flows, plot_series(report))):
        window = (round(line.window[0], 1), round(line.window[1], 1))
        if window not in shaded:
            axes.axvspan(*line.window, color="#000000", alpha=0.05, lw=0,
                         label="steady window (table)" if not shaded else None)
            shaded.add(window)
        axes.plot(line.times_s, line.mbps, color=line.colour, alpha=0.35, lw=1)
        steady = [(t, v) for t, v in zip(line.times_s, line.mbps) if line.window[0] <= t <= line.window[1]]
        if steady:
            axes.plot(*zip(*steady), color=line.colour, lw=2, marker=markers[n % len(markers)], ms=4,
                      label=line.label)
        if line.received_mbps is not None:
            axes.hlines(line.received_mbps, *line.window, colors=line.colour, lw=1, linestyles="dotted")
        if flow.sls is not None and line.sls_mbps is not None:
            start = line.window[0] - report.scenario.interval_s
            axes.hlines(line.sls_mbps, start, start + report.scenario.flows[n].duration_s, colors=line.colour,
                        linestyles="dashed", lw=1.5)
    axes.set_title(f"Scenario {report.scenario.name}: received throughput per customer "
                   f"({'PASS' if report.ok else 'FAIL'})")
    axes.set_ylabel("received iperf3 payload (Mbit/s)")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small",
                title="customer (SLS Mbit/s; marking): received, verdict\n"
                        "solid: steady window, dotted: its mean (the table's),\n"
                        "dashed: the SLS as payload (Ethernet frames shaped)", title_fontsize="small")
    _plot_classes(per_class, report)
    png = Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    return png


def _plot_classes(axes: Any, report: Report) -> None:
    """The lower panel: throughput per service class over time, with the class's SLSs together."""
    for line in class_series(report):
        axes.plot(line.times_s, line.mbps, color=line.colour, lw=2, label=f"{line.service_class}")
        if line.sls_mbps is not None and line.service_class != "bronze":
            axes.axhline(line.sls_mbps, color=line.colour, lw=1, linestyle="dashed")
    axes.set_title("received throughput per service class (dashed: the class's SLSs together, as payload)",
                   fontsize="medium")
    axes.set_xlabel("time since the scenario's start (s)")
    axes.set_ylabel("Mbit/s")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
