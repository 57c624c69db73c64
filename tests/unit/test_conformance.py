"""The conformance maths (controller/feedback): loss along a path from recorded counter series,
through the same delta rules the southbound applies (wrap, agent restart, reset), with missing
samples, hysteresis, and availability by calendar month."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from controller.domain.catalog import load_catalog
from controller.feedback.conformance import (PPM, Availability, Detector, Route, Series, SlaConformance, Traffic,
                                             judge_availability, judge_loss, measure, path_routers, spans)
from controller.feedback.routes import routes
from controller.mapping.render import render_router_configs
from controller.southbound.counters import WRAP, Sample, delta
from tests.unit.builders import GOLD, M, business_terms, lab_topology, sla, sls

T = 1_800_000_000.0  # kernel time of the first sample (s)


def two_customers() -> tuple[list[Route], list]:
    topology = lab_topology()
    acme = replace(sla(), id=1, name="acme-hq")
    globex = replace(sla(business_terms(router="edge2", interface="eth2", prefixes=("198.19.2.0/24",))), id=2,
                     name="globex-main", path=("core-egress", "edge2-core", "internet"))
    pairs = [(acme, replace(sls(GOLD, 2 * M), sla_id=1)), (globex, replace(sls(GOLD, 3 * M), sla_id=2))]
    return routes(topology, render_router_configs(topology, pairs, load_catalog()), pairs), pairs


class Recorder:
    """Raw cumulative counters per leaf, turned into Series through southbound.counters.delta."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], Series] = {}
        self.marks: dict[tuple[str, str, str], Sample] = {}

    def sample(self, leaf: tuple[str, str, str], t: float, raw: Sample) -> None:
        mark = self.marks.get(leaf)
        d = delta(mark, raw, new_class=mark is not None)
        self.marks[leaf] = raw
        self.series.setdefault(leaf, Series()).add(t, Traffic(d.octets, d.packets, d.drops), d.reset)


PACKET = 1000  # octets


def steady(recorder: Recorder, seconds: int, rates: dict[tuple[str, str, str], tuple[int, int]],
           start: float = T, raw_start: dict | None = None, skew: dict[str, float] | None = None) -> None:
    """Each leaf sends `rates[leaf]` = (packets/s sent, packets/s dropped), sampled every second
    (routers sampled `skew[router]` seconds late); raw counters begin at `raw_start[leaf]`."""
    for second in range(seconds + 1):
        for leaf, (sent, dropped) in rates.items():
            base = (raw_start or {}).get(leaf, Sample(1, 0, 0, 0))
            t = start + second + (skew or {}).get(leaf[0], 0.0)
            raw = Sample(base.boot_epoch, (base.octets + sent * PACKET * second) % WRAP,
                         (base.packets + sent * second) % WRAP, (base.drops + dropped * second) % WRAP)
            recorder.sample(leaf, t, raw)


def leaves(route: Route) -> list[tuple[str, str, str]]:
    return [route.own, *(leaf for hop in route.hops for leaf in (*hop.inputs, *hop.outputs))]


def test_routes_follow_the_mapping_leaves() -> None:
    (acme, globex), _ = two_customers()
    assert acme.own == ("edge1", "eth1", "gold/acme-hq") and globex.own == ("edge2", "eth1", "gold/globex-main")
    core, egress = acme.hops
    assert core.router == "core" and set(core.inputs) == {acme.own, globex.own}
    assert core.outputs == (("core", "eth3", "gold/transit"),)
    assert egress.inputs == core.outputs and egress.outputs == (("egress", "eth2", "gold/transit"),)
    assert path_routers([acme])["acme-hq"] == ("edge1", "core", "egress")


def clean_rates(acme: Route, globex: Route, core_out: int = 500, egress_out: int | None = None) -> dict:
    """acme sends 200 pkt/s, globex 300 pkt/s; the core forwards `core_out` of the 500."""
    return {acme.own: (200, 0), globex.own: (300, 0), acme.hops[0].outputs[0]: (core_out, 0),
            acme.hops[1].outputs[0]: (core_out if egress_out is None else egress_out, 0)}


def test_no_loss_and_throughput_from_the_own_leaf() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    steady(recorder, 10, clean_rates(acme, globex))
    m = measure(acme, recorder.series, T + 2, T + 7)
    assert m is not None and m.loss_ppm == 0 and m.within_sls
    assert m.throughput_bps == 200 * PACKET * 8 == m.offered_bps  # 1.6 Mbit/s of a 2 Mbit/s SLS


def test_silent_loss_in_the_core_is_shared_by_every_gold_customer_crossing_it() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    steady(recorder, 10, clean_rates(acme, globex, core_out=475))  # 5 % vanish inside the core
    for route in (acme, globex):
        m = measure(route, recorder.series, T + 2, T + 7)
        assert m is not None and m.loss_ppm == pytest.approx(50_000, abs=1)


def test_queue_drops_downstream_and_silent_loss_compound() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    rates = clean_rates(acme, globex, core_out=475, egress_out=451)  # 5 %, then about 5 % more
    rates[acme.hops[1].outputs[0]] = (451, 24)
    steady(recorder, 10, rates)
    m = measure(acme, recorder.series, T + 2, T + 7)
    assert m is not None and m.loss_ppm == pytest.approx((1 - 0.95 * 451 / 475) * PPM, abs=1)


def test_routers_sampled_at_different_instants_are_compared_over_the_same_span() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    steady(recorder, 10, clean_rates(acme, globex), skew={"core": 0.7, "egress": 0.3})
    m = measure(acme, recorder.series, T + 2, T + 7)
    assert m is not None and m.loss_ppm == 0


def test_a_counter_wrap_is_no_loss() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    near_top = Sample(1, WRAP - 3 * PACKET * 500, WRAP - 3 * 500, 0)  # the core's counters wrap at t+3
    steady(recorder, 10, clean_rates(acme, globex), raw_start={acme.hops[0].outputs[0]: near_top})
    m = measure(acme, recorder.series, T + 1, T + 8)
    assert m is not None and m.loss_ppm == 0


def test_an_agent_restart_that_misses_reports_is_no_loss() -> None:
    """The core's agent restarts: no report for 3 s, then its kernel counters go on (same boot
    epoch); the span across the gap is interpolated, and shows no loss."""
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    core = acme.hops[0].outputs[0]
    rates = clean_rates(acme, globex)
    steady(recorder, 12, {leaf: rate for leaf, rate in rates.items() if leaf != core})
    for second in (*range(0, 5), *range(8, 13)):
        recorder.sample(core, T + second, Sample(1, 500 * PACKET * second, 500 * second, 0))
    m = measure(acme, recorder.series, T + 2, T + 10)
    assert m is not None and m.loss_ppm == 0


def test_a_router_reboot_makes_the_spans_across_it_unknown_not_lossy() -> None:
    """The core reboots between T+4 and T+5 (new boot epoch, counters from zero): what it sent in
    between went uncounted, so a span across the reboot measures nothing; later spans measure again."""
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    core = acme.hops[0].outputs[0]
    rates = clean_rates(acme, globex)
    steady(recorder, 12, {leaf: rate for leaf, rate in rates.items() if leaf != core})
    for second in range(0, 5):
        recorder.sample(core, T + second, Sample(1, 500 * PACKET * second, 500 * second, 0))
    for second in range(5, 13):  # booted at T+4.5
        recorder.sample(core, T + second, Sample(2, int(500 * PACKET * (second - 4.5)), int(500 * (second - 4.5)), 0))
    assert measure(acme, recorder.series, T + 2, T + 9) is None
    m = measure(acme, recorder.series, T + 6, T + 11)
    assert m is not None and m.loss_ppm == 0


def test_missing_samples_measure_nothing() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    rates = clean_rates(acme, globex)
    egress = acme.hops[1].outputs[0]
    steady(recorder, 10, {leaf: r for leaf, r in rates.items() if leaf != egress})
    steady(recorder, 4, {egress: rates[egress]})  # the egress stopped reporting after T+4
    assert measure(acme, recorder.series, T + 2, T + 7) is None
    assert measure(acme, recorder.series, T + 1, T + 4) is not None
    assert spans([T + 10, None], 3) is None and spans([T + 10, T + 9.5], 3) == (T + 6.5, T + 9.5)


def test_drops_of_a_customer_above_its_sls_are_its_own_excess() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    rates = clean_rates(acme, globex, core_out=550)
    rates[acme.own] = (250, 100)  # offers 350 pkt/s = 2.8 Mbit/s on a 2 Mbit/s SLS
    rates[globex.own] = (300, 0)
    steady(recorder, 10, rates)
    m = measure(acme, recorder.series, T + 2, T + 7)
    assert m is not None and not m.within_sls and m.loss_ppm == 0
    state = SlaConformance(Availability.starting(datetime(2026, 12, 1, tzinfo=timezone.utc)))
    for _ in range(5):  # never judged while above its SLS
        assert judge_loss(state, "acme-hq", "gold", m, 100, 3, 3) == []


def test_loss_is_raised_after_n_intervals_and_cleared_with_hysteresis() -> None:
    detector = Detector(raise_after=3, clear_after=3)
    values = [500, 500, 0, 500, 500, 500,   # a break resets the run: raised only at the 6th
              90, 60, 90,                   # under the bound (100) but not at or below the clear level (50)
              40, 40, 40]                   # cleared at the 12th
    changes = [detector.observe(v, 100, 50) for v in values]
    assert changes == [None] * 5 + ["raised"] + [None] * 5 + ["cleared"]


def test_judging_loss_reports_the_crossing_with_measured_value_and_bound() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    steady(recorder, 12, clean_rates(acme, globex, core_out=475))
    state = SlaConformance(Availability.starting(datetime(2026, 12, 1, tzinfo=timezone.utc)))
    found = []
    for end in range(4, 10):
        found += judge_loss(state, "acme-hq", "gold", measure(acme, recorder.series, T + end - 3, T + end), 100, 3, 3)
    [crossing] = found
    assert (crossing.metric, crossing.raised, crossing.bound) == ("loss", True, 100)
    assert crossing.measured == pytest.approx(50_000, abs=1) and state.violations == ("loss",)


MONTH = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_availability_counts_down_time_per_month_and_splits_at_its_end() -> None:
    availability = Availability.starting(MONTH)
    availability.observe(MONTH + timedelta(days=10), False)            # down from day 10
    availability.observe(MONTH + timedelta(days=10, minutes=30), True)  # for 30 minutes
    assert availability.down_s == 1800 and availability.longest_s == 1800
    assert availability.percent() == Decimal("99.79210")                 # 30 min in 10 d 30 min
    availability.observe(datetime(2026, 11, 30, 23, 50, tzinfo=timezone.utc), False)
    availability.observe(datetime(2026, 12, 1, 0, 20, tzinfo=timezone.utc), True)  # 10 min in Nov, 20 in Dec
    assert availability.month == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert availability.down_s == 1200 and availability.longest_s == 1200


def test_availability_is_violated_once_the_months_allowance_is_spent_and_an_outage_when_too_long() -> None:
    state = SlaConformance(Availability.starting(MONTH))
    objective, max_outage = Decimal("99.9"), 3600   # 43.2 min allowed in November (30 days)
    state.availability.observe(MONTH + timedelta(days=1), False)
    state.availability.observe(MONTH + timedelta(days=1, minutes=40), False)
    assert judge_availability(state, "acme-hq", "gold", objective, max_outage) == []
    state.availability.observe(MONTH + timedelta(days=1, minutes=61), False)
    crossings = judge_availability(state, "acme-hq", "gold", objective, max_outage)
    assert [(c.metric, c.raised) for c in crossings] == [("availability", True), ("outageDuration", True)]
    assert crossings[1].measured == 3660 and crossings[1].bound == 3600
    state.availability.observe(MONTH + timedelta(days=1, minutes=62), True)
    assert [(c.metric, c.raised) for c in judge_availability(state, "acme-hq", "gold", objective, max_outage)] == [
        ("outageDuration", False)]   # the outage is over; the month's availability stays violated
    state.availability.observe(datetime(2026, 12, 1, 0, 1, tzinfo=timezone.utc), True)
    assert [(c.metric, c.raised) for c in judge_availability(state, "acme-hq", "gold", objective, max_outage)] == [
        ("availability", False)]     # a new month, a new allowance


def test_a_packet_or_two_misplaced_between_routers_is_not_loss() -> None:
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    steady(recorder, 10, clean_rates(acme, globex))
    core = acme.hops[0].outputs[0]
    series = recorder.series[core]
    series.totals[-3] = replace(series.totals[-3], packets=series.totals[-3].packets - 2)  # T+8 read 2 short
    m = measure(acme, recorder.series, T + 5, T + 8)
    assert m is not None and m.loss_ppm == 0
    series.totals[-3] = replace(series.totals[-3], packets=series.totals[-3].packets - 1)  # 3 short: loss
    m = measure(acme, recorder.series, T + 5, T + 8)
    assert m is not None and m.loss_ppm == pytest.approx(3 / 1500 * PPM, abs=1)


def test_a_span_where_the_customer_starts_sending_is_reported_but_not_judged() -> None:
    """acme starts at T+5 inside a span: interpolating counters across a rate step misplaces
    packets, so the span is not steady and the loss detector waits."""
    (acme, globex), _ = two_customers()
    recorder = Recorder()
    rates = clean_rates(acme, globex, core_out=300)
    steady(recorder, 5, {acme.own: (0, 0), globex.own: (300, 0), acme.hops[0].outputs[0]: (300, 0),
                          acme.hops[1].outputs[0]: (300, 0)})
    steady(recorder, 5, rates | {acme.hops[0].outputs[0]: (500, 0), acme.hops[1].outputs[0]: (500, 0)},
           start=T + 5, raw_start={acme.own: Sample(1, 0, 0, 0), globex.own: Sample(1, 1500 * PACKET, 1500, 0),
                                   acme.hops[0].outputs[0]: Sample(1, 1500 * PACKET, 1500, 0),
                                   acme.hops[1].outputs[0]: Sample(1, 1500 * PACKET, 1500, 0)})
    starting = measure(acme, recorder.series, T + 3.5, T + 6.5)
    assert starting is not None and not starting.steady
    state = SlaConformance(Availability.starting(datetime(2026, 12, 1, tzinfo=timezone.utc)))
    assert judge_loss(state, "acme-hq", "gold", starting, 100, 1, 1) == []
    later = measure(acme, recorder.series, T + 6.5, T + 9.5)
    assert later is not None and later.steady and later.loss_ppm == 0
