"""Every scheduler class's cumulative counts on one time grid, as numpy columns.

Routers report at their own instants; conformance compares them over the same span of time. So
each report is resampled at once onto ticks every `step_s` seconds of Unix time: a tick's value is
the class's cumulative count there, interpolated between the two reports around it (what
`conformance.Series.at` computes for any instant). A span is then the difference of two ticks.
Each class keeps its last `slots` ticks in a ring.

The deltas between reports follow southbound.counters.delta (wrap, agent restart, reboot); a
class counts from zero again after a reset, so ticks before it cannot start a span (`valid_from`).
A report older than the class's previous one (an agent whose clock stepped back) starts the class
afresh. A class's first report is only its origin.

Everything per report is array arithmetic on one-dimensional arrays (a counter per array, a ring
slot per row): numpy gathers and scatters those ten times faster than rows of a 2-D array, and a
report of 10,000 classes costs well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.feedback.conformance import Leaf

# What the grid keeps of each class: octets and packets it sent on, and packets it was offered
# (sent on + dropped), the three things conformance needs.
COUNTERS = ("octets", "packets", "offered")
OCTETS, PACKETS, OFFERED = range(3)
DROPS = OFFERED   # in a report: the third counter is drops
HALF_RANGE = np.uint64(2**63)
NEVER = -1   # `covered` of a class with no tick yet
NO_COLUMNS = np.zeros(0, dtype=np.int64)

Counts = tuple[np.ndarray, np.ndarray, np.ndarray]   # the agent's octets, packets, drops: one array each
Extent = tuple[np.ndarray, np.ndarray, np.ndarray]   # per group: lowest and highest covered tick, latest reset


Columns = slice | np.ndarray   # a report's classes: one contiguous range (see `place`); or any columns


@dataclass(frozen=True)
class Groups:
    """Variable-length groups of indices (CSR): group g is `flat[bounds[g]:bounds[g + 1]]`."""

    flat: np.ndarray
    bounds: np.ndarray

    @classmethod
    def of(cls, lists: Sequence[Sequence[int]]) -> Groups:
        sizes = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        flat = np.fromiter((i for x in lists for i in x), dtype=np.int64, count=int(bounds[-1]))
        return cls(flat, bounds)

    def translated(self, to: np.ndarray) -> Groups:
        """Each index i replaced by to[i], each group in ascending order (a gather over a group
        then reads memory in order)."""
        flat = to[self.flat]
        group = np.repeat(np.arange(len(self.bounds) - 1), np.diff(self.bounds))
        return Groups(flat[np.lexsort((flat, group))], self.bounds)

    def reduce(self, ufunc: np.ufunc, values: np.ndarray, empty: float | bool) -> np.ndarray:
        """`ufunc` over each group of `values` (aligned with `flat`); `empty` for an empty group."""
        out = np.full(len(self.bounds) - 1, empty, dtype=values.dtype)
        full = np.diff(self.bounds) > 0
        if values.size:
            out[full] = ufunc.reduceat(values, self.bounds[:-1][full])
        return out



class CounterGrid:
    def __init__(self, step_s: float, slots: int, capacity: int = 1024) -> None:
        self.step_s = step_s
        self.slots = slots
        self.index: dict[Leaf, int] = {}
        self.owners: list[Leaf | None] = []      # column -> its class (None: moved away)
        self.moved = 0                           # columns left behind by `place`, or forgotten
        self._allocate(capacity)

    @staticmethod
    def ticks_for(seconds: float, step_s: float) -> int:
        return max(1, math.ceil(seconds / step_s - 1e-9))

    # ------------------------------------------------------------------ classes

    def leaf(self, key: Leaf) -> int:
        """The column of `key`, added if new."""
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = self._extend(1)
            self.owners[found] = key
        return found

    def leaves(self, keys: list[Leaf]) -> np.ndarray:
        return np.fromiter((self.leaf(key) for key in keys), dtype=np.int64, count=len(keys))

    def place(self, keys: list[Leaf]) -> tuple[slice, np.ndarray, np.ndarray]:
        """Give a router's report classes one contiguous range of columns, in report order, so that
        taking in its reports touches slices rather than scattered columns. Classes already known
        move there with their state. Returns the range and (from, to) of the columns that moved,
        for callers that hold column numbers."""
        held = [self.index.get(key) for key in keys]
        if held and None not in held and held == list(range(held[0], held[0] + len(held))):
            return slice(held[0], held[0] + len(held)), NO_COLUMNS, NO_COLUMNS
        start = self._extend(len(keys))
        kept = [(i, column) for i, column in enumerate(held) if column is not None]
        source = np.array([column for _, column in kept], dtype=np.int64)
        target = np.array([start + i for i, _ in kept], dtype=np.int64)
        for array in self._arrays():
            array[..., target] = array[..., source]
        for i, key in enumerate(keys):
            self.index[key] = start + i
            self.owners[start + i] = key
        for column in source.tolist():
            self.owners[column] = None
        self.moved += len(source)
        return slice(start, start + len(keys)), source, target

    def retain(self, keys: set[Leaf]) -> None:
        """Forget every class not in `keys` (gone from its router and from the plan); `compact`
        reclaims their columns."""
        for key in [key for key in self.index if key not in keys]:
            self.owners[self.index.pop(key)] = None
            self.moved += 1

    def compact(self, at_least: int = 65_536) -> tuple[np.ndarray, np.ndarray] | None:
        """Once more columns were left behind than are in use (and `at_least`), close the gaps
        (order kept, so each report's range stays contiguous). Returns (from, to) of every column
        in use, or None."""
        if self.moved <= max(len(self.index), at_least):
            return None
        source = np.array([column for column, key in enumerate(self.owners) if key is not None], dtype=np.int64)
        old = self._arrays()
        self._allocate(max(1024, 2 * len(source)))
        for new, kept in zip(self._arrays(), old):
            new[..., :len(source)] = kept[..., source]
        self.owners = [self.owners[column] for column in source.tolist()]
        self.index = {key: column for column, key in enumerate(self.owners) if key is not None}
        self.moved = 0
        return source, np.arange(len(source), dtype=np.int64)

    def _extend(self, n: int) -> int:
        """n new columns at the end, as classes never reported; the first one's number."""
        start = len(self.owners)
        if start + n > len(self.covered):
            self._grow(max(2 * len(self.covered), start + n))
        self.owners.extend([None] * n)
        return start

    # ------------------------------------------------------------------ reports

    def add(self, columns: Columns, epoch: int, raw: Counts, times: np.ndarray) -> None:
        """One report: classes `columns`, their cumulative counters `raw` (octets, packets, drops;
        uint64) read at `times` (seconds), under the router's boot `epoch`."""
        marks = [mark[columns] for mark in self.marks]
        onward = self.has_mark[columns] & (times >= self.last_t[columns])
        with np.errstate(over="ignore"):
            delta = [(now - mark).astype(np.float64) for now, mark in zip(raw, marks)]   # modulo 2^64: a wrap
        grew = (raw[0] >= marks[0]) & (raw[1] >= marks[1]) & (raw[2] >= marks[2])
        if not (grew.all() and (self.epochs[columns] == epoch).all()):
            fell = [(now < mark) & (mark < HALF_RANGE) for now, mark in zip(raw, marks)]
            reset = onward & (fell[0] | fell[1] | fell[2] | (self.epochs[columns] != epoch))
            if reset.any():   # the class counted from zero again: all it counted is new
                for i in range(3):
                    delta[i][reset] = raw[i][reset]
                self.valid_from[_subset(columns, reset)] = np.ceil(times[reset] / self.step_s).astype(np.int64)
        delta[DROPS] += delta[PACKETS]    # offered = sent on + dropped
        if onward.all():
            self._fill(columns, times, delta)
        else:
            self._fill(_subset(columns, onward), times[onward], [d[onward] for d in delta])
            self._origin(_subset(columns, ~onward), times[~onward])
        for i in range(3):
            self.marks[i][columns] = raw[i]
        self.epochs[columns] = epoch
        self.has_mark[columns] = True

    def _fill(self, columns: Columns, times: np.ndarray, delta: list[np.ndarray]) -> None:
        """Write the ticks between each class's previous report and this one, then move it on."""
        before_t = self.last_t[columns]
        before = [total[columns] for total in self.totals]
        step = self.step_s
        last_tick = np.floor(times / step).astype(np.int64)
        first_tick = np.maximum(np.floor(before_t / step).astype(np.int64) + 1, last_tick - self.slots + 1)
        count = np.where(times == before_t, 0, last_tick - first_tick + 1)   # a repeated instant: no tick
        span = np.maximum(times - before_t, 1e-9)
        for k in range(int(count.max(initial=0))):
            writing = count > k
            tick = first_tick + k if writing.all() else (first_tick + k)[writing]
            low, high = int(tick.min()), int(tick.max())
            for value in ([low] if low == high else np.unique(tick).tolist()):   # one, unless a report straddles one
                at = writing if low == high else writing & (first_tick + k == value)
                everything = bool(at.all())
                since, length = (before_t, span) if everything else (before_t[at], span[at])
                weight = (value * step - since) / length
                target = columns if everything else _subset(columns, at)
                for i in range(3):
                    base, moved = (before[i], delta[i]) if everything else (before[i][at], delta[i][at])
                    self.grid[i][value % self.slots][target] = base + moved * weight
        self.covered[columns] = np.where(count > 0, last_tick, self.covered[columns])
        for i in range(3):
            self.totals[i][columns] = before[i] + delta[i]
        self.last_t[columns] = times

    def _origin(self, columns: np.ndarray, times: np.ndarray) -> None:
        """A class's first report (or first after its clock stepped back): counting starts here."""
        for total in self.totals:
            total[columns] = 0.0
        self.last_t[columns] = times
        first = np.ceil(times / self.step_s).astype(np.int64)
        on_tick = first * self.step_s == times
        for tick in np.unique(first[on_tick]).tolist():
            for i in range(3):
                self.grid[i][tick % self.slots][columns[on_tick & (first == tick)]] = 0.0
        self.covered[columns] = np.where(on_tick, first, first - 1)
        self.valid_from[columns] = first

    # ------------------------------------------------------------------ spans

    def known(self, columns: np.ndarray, start: int, end: int) -> np.ndarray:
        """Whether each class's ticks `start` and `end` are both in its ring and after any reset."""
        covered = self.covered[columns]
        return (self.valid_from[columns] <= start) & (end <= covered) & (start > covered - self.slots)

    def extent(self, groups: Groups) -> Extent:
        """Per group of columns: its lowest and highest `covered` tick and its highest
        `valid_from` (an empty group: lowest is the int64 maximum)."""
        big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        covered = self.covered[groups.flat]
        return (groups.reduce(np.minimum, covered, big), groups.reduce(np.maximum, covered, small),
                groups.reduce(np.maximum, self.valid_from[groups.flat], small))

    def span(self, counter: int, columns: np.ndarray, start: int, end: int) -> np.ndarray:
        """What `counter` of each class counted from tick `start` to tick `end` (check `known`)."""
        rows = self.grid[counter]
        return rows[end % self.slots][columns] - rows[start % self.slots][columns]

    # ------------------------------------------------------------------ storage

    def _allocate(self, capacity: int) -> None:
        self.marks = [np.zeros(capacity, dtype=np.uint64) for _ in COUNTERS]   # the agent's last octets, packets, drops
        self.epochs = np.zeros(capacity, dtype=np.int64)
        self.has_mark = np.zeros(capacity, dtype=bool)
        self.last_t = np.zeros(capacity, dtype=np.float64)
        self.totals = [np.zeros(capacity, dtype=np.float64) for _ in COUNTERS]
        self.valid_from = np.full(capacity, np.iinfo(np.int64).max, dtype=np.int64)
        self.covered = np.full(capacity, NEVER, dtype=np.int64)
        self.grid = [np.zeros((self.slots, capacity), dtype=np.float64) for _ in COUNTERS]   # ring slot x class

    def _grow(self, capacity: int) -> None:
        old = self._arrays()
        self._allocate(capacity)
        for new, kept in zip(self._arrays(), old):
            new[..., :kept.shape[-1]] = kept

    def _arrays(self) -> list[np.ndarray]:
        return [*self.marks, self.epochs, self.has_mark, self.last_t, *self.totals, self.valid_from, self.covered,
                *self.grid]


def _subset(columns: Columns, mask: np.ndarray) -> np.ndarray:
    """The columns of `columns` where `mask` holds."""
    if isinstance(columns, slice):
        return np.flatnonzero(mask) + columns.start
    return columns[mask]
