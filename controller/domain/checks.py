"""The checking function: SLA terms, SLS changes and admission control, as pure functions.

The service layer loads the current state, calls these, and writes only if they return.
Each refusal is a typed error naming the field, the bound and the value.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Literal

from controller.domain.catalog import ClassBounds, Offering, ServiceClassName
from controller.domain.errors import CapacityExceeded, ClassNotAllowed, Conflict, Forbidden, InvalidValue, OutOfBounds, TooSoon
from controller.domain.principal import Principal
from controller.domain.sla import ACTIVE_STATES, CustomerKind, LifecycleState, Sla, SlaTerms
from controller.domain.sls import Sls
from controller.domain.topology import InterfaceRole, Link, Topology
from controller.domain.units import format_bandwidth, format_duration


@dataclass(frozen=True)
class Demand:
    """Guaranteed bandwidth on a link: Gold alone, and Gold plus Silver (the two class shares)."""

    gold: int = 0
    gold_silver: int = 0

    def __add__(self, other: "Demand") -> "Demand":
        return Demand(self.gold + other.gold, self.gold_silver + other.gold_silver)

    def __sub__(self, other: "Demand") -> "Demand":
        return Demand(self.gold - other.gold, self.gold_silver - other.gold_silver)


def sla_reservation(bounds: dict[ServiceClassName, ClassBounds]) -> Demand:
    """What an SLA reserves on every link of its path. A customer uses one class at a time, so it
    can put at most its Gold maximum into Gold and at most max(Gold max, Silver max) into Gold+Silver."""
    gold = bounds[ServiceClassName.GOLD].max if ServiceClassName.GOLD in bounds else 0
    silver = bounds[ServiceClassName.SILVER].max if ServiceClassName.SILVER in bounds else 0
    return Demand(gold=gold, gold_silver=max(gold, silver))


def sls_demand(service_class: ServiceClassName, bandwidth_bps: int) -> Demand:
    """What an SLS in effect puts on every link of its path."""
    if service_class == ServiceClassName.GOLD:
        return Demand(gold=bandwidth_bps, gold_silver=bandwidth_bps)
    if service_class == ServiceClassName.SILVER:
        return Demand(gold=0, gold_silver=bandwidth_bps)
    return Demand()


@dataclass(frozen=True)
class LinkLoad:
    """Sums over the SLAs that cross a link: their reservations, and their SLSs in effect."""

    link: Link
    reserved: Demand
    in_use: Demand


Measure = Literal["reserved", "in_use"]


def shares_exceeded(link: Link, demand: Demand, measure: Measure,
                    overbooking: Decimal = Decimal(1)) -> list[CapacityExceeded]:
    """The class shares of `link` that `demand` is above, each as a refusal (empty: within)."""
    limits = (("gold", link.gold_limit(overbooking), demand.gold),
              ("gold+silver", link.gold_silver_limit(overbooking), demand.gold_silver))
    return [_exceeded(link, share, limit, value, measure) for share, limit, value in limits if value > limit]


def admit(loads: Iterable[LinkLoad], delta: Demand, *, measure: Measure, overbooking: Decimal = Decimal(1)) -> None:
    """Refuse `delta` if it would push any link above its class shares. Decreases always pass, so
    a link already over its share (after a topology change) can only get better."""
    growing = {"gold": delta.gold > 0, "gold+silver": delta.gold_silver > 0}
    for load in loads:
        for excess in shares_exceeded(load.link, getattr(load, measure) + delta, measure, overbooking):
            if growing[excess.share]:
                raise excess


def _exceeded(link: Link, share: str, limit: int, value: int, measure: Measure) -> CapacityExceeded:
    what = "reserved by SLAs" if measure == "reserved" else "in SLSs in effect"
    return CapacityExceeded(
        f"link {link.name}: {share} bandwidth {what} would be {format_bandwidth(value)}, "
        f"above its share of {format_bandwidth(limit)}",
        link=link.name, share=share, bound=limit, value=value)


def check_sla_terms(terms: SlaTerms, offering: Offering, kind: CustomerKind, topology: Topology) -> None:
    """Refuse SLA terms the offering, the access link or the topology cannot carry."""
    if offering.for_kind != kind.value:
        raise InvalidValue(f"offering {terms.offering} is for {offering.for_kind}s, not {kind.value}s",
                           field="offering", bound=offering.for_kind, value=kind.value)
    check_attachment(terms, kind, topology)
    for service_class, bounds in terms.bounds.items():
        field = f"bounds.{service_class.value}"
        offered = offering.bounds.get(service_class)
        if offered is None:
            raise ClassNotAllowed(f"offering {terms.offering} does not offer class {service_class}",
                                  field=field, bound=sorted(offering.bounds), value=service_class.value)
        if bounds.min < offered.min:
            raise _below(f"{field}.min", "the offering's minimum", offered.min, bounds.min)
        if bounds.max > offered.max:
            raise _above(f"{field}.max", "the offering's maximum", offered.max, bounds.max)
        if bounds.max > terms.attachment.access_speed_bps:
            raise _above(f"{field}.max", "the access speed", terms.attachment.access_speed_bps, bounds.max)
    if not terms.bounds:
        raise InvalidValue("an SLA needs bounds for at least one class", field="bounds", value={})
    if terms.valid_until is not None and terms.valid_until <= terms.valid_from:
        raise OutOfBounds("valid_until must be after valid_from", field="valid_until",
                          bound=terms.valid_from.isoformat(), value=terms.valid_until.isoformat())


def check_attachment(terms: SlaTerms, kind: CustomerKind, topology: Topology) -> None:
    """Refuse an attachment the topology does not have, or cannot carry."""
    attachment = terms.attachment
    router = topology.router(attachment.router)
    iface = router.interface(attachment.interface)
    allowed_roles = (InterfaceRole.ACCESS,) if kind == CustomerKind.CUSTOMER else (InterfaceRole.ACCESS, InterfaceRole.PEERING)
    if iface.role not in allowed_roles:
        raise InvalidValue(f"{kind.value}s attach to {'/'.join(allowed_roles)} interfaces; "
                           f"{router.id}:{iface.name} is {iface.role}",
                           field="attachment.interface", bound=list(allowed_roles), value=iface.role.value)
    for link in topology.links:
        if any(end is not None and (end.router, end.interface) == (router.id, iface.name) for end in (link.a, link.b)):
            raise InvalidValue(f"{router.id}:{iface.name} carries link {link.name}; it is not free for a customer",
                               field="attachment.interface", value=f"{router.id}:{iface.name}")
    if attachment.access_speed_bps <= 0:
        raise OutOfBounds("access speed must be positive", field="attachment.access_speed",
                          bound=1, value=attachment.access_speed_bps)
    if attachment.access_speed_bps > iface.capacity_bps:
        raise _above("attachment.access_speed", f"the capacity of {router.id}:{iface.name}",
                     iface.capacity_bps, attachment.access_speed_bps)
    if not attachment.prefixes:
        raise InvalidValue("an SLA needs at least one customer prefix", field="attachment.prefixes", value=[])
    for prefix in attachment.prefixes:
        try:
            ipaddress.ip_network(prefix)
        except ValueError as exc:
            raise InvalidValue(f"customer prefix {prefix!r} is not a network: {exc}",
                               field="attachment.prefixes", value=prefix) from None


def check_sls_change(sla: Sla, current: Sls, last_customer_change: datetime | None,
                     service_class: ServiceClassName, bandwidth_bps: int,
                     principal: Principal, now: datetime) -> Decimal:
    """Refuse an SLS change the SLA does not allow; return the change fee owed.

    Customers and peers pay the fee and wait the minimum interval between their own changes;
    the domain manager's changes are operator actions, free and not rate-limited.
    """
    terms = sla.terms
    if sla.state == LifecycleState.DEINSTALLED:
        raise Conflict(f"SLA {sla.name} is deinstalled", field="state", value=sla.state.value)
    if not principal.is_domain_manager and sla.state not in ACTIVE_STATES:
        raise Conflict(f"SLA {sla.name} is {sla.state}; its SLS can be changed once it is installed",
                       field="state", bound=[s.value for s in ACTIVE_STATES], value=sla.state.value)
    if now < terms.valid_from or (terms.valid_until is not None and now >= terms.valid_until):
        raise OutOfBounds(f"SLA {sla.name} is not valid now", field="validity",
                          bound=f"{terms.valid_from.isoformat()}..{terms.valid_until.isoformat() if terms.valid_until else ''}",
                          value=now.isoformat())
    bounds = terms.bounds.get(service_class)
    if bounds is None:
        raise ClassNotAllowed(f"SLA {sla.name} does not allow class {service_class}; allowed: "
                              f"{', '.join(sorted(c.value for c in terms.bounds))}",
                              field="sls.class", bound=sorted(c.value for c in terms.bounds), value=service_class.value)
    if bandwidth_bps < bounds.min:
        raise _below("sls.bandwidth", f"the SLA's {service_class} minimum", bounds.min, bandwidth_bps)
    if bandwidth_bps > bounds.max:
        raise _above("sls.bandwidth", f"the SLA's {service_class} maximum", bounds.max, bandwidth_bps)
    if principal.is_domain_manager:
        return Decimal("0.00")
    interval = terms.change_policy.min_interval
    if last_customer_change is not None and interval and now < last_customer_change + interval:
        next_allowed = last_customer_change + interval
        raise TooSoon(f"SLS of {sla.name} was last changed at {last_customer_change.isoformat(timespec='seconds')}; "
                      f"the SLA allows one change per {format_duration(int(interval.total_seconds()))}, so the next "
                      f"change is allowed at {next_allowed.isoformat(timespec='seconds')}",
                      next_allowed=next_allowed, min_interval=interval, requested_at=now)
    return terms.change_policy.fee_per_change


def require_domain_manager(principal: Principal, action: str) -> None:
    """SLAs, customers and the topology are the domain manager's alone."""
    if not principal.is_domain_manager:
        raise Forbidden(f"only the domain manager may {action}; {principal} may not",
                        field="principal", value=str(principal))


def _below(field: str, what: str, bound: int, value: int) -> OutOfBounds:
    return OutOfBounds(f"{field} {format_bandwidth(value)} is below {what} {format_bandwidth(bound)}",
                       field=field, bound=bound, value=value)


def _above(field: str, what: str, bound: int, value: int) -> OutOfBounds:
    return OutOfBounds(f"{field} {format_bandwidth(value)} exceeds {what} {format_bandwidth(bound)}",
                       field=field, bound=bound, value=value)


class PrefixRegistry:
    """Customer prefixes in use. Edge routers classify by source prefix, so no two SLAs may
    hold overlapping prefixes. Sorted intervals make each check O(log n)."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._entries: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}

    def add(self, prefix: str, owner: str) -> None:
        network = ipaddress.ip_network(prefix)
        first, last = int(network.network_address), int(network.broadcast_address)
        starts, entries = self._starts[network.version], self._entries[network.version]
        index = bisect.bisect_left(starts, first)
        for neighbour in (index - 1, index):
            if 0 <= neighbour < len(entries):
                start, end, holder = entries[neighbour]
                if start <= last and first <= end and holder != owner:
                    raise Conflict(f"prefix {prefix} overlaps a prefix of SLA {holder}",
                                   field="attachment.prefixes", bound=holder, value=prefix)
                if start <= last and first <= end:
                    raise Conflict(f"prefix {prefix} overlaps another prefix of the same SLA",
                                   field="attachment.prefixes", value=prefix)
        starts.insert(index, first)
        entries.insert(index, (first, last, owner))
