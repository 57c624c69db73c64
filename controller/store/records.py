"""Conversions between table rows and domain values (the only place that knows both)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Text, cast

from controller.domain.catalog import AvailabilityObjective, ChangePolicy, ClassBounds, ServiceClassName, Tariff
from controller.domain.conformance import Conformance
from controller.domain.principal import Channel
from controller.domain.sla import Attachment, Customer, CustomerKind, LifecycleState, Sla, SlaTerms
from controller.domain.sls import Sls, SlsHistoryEntry, SlsSetting
from controller.domain.topology import ClassShares, Endpoint, Interface, InterfaceRole, Link, Router, Topology
from controller.domain.units import from_cents
from controller.store.schema import (ConformanceRow, CustomerRow, InterfaceRow, LinkRow, RouterRow, SlaRow,
                                     SlsHistoryRow, SlsRow)


def topology_from_rows(routers: list[RouterRow], interfaces: list[InterfaceRow], links: list[LinkRow]) -> Topology:
    by_router: dict[str, list[Interface]] = {}
    for row in sorted(interfaces, key=lambda r: (r.router_id, r.name)):
        by_router.setdefault(row.router_id, []).append(
            Interface(row.router_id, row.name, row.capacity_bps, InterfaceRole(row.role)))
    return Topology(
        routers=tuple(Router(r.id, r.mgmt_address, tuple(by_router.get(r.id, ()))) for r in sorted(routers, key=lambda r: r.id)),
        links=tuple(link_from_row(row) for row in sorted(links, key=lambda r: r.name)),
    )


def link_from_row(row: LinkRow) -> Link:
    far = Endpoint(row.b_router, row.b_interface) if row.b_router and row.b_interface else None
    return Link(row.name, Endpoint(row.a_router, row.a_interface), far, row.capacity_bps,
                ClassShares(Decimal(row.gold_share), Decimal(row.gold_silver_share)))


def topology_rows(topology: Topology) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    routers = [{"id": r.id, "mgmt_address": r.mgmt_address} for r in topology.routers]
    interfaces = [{"router_id": r.id, "name": i.name, "capacity_bps": i.capacity_bps, "role": i.role.value}
                  for r in topology.routers for i in r.interfaces]
    links = [{"name": link.name, "a_router": link.a.router, "a_interface": link.a.interface,
              "b_router": link.b.router if link.b else None, "b_interface": link.b.interface if link.b else None,
              "capacity_bps": link.capacity_bps, "gold_share": str(link.shares.gold),
              "gold_silver_share": str(link.shares.gold_silver),
              "reserved_gold_bps": 0, "reserved_gold_silver_bps": 0, "in_use_gold_bps": 0, "in_use_gold_silver_bps": 0}
             for link in topology.links]
    return routers, interfaces, links


def customer_from_row(row: Any) -> Customer:
    return Customer(row.id, row.name, CustomerKind(row.kind), row.display_name)


Model = TypeVar("Model", bound=BaseModel)
E = TypeVar("E", bound=Enum)

# Thousands of SLAs share a handful of distinct tariffs, policies, bounds and paths: parse each
# distinct value once. The values are frozen, so sharing them is safe. List queries read the JSON
# columns as text (`json_as_text`), so that equal texts are found in the cache without decoding
# them first; ORM rows come decoded and are keyed by their canonical dump.


@lru_cache(maxsize=4096)
def _parsed(model: type[BaseModel], text: str) -> BaseModel:
    return model.model_validate_json(text)


def _as_text(value: str | dict[str, Any] | list[Any]) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _parse(model: type[Model], value: str | dict[str, Any]) -> Model:
    return _parsed(model, _as_text(value))  # type: ignore[return-value]


@lru_cache(maxsize=4096)
def _parsed_bounds(text: str) -> tuple[tuple[ServiceClassName, ClassBounds], ...]:
    return tuple((_enum(ServiceClassName, c), _parse(ClassBounds, b)) for c, b in json.loads(text).items())


@lru_cache(maxsize=4096)
def _parsed_path(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@lru_cache(maxsize=256)
def _enum(kind: type[E], value: str) -> E:
    """kind(value), looked up once (an Enum call costs microseconds; lists make tens of thousands)."""
    return kind(value)


def json_as_text(column: Any) -> Any:
    """Select a JSON column as its text, under its own name (see _parsed)."""
    return cast(column, Text).label(column.name)


_dumped: dict[int, tuple[BaseModel, dict[str, Any]]] = {}


def _dump(value: BaseModel) -> dict[str, Any]:
    """model_dump(mode="json", by_alias=True), once per distinct object (keyed by identity; the
    object is kept alive by the cache, so its id cannot be reused)."""
    hit = _dumped.get(id(value))
    if hit is None or hit[0] is not value:
        if len(_dumped) > 4096:
            _dumped.clear()
        hit = (value, value.model_dump(mode="json", by_alias=True))
        _dumped[id(value)] = hit
    return hit[1]


def terms_columns(terms: SlaTerms) -> dict[str, Any]:
    return {
        "offering": terms.offering,
        "router_id": terms.attachment.router,
        "interface": terms.attachment.interface,
        "access_speed_bps": terms.attachment.access_speed_bps,
        "prefixes": list(terms.attachment.prefixes),
        "bounds": {c.value: _dump(b) for c, b in sorted(terms.bounds.items())},
        "tariff": _dump(terms.tariff),
        "change_policy": _dump(terms.change_policy),
        "availability": _dump(terms.availability),
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
    }


def terms_from_row(row: Any) -> SlaTerms:
    """From an SlaRow or a plain result row with the same columns."""
    return SlaTerms(
        offering=row.offering,
        attachment=Attachment(row.router_id, row.interface, row.access_speed_bps, tuple(_json(row.prefixes))),
        bounds=dict(_parsed_bounds(_as_text(row.bounds))),
        tariff=_parse(Tariff, row.tariff),
        change_policy=_parse(ChangePolicy, row.change_policy),
        availability=_parse(AvailabilityObjective, row.availability),
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def sla_from_row(row: SlaRow, customer: CustomerRow) -> Sla:
    return Sla(row.id, row.name, customer.name, _enum(CustomerKind, customer.kind), terms_from_row(row),
               _enum(LifecycleState, row.state), _parsed_path(_as_text(row.path)))


def sla_from_columns(row: Any) -> Sla:
    """From a plain result row of the slas columns (JSON ones as text or decoded) plus customer_name
    and customer_kind."""
    return Sla(row.id, row.name, row.customer_name, _enum(CustomerKind, row.customer_kind), terms_from_row(row),
               _enum(LifecycleState, row.state), _parsed_path(_as_text(row.path)))


def sls_from_row(row: SlsRow) -> Sls:
    return Sls(row.sla_id, _enum(ServiceClassName, row.service_class), row.bandwidth_bps, row.version,
               row.changed_at, row.changed_by, _enum(Channel, row.channel))


def sls_setting(sla_id: int, service_class: str, bandwidth_bps: int) -> SlsSetting:
    return SlsSetting(sla_id, _enum(ServiceClassName, service_class), bandwidth_bps)


def sls_from_columns(row: Any) -> Sls:
    """From a plain result row carrying the sls columns prefixed `sls_` and the SLA's `id`."""
    return Sls(row.id, _enum(ServiceClassName, row.sls_service_class), row.sls_bandwidth_bps, row.sls_version,
               row.sls_changed_at, row.sls_changed_by, _enum(Channel, row.sls_channel))


def history_from_row(row: SlsHistoryRow) -> SlsHistoryEntry:
    return SlsHistoryEntry(row.sla_id, row.version, ServiceClassName(row.service_class), row.bandwidth_bps,
                           row.effective_from, row.principal, Channel(row.channel), from_cents(row.fee_cents))


@dataclass(frozen=True)
class FeedbackRecord:
    """What the feedback part keeps of an SLA between runs: its Conformance, and the month's
    availability accounting behind it."""

    conformance: Conformance
    counted_from: datetime
    down_s: float
    longest_outage_s: float


def conformance_values(record: FeedbackRecord, now: datetime) -> dict[str, Any]:
    """The conformance table's columns for `record`."""
    c = record.conformance
    return dict(
        sla_id=c.sla_id, measured_at=c.measured_at, interval_s=c.interval_s,
        sls_class=c.sls_class.value if c.sls_class else None, sls_bandwidth_bps=c.sls_bandwidth_bps,
        throughput_bps=c.throughput_bps, offered_bps=c.offered_bps, loss_ppm=c.loss_ppm, month=c.month,
        counted_from=record.counted_from, down_s=record.down_s, longest_outage_s=record.longest_outage_s,
        availability_percent=str(c.availability_percent), violations=",".join(c.violations), updated_at=now)


def conformance_from_row(row: ConformanceRow) -> Conformance:
    return Conformance(row.sla_id, row.measured_at, row.interval_s,
                       _enum(ServiceClassName, row.sls_class) if row.sls_class else None, row.sls_bandwidth_bps,
                       row.throughput_bps, row.offered_bps, row.loss_ppm, row.month, Decimal(row.availability_percent),
                       int(row.longest_outage_s), tuple(v for v in row.violations.split(",") if v))


def feedback_record_from_row(row: ConformanceRow) -> FeedbackRecord:
    return FeedbackRecord(conformance_from_row(row), row.counted_from, row.down_s, row.longest_outage_s)
