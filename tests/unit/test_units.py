from decimal import Decimal

import pytest

from controller.domain.units import (format_bandwidth, format_duration, from_cents, parse_bandwidth,
                                     parse_duration_seconds, parse_money, to_cents)


@pytest.mark.parametrize("text, bps", [("10M", 10_000_000), ("1.5G", 1_500_000_000), ("64k", 64_000),
                                       ("2500", 2500), (7, 7), ("10 Mbit/s", 10_000_000), ("1T", 10**12)])
def test_bandwidth_is_parsed_in_si_units(text: str, bps: int) -> None:
    assert parse_bandwidth(text) == bps


@pytest.mark.parametrize("text", ["ten", "-5M", "1.0000001k", "", "5X", True, -1])
def test_bad_bandwidth_is_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_bandwidth(text)  # type: ignore[arg-type]


def test_bandwidth_is_printed_for_operators() -> None:
    assert format_bandwidth(10_000_000) == "10 Mbit/s"
    assert format_bandwidth(1_500_000_000) == "1.5 Gbit/s"
    assert format_bandwidth(999) == "999 bit/s"


def test_money_is_decimal_with_cents_and_floats_are_refused() -> None:
    assert parse_money("2") == Decimal("2.00")
    assert to_cents(parse_money("0.105")) == 11
    assert from_cents(1234) == Decimal("12.34")
    with pytest.raises(ValueError, match="float"):
        parse_money(0.1)  # type: ignore[arg-type]


def test_durations() -> None:
    assert parse_duration_seconds("15m") == 900
    assert parse_duration_seconds("1h") == 3600
    assert parse_duration_seconds("0s") == 0
    assert format_duration(300) == "5m"
    with pytest.raises(ValueError):
        parse_duration_seconds("soon")
