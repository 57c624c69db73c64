"""Metering: the exact time an SLA spent in each class, from its append-only SLS history.

An SLS version is in effect from its `effective_from` until the next version's. Only the time the
SLA is billable counts: from the moment it became operational (and no earlier than its validity)
until it was deinstalled or its validity ended. Times are whole milliseconds, as IPFIX writes them
(flowStartMilliseconds), so sums are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from controller.domain.catalog import ServiceClassName
from controller.domain.errors import InvalidValue
from controller.domain.sls import SlsHistoryEntry

UTC = timezone.utc
MS_PER_HOUR = 3_600_000
HOURS = Decimal("0.000000001")   # hours are kept to the nanohour: a millisecond is 0.000000278 h


class Span(NamedTuple):
    """A half-open interval of time [start, end)."""

    start: datetime
    end: datetime

    @property
    def ms(self) -> int:
        return milliseconds(self.end - self.start)

    def clip(self, other: "Span") -> "Span | None":
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Span(start, end) if end > start else None


class ClassSegment(NamedTuple):
    """A stretch of time one SLS version was in effect and billable: the readable model of
    metering, segment by segment; `class_usage` is what billing runs, tested equal to it."""

    sla: str
    version: int
    service_class: ServiceClassName
    bandwidth_bps: int
    span: Span
    principal: str
    channel: str
    ms: int          # the span's length, computed once



_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since 1970 (sub-millisecond parts dropped): the one clock metering uses, in
    Python and in SQL (controller.accounting.service reads times as these integers)."""
    return milliseconds(moment - _EPOCH)


def milliseconds(delta: timedelta) -> int:
    return (delta.days * 86_400_000) + (delta.seconds * 1000) + (delta.microseconds // 1000)


def hours(ms: int) -> Decimal:
    return (Decimal(ms) / MS_PER_HOUR).quantize(HOURS)


def format_hours(value: Decimal) -> str:
    """"14", "2.5", "0.333333333": no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def iso(moment: datetime) -> str:
    """2026-11-03T08:00:00Z (whole seconds, UTC)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")[:-6] + "Z"


# ------------------------------------------------------------------------------------------ months

def parse_month(text: str) -> Span:
    """"2026-11" -> [2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    try:
        year, month = (int(part) for part in text.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
        return Span(start, next_month(start))
    except ValueError:   # not two numbers, no such month, or past 9999-12
        raise InvalidValue(f"month must look like 2026-11, not {text!r}", field="month", value=text) from None


def month_of(moment: datetime) -> Span:
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Span(start, next_month(start))


def month_name(span: Span) -> str:
    return f"{span.start.year:04d}-{span.start.month:02d}"


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)


def months_in(span: Span) -> list[Span]:
    """The calendar months [span) touches, each clipped to it."""
    out, cursor = [], month_of(span.start)
    while cursor.start < span.end:
        clipped = cursor.clip(span)
        if clipped is not None:
            out.append(clipped)
        cursor = Span(cursor.end, next_month(cursor.end))
    return out


# ------------------------------------------------------------------------------------------ billable time

def billable_span(period: Span, valid_from: datetime, valid_until: datetime | None,
                  operational_at: datetime | None, deinstalled_at: datetime | None,
                  until: datetime | None = None) -> Span | None:
    """The part of `period` an SLA is charged for: operational, within its validity, and (for a
    month still running) not later than `until`."""
    if operational_at is None:
        return None
    start = max(period.start, valid_from, operational_at)
    ends = [period.end] + [t for t in (valid_until, deinstalled_at, until) if t is not None]
    end = min(ends)
    return Span(start, end) if end > start else None


def class_segments(sla: str, history: Sequence[SlsHistoryEntry], span: Span | None) -> list[ClassSegment]:
    """Each SLS version's billable time within `span`, in version order."""
    if span is None:
        return []
    ordered = sorted(history, key=lambda entry: entry.version)
    segments = []
    for entry, following in zip(ordered, [*ordered[1:], None]):
        start = max(entry.effective_from, span.start)
        end = min(following.effective_from, span.end) if following is not None else span.end
        if end > start:
            segments.append(ClassSegment(sla, entry.version, entry.service_class, entry.bandwidth_bps,
                                         Span(start, end), entry.principal, str(entry.channel),
                                         epoch_ms(end) - epoch_ms(start)))
    return segments


class ClassUse(NamedTuple):
    """An SLA's billable time in one class over a period, and the SLS versions it came from."""

    ms: int
    versions: tuple[int, ...]


def class_usage(history: Sequence[tuple[int, ServiceClassName, int]],
                span: Span | None) -> dict[ServiceClassName, ClassUse]:
    """What `class_segments` gives, summed per class, in integer milliseconds and without an
    object per segment: billing runs this for every SLA of a month.
    `history`: (version, class, effective_from as epoch_ms), in version order."""
    if span is None:
        return {}
    ms: dict[ServiceClassName, int] = {}
    versions: dict[ServiceClassName, list[int]] = {}
    first, last = epoch_ms(span.start), epoch_ms(span.end)
    count = len(history)
    for i, (version, service_class, effective_from) in enumerate(history):
        start = effective_from if effective_from > first else first
        following = history[i + 1][2] if i + 1 < count else last
        end = following if following < last else last
        if end > start:
            ms[service_class] = ms.get(service_class, 0) + end - start
            versions.setdefault(service_class, []).append(version)
    return {c: ClassUse(ms[c], tuple(versions[c])) for c in ms}


def ms_per_class(segments: Iterable[ClassSegment]) -> dict[ServiceClassName, int]:
    totals = dict.fromkeys(ServiceClassName, 0)
    for segment in segments:
        totals[segment.service_class] += segment.ms
    return totals
