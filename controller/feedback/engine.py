"""The feedback loop inside the controller: counters in, conformance and violations out.

The southbound hands every agent report to `counters()` and says which routers are up with their
config in sync (`router_ok`). Every `interval_s` the engine measures each SLA over the last
`window_s` that every router on its path has reported, judges loss and availability (the rules
are in controller.feedback.conformance), and records the result through the service layer:
conformance rows (at most every `persist_every_s`, at once when something crosses a bound) and
sla.violation / sla.cleared events, which the SNMP agent and the NETCONF server turn into
notifications.

**Columns, not objects.** A controller of 100 routers with 10,000 classes each gets a million
class counters a second. So the counters live on a time grid of numpy columns (feedback.grid),
the plan is compiled into index arrays (`Compiled`), and each SLA's running state is a row of
`SlaColumns`; a round is array arithmetic over every SLA at once. Python objects are made only
for what leaves the engine: crossings, and the rows to store. conformance.py keeps the same rules
written per object (Series, measure, Detector, Availability): it is the readable statement of the
maths, and the tests check the engine against it.

Everything here runs in the event loop's thread (counters arrive there); the database work runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np

from controller.domain.conformance import Conformance
from controller.domain.principal import DOMAIN_MANAGER
from controller.domain.sla import Sla, SlaTerms
from controller.domain.sls import Sls
from controller.feedback.conformance import (ALIGNMENT_PACKETS, OFFER_TOLERANCE, PPM, STEADY_PACKETS,
                                             STEADY_TOLERANCE, Availability, Crossing, Leaf, Route, loss_bound_ppm,
                                             month_start, next_month, path_routers)
from controller.feedback.grid import NEVER, OCTETS, OFFERED, PACKETS, CounterGrid, Extent, Groups
from controller.feedback.routes import routes
from controller.mapping.render import render_router_configs
from controller.service import events as ev
from controller.service.layer import ServiceLayer
from controller.southbound.counters import ClassKey, CounterReport
from controller.store.records import FeedbackRecord

log = logging.getLogger("csmm.feedback")
METRIC_ORDER = {"loss": 0, "availability": 1, "outageDuration": 2}   # a round's crossings of one SLA, in order
CHUNK = 32_768   # SLAs judged together (see FeedbackEngine._judge_loss)


@dataclass(frozen=True)
class FeedbackSettings:
    interval_s: float = 1.0          # how often every SLA is judged
    window_s: float = 3.0            # the span each judgement measures
    raise_after: int = 2             # consecutive measurements beyond the loss bound that raise a violation
    clear_after: int = 3             # ... within the clear threshold (half the bound) that clear it
    persist_every_s: float = 5.0     # conformance rows are written at most this often (crossings at once)
    grace_s: float = 60.0            # after start, how long agents have to connect before paths count as down
    step_s: float = 0.5              # the counter grid's tick: spans begin and end on ticks
    lag_s: float = 5.0               # how far behind the others a router may report and still be compared


@dataclass
class Plan:
    """What the engine measures: every routed SLA, with its terms and SLS, its path's routers, and
    each class's loss bound. Worked out again whenever SLAs, SLSs or the topology change."""

    routes: dict[str, Route] = field(default_factory=dict)        # SLA name -> where its traffic is counted
    slas: dict[str, tuple[Sla, Sls]] = field(default_factory=dict)
    routers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # SLA name -> routers on its path
    loss_bounds: dict[str, int | None] = field(default_factory=dict)   # class -> ppm


@dataclass(frozen=True)
class Compiled:
    """A Plan as index arrays, SLAs in one order (`names`); leaves are the grid's columns."""

    names: list[str]
    own: np.ndarray                # SLA -> its own leaf
    path_hops: np.ndarray          # SLA -> its hop set (SLAs of one class on one path share one)
    hop_sets: Groups               # hop set -> its hops
    hop_inputs: Groups             # hop -> the upstream leaves sending into it
    hop_outputs: Groups            # hop -> its transit leaves
    routers: list[str]
    path_routers: np.ndarray       # SLA -> its router set
    router_sets: Groups            # router set -> its routers
    bandwidth_bps: np.ndarray
    loss_bound_ppm: np.ndarray     # NaN: the class bounds no loss
    bounds_loss: np.ndarray        # its class bounds loss (Gold, Silver)
    objective_percent: np.ndarray
    max_outage_s: np.ndarray

    @classmethod
    def of(cls, plan: Plan, grid: CounterGrid) -> Compiled:
        names = list(plan.routes)
        hop_index: dict[int, int] = {}
        hop_leaves: list[tuple[list[Leaf], list[Leaf]]] = []
        set_index: dict[tuple[int, ...], int] = {}
        path_hops = []
        for name in names:
            mine = []
            for hop in plan.routes[name].hops:
                if id(hop) not in hop_index:
                    hop_index[id(hop)] = len(hop_leaves)
                    hop_leaves.append((list(hop.inputs), list(hop.outputs)))
                mine.append(hop_index[id(hop)])
            path_hops.append(set_index.setdefault(tuple(mine), len(set_index)))
        router_index: dict[str, int] = {}
        router_sets: dict[tuple[int, ...], int] = {}
        path_routers = []
        for name in names:
            mine = tuple(router_index.setdefault(router, len(router_index)) for router in plan.routers[name])
            path_routers.append(router_sets.setdefault(mine, len(router_sets)))
        terms = [plan.slas[name][0].terms for name in names]
        bounds = [plan.loss_bounds.get(plan.routes[name].service_class) for name in names]
        own = grid.leaves([plan.routes[name].own for name in names])
        inputs = Groups.of([grid.leaves(inputs).tolist() for inputs, _ in hop_leaves])
        outputs = Groups.of([grid.leaves(outputs).tolist() for _, outputs in hop_leaves])
        same = np.arange(len(grid.owners), dtype=np.int64)
        return cls(
            names, own, np.array(path_hops, dtype=np.int64), Groups.of(list(set_index)), inputs.translated(same),
            outputs.translated(same), list(router_index), np.array(path_routers, dtype=np.int64),
            Groups.of(list(router_sets)),
            np.array([plan.routes[name].bandwidth_bps for name in names], dtype=np.float64),
            np.array([np.nan if b is None else b for b in bounds], dtype=np.float64),
            np.array([b is not None for b in bounds], dtype=bool),
            np.array([float(t.availability.objective_percent) for t in terms], dtype=np.float64),
            np.array([t.availability.max_outage_s for t in terms], dtype=np.float64))

    def take(self, order: np.ndarray) -> Compiled:
        """The SLAs in `order`."""
        return replace(self, names=[self.names[i] for i in order.tolist()], own=self.own[order],
                       path_hops=self.path_hops[order], path_routers=self.path_routers[order],
                       bandwidth_bps=self.bandwidth_bps[order], loss_bound_ppm=self.loss_bound_ppm[order],
                       bounds_loss=self.bounds_loss[order],
                       objective_percent=self.objective_percent[order], max_outage_s=self.max_outage_s[order])


@dataclass
class SlaColumns:
    """The running state of every SLA, one row each (Compiled order). Times are Unix seconds."""

    known: np.ndarray              # measuring has begun (after the start's grace, or its path came up)
    up_now: np.ndarray
    last: np.ndarray               # availability is accounted up to here
    counted_from: np.ndarray       # this month's start, or when measuring began
    down_s: np.ndarray
    longest_s: np.ndarray
    outage_started: np.ndarray     # NaN while up
    judged_tick: np.ndarray        # the end tick of the latest measured span
    measured: np.ndarray           # a measurement exists (the columns below hold the latest)
    measured_at: np.ndarray
    throughput_bps: np.ndarray
    offered_bps: np.ndarray
    loss_ppm: np.ndarray
    loss_run: np.ndarray           # the loss detector's consecutive measurements toward a change
    loss_violating: np.ndarray
    availability_violating: np.ndarray
    outage_violating: np.ndarray

    @classmethod
    def empty(cls, n: int) -> SlaColumns:
        def zeros(dtype: type) -> np.ndarray:
            return np.zeros(n, dtype=dtype)
        return cls(zeros(bool), zeros(bool), zeros(float), zeros(float), zeros(float), zeros(float),
                   np.full(n, np.nan), np.full(n, NEVER, dtype=np.int64), zeros(bool), zeros(float), zeros(float),
                   zeros(float), zeros(float), zeros(np.int64), zeros(bool), zeros(bool), zeros(bool))

    def carried_over(self, old_names: list[str], new_names: list[str]) -> SlaColumns:
        """The same state for a new SLA order: SLAs kept keep their rows, new ones start empty."""
        new = SlaColumns.empty(len(new_names))
        position = {name: i for i, name in enumerate(old_names)}
        pairs = [(i, position[name]) for i, name in enumerate(new_names) if name in position]
        if pairs:
            to, source = (np.array(x, dtype=np.int64) for x in zip(*pairs))
            for f in fields(self):
                getattr(new, f.name)[to] = getattr(self, f.name)[source]
        return new

    def take(self, order: np.ndarray) -> SlaColumns:
        return SlaColumns(*(getattr(self, f.name)[order] for f in fields(self)))

    def violations(self, row: int) -> tuple[str, ...]:
        flags = (("availability", self.availability_violating), ("loss", self.loss_violating),
                 ("outageDuration", self.outage_violating))
        return tuple(metric for metric, column in flags if column[row])


class FeedbackEngine:
    def __init__(self, service: ServiceLayer, router_ok: Callable[[str], bool],
                 settings: FeedbackSettings | None = None) -> None:
        self.service = service
        self.router_ok = router_ok
        self.settings = s = settings or FeedbackSettings()
        self.window_ticks = CounterGrid.ticks_for(s.window_s, s.step_s)
        self._advance = max(1, round(s.interval_s * 0.9 / s.step_s))   # ticks new since the last judgement
        self.grid = CounterGrid(s.step_s, self.window_ticks + CounterGrid.ticks_for(s.lag_s, s.step_s) + 1)
        self._layouts: dict[str, tuple[list[ClassKey], slice]] = {}   # router -> its report's columns
        self._plan = Plan()
        self._compiled = Compiled.of(self._plan, self.grid)
        self.state = SlaColumns.empty(0)
        self._replan = True
        self._moved = False
        self._started = time.monotonic()
        self._persisted = 0.0
        self._month: datetime | None = None
        self._restored: dict[int, FeedbackRecord] = {}

    # ------------------------------------------------------------------ input

    def counters(self, router: str, report: CounterReport) -> None:
        """One agent report, onto the grid (wrap, reset and reboot safe)."""
        cached = self._layouts.get(router)
        if cached is None or cached[0] is not report.keys:   # a router's class list changes rarely
            columns, moved_from, moved_to = self.grid.place([(router, interface, name)
                                                             for interface, name in report.keys])
            self._translate(moved_from, moved_to)
            cached = self._layouts[router] = (report.keys, columns)
        times = report.timestamps_ns / 1e9
        if not times.all():
            times[times == 0] = time.time()   # an agent that did not say when it read the kernel: now
        self.grid.add(cached[1], report.boot_epoch, (report.octets, report.packets, report.drops), times)
        compacted = self.grid.compact()
        if compacted is not None:
            self._translate(*compacted)
            index = self.grid.index
            self._layouts = {r: (keys, slice(index[(r, *keys[0])], index[(r, *keys[0])] + len(keys)))
                             for r, (keys, _) in self._layouts.items() if keys}

    def _translate(self, moved_from: np.ndarray, moved_to: np.ndarray) -> None:
        """Classes moved to other grid columns: the compiled plan follows them."""
        if not len(moved_from):
            return
        to = np.arange(max(len(self.grid.owners), int(moved_from.max()) + 1), dtype=np.int64)
        to[moved_from] = moved_to
        c = self._compiled
        self._compiled = replace(c, own=to[c.own], hop_inputs=c.hop_inputs.translated(to),
                                 hop_outputs=c.hop_outputs.translated(to))
        self._moved = True   # back in column order before the next round

    def changed(self) -> None:
        """SLAs, SLSs or the topology changed: work out the routes again before the next round."""
        self._replan = True

    def use_plan(self, plan: Plan) -> None:
        """Measure `plan` from now on (the loop works it out itself; this is for benchmarks and tests)."""
        reported = {(router, *key) for router, (keys, _) in self._layouts.items() for key in keys}
        hops = {id(hop): hop for route in plan.routes.values() for hop in route.hops}   # shared: each once
        planned = {route.own for route in plan.routes.values()}
        planned.update(leaf for hop in hops.values() for leaf in (*hop.inputs, *hop.outputs))
        self.grid.retain(reported | planned)   # classes gone from their router and the plan
        compiled = Compiled.of(plan, self.grid)
        self.state = self.state.carried_over(self._compiled.names, compiled.names)
        self._plan, self._compiled, self._replan = plan, compiled, False
        self._in_column_order()

    def _in_column_order(self) -> None:
        """Keep the SLAs in the order of their own leaves' columns: a round gathers each SLA's
        counters from the grid, and in order that is five times faster than at random."""
        own = self._compiled.own
        if len(own) > 1 and not (own[1:] >= own[:-1]).all():
            order = np.argsort(own, kind="stable")
            self._compiled, self.state = self._compiled.take(order), self.state.take(order)

    def measured(self) -> int:
        """How many SLAs have a measurement."""
        return int(self.state.measured.sum())

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self._restored = await asyncio.to_thread(self._load_records)
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                if self._replan:
                    self._replan = False
                    self.use_plan(await asyncio.to_thread(self._load_plan))
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
        if self._moved:
            self._moved = False
            self._in_column_order()
        c, state = self._compiled, self.state
        self._turn_month(now)
        router_up = np.fromiter((bool(self.router_ok(r)) for r in c.routers), dtype=bool, count=len(c.routers))
        up = c.router_sets.reduce(np.logical_and, router_up[c.router_sets.flat], True)[c.path_routers]
        in_grace = time.monotonic() - self._started < self.settings.grace_s
        starting = np.flatnonzero(~state.known & (up | (not in_grace)))
        if starting.size:
            self._start(starting, now, up)
        self._observe(state.known, now.timestamp(), up)
        found = self._judge_loss(state.known & up) + self._judge_availability(state.known)
        found.sort(key=lambda pair: (pair[0], METRIC_ORDER[pair[1].metric]))
        crossings = [self._announce(row, crossing) for row, crossing in found]
        rows = np.flatnonzero(state.known).tolist() if records_wanted else sorted({row for row, _ in found})
        return [self._record(row) for row in rows], crossings

    # ------------------------------------------------------------------ availability

    def _turn_month(self, now: datetime) -> None:
        """Close every month that ended since the last round (its down time stays in its rows)."""
        if self._month is None:
            self._month = month_start(now)
        state = self.state
        while now >= next_month(self._month):
            boundary = next_month(self._month)
            self._account(state.known, boundary.timestamp())
            state.counted_from[:] = boundary.timestamp()
            state.down_s[:] = 0.0
            state.longest_s[:] = 0.0
            state.outage_started[~np.isnan(state.outage_started)] = boundary.timestamp()
            self._month = boundary

    def _start(self, rows: np.ndarray, now: datetime, up: np.ndarray) -> None:
        """Measuring begins for `rows`: this month's accounting as the last run left it, or new."""
        state, month = self.state, self._month
        assert month is not None
        for row in rows.tolist():
            sla = self._plan.slas[self._compiled.names[row]][0]
            kept = self._restored.pop(sla.id, None)
            counted_from = now
            if kept is not None and kept.conformance.month == month:
                counted_from = kept.counted_from
                state.down_s[row], state.longest_s[row] = kept.down_s, kept.longest_outage_s
            elif sla.terms.valid_from > month:
                counted_from = min(sla.terms.valid_from, now)
            state.counted_from[row] = counted_from.timestamp()
        state.known[rows] = True
        state.last[rows] = now.timestamp()
        state.up_now[rows] = up[rows]
        state.outage_started[rows] = np.where(up[rows], np.nan, now.timestamp())

    def _account(self, rows: np.ndarray, until: float) -> None:
        """The paths of `rows` were as `up_now` says from `last` until `until`."""
        state = self.state
        down = np.flatnonzero(rows & ~state.up_now & (until > state.last))   # few: most paths are up
        state.down_s[down] += until - state.last[down]
        outage = down[~np.isnan(state.outage_started[down])]
        state.longest_s[outage] = np.maximum(state.longest_s[outage], until - state.outage_started[outage])
        np.copyto(state.last, until, where=rows & (until > state.last))

    def _observe(self, rows: np.ndarray, now: float, up: np.ndarray) -> None:
        state = self.state
        self._account(rows, now)
        came_up = rows & up & ~state.up_now
        went_down = rows & ~up & state.up_now
        if came_up.any() or went_down.any():
            state.outage_started[came_up] = np.nan
            state.outage_started[went_down] = now
            np.copyto(state.up_now, up, where=rows)

    def _judge_availability(self, rows: np.ndarray) -> list[tuple[int, Crossing]]:
        """The month's down time beyond what the objective allows for the whole month (raised
        once, cleared when the month turns); an outage longer than the maximum (raised while it
        lasts). Both are integrated over time already: they change state at once. Only SLAs that
        were down this month, or are in violation, can change."""
        state, c = self.state, self._compiled
        assert self._month is not None
        rows = np.flatnonzero(rows & ((state.down_s > 0) | state.availability_violating | state.outage_violating))
        allowance = ((next_month(self._month).timestamp() - state.counted_from[rows])
                     * (100.0 - c.objective_percent[rows]) / 100)
        over_budget = state.down_s[rows] > allowance
        started = state.outage_started[rows]
        outage = np.where(np.isnan(started), 0.0, state.last[rows] - started)
        too_long = (c.max_outage_s[rows] > 0) & (outage > c.max_outage_s[rows])
        found = []
        for i in np.flatnonzero(over_budget != state.availability_violating[rows]).tolist():
            row = int(rows[i])
            state.availability_violating[row] = over_budget[i]
            percent = self._availability(row).percent()
            found.append((row, self._crossing(row, "availability", bool(over_budget[i]), int(percent * 100),
                                              int(self._terms(row).availability.objective_percent * 100))))
        for i in np.flatnonzero(too_long != state.outage_violating[rows]).tolist():
            row = int(rows[i])
            state.outage_violating[row] = too_long[i]
            found.append((row, self._crossing(row, "outageDuration", bool(too_long[i]),
                                              int(max(outage[i], state.longest_s[row])), int(c.max_outage_s[row]))))
        return found

    # ------------------------------------------------------------------ loss

    def _judge_loss(self, rows: np.ndarray) -> list[tuple[int, Crossing]]:
        """Measure the SLAs `rows` says (those whose path is up) over the newest window every
        router on their path covers, and feed the loss detectors (SLAPM-MIB style: raise after
        `raise_after` measurements beyond the bound, clear after `clear_after` at or below half
        of it). In chunks of CHUNK SLAs: a chunk's temporaries stay in the CPU's cache, which
        makes the arithmetic twice as fast as on whole columns."""
        c = self._compiled
        extents = (self.grid.extent(c.hop_inputs), self.grid.extent(c.hop_outputs))
        hop_end = self._hop_ends(extents)
        hops_at: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # end tick -> each hop set's (known, delivered)

        def hops(tick: int) -> tuple[np.ndarray, np.ndarray]:
            if tick not in hops_at:
                hops_at[tick] = self._hops(tick, extents)
            return hops_at[tick]

        found = []
        for low in range(0, len(c.names), CHUNK):
            chunk = slice(low, min(low + CHUNK, len(c.names)))
            found += [(low + i, crossing) for i, crossing in self._judge_chunk(chunk, rows[chunk], hop_end, hops)]
        return found

    def _judge_chunk(self, chunk: slice, rows: np.ndarray, hop_end: np.ndarray,
                     hops: Callable[[int], tuple[np.ndarray, np.ndarray]]) -> list[tuple[int, Crossing]]:
        state, c, s = self.state, self._compiled, self.settings
        own, path = c.own[chunk], c.path_hops[chunk]
        end = np.minimum(self.grid.covered[own], hop_end[path])
        everyone = bool(rows.all())                  # the usual round: every path up, every router reporting
        missing = end == NEVER                        # a router on the path never reported: no measurement
        if not everyone:
            missing &= rows
        fresh = end - state.judged_tick[chunk] >= self._advance
        if not everyone or missing.any():
            fresh &= rows & ~missing
        judged = np.zeros(len(end), dtype=bool)      # measured, offered at most its SLS, and sent steadily
        if fresh.all():
            state.judged_tick[chunk] = end
            ticks = end
        elif fresh.any():
            np.copyto(state.judged_tick[chunk], end, where=fresh)
            ticks = end[fresh]
        else:
            ticks = end[:0]
        if len(ticks):
            low, high = int(ticks.min()), int(ticks.max())
            for tick in [low] if low == high else np.unique(ticks).tolist():   # routers report within a tick or so
                use = fresh if low == high else fresh & (end == tick)
                judged |= self._measure(chunk, own, path, tick, use, hops(tick))
        judged &= c.bounds_loss[chunk]
        run = state.loss_run[chunk]
        broken = missing | (fresh & ~judged)          # a gap breaks a run
        if broken.any():
            run[broken] = 0
        if not judged.any():
            return []
        violating, value, bound = state.loss_violating[chunk], state.loss_ppm[chunk], c.loss_bound_ppm[chunk]
        if violating.any():
            toward = np.where(violating, value <= bound / 2, value > bound)
            needed = np.where(violating, s.clear_after, s.raise_after)
        else:
            toward, needed = value > bound, s.raise_after
        counted = np.where(toward, run + 1, 0)
        flips = judged & (counted >= needed)
        np.copyto(run, counted, where=judged)
        flipped = np.flatnonzero(flips)
        run[flipped] = 0
        violating[flipped] = ~violating[flipped]
        return [(i, self._crossing(chunk.start + i, "loss", bool(violating[i]), int(value[i]), int(bound[i])))
                for i in flipped.tolist()]

    def _hop_ends(self, extents: tuple[Extent, Extent]) -> np.ndarray:
        """For each hop set, the newest tick every leaf of its hops has reached (NEVER if one has
        none yet, or a hop has no leaf at all), from the hops' (inputs, outputs) extents."""
        (in_low, _, _), (out_low, _, _) = extents
        hop_end = np.minimum(in_low, out_low)
        hop_end[hop_end == np.iinfo(np.int64).max] = NEVER
        sets = self._compiled.hop_sets
        return sets.reduce(np.minimum, hop_end[sets.flat], np.iinfo(np.int64).max)

    def _measure(self, chunk: slice, own: np.ndarray, path: np.ndarray, end: int, use: np.ndarray,
                 hops: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Throughput, offered load and loss over [end - window, end] of the SLAs of `chunk` that
        `use` says (into the state). Returns which were measured, offered at most their SLS, and
        sent steadily (only those are judged)."""
        state, c, grid = self.state, self._compiled, self.grid
        start = end - self.window_ticks
        second = CounterGrid.ticks_for(1.0, grid.step_s)
        octets = grid.span(OCTETS, own, start, end)
        packets = grid.span(PACKETS, own, start, end)
        offered_at = grid.grid[OFFERED]
        slots = grid.slots
        offered_start, offered_end = offered_at[start % slots][own], offered_at[end % slots][own]
        sent = offered_end - offered_start        # packets the customer offered: sent on and dropped
        seconds = self.window_ticks * grid.step_s
        size = octets / np.where(packets > 0, packets, 1)     # counts are interpolated: fractions too
        offered = (octets + (sent - packets) * size) * (8 / seconds)
        within = offered <= c.bandwidth_bps[chunk] * (1 + OFFER_TOLERANCE)
        delivered = np.where(within & (sent > 0), packets / np.where(sent > 0, sent, 1), 1.0) * hops[1][path]
        loss = np.where(sent > 0, np.maximum(np.rint((1 - delivered) * PPM), 0), 0)   # delivered >= 0
        first = offered_at[(start + second) % slots][own] - offered_start
        last = offered_end - offered_at[(end - second) % slots][own]
        high = np.maximum(first, last)
        steady = (high <= STEADY_PACKETS) | (np.minimum(first, last) >= high * (1 - STEADY_TOLERANCE))
        ok = use & grid.known(own, start, end) & hops[0][path]
        state.measured[chunk] |= ok
        np.copyto(state.measured_at[chunk], end * grid.step_s, where=ok)
        np.copyto(state.throughput_bps[chunk], np.rint(octets * (8 / seconds)), where=ok)
        np.copyto(state.offered_bps[chunk], np.rint(offered), where=ok)
        np.copyto(state.loss_ppm[chunk], loss, where=ok)
        return ok & within & steady

    def _hops(self, end: int, extents: tuple[Extent, Extent]) -> tuple[np.ndarray, np.ndarray]:
        """Every hop set over [end - window, end]: whether it is known, and the share of the
        class-k packets that its hops passed on (the product over its hops of what each router
        sent on of what was sent toward it; what interpolating two routers' counters can
        misplace, ALIGNMENT_PACKETS, is no evidence of loss)."""
        c, grid = self._compiled, self.grid
        start = end - self.window_ticks

        def sums(groups: Groups, ticks: Extent) -> tuple[np.ndarray, np.ndarray]:
            lowest, highest, valid_from = ticks   # every leaf known: the same test as `known`, on extremes
            known = (valid_from <= start) & (end <= lowest) & (start > highest - grid.slots)
            return known, groups.reduce(np.add, grid.span(PACKETS, groups.flat, start, end), 0.0)

        inputs_ok, sent_in = sums(c.hop_inputs, extents[0])
        outputs_ok, sent_on = sums(c.hop_outputs, extents[1])
        ok = inputs_ok & ((sent_in <= 0) | outputs_ok)
        lossless = (sent_in <= 0) | (sent_in - sent_on <= ALIGNMENT_PACKETS)
        delivered = np.where(lossless, 1.0, sent_on / np.where(lossless, 1.0, sent_in))
        return (c.hop_sets.reduce(np.logical_and, ok[c.hop_sets.flat], True),
                c.hop_sets.reduce(np.multiply, delivered[c.hop_sets.flat], 1.0))

    # ------------------------------------------------------------------ what leaves the engine

    def _terms(self, row: int) -> SlaTerms:
        return self._plan.slas[self._compiled.names[row]][0].terms

    def _crossing(self, row: int, metric: str, raised: bool, measured: int, bound: int) -> Crossing:
        name = self._compiled.names[row]
        return Crossing(name, self._plan.routes[name].service_class, metric, raised, measured, bound)

    def _announce(self, row: int, crossing: Crossing) -> tuple[int, str, dict[str, object]]:
        sla = self._plan.slas[self._compiled.names[row]][0]
        payload: dict[str, object] = {"customer": sla.customer, "service_class": crossing.service_class,
                                      "metric": crossing.metric, "measured": crossing.measured,
                                      "bound": crossing.bound}
        if crossing.metric == "availability" and crossing.raised:
            fee = sla.terms.tariff.monthly_fee * sla.terms.availability.penalty_percent_of_monthly_fee / 100
            payload["penalty_credit"] = str(fee.quantize(Decimal("0.01")))
            payload["month"] = self._availability(row).month.isoformat()
        return sla.id, ev.SLA_VIOLATION if crossing.raised else ev.SLA_CLEARED, payload

    def _availability(self, row: int) -> Availability:
        """Row `row`'s month so far, as the per-object model holds it (for its percent)."""
        state = self.state
        assert self._month is not None

        def moment(seconds: float) -> datetime:
            return datetime.fromtimestamp(seconds, timezone.utc)
        started = state.outage_started[row]
        return Availability(self._month, moment(state.counted_from[row]), moment(state.last[row]),
                            bool(state.up_now[row]), float(state.down_s[row]), float(state.longest_s[row]),
                            None if np.isnan(started) else moment(started))

    def _record(self, row: int) -> FeedbackRecord:
        state = self.state
        sla, sls = self._plan.slas[self._compiled.names[row]]
        availability = self._availability(row)
        m = bool(state.measured[row])
        conformance = Conformance(
            sla.id, datetime.fromtimestamp(state.measured_at[row], timezone.utc) if m else None,
            self.window_ticks * self.grid.step_s if m else None, sls.service_class if m else None,
            sls.bandwidth_bps if m else None, int(state.throughput_bps[row]) if m else None,
            int(state.offered_bps[row]) if m else None, int(state.loss_ppm[row]) if m else None,
            availability.month, availability.percent(),
            int(max(availability.longest_s, availability.current_outage_s())), state.violations(row))
        return FeedbackRecord(conformance, availability.counted_from, availability.down_s, availability.longest_s)
