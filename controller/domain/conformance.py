"""What the feedback part says of an SLA now: its latest measurement and this month's availability."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from controller.domain.catalog import ServiceClassName

# CSM-MIB CsmMetric names (the YANG metric typedef spells outageDuration outage-duration).
METRICS = ("throughput", "loss", "availability", "outageDuration", "delay", "delayVariation")


@dataclass(frozen=True)
class Conformance:
    sla_id: int
    measured_at: datetime | None          # the end of the latest measurement interval
    interval_s: float | None
    sls_class: ServiceClassName | None    # the SLS in effect then
    sls_bandwidth_bps: int | None
    throughput_bps: int | None
    offered_bps: int | None
    loss_ppm: int | None
    month: datetime                       # the calendar month (UTC) the availability is of
    availability_percent: Decimal
    longest_outage_s: int
    violations: tuple[str, ...]           # METRICS out of their bound now

    @property
    def state(self) -> str:
        if self.violations:
            return "violating"
        return "unknown" if self.measured_at is None else "conforming"
