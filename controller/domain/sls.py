"""The SLS (class and bandwidth in effect now), its append-only history, and time per class."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from controller.domain.catalog import ServiceClassName
from controller.domain.principal import Channel


class SlsSetting(NamedTuple):
    """Just the class and bandwidth in effect for an SLA: what a listing of thousands needs."""

    sla_id: int
    service_class: ServiceClassName
    bandwidth_bps: int


@dataclass(frozen=True)
class Sls:
    sla_id: int
    service_class: ServiceClassName
    bandwidth_bps: int
    version: int
    changed_at: datetime
    changed_by: str
    channel: Channel


class SlsHistoryEntry(NamedTuple):
    """One version of an SLS; it is in effect from `effective_from` until the next version's.
    (A named tuple: billing reads hundreds of thousands of them at once.)"""

    sla_id: int
    version: int
    service_class: ServiceClassName
    bandwidth_bps: int
    effective_from: datetime
    principal: str
    channel: Channel
    fee: Decimal


def time_in_classes(history: list[SlsHistoryEntry], start: datetime, end: datetime,
                    until: datetime | None = None) -> dict[ServiceClassName, timedelta]:
    """Exact time spent in each class within [start, end), from one SLA's history.

    `until` closes the last version (the SLA's deinstallation, or now); it defaults to `end`.
    Billing splits a month at every change with this function.
    """
    totals = {name: timedelta(0) for name in ServiceClassName}
    ordered = sorted(history, key=lambda entry: entry.version)
    closing = until if until is not None else end
    for entry, following in zip(ordered, [*ordered[1:], None]):
        stop = following.effective_from if following is not None else closing
        begin = max(entry.effective_from, start)
        finish = min(stop, end)
        if finish > begin:
            totals[entry.service_class] += finish - begin
    return totals
