"""Charging: one SLA's month priced by its tariff, as invoice line items (pure; no I/O).

The rules, in the order the lines come:
- the monthly fee, prorated by the billable share of the month when the SLA starts or ends in it;
- per class, the hours used: those included in the fee (the included hours are prorated the same
  way), then each graduated price step of the hours beyond;
- a fee per SLS change (fixed by the change policy when the change was made);
- charges made by accounting policies;
- penalty credits for availability breaches (negative);
- the volume carried per class, from the usage records (information; the GSB tariffs price time).

Money is Decimal, rounded to the cent once per line (half up); never float. Every line has a
`key` that stays the same when the month is recomputed, so a correction can be computed line by
line, and `sources` naming the SLS versions ("acme-hq v2"), policies or events behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from controller.accounting.metering import ClassUse, Span, format_hours, hours, iso
from controller.domain.catalog import ClassTariff, PriceTier, ServiceClassName, Tariff

CENT = Decimal("0.01")
_ZERO = Decimal("0.00")


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


class LineItem(NamedTuple):
    key: str                     # stable across recomputation: "acme-hq/hours/gold/2"
    sla: str
    kind: str                    # monthly-fee, included-hours, additional-hours, change-fee, policy-charge,
                                 # penalty-credit, volume, correction
    description: str
    quantity: Decimal
    unit: str                    # month, h, change, octets, ""
    unit_price: Decimal | None
    amount: Decimal
    sources: tuple[str, ...] = ()


class ChangeFee(NamedTuple):
    """The fee of one SLS change (version), fixed by the change policy when it was made."""

    version: int
    fee: Decimal


class PolicyCharge(NamedTuple):
    id: int
    at: datetime
    amount: Decimal
    text: str
    policy: str
    event_id: int | None


class PenaltyCredit(NamedTuple):
    amount: Decimal
    reason: str


class Volume(NamedTuple):
    octets: int = 0
    packets: int = 0
    records: int = 0


@dataclass  # not frozen: a frozen dataclass is three times slower to make, and billing makes 40,000
class SlaMonth:
    """Everything one SLA's month is charged from (treat as a value: nothing changes it)."""

    sla: str
    offering: str
    tariff: Tariff
    month: Span
    billable: Span | None
    usage: dict[ServiceClassName, ClassUse] = field(default_factory=dict)   # billable time per class
    change_fees: tuple[ChangeFee, ...] = ()
    policy_charges: tuple[PolicyCharge, ...] = ()
    penalties: tuple[PenaltyCredit, ...] = ()
    volumes: dict[ServiceClassName, Volume] = field(default_factory=dict)

    @cached_property
    def share(self) -> Decimal:
        """The billable fraction of the calendar month, exactly 1 for a whole month."""
        if self.billable is None:
            return Decimal(0)
        if self.billable == self.month:
            return Decimal(1)
        return Decimal(self.billable.ms) / Decimal(self.month.ms)


def charge_month(m: SlaMonth) -> list[LineItem]:
    """The line items of one SLA for one month (or month to date)."""
    lines: list[LineItem] = []
    if m.billable is not None:
        lines.append(_monthly_fee(m))
        for service_class, tariff in m.tariff.classes.items():
            use = m.usage.get(service_class)
            if use is not None and use.ms:
                lines.extend(_hours_lines(m, service_class, tariff, hours(use.ms), use.versions))
    lines.extend(_change_fee_lines(m))
    lines.extend(_policy_charge_lines(m))
    lines.extend(_penalty_lines(m))
    lines.extend(_volume_lines(m))
    return lines


def _monthly_fee(m: SlaMonth) -> LineItem:
    assert m.billable is not None
    share = m.share
    whole = m.billable == m.month
    description = f"Monthly fee, {m.offering}"
    if not whole:
        description += f", prorated {iso(m.billable.start)} to {iso(m.billable.end)}"
    return LineItem(f"{m.sla}/monthly-fee", m.sla, "monthly-fee", description,
                    Decimal(1) if whole else share.quantize(Decimal("0.000001")), "month", m.tariff.monthly_fee,
                    cents(m.tariff.monthly_fee * share))


def included_hours(tariff: ClassTariff, share: Decimal) -> Decimal | None:
    """The hours included this month (None: unlimited), prorated by the billable share."""
    if tariff.included_hours is None:
        return None
    if share == 1:
        return tariff.included_hours
    return (tariff.included_hours * share).quantize(Decimal("0.000000001"))


def _hours_lines(m: SlaMonth, service_class: ServiceClassName, tariff: ClassTariff, used: Decimal,
                 versions: tuple[int, ...]) -> list[LineItem]:
    """The class's hours: included, then each price step beyond. The first of these lines names the
    SLS versions the hours come from (once: the lines after it share them); `csmm invoice show`
    describes each from the SLS history (when, who, through which interface)."""
    sources = tuple(f"{m.sla} v{version}" for version in versions)
    allowance = included_hours(tariff, m.share)
    name = service_class.value
    if allowance is None:
        return [LineItem(f"{m.sla}/hours/{name}", m.sla, "included-hours", f"{name.title()}: {format_hours(used)} h, "
                         "unlimited hours included", used, "h", None, _ZERO, sources)]
    lines = []
    covered = min(used, allowance)
    if covered:
        lines.append(LineItem(f"{m.sla}/hours/{name}/included", m.sla, "included-hours",
                              f"{name.title()}: {format_hours(covered)} h of {format_hours(allowance)} h included",
                              covered, "h", None, _ZERO, sources))
    beyond, counted = used - covered, Decimal(0)
    for step, tier in enumerate(_price_steps(tariff), start=1):
        if beyond <= 0:
            break
        width = beyond if tier.up_to_hours is None else min(beyond, tier.up_to_hours - counted)
        if width <= 0:
            continue
        lines.append(LineItem(f"{m.sla}/hours/{name}/{step}", m.sla, "additional-hours",
                              f"{name.title()}: {format_hours(width)} h beyond the included hours "
                              f"at {tier.price_per_hour}/h", width, "h", tier.price_per_hour,
                              cents(width * tier.price_per_hour), () if lines else sources))
        beyond -= width
        counted += width
    return lines


_STEPS: dict[int, tuple[ClassTariff, tuple[PriceTier, ...]]] = {}


def _price_steps(tariff: ClassTariff) -> tuple[PriceTier, ...]:
    # A handful of tariffs (shared objects), each asked for by thousands of SLAs; keyed by
    # identity, since hashing a pydantic model hashes every field. The tariff is kept alive
    # beside its steps, so its id cannot be reused.
    known = _STEPS.get(id(tariff))
    if known is None or known[0] is not tariff:
        known = _STEPS[id(tariff)] = (tariff, tariff.price_steps())
    return known[1]


def _change_fee_lines(m: SlaMonth) -> list[LineItem]:
    """One line per fee amount (a contract's fee may change when the SLA is modified), naming
    every SLS version it counts."""
    by_fee: dict[Decimal, list[ChangeFee]] = {}
    for change in m.change_fees:
        if change.fee:
            by_fee.setdefault(change.fee, []).append(change)
    return [LineItem(f"{m.sla}/changes/{fee}", m.sla, "change-fee",
                     f"{len(changes)} SLS change{'s' if len(changes) > 1 else ''} at {fee} each",
                     Decimal(len(changes)), "change", fee, cents(fee * len(changes)),
                     tuple(f"{m.sla} v{c.version}" for c in changes))
            for fee, changes in by_fee.items()]


def _policy_charge_lines(m: SlaMonth) -> list[LineItem]:
    return [LineItem(f"{m.sla}/charge/{c.id}", m.sla, "policy-charge", c.text, Decimal(1), "", c.amount,
                     cents(c.amount), (f"policy {c.policy}" + (f", event {c.event_id}" if c.event_id else "")
                                       + f" at {iso(c.at)}",))
            for c in m.policy_charges]


def _penalty_lines(m: SlaMonth) -> list[LineItem]:
    return [LineItem(f"{m.sla}/penalty/{i}", m.sla, "penalty-credit", f"Penalty credit: {p.reason}", Decimal(1), "",
                     -p.amount, -cents(p.amount), ())
            for i, p in enumerate(m.penalties, start=1)]


def _volume_lines(m: SlaMonth) -> list[LineItem]:
    return [LineItem(f"{m.sla}/volume/{service_class.value}", m.sla, "volume",
                     f"{service_class.value.title()} traffic: {v.octets:,} octets, {v.packets:,} packets "
                     f"({v.records} usage records)", Decimal(v.octets), "octets", None, Decimal("0.00"), ())
            for service_class, v in sorted(m.volumes.items()) if v.octets or v.packets]
