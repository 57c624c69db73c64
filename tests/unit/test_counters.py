"""Counter deltas on recorded sample series: growth, 64-bit wrap, reset, reboot, missing samples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.southbound.counters import WRAP, Delta, Sample, customer_leaf, delta


def _series(samples: list[Sample], *, first_is_new: bool = True) -> Delta:
    total = Delta(0, 0, 0)
    mark = None
    for sample in samples:
        d = delta(mark, sample, new_class=first_is_new)
        total = Delta(total.octets + d.octets, total.packets + d.packets, total.drops + d.drops)
        mark = sample
    return total


def test_growth_is_the_difference() -> None:
    assert _series([Sample(1, 100, 1, 0), Sample(1, 1600, 3, 1)]) == Delta(1600, 3, 1)


def test_a_wrapped_64_bit_counter_counts_across_the_wrap() -> None:
    near = WRAP - 500
    d = delta(Sample(1, near, 10, 0), Sample(1, 700, 12, 0), new_class=False)
    assert (d.octets, d.packets, d.reset) == (1200, 2, False)


def test_a_class_recreated_counts_from_zero() -> None:
    d = delta(Sample(1, 5_000, 50, 0), Sample(1, 300, 3, 0), new_class=False)
    assert (d.octets, d.packets, d.reset) == (300, 3, True)


def test_a_reboot_counts_from_zero_even_if_the_counter_is_higher() -> None:
    d = delta(Sample(1, 5_000, 50, 0), Sample(2, 9_000, 90, 0), new_class=False)
    assert (d.octets, d.reset) == (9_000, True)


def test_a_class_first_seen_is_counted_only_when_it_is_new() -> None:
    assert delta(None, Sample(1, 800, 8, 0), new_class=True).octets == 800
    assert not delta(None, Sample(1, 800, 8, 0), new_class=False)   # pre-existing traffic is never billed


def test_an_agent_restart_with_the_same_kernel_loses_nothing_and_counts_nothing_twice() -> None:
    """The agent restarts, the kernel keeps counting: the same epoch continues."""
    assert _series([Sample(7, 1000, 1, 0), Sample(7, 1000, 1, 0), Sample(7, 2500, 2, 0)]) == Delta(2500, 2, 0)


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30), st.integers(0, 2**64 - 1))
def test_missing_samples_do_not_change_the_total(increments: list[int], start: int) -> None:
    """Whatever samples are dropped on the way, the sum of deltas is the counter's true increase."""
    values, value = [], start
    for inc in increments:
        value = (value + inc) % WRAP
        values.append(value)
    every = [Sample(1, start, 0, 0)] + [Sample(1, v, 0, 0) for v in values]
    some = every[::3] + ([every[-1]] if (len(every) - 1) % 3 else [])
    expected = sum(increments)
    if start < WRAP // 2 and start + expected >= WRAP:   # a wrap from below the top half reads as a reset
        return
    assert _series(every, first_is_new=False).octets == expected
    assert _series(some, first_is_new=False).octets == expected


def test_only_a_customers_own_leaf_is_attributed() -> None:
    assert customer_leaf("gold/acme-hq", ("acme-hq",)) == ("acme-hq", "gold")
    assert customer_leaf("gold/transit", ("acme-hq",)) is None
    assert customer_leaf("silver/transit", ("a", "b")) is None
    assert customer_leaf("bronze/default", ()) is None
