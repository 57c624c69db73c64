"""Customers, SLAs (the static contract) and the SLA life cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.domain.catalog import AvailabilityObjective, ChangePolicy, ClassBounds, ServiceClassName, Tariff
from controller.domain.errors import Conflict


class CustomerKind(StrEnum):
    CUSTOMER = "customer"
    PEER = "peer"


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    kind: CustomerKind
    display_name: str


class LifecycleState(StrEnum):
    """The seed's service life cycle for one SLA, in order."""

    OFFERED = "offered"
    NEGOTIATED = "negotiated"
    IMPLEMENTING = "implementing"
    INSTALLED_TESTED = "installed-tested"
    OPERATIONAL = "operational"
    DEINSTALLED = "deinstalled"


_ORDER = list(LifecycleState)


def check_transition(current: LifecycleState, target: LifecycleState) -> None:
    """States only move forward (skipping is allowed, e.g. when provisioning an existing contract);
    deinstalled is final."""
    if current == LifecycleState.DEINSTALLED:
        raise Conflict(f"SLA is deinstalled; it cannot move to {target}", field="state", bound=current, value=target)
    if _ORDER.index(target) <= _ORDER.index(current):
        raise Conflict(f"SLA state can only move forward: {current} -> {target} is refused",
                       field="state", bound=current, value=target)


# States in which the customer's traffic is carried, so its SLS is configured on the routers.
ACTIVE_STATES = (LifecycleState.INSTALLED_TESTED, LifecycleState.OPERATIONAL)


@dataclass(frozen=True)
class Attachment:
    """Where and how the customer connects: access interface, access speed, source prefixes."""

    router: str
    interface: str
    access_speed_bps: int
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class SlaTerms:
    """Everything the domain manager sets in an SLA. Copied from the offering at creation time and
    then owned by the contract, so catalog edits never change a signed SLA."""

    offering: str
    attachment: Attachment
    bounds: dict[ServiceClassName, ClassBounds]
    tariff: Tariff
    change_policy: ChangePolicy
    availability: AvailabilityObjective
    valid_from: datetime
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Sla:
    id: int
    name: str
    customer: str
    customer_kind: CustomerKind
    terms: SlaTerms
    state: LifecycleState
    path: tuple[str, ...]  # links from the attachment toward the egress points
