"""How the service's values look to people and programs: the JSON shapes the CLI (`--json`) and
the REST API share, so both say the same thing in the same words."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from controller.domain.catalog import Catalog
from controller.domain.conformance import Conformance
from controller.domain.sla import Sla
from controller.domain.sls import Sls


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for the values the views hold: times as ISO 8601, decimals as
    strings (money is never a float), enums as their value, dataclasses as objects."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Decimal, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def sla_view(s: Sla) -> dict[str, Any]:
    t = s.terms
    return {
        "id": s.id, "name": s.name, "customer": s.customer, "customer_kind": s.customer_kind, "state": s.state,
        "offering": t.offering, "attachment": asdict(t.attachment),
        "bounds": {c.value: b.model_dump() for c, b in t.bounds.items()},
        "tariff": t.tariff.model_dump(mode="json"),
        "change_policy": t.change_policy.model_dump(mode="json", by_alias=True),
        "availability": t.availability.model_dump(mode="json", by_alias=True),
        "valid_from": t.valid_from, "valid_until": t.valid_until, "path": list(s.path)}


def sls_view(v: Any) -> dict[str, Any]:
    return {"class": v.service_class, "bandwidth_bps": v.bandwidth_bps, "version": v.version,
            "changed_at": v.changed_at, "changed_by": v.changed_by, "channel": v.channel}


def conformance_view(sla: Sla, sls: Sls, c: Conformance | None, catalog: Catalog) -> dict[str, object]:
    bound = catalog.classes[sls.service_class].loss_ratio
    return {"sla": sla.name, "sla_id": sla.id, "customer": sla.customer, "state": c.state if c else "unknown",
            "sls": sls_view(sls), "loss_bound_ppm": None if bound is None else round(bound * 1_000_000),
            "availability_objective_percent": str(sla.terms.availability.objective_percent),
            "max_outage_s": sla.terms.availability.max_outage_s,
            "measured": None if c is None else {
                "at": c.measured_at.isoformat() if c.measured_at else None, "interval_s": c.interval_s,
                "throughput_bps": c.throughput_bps, "offered_bps": c.offered_bps, "loss_ppm": c.loss_ppm,
                "month": c.month.isoformat(), "availability_percent": str(c.availability_percent),
                "longest_outage_s": c.longest_outage_s, "violations": list(c.violations)}}


def agent_view(s: Any) -> dict[str, Any]:
    """A router agent's status (controller.southbound.store.AgentStatus)."""
    return {"router": s.router, "connected": s.connected, "in_sync": s.in_sync, "applied_version": s.applied_version,
            "sent_version": s.sent_version, "agent_version": s.agent_version, "peer": s.peer,
            "last_error": s.last_error, "last_seen": s.last_seen.isoformat() if s.last_seen else None}


def usage_view(customer: str, month: str, rows: list[Any]) -> dict[str, Any]:
    """A customer's usage report (controller.accounting.service.ClassUsage rows)."""
    return {"customer": customer, "month": month, "usage": [
        {"sla": u.sla, "class": u.service_class, "hours": str(u.hours),
         "included_hours": None if u.included_hours is None else str(u.included_hours),
         "octets": u.octets, "packets": u.packets} for u in rows]}
