"""The feedback loop inside the controller: counters in, conformance and violations out.

The southbound hands every agent report to `counters()` and says which routers are up with their
config in sync (`router_ok`). Every `interval_s` the engine measures each SLA over the last
`window_s` that every router on its path has reported, judges loss and availability (see
controller.feedback.conformance), and records the result through the service layer: conformance
rows (at most every `persist_every_s`, at once when something crosses a bound) and sla.violation /
sla.cleared events, which the SNMP agent and the NETCONF server turn into notifications.

Everything here runs in the event loop's thread (counters arrive there); the database work runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from csmm_proto import agent_pb2 as pb

from controller.domain.conformance import Conformance
from controller.domain.principal import DOMAIN_MANAGER
from controller.domain.sla import Sla
from controller.domain.sls import Sls
from controller.feedback.conformance import (Availability, Crossing, Hop, Leaf, Route, Series, SlaConformance, Traffic,
                                             judge_availability, judge_loss, loss_bound_ppm, measure, month_start,
                                             path_routers)
from controller.feedback.routes import routes
from controller.mapping.render import render_router_configs
from controller.service import events as ev
from controller.service.layer import ServiceLayer
from controller.southbound.counters import Sample, delta
from controller.store.records import FeedbackRecord

log = logging.getLogger("csmm.feedback")
SERIES_KEEP_S = 20.0   # counters kept per class: a window (3 s) and the routers' reporting lag, with room


@dataclass(frozen=True)
class FeedbackSettings:
    interval_s: float = 1.0          # how often every SLA is judged
    window_s: float = 3.0            # the span each judgement measures
    raise_after: int = 2             # consecutive measurements beyond the loss bound that raise a violation
    clear_after: int = 3             # ... within the clear threshold (half the bound) that clear it
    persist_every_s: float = 5.0     # conformance rows are written at most this often (crossings at once)
    grace_s: float = 60.0            # after start, how long agents have to connect before paths count as down


@dataclass
class Plan:
    """What the engine measures: every routed SLA, with its terms and SLS, its path's routers, and
    each class's loss bound. Worked out again whenever SLAs, SLSs or the topology change."""

    routes: dict[str, Route] = field(default_factory=dict)        # SLA name -> where its traffic is counted
    slas: dict[str, tuple[Sla, Sls]] = field(default_factory=dict)
    routers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # SLA name -> routers on its path
    loss_bounds: dict[str, int | None] = field(default_factory=dict)   # class -> ppm


class FeedbackEngine:
    def __init__(self, service: ServiceLayer, router_ok: Callable[[str], bool],
                 settings: FeedbackSettings | None = None) -> None:
        self.service = service
        self.router_ok = router_ok
        self.settings = settings or FeedbackSettings()
        self.series: dict[Leaf, Series] = {}
        self._marks: dict[Leaf, Sample] = {}
        self._reported: set[str] = set()                   # routers heard from since start
        self.states: dict[str, SlaConformance] = {}        # SLA name -> running state
        self._judged_until: dict[str, float] = {}          # SLA name -> end of its latest measured span
        self._plan = Plan()
        self._replan = True
        self._started = time.monotonic()
        self._persisted = 0.0
        self._restored: dict[int, FeedbackRecord] = {}
        self._round_latest: dict[int, float | None] = {}
        self._round_hops: dict[tuple[int, float, float], float | None] = {}

    # ------------------------------------------------------------------ input

    def counters(self, router: str, report: pb.Counters) -> None:
        """One agent report: extend each class's series by its delta (wrap, reset and reboot safe)."""
        new_class = router in self._reported  # a class first seen in a later report counts from zero
        self._reported.add(router)
        for c in report.classes:
            leaf = (router, c.interface, c.class_name)
            sample = Sample(report.boot_epoch, c.bytes, c.packets, c.drops)
            d = delta(self._marks.get(leaf), sample, new_class=new_class)
            self._marks[leaf] = sample
            t = c.timestamp_ns / 1e9 if c.timestamp_ns else time.time()
            self.series.setdefault(leaf, Series(SERIES_KEEP_S)).add(t, Traffic(d.octets, d.packets, d.drops), d.reset)

    def changed(self) -> None:
        """SLAs, SLSs or the topology changed: work out the routes again before the next round."""
        self._replan = True

    def use_plan(self, plan: Plan) -> None:
        """Measure `plan` from now on (the loop works it out itself; this is for benchmarks)."""
        self._plan, self._replan = plan, False

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self._restored = await asyncio.to_thread(self._load_records)
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                if self._replan:
                    self._replan = False
                    self._plan = await asyncio.to_thread(self._load_plan)
                due = time.monotonic() - self._persisted >= self.settings.persist_every_s
                measured, crossings = self.evaluate(datetime.now(timezone.utc), records_wanted=due)
                if crossings or (measured and due):
                    self._persisted = time.monotonic()
                    await asyncio.to_thread(self.service.record_feedback, DOMAIN_MANAGER, measured, crossings)
                for sla_id, kind, payload in crossings:
                    log.info("%s: SLA %s %s %s measured %s bound %s", kind, sla_id, payload["service_class"],
                             payload["metric"], payload["measured"], payload["bound"])
            except Exception:
                log.exception("evaluating conformance")

    def _load_plan(self) -> Plan:
        topology = self.service.topology(DOMAIN_MANAGER)
        pairs = self.service.list_sls(DOMAIN_MANAGER)
        configs = render_router_configs(topology, pairs, self.service.catalog)
        found = routes(topology, configs, pairs)
        return Plan({r.sla: r for r in found}, {sla.name: (sla, sls) for sla, sls in pairs}, path_routers(found),
                     {c.value: loss_bound_ppm(s.loss_ratio) for c, s in self.service.catalog.classes.items()})

    def _load_records(self) -> dict[int, FeedbackRecord]:
        return self.service.feedback_records(DOMAIN_MANAGER)

    # ------------------------------------------------------------------ one round

    def evaluate(self, now: datetime, *, records_wanted: bool = True
                 ) -> tuple[list[FeedbackRecord], list[tuple[int, str, dict[str, object]]]]:
        """Measure and judge every routed SLA; the records to keep (if wanted: they are written
        only every few seconds) and the crossings to announce."""
        records: list[FeedbackRecord] = []
        crossings: list[tuple[int, str, dict[str, object]]] = []
        self._round_latest.clear()   # hops are shared by their customers: work each out once a round
        self._round_hops.clear()
        in_grace = time.monotonic() - self._started < self.settings.grace_s
        for name, route in self._plan.routes.items():
            sla, sls = self._plan.slas[name]
            up = all(self.router_ok(router) for router in self._plan.routers[name])
            state = self.states.get(name)
            if state is None:
                if not up and in_grace:
                    continue  # agents are still connecting after a start: not an outage yet
                state = self.states[name] = SlaConformance(self._availability(sla, now, up))
            state.availability.observe(now, up)
            found = self._judge_loss(name, route, state, sla) if up else []
            terms = sla.terms.availability
            found += judge_availability(state, name, route.service_class, terms.objective_percent, terms.max_outage_s)
            crossings += [self._announce(sla, crossing, state) for crossing in found]
            if records_wanted or found:
                records.append(self._record(sla, sls, state))
        return records, crossings

    def _availability(self, sla: Sla, now: datetime, up: bool) -> Availability:
        """A new month's accounting, or this month's as the last run left it."""
        availability = Availability.starting(now, up)
        kept = self._restored.pop(sla.id, None)
        if kept is not None and kept.conformance.month == month_start(now):
            availability.counted_from = kept.counted_from
            availability.down_s = kept.down_s
            availability.longest_s = kept.longest_outage_s
        elif sla.terms.valid_from > availability.month:
            availability.counted_from = min(sla.terms.valid_from, now)
        return availability

    def _latest(self, leaves: tuple[Leaf, ...] | list[Leaf]) -> float | None:
        """The newest time every one of `leaves` has reported up to (None if one never has)."""
        times = [self.series[leaf].latest if leaf in self.series else None for leaf in leaves]
        return None if not times or any(t is None for t in times) else min(t for t in times if t is not None)

    def _hop_latest(self, hop: Hop) -> float | None:
        key = id(hop)
        if key not in self._round_latest:
            self._round_latest[key] = self._latest([*hop.inputs, *hop.outputs])
        return self._round_latest[key]

    def _judge_loss(self, name: str, route: Route, state: SlaConformance, sla: Sla) -> list[Crossing]:
        latest = [self._latest([route.own]), *(self._hop_latest(hop) for hop in route.hops)]
        if any(t is None for t in latest):
            return judge_loss(state, name, route.service_class, None, self._plan.loss_bounds.get(route.service_class),
                              self.settings.raise_after, self.settings.clear_after)
        end = min(t for t in latest if t is not None)
        if end - self._judged_until.get(name, 0.0) < self.settings.interval_s * 0.9:
            return []  # nothing new reported since the last judgement
        self._judged_until[name] = end
        measurement = measure(route, self.series, end - self.settings.window_s, end, self._round_hops)
        if measurement is not None:
            state.latest = measurement
            state.measured_at = datetime.fromtimestamp(end, timezone.utc)
        return judge_loss(state, name, route.service_class, measurement,
                          self._plan.loss_bounds.get(route.service_class), self.settings.raise_after,
                          self.settings.clear_after)

    def _announce(self, sla: Sla, crossing: Crossing, state: SlaConformance) -> tuple[int, str, dict[str, object]]:
        payload: dict[str, object] = {"customer": sla.customer, "service_class": crossing.service_class,
                                      "metric": crossing.metric, "measured": crossing.measured,
                                      "bound": crossing.bound}
        if crossing.metric == "availability" and crossing.raised:
            fee = sla.terms.tariff.monthly_fee * sla.terms.availability.penalty_percent_of_monthly_fee / 100
            payload["penalty_credit"] = str(fee.quantize(Decimal("0.01")))
            payload["month"] = state.availability.month.isoformat()
        return sla.id, ev.SLA_VIOLATION if crossing.raised else ev.SLA_CLEARED, payload

    @staticmethod
    def _record(sla: Sla, sls: Sls, state: SlaConformance) -> FeedbackRecord:
        m, availability = state.latest, state.availability
        conformance = Conformance(
            sla.id, state.measured_at, m.interval_s if m else None, sls.service_class if m else None,
            sls.bandwidth_bps if m else None, m.throughput_bps if m else None, m.offered_bps if m else None,
            m.loss_ppm if m else None, availability.month, availability.percent(),
            int(max(availability.longest_s, availability.current_outage_s())), state.violations)
        return FeedbackRecord(conformance, availability.counted_from, availability.down_s, availability.longest_s)
