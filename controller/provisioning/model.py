"""The provisioning file's schema. Validation errors name the path in the file."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.domain.catalog import (AvailabilityObjective, Bandwidth, ChangePolicy, ClassBounds, ServiceClassName,
                                       describe_validation_error)
from controller.domain.errors import InvalidValue
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.domain.topology import ClassShares, Endpoint, Interface, InterfaceRole, Link, Router, Topology


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SharesEntry(_Entry):
    gold: Decimal = Decimal("0.30")
    gold_silver: Decimal = Decimal("0.80")

    def to_domain(self) -> ClassShares:
        return ClassShares(self.gold, self.gold_silver)


class InterfaceEntry(_Entry):
    name: str
    role: InterfaceRole
    capacity: Bandwidth


class RouterEntry(_Entry):
    id: str
    mgmt_address: str
    interfaces: list[InterfaceEntry] = []


class LinkEntry(_Entry):
    name: str | None = None
    a: str = Field(pattern=r"^[^:]+:[^:]+$", description="ROUTER:INTERFACE")
    b: str = Field(pattern=r"^[^:]+:[^:]+$")
    class_shares: SharesEntry | None = None


class EgressEntry(_Entry):
    name: str
    at: str = Field(pattern=r"^[^:]+:[^:]+$", description="ROUTER:INTERFACE toward the outside")
    class_shares: SharesEntry | None = None


class TopologyEntry(_Entry):
    class_shares: SharesEntry = SharesEntry()
    routers: list[RouterEntry]
    links: list[LinkEntry] = []
    egress: list[EgressEntry] = []

    def to_domain(self) -> Topology:
        routers = tuple(Router(r.id, r.mgmt_address, tuple(Interface(r.id, i.name, i.capacity, i.role) for i in r.interfaces))
                        for r in self.routers)
        partial = Topology(routers=routers)
        links: list[Link] = []
        for entry in self.links:
            a, b = _endpoint(entry.a), _endpoint(entry.b)
            capacity = min(partial.interface(a).capacity_bps, partial.interface(b).capacity_bps)
            links.append(Link(entry.name or f"{a.router}-{b.router}", a, b, capacity,
                              (entry.class_shares or self.class_shares).to_domain()))
        for egress in self.egress:
            at = _endpoint(egress.at)
            links.append(Link(egress.name, at, None, partial.interface(at).capacity_bps,
                              (egress.class_shares or self.class_shares).to_domain()))
        topology = Topology(routers=routers, links=tuple(sorted(links, key=lambda link: link.name)))
        topology.validate()
        return topology


def _endpoint(text: str) -> Endpoint:
    router, interface = text.split(":", 1)
    return Endpoint(router, interface)


class InitialSlsEntry(_Entry):
    service_class: ServiceClassName = Field(alias="class")
    bandwidth: Bandwidth


NAME = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"  # starts with a letter, so it never reads as a numeric id


class SlaEntry(_Entry):
    name: str = Field(pattern=NAME)
    offering: str
    router: str
    interface: str
    access_speed: Bandwidth
    prefixes: list[str] = Field(min_length=1)
    bounds: dict[ServiceClassName, ClassBounds] | None = None
    change_policy: ChangePolicy | None = None
    availability: AvailabilityObjective | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    state: LifecycleState = LifecycleState.OPERATIONAL
    sls: InitialSlsEntry | None = Field(default=None, description="the SLS a new SLA starts with; ignored afterwards")

    @field_validator("valid_from", "valid_until", mode="before")
    @classmethod
    def _date_is_midnight(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(0))
        return value

    @field_validator("valid_from", "valid_until", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # Times without a zone (YAML dates, "2026-01-01" in JSON) are UTC.
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    def attachment(self) -> Attachment:
        return Attachment(self.router, self.interface, self.access_speed, tuple(self.prefixes))


class CustomerEntry(_Entry):
    name: str = Field(pattern=NAME)
    kind: CustomerKind = CustomerKind.CUSTOMER
    display_name: str = ""
    slas: list[SlaEntry] = []


class ProvisioningFile(_Entry):
    topology: TopologyEntry | None = None
    customers: list[CustomerEntry] = []


def load_provisioning(path: Path | str) -> ProvisioningFile:
    """Read a provisioning file: YAML, or JSON (which is also YAML, and parses ~100x faster:
    use it for bulk files of tens of thousands of customers)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidValue(f"cannot read {path}: {exc}", field="file", value=str(path)) from exc
    return parse_provisioning(text, str(path))


def parse_provisioning(text: str, where: str) -> ProvisioningFile:
    """A provisioning file's text (YAML or JSON); `where` names it in errors."""
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InvalidValue(f"{where} is not valid YAML or JSON: {exc}", field="file", value=where) from exc
    try:
        return ProvisioningFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidValue(f"{where} is invalid:\n{describe_validation_error(exc)}", field="file", value=where) from exc
