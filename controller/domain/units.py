"""Bandwidth and money as operators write them ("10M", "2.00") and as the system stores them."""

from __future__ import annotations

import re
from functools import lru_cache
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_BANDWIDTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:bit/s|bps|b/s)?\s*$")
_MULTIPLIER = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_bandwidth(text: str | int) -> int:
    """Parse "10M", "1.5G", "64k" or a plain integer into bit/s (decimal SI prefixes, as tc)."""
    if isinstance(text, bool):
        raise ValueError(f"bandwidth must be a number with an optional k/M/G suffix, not {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"bandwidth must not be negative: {text}")
        return text
    match = _BANDWIDTH.match(str(text))
    if not match:
        raise ValueError(f"bandwidth must be a number with an optional k/M/G/T suffix, not {text!r}")
    value = Decimal(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
    if value != value.to_integral_value():
        raise ValueError(f"bandwidth {text!r} is not a whole number of bit/s")
    return int(value)


@lru_cache(maxsize=4096)
def format_bandwidth(bps: int) -> str:
    """Render bit/s the way an operator reads it: 10 Mbit/s, 1.5 Gbit/s, 64 kbit/s."""
    for unit, factor in (("Tbit/s", 10**12), ("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bps >= factor:
            value = Decimal(bps) / factor
            text = f"{value:.3f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{bps} bit/s"


def parse_money(text: str | int | Decimal) -> Decimal:
    """Parse an amount of money ("2.00", 2) into a Decimal with cents; floats are refused."""
    if isinstance(text, float):
        raise ValueError(f"write money as a string such as \"2.00\", not the float {text!r}")
    try:
        value = Decimal(str(text))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount of money: {text!r}")
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


@lru_cache(maxsize=4096)  # fees and prices: a handful of distinct amounts, read by the hundred thousand
def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration_seconds(text: str | int) -> int:
    """Parse "90s", "15m", "1h", "2d" or plain seconds into whole seconds."""
    if isinstance(text, bool):
        raise ValueError(f"duration must look like 15m, 1h or 30s, not {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text}")
        return text
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"duration must look like 15m, 1h or 30s, not {text!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def format_duration(seconds: int) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
