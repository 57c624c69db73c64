"""The feedback engine's counter grid: resampling onto ticks, and classes moving between columns
(a router's class list changing, forgotten classes, compaction) without losing their counts."""

from __future__ import annotations

import numpy as np
import pytest

from controller.feedback.grid import NEVER, OCTETS, OFFERED, PACKETS, CounterGrid

T = 1_800_000_000.0


def send(grid: CounterGrid, columns: slice | np.ndarray, t: float, packets: list[int],
         drops: list[int] | None = None, epoch: int = 1) -> None:
    n = len(packets)
    raw = (np.array([p * 1000 % 2**64 for p in packets], dtype=np.uint64), np.array(packets, dtype=np.uint64),
           np.array(drops or [0] * n, dtype=np.uint64))
    grid.add(columns, epoch, raw, np.full(n, t))


def test_ticks_interpolate_between_reports_and_a_span_is_a_difference_of_ticks() -> None:
    grid = CounterGrid(step_s=0.5, slots=12)
    columns, _, _ = grid.place([("r", "eth1", "gold/a"), ("r", "eth1", "gold/b")])
    send(grid, columns, T + 0.2, [0, 0])                 # the origin
    send(grid, columns, T + 1.2, [100, 40], [0, 10])     # 100 pkt/s and 40 (+10 dropped)
    send(grid, columns, T + 2.2, [200, 80], [0, 20])
    start, end = round((T + 0.5) / 0.5), round((T + 2.0) / 0.5)
    assert grid.covered[columns].tolist() == [end, end]
    assert grid.known(np.arange(2), start, end).all()
    assert grid.span(PACKETS, np.arange(2), start, end) == pytest.approx([150, 60])
    assert grid.span(OCTETS, np.arange(2), start, end) == pytest.approx([150_000, 60_000])
    assert grid.span(OFFERED, np.arange(2), start, end) == pytest.approx([150, 75])   # sent on + dropped
    assert not grid.known(np.arange(2), start - 1, end).any()                        # before the origin


def test_a_changed_class_list_moves_the_kept_classes_with_their_counts() -> None:
    grid = CounterGrid(step_s=0.5, slots=12)
    a, b, c, d = (("r", "eth1", name) for name in ("gold/a", "gold/b", "gold/c", "gold/d"))
    planned_d = grid.leaf(d)                              # the plan knew d before r reported it
    first, _, _ = grid.place([a, b, c])
    for second in range(3):
        send(grid, first, T + second, [100 * second] * 3)
    second_list, moved_from, moved_to = grid.place([a, d, b])   # c gone, d new, a and b kept
    assert second_list == slice(second_list.start, second_list.start + 3)
    new = second_list.start
    assert sorted(zip(moved_from.tolist(), moved_to.tolist())) == sorted(
        [(first.start, new), (first.start + 1, new + 2), (planned_d, new + 1)])
    for second in range(3, 6):
        send(grid, second_list, T + second, [100 * second, 50 * (second - 3), 100 * second])
    kept = np.array([grid.index[a], grid.index[b]])
    start, end = round((T + 1) / 0.5), round((T + 5) / 0.5)
    assert grid.span(PACKETS, kept, start, end) == pytest.approx([400, 400])   # counted across the move
    assert grid.covered[grid.index[d]] != NEVER and not grid.known(np.array([grid.index[d]]), start, end).any()
    grid.retain({a, b, d})
    assert c not in grid.index
    before = grid.span(PACKETS, kept, start, end)
    moved = grid.compact(at_least=0)
    assert moved is not None
    old, new = moved
    to = dict(zip(old.tolist(), new.tolist()))
    assert grid.span(PACKETS, np.array([to[k] for k in kept.tolist()]), start, end) == pytest.approx(before)
    assert len(grid.owners) == 3 and grid.index[a] == to[kept[0]]


def test_a_reset_starts_spans_afresh_and_a_wrap_does_not() -> None:
    grid = CounterGrid(step_s=0.5, slots=16)
    columns, _, _ = grid.place([("r", "eth1", "gold/a"), ("r", "eth1", "gold/b")])
    top = 2**64 - 150
    send(grid, columns, T, [top % 2**64, 1000])
    send(grid, columns, T + 1, [(top + 100) % 2**64, 1100])
    send(grid, columns, T + 2, [(top + 200) % 2**64, 1200])      # a wraps here
    send(grid, columns, T + 3, [(top + 300) % 2**64, 50], epoch=1)  # b fell from the lower half: reset
    both = np.arange(2)
    assert grid.known(both, round(T / 0.5), round((T + 3) / 0.5)).tolist() == [True, False]
    assert grid.span(PACKETS, both[:1], round(T / 0.5), round((T + 3) / 0.5)) == pytest.approx([300])
    send(grid, columns, T + 4, [(top + 400) % 2**64, 150])
    assert grid.known(both, round((T + 3) / 0.5), round((T + 4) / 0.5)).all()
    assert grid.span(PACKETS, both, round((T + 3) / 0.5), round((T + 4) / 0.5)) == pytest.approx([100, 100])
