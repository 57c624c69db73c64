"""Charging by tariff, as a specification: hours split at every change and month end add up,
graduated prices, proration, and money that is never a float."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.accounting.charging import SlaMonth, charge_month
from controller.accounting.metering import (Span, billable_span, class_segments, class_usage, epoch_ms, hours,
                                            milliseconds, months_in, ms_per_class, parse_month)
from controller.domain.catalog import ClassTariff, PriceTier, ServiceClassName, Tariff
from controller.domain.principal import Channel
from controller.domain.sls import SlsHistoryEntry

UTC = timezone.utc
GOLD, SILVER, BRONZE = ServiceClassName.GOLD, ServiceClassName.SILVER, ServiceClassName.BRONZE
NOVEMBER = parse_month("2026-11")
BUSINESS = Tariff(monthly_fee=Decimal("150.00"), classes={
    GOLD: ClassTariff(included_hours=Decimal(10), price_per_hour=Decimal("2.00")),
    SILVER: ClassTariff(included_hours=None), BRONZE: ClassTariff(included_hours=None)})


def entry(version: int, service_class: ServiceClassName, at: datetime) -> SlsHistoryEntry:
    return SlsHistoryEntry(1, version, service_class, 1_000_000, at, "customer:acme", Channel.CLI, Decimal(0))


def points(history: list[SlsHistoryEntry]) -> list:  # type: ignore[type-arg]
    return [(e.version, e.service_class, epoch_ms(e.effective_from)) for e in history]


def month_of_history(history: list[SlsHistoryEntry], tariff: Tariff = BUSINESS, month: Span = NOVEMBER) -> SlaMonth:
    return SlaMonth("acme-hq", "gsb-business", tariff, month, month, class_usage(points(history), month))


def hours_lines(lines, service_class: ServiceClassName) -> list:  # type: ignore[no-untyped-def]
    return [line for line in lines if line.key.startswith(f"acme-hq/hours/{service_class.value}")]


histories = st.lists(st.tuples(st.sampled_from(list(ServiceClassName)),
                               st.integers(min_value=1, max_value=40 * 86_400_000)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(histories)
def test_charged_hours_add_up_to_the_hours_in_each_class(changes: list[tuple[ServiceClassName, int]]) -> None:
    start = datetime(2026, 10, 20, tzinfo=UTC)
    history = [entry(1, SILVER, start)]
    moments = sorted(offset for _, offset in changes)
    for version, ((service_class, _), offset) in enumerate(zip(changes, moments), start=2):
        history.append(entry(version, service_class, start + timedelta(milliseconds=offset)))
    m = month_of_history(history)
    used = ms_per_class(class_segments("acme-hq", history, NOVEMBER))    # the model, segment by segment
    assert {c: use.ms for c, use in m.usage.items()} == {c: ms for c, ms in used.items() if ms}
    assert sum(used.values()) == NOVEMBER.ms
    lines = charge_month(m)
    for service_class in ServiceClassName:
        charged = sum((line.quantity for line in hours_lines(lines, service_class)), Decimal(0))
        assert charged == hours(used[service_class])
    # Money is exact to the cent and never a float.
    assert all(isinstance(line.amount, Decimal) and line.amount == line.amount.quantize(Decimal("0.01"))
               for line in lines)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=90 * 86_400_000), min_size=2, max_size=12))
def test_months_split_a_span_without_gaps_or_overlaps(offsets: list[int]) -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    low, high = min(offsets), max(offsets)
    span = Span(start + timedelta(milliseconds=low), start + timedelta(milliseconds=high))
    if span.ms == 0:
        return
    parts = months_in(span)
    assert parts[0].start == span.start and parts[-1].end == span.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    assert sum(p.ms for p in parts) == span.ms


def test_graduated_prices_charge_each_step_at_its_own_price() -> None:
    tiered = Tariff(monthly_fee=Decimal("40.00"), classes={
        GOLD: ClassTariff(included_hours=Decimal(0), tiers=(
            PriceTier(up_to_hours=Decimal(10), price_per_hour=Decimal("5.00")),
            PriceTier(up_to_hours=Decimal(20), price_per_hour=Decimal("4.00")),
            PriceTier(price_per_hour=Decimal("3.00")))),
        BRONZE: ClassTariff(included_hours=None)})
    history = [entry(1, BRONZE, datetime(2026, 10, 1, tzinfo=UTC)), entry(2, GOLD, datetime(2026, 11, 2, tzinfo=UTC)),
               entry(3, BRONZE, datetime(2026, 11, 3, 1, tzinfo=UTC))]   # 25 h of Gold
    lines = hours_lines(charge_month(month_of_history(history, tiered)), GOLD)
    assert [(line.quantity, line.unit_price, line.amount) for line in lines] == [
        (Decimal(10), Decimal("5.00"), Decimal("50.00")), (Decimal(10), Decimal("4.00"), Decimal("40.00")),
        (Decimal(5), Decimal("3.00"), Decimal("15.00"))]


def test_an_hour_past_a_bounded_last_tier_costs_the_last_tiers_price() -> None:
    tariff = ClassTariff(included_hours=Decimal(0),
                         tiers=(PriceTier(up_to_hours=Decimal(2), price_per_hour=Decimal("5.00")),))
    assert [step.price_per_hour for step in tariff.price_steps()] == [Decimal("5.00"), Decimal("5.00")]


def test_a_partial_hour_is_charged_to_the_cent_half_up() -> None:
    history = [entry(1, SILVER, datetime(2026, 10, 1, tzinfo=UTC)), entry(2, GOLD, datetime(2026, 11, 2, tzinfo=UTC)),
               entry(3, SILVER, datetime(2026, 11, 2, 10, 20, tzinfo=UTC))]   # 10 h 20 min of Gold
    [beyond] = [line for line in charge_month(month_of_history(history)) if line.kind == "additional-hours"]
    assert beyond.quantity == Decimal("0.333333333")
    assert beyond.amount == Decimal("0.67")


def test_an_sla_that_never_became_operational_is_not_billed() -> None:
    assert billable_span(NOVEMBER, datetime(2026, 1, 1, tzinfo=UTC), None, None, None) is None
    m = SlaMonth("acme-hq", "gsb-business", BUSINESS, NOVEMBER, None, ())
    assert charge_month(m) == []


def test_milliseconds_are_exact_over_a_month() -> None:
    assert milliseconds(NOVEMBER.end - NOVEMBER.start) == 30 * 86_400_000 == NOVEMBER.ms
