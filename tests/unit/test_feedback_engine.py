"""The feedback engine (numpy columns) against the per-object model of conformance.py.

Both are fed the same raw counter reports — routers sampling at their own instants, a counter
wrap, a router reboot, reports missing for a while, loss inside the core — and every round the
engine's measurement of each SLA must be the model's over the same span, and the violations it
raises and clears must be the ones the model's detectors raise and clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.domain.catalog import load_catalog
from controller.feedback.conformance import (Availability, Route, SlaConformance, judge_loss, loss_bound_ppm, measure,
                                             path_routers)
from controller.feedback.engine import FeedbackEngine, FeedbackSettings, Plan
from controller.southbound.counters import WRAP, CounterReport, Sample
from tests.unit.test_conformance import Recorder, two_customers

T = 1_800_000_000.0
PACKET = 1000
SETTINGS = FeedbackSettings(grace_s=0, raise_after=2, clear_after=3)


@dataclass(frozen=True)
class Scenario:
    acme_pps: int
    acme_from: float              # the second acme starts sending (a rate step inside some windows)
    globex_pps: int
    acme_drop_pps: int
    core_delivers: float          # of what enters the core, the share it sends on
    core_lossy_from: int          # the second the core starts losing (before: it delivers everything)
    core_lossy_until: float       # ... and stops
    skew: dict[str, float]        # each router's sampling offset within a second
    wrap_core: bool               # the core's counters start just below 2^64
    reboot: tuple[str, int] | None  # (router, second): it reboots then
    silent: tuple[str, int, int] | None  # (router, from second, seconds): its reports go missing


ROUTERS = ("edge1", "edge2", "core", "egress")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    return Scenario(
        acme_pps=draw(st.integers(0, 400)), acme_from=draw(st.sampled_from([0.0, 6.3, 9.0])),
        globex_pps=draw(st.integers(50, 400)),
        acme_drop_pps=draw(st.sampled_from([0, 0, 5, 150])),
        core_delivers=draw(st.sampled_from([1.0, 0.999, 0.95, 0.8])), core_lossy_from=draw(st.integers(0, 12)),
        core_lossy_until=draw(st.sampled_from([math.inf, 15.0])),
        skew={r: draw(st.floats(0.0, 0.99)) for r in ROUTERS}, wrap_core=draw(st.booleans()),
        reboot=draw(st.one_of(st.none(), st.tuples(st.sampled_from(ROUTERS), st.integers(4, 14)))),
        silent=draw(st.one_of(st.none(), st.tuples(st.sampled_from(ROUTERS), st.integers(3, 12),
                                                   st.integers(1, 3)))))


def raw_counts(scenario: Scenario, acme: Route, globex: Route, at: float) -> dict:
    """Each leaf's cumulative (octets, packets, drops) at `at` seconds after T, as the kernel counts."""
    a_sent, g_sent = scenario.acme_pps * max(0.0, at - scenario.acme_from), scenario.globex_pps * at
    lossy_s = max(0.0, min(at, scenario.core_lossy_until) - scenario.core_lossy_from)
    core_in = a_sent + g_sent
    core_out = (scenario.acme_pps + scenario.globex_pps) * (at - lossy_s * (1 - scenario.core_delivers))
    counts = {acme.own: (a_sent, scenario.acme_drop_pps * max(0.0, at - scenario.acme_from)), globex.own: (g_sent, 0.0),
              acme.hops[0].outputs[0]: (min(core_out, core_in), 0.0),
              acme.hops[1].outputs[0]: (min(core_out, core_in), 0.0)}
    return {leaf: (math.floor(p) * PACKET, math.floor(p), math.floor(d)) for leaf, (p, d) in counts.items()}


def reports(scenario: Scenario, acme: Route, globex: Route, seconds: int) -> list[tuple[float, str, list]]:
    """(time, router, [(leaf, Sample)]) in time order, with the scenario's wrap, reboot and gaps."""
    out = []
    for second in range(seconds + 1):
        for router in ROUTERS:
            if scenario.silent and scenario.silent[0] == router and \
                    scenario.silent[1] <= second < scenario.silent[1] + scenario.silent[2]:
                continue
            t = second + scenario.skew[router]
            rebooted = scenario.reboot is not None and scenario.reboot[0] == router and second >= scenario.reboot[1]
            booted_at = scenario.reboot[1] - 0.5 if rebooted and scenario.reboot else 0.0
            counts = raw_counts(scenario, acme, globex, t)
            before = raw_counts(scenario, acme, globex, booted_at) if rebooted else None
            samples = []
            for leaf, (octets, packets, drops) in counts.items():
                if leaf[0] != router:
                    continue
                if before is not None:   # counting from zero since the reboot
                    octets, packets, drops = (a - b for a, b in zip((octets, packets, drops), before[leaf]))
                if scenario.wrap_core and router == "core" and not rebooted:
                    octets, packets = (octets + WRAP - 10**6) % WRAP, (packets + WRAP - 10**3) % WRAP
                samples.append((leaf, Sample(2 if rebooted else 1, octets, packets, drops)))
            out.append((T + t, router, samples))
    return sorted(out, key=lambda item: item[0])


def report(t: float, samples: list) -> CounterReport:
    def column(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.uint64)
    return CounterReport(samples[0][1].boot_epoch, [(leaf[1], leaf[2]) for leaf, _ in samples],
                         column([s.octets for _, s in samples]), column([s.packets for _, s in samples]),
                         column([s.drops for _, s in samples]), column([0] * len(samples)),
                         np.full(len(samples), round(t * 1e9), dtype=np.int64))


def plan_of(routes: list[Route], pairs: list) -> Plan:
    catalog = load_catalog()
    return Plan({r.sla: r for r in routes}, {sla.name: (sla, sls) for sla, sls in pairs}, path_routers(routes),
                {c.value: loss_bound_ppm(s.loss_ratio) for c, s in catalog.classes.items()})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_engine_measures_and_judges_as_the_model_does(scenario: Scenario) -> None:
    (acme, globex), pairs = two_customers()
    engine = FeedbackEngine(None, lambda router: True, SETTINGS)  # type: ignore[arg-type]
    engine.use_plan(plan_of([acme, globex], pairs))
    recorder = Recorder()
    model = {r.sla: SlaConformance(Availability.starting(datetime.now(timezone.utc))) for r in (acme, globex)}
    bound = loss_bound_ppm(load_catalog().classes[pairs[0][1].service_class].loss_ratio)
    step, window = SETTINGS.step_s, engine.window_ticks
    pending = reports(scenario, acme, globex, 20)
    measured = 0
    for second in range(21):
        while pending and pending[0][0] < T + second + 1:
            t, router, samples = pending.pop(0)
            for leaf, sample in samples:
                recorder.sample(leaf, t, sample)
            engine.counters(router, report(t, samples))
        names = engine._compiled.names
        before = {r.sla: int(engine.state.judged_tick[names.index(r.sla)]) for r in (acme, globex)}
        _, crossings = engine.evaluate(datetime.now(timezone.utc), records_wanted=False)
        found = {(payload["metric"], kind) for _, kind, payload in crossings}
        expected = set()
        for route in (acme, globex):
            row = engine._compiled.names.index(route.sla)
            end = int(engine.state.judged_tick[row])
            leaves = [route.own, *(leaf for hop in route.hops for leaf in (*hop.inputs, *hop.outputs))]
            if any(leaf not in recorder.series for leaf in leaves):
                reference = None
            elif end == before[route.sla]:
                continue   # nothing new to judge this round
            else:
                reference = measure(route, recorder.series, (end - window) * step, end * step)
                was_measured = engine.state.measured_at[row] == end * step
                assert was_measured == (reference is not None), (second, route.sla)
                if reference is not None:
                    measured += 1
                    assert engine.state.throughput_bps[row] == pytest.approx(reference.throughput_bps, abs=1)
                    assert engine.state.offered_bps[row] == pytest.approx(reference.offered_bps, abs=1)
                    assert engine.state.loss_ppm[row] == pytest.approx(reference.loss_ppm, abs=1)
            for crossing in judge_loss(model[route.sla], route.sla, "gold", reference, bound,
                                       SETTINGS.raise_after, SETTINGS.clear_after):
                expected.add(("loss", "sla.violation" if crossing.raised else "sla.cleared"))
        assert found == expected, second
    assert measured > 0 or scenario.silent or scenario.reboot


def test_a_loss_in_the_core_is_raised_after_two_rounds_and_cleared_after_three() -> None:
    """A concrete run: 5 % lost in the core from second 8 to 14; the violation is raised at the
    second round whose window holds the loss, and cleared at the third clean one."""
    (acme, globex), pairs = two_customers()
    engine = FeedbackEngine(None, lambda router: True, SETTINGS)  # type: ignore[arg-type]
    engine.use_plan(plan_of([acme, globex], pairs))
    lossy = Scenario(200, 0.0, 300, 0, 0.95, 8, 14.0, {r: 0.1 * i for i, r in enumerate(ROUTERS)}, False, None, None)
    pending = reports(lossy, acme, globex, 30)
    events = []
    for second in range(30):
        while pending and pending[0][0] < T + second + 1:
            t, router, samples = pending.pop(0)
            engine.counters(router, report(t, samples))
        _, crossings = engine.evaluate(datetime.now(timezone.utc), records_wanted=False)
        events += [(second, kind, sla_id) for sla_id, kind, _ in crossings]
    raised = [e for e in events if e[1] == "sla.violation"]
    cleared = [e for e in events if e[1] == "sla.cleared"]
    assert sorted(e[2] for e in raised) == [1, 2], events     # both Gold customers cross the core
    assert all(9 <= e[0] <= 11 for e in raised), events
    assert sorted(e[2] for e in cleared) == [1, 2] and all(17 <= e[0] <= 20 for e in cleared), events
