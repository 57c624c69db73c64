"""Conformance of the delivered service to each SLA: the maths, with no I/O, object by object.

This is the readable statement of the rules. The controller's engine (feedback.engine, on the
numpy grid of feedback.grid) applies the same rules to every SLA at once; tests feed both the
same counter reports and require the same measurements and crossings. The availability part
(Availability) is used by the engine as is, for one SLA's figures.

**Counters in time.** Each router's agent reports cumulative per-class counters read at a kernel
time. The southbound turns them into deltas that survive counter wraps, agent restarts and router
reboots (southbound.counters); here the deltas are summed back into one cumulative `Series` per
(router, interface, scheduler class). Routers report at different instants, so two routers are
compared over the same span of time by interpolating each series at the span's ends.

**Loss** of a customer's class-k traffic over a span:
* at its home router, its own leaf (`gold/acme-hq`): the leaf's drops are loss only when the
  customer offered no more than its SLS; above it, they are its excess, shaped away as agreed;
* at every later router R on its path, R's class-k transit traffic: what R's upstream neighbours
  sent toward R in class k, less what R's `k/transit` leaf sent on. Packets dropped in R's queue
  and packets lost silently on the link into R or inside R (a bad link, a fault) both count. Every
  class-k customer crossing R shares R's loss ratio. A difference of ALIGNMENT_PACKETS or fewer is
  the counters' alignment error, not loss.

A customer's loss is 1 - (1 - own) * product over its hops (1 - hop loss).

**Violations** (SLAPM-MIB style, RFC 2758): a metric goes out of its bound after `raise_after`
consecutive measurements beyond the raise threshold, and comes back after `clear_after`
consecutive measurements within the clear threshold, which is tighter; so a value hovering at the
bound does not flap. Loss is judged only while the customer offers at most its SLS, and only for
classes whose catalog entry bounds loss (Gold, Silver).

**Availability**: the time the customer's path was up (every router on it connected, with its
config in sync), per calendar month (UTC). It is violated once the month's downtime exceeds what
the objective allows for the whole month (it cannot recover that month), and an outage is
violated while it lasts longer than the SLA's maximum.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

PPM = 1_000_000
OFFER_TOLERANCE = 0.02   # offered up to 2 % over the SLS still counts as "at most its SLS" (rate estimates)
# Counters of two routers are read at different instants and interpolated to the same span; a
# burst inside a sampling interval can put a packet or two on the wrong side of the span's ends.
# A hop that lost no more than this over a span lost nothing measurable: loss is measured to the
# bound only where a span carries enough packets (Gold's 100 ppm needs 30,000: 240 Mbit/s of
# 1,000-byte packets over 3 s).
ALIGNMENT_PACKETS = 2
STEADY_TOLERANCE = 0.25  # the rate in a span's first and last second may differ this much (iperf3 is not exact)
STEADY_PACKETS = 5       # below this many packets a second, a customer is idle whatever it does


@dataclass(frozen=True)
class Traffic:
    """What one scheduler class carried over a span: octets and packets sent, packets dropped."""

    octets: float = 0.0
    packets: float = 0.0
    drops: float = 0.0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.octets + other.octets, self.packets + other.packets, self.drops + other.drops)

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.octets - other.octets, self.packets - other.packets, self.drops - other.drops)


class Series:
    """Cumulative counts of one scheduler class against kernel time (seconds), kept for `keep_s`.

    `at(t)` interpolates between the samples around t; it is None before the first sample and
    after the last one (not reported yet: a span is measured only once every router covers it)."""

    def __init__(self, keep_s: float = 120.0) -> None:
        self.keep_s = keep_s
        self.times: list[float] = []
        self.totals: list[Traffic] = []
        self.resets: list[float] = []   # samples whose class counted from zero again (a reboot, a re-creation)

    def add(self, t: float, delta: Traffic, reset: bool = False) -> None:
        """A sample at kernel time t that counted `delta` since the previous one (`reset`: the
        class counted from zero again, so what it carried just before is unknown). Samples out of
        order (an agent whose clock stepped back) start the series afresh."""
        if self.times and t <= self.times[-1]:
            if t == self.times[-1]:
                self.totals[-1] = self.totals[-1] + delta
                return
            self.times.clear()
            self.totals.clear()
            self.resets.clear()
        total = self.totals[-1] + delta if self.totals else Traffic()  # the first sample is the origin
        self.times.append(t)
        self.totals.append(total)
        if reset and len(self.times) > 1:
            self.resets.append(t)
        cut = bisect.bisect_left(self.times, t - self.keep_s)
        if cut > 1:
            del self.times[:cut - 1]
            del self.totals[:cut - 1]
            self.resets = [r for r in self.resets if r >= self.times[0]]

    def at(self, t: float) -> Traffic | None:
        if not self.times or t < self.times[0] or t > self.times[-1]:
            return None
        i = bisect.bisect_left(self.times, t)
        if self.times[i] == t:
            return self.totals[i]
        t0, t1 = self.times[i - 1], self.times[i]
        a, b = self.totals[i - 1], self.totals[i]
        w = (t - t0) / (t1 - t0)
        return Traffic(a.octets + (b.octets - a.octets) * w, a.packets + (b.packets - a.packets) * w,
                       a.drops + (b.drops - a.drops) * w)

    def span(self, start: float, end: float) -> Traffic | None:
        """What the class carried over [start, end]; None if unknown: not reported, or starting
        before the class's latest reset (what it carried between the sample before a reset and
        the reset went uncounted, so counts are never compared across one)."""
        first, last = self.at(start), self.at(end)
        if first is None or last is None or any(reset > start for reset in self.resets):
            return None
        return last - first

    @property
    def latest(self) -> float | None:
        return self.times[-1] if self.times else None


Leaf = tuple[str, str, str]   # (router, interface, scheduler class)


@dataclass(frozen=True)
class Hop:
    """Class-k traffic through one router after the customers' home routers: `inputs` are the
    upstream senders' class-k leaves toward it, `outputs` its own `k/transit` leaves."""

    router: str
    inputs: tuple[Leaf, ...]
    outputs: tuple[Leaf, ...]


@dataclass(frozen=True)
class Route:
    """Where to read one SLA's traffic: its own leaf at home, then the hops of its path."""

    sla: str
    service_class: str
    bandwidth_bps: int
    own: Leaf
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class Measurement:
    """One SLA over one span."""

    interval_s: float
    throughput_bps: int     # what passed its own leaf
    offered_bps: int        # what it sent into its own leaf (passed + dropped there)
    loss_ppm: int           # the provider's share of its packets lost
    within_sls: bool        # offered at most its SLS bandwidth (with OFFER_TOLERANCE)
    steady: bool = True     # it sent at about the same rate at the span's start and end (see measure)


def measure(route: Route, series: Mapping[Leaf, Series], start: float, end: float,
            hop_cache: dict[tuple[int, float, float], float | None] | None = None) -> Measurement | None:
    """The SLA's throughput, offered load and loss over [start, end]; None if a router on its
    path has not reported the whole span (missing samples decide nothing). Customers share hops:
    `hop_cache` keeps each hop's delivery over a span for the next customer measured on it."""
    own = _span(series, route.own, start, end)
    if own is None:
        return None
    seconds = end - start
    size = own.octets / own.packets if own.packets else 0.0
    throughput = own.octets * 8 / seconds
    offered = (own.octets + own.drops * size) * 8 / seconds
    within = offered <= route.bandwidth_bps * (1 + OFFER_TOLERANCE)
    delivered = 1.0
    if within and own.packets + own.drops:
        delivered *= own.packets / (own.packets + own.drops)
    for hop in route.hops:
        key = (id(hop), start, end)
        if hop_cache is not None and key in hop_cache:
            ratio = hop_cache[key]
        else:
            ratio = hop_delivery(hop, series, start, end)
            if hop_cache is not None:
                hop_cache[key] = ratio
        if ratio is None:
            return None
        delivered *= ratio
    loss = round((1 - delivered) * PPM) if own.packets + own.drops else 0
    return Measurement(seconds, round(throughput), round(offered), min(max(loss, 0), PPM), within,
                       _steady(series[route.own], start, end))


def _steady(own: Series, start: float, end: float) -> bool:
    """Did the customer send at about the same rate in the span's first and last second? Where
    its rate steps (a flow starts, stops or changes) inside a span, interpolating the routers'
    counters misplaces packets, so such a span is reported but not judged."""
    first, last = own.span(start, start + 1.0), own.span(end - 1.0, end)
    if first is None or last is None:
        return False
    low, high = sorted((first.packets + first.drops, last.packets + last.drops))
    return high <= STEADY_PACKETS or low >= high * (1 - STEADY_TOLERANCE)


def hop_delivery(hop: Hop, series: Mapping[Leaf, Series], start: float, end: float) -> float | None:
    """The share of the class-k packets sent toward a router that it sent on (1.0 with no input)."""
    sent_in = _packets(series, hop.inputs, start, end)
    if sent_in is None or sent_in <= 0:
        return None if sent_in is None else 1.0
    sent_on = _packets(series, hop.outputs, start, end)
    if sent_on is None:
        return None
    if sent_in - sent_on <= ALIGNMENT_PACKETS:
        return 1.0  # within what interpolating two routers' counters can misplace: no evidence of loss
    return sent_on / sent_in


def _packets(series: Mapping[Leaf, Series], leaves: Sequence[Leaf], start: float, end: float) -> float | None:
    """The packets `leaves` sent over [start, end] together; None if one is unknown."""
    spans = [_span(series, leaf, start, end) for leaf in leaves]
    return None if any(s is None for s in spans) else sum(s.packets for s in spans if s is not None)


def _span(series: Mapping[Leaf, Series], leaf: Leaf, start: float, end: float) -> Traffic | None:
    found = series.get(leaf)
    return None if found is None else found.span(start, end)


# ------------------------------------------------------------------------------------- violations

@dataclass
class Detector:
    """Raise/clear with hysteresis for one metric of one SLA (values where higher is worse)."""

    raise_after: int = 3
    clear_after: int = 3
    violating: bool = False
    _run: int = 0

    def observe(self, value: float, raise_above: float, clear_at_or_below: float) -> str | None:
        """'raised', 'cleared' or None (no change)."""
        if not self.violating:
            self._run = self._run + 1 if value > raise_above else 0
            if self._run >= self.raise_after:
                self.violating, self._run = True, 0
                return "raised"
            return None
        self._run = self._run + 1 if value <= clear_at_or_below else 0
        if self._run >= self.clear_after:
            self.violating, self._run = False, 0
            return "cleared"
        return None

    def pause(self) -> None:
        """No measurement this time (missing samples, traffic above the SLS): a run is broken."""
        self._run = 0


# ------------------------------------------------------------------------------------- availability

def month_start(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


@dataclass
class Availability:
    """Up and down time of one SLA's path in the current calendar month (UTC)."""

    month: datetime
    counted_from: datetime          # the month's start, or when measuring began (SLA or controller start)
    last: datetime
    up_now: bool = True
    down_s: float = 0.0
    longest_s: float = 0.0
    outage_started: datetime | None = None

    @classmethod
    def starting(cls, at: datetime, up: bool = True) -> Availability:
        return cls(month_start(at), at, at, up, outage_started=None if up else at)

    def observe(self, at: datetime, up: bool) -> None:
        """The path was in state `self.up_now` from `self.last` until `at`, and is `up` from now."""
        while at >= next_month(self.month):  # a month ended on the way: close it, open the next
            boundary = next_month(self.month)
            self._account(boundary)
            self.month = boundary
            self.counted_from = boundary
            self.down_s = 0.0
            self.longest_s = 0.0
            if self.outage_started is not None:
                self.outage_started = boundary
        self._account(at)
        if up and not self.up_now:
            self.outage_started = None
        elif not up and self.up_now:
            self.outage_started = at
        self.up_now = up

    def _account(self, until: datetime) -> None:
        if until <= self.last:
            return
        if not self.up_now:
            self.down_s += (until - self.last).total_seconds()
            if self.outage_started is not None:
                self.longest_s = max(self.longest_s, (until - self.outage_started).total_seconds())
        self.last = until

    def percent(self) -> Decimal:
        """Availability so far this month, in percent (5 decimals, as the YANG `percent` type)."""
        counted = (self.last - self.counted_from).total_seconds()
        if counted <= 0:
            return Decimal(100)
        return (Decimal(100) * Decimal(str(max(counted - self.down_s, 0.0))) / Decimal(str(counted))).quantize(
            Decimal("0.00001"))

    def current_outage_s(self) -> float:
        return (self.last - self.outage_started).total_seconds() if self.outage_started is not None else 0.0

    def allowance_s(self, objective_percent: Decimal) -> float:
        """The downtime the objective allows in the whole month (from where counting began)."""
        counted = (next_month(self.month) - self.counted_from).total_seconds()
        return counted * (100.0 - float(objective_percent)) / 100.0


# ------------------------------------------------------------------------------------- findings

@dataclass(frozen=True)
class Crossing:
    """A metric of an SLA crossed its bound: the payload of sla.violation / sla.cleared."""

    sla: str
    service_class: str
    metric: str         # CSM-MIB CsmMetric name: loss, availability, outageDuration
    raised: bool
    measured: int       # in the metric's CSM-MIB unit (ppm, hundredths of a percent, seconds)
    bound: int


@dataclass
class SlaConformance:
    """The running state of one SLA: latest measurement, month's availability, detectors."""

    availability: Availability
    latest: Measurement | None = None
    measured_at: datetime | None = None
    detectors: dict[str, Detector] = field(default_factory=dict)

    @property
    def violations(self) -> tuple[str, ...]:
        return tuple(sorted(metric for metric, d in self.detectors.items() if d.violating))


def judge_loss(state: SlaConformance, sla: str, service_class: str, measurement: Measurement | None,
               bound_ppm: int | None, raise_after: int, clear_after: int) -> list[Crossing]:
    """Feed one loss measurement to the SLA's loss detector (the clear threshold is half the bound)."""
    if bound_ppm is None:
        return []
    detector = state.detectors.setdefault("loss", Detector(raise_after, clear_after))
    if measurement is None or not measurement.within_sls or not measurement.steady:
        detector.pause()
        return []
    change = detector.observe(measurement.loss_ppm, bound_ppm, bound_ppm / 2)
    if change is None:
        return []
    return [Crossing(sla, service_class, "loss", change == "raised", measurement.loss_ppm, bound_ppm)]


def judge_availability(state: SlaConformance, sla: str, service_class: str, objective_percent: Decimal,
                       max_outage_s: int) -> list[Crossing]:
    """Availability (the month's downtime beyond what the objective allows for the whole month:
    raised once, cleared when the month turns) and outage duration (raised while an outage
    lasts longer than the maximum, cleared when the path is back)."""
    crossings = []
    availability = state.availability
    if availability.down_s == 0 and not state.detectors:
        return []  # never down, nothing open: the common case, decided without arithmetic
    over_budget = availability.down_s > availability.allowance_s(objective_percent)
    crossings += _flip(state, "availability", over_budget, sla, service_class,
                       lambda: int(availability.percent() * 100), int(objective_percent * 100))
    outage = availability.current_outage_s()
    if max_outage_s > 0:
        crossings += _flip(state, "outageDuration", outage > max_outage_s, sla, service_class,
                           lambda: int(max(outage, availability.longest_s)), max_outage_s)
    return crossings


def _flip(state: SlaConformance, metric: str, now_violating: bool, sla: str, service_class: str,
          measured: Callable[[], int], bound: int) -> list[Crossing]:
    """Availability metrics are already integrated over time: they change state at once."""
    detector = state.detectors.get(metric)
    if detector is None:
        if not now_violating:
            return []
        detector = state.detectors[metric] = Detector(1, 1)
    if detector.violating == now_violating:
        return []
    detector.violating = now_violating
    return [Crossing(sla, service_class, metric, now_violating, measured(), bound)]


def path_routers(routes: Iterable[Route]) -> dict[str, tuple[str, ...]]:
    """SLA -> the routers its traffic crosses (its availability depends on each of them)."""
    return {route.sla: tuple(dict.fromkeys([route.own[0], *(hop.router for hop in route.hops)])) for route in routes}


def loss_bound_ppm(loss_ratio: float | None) -> int | None:
    return None if loss_ratio is None else round(loss_ratio * PPM)


def spans(latest: Sequence[float | None], window_s: float) -> tuple[float, float] | None:
    """The span [end - window, end] every router covers: it ends at the earliest 'latest sample'."""
    known = [t for t in latest if t is not None]
    if len(known) < len(latest) or not known:
        return None
    end = min(known)
    return end - window_s, end
