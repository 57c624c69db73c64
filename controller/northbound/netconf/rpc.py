"""NETCONF operations on the csm-service data, for one principal (RFC 6241).

The data a session sees is built from the service layer for its principal only: a peer's
<get-config> holds its own SLAs' SLS, and an <edit-config> goes to `ServiceLayer.change_sls_batch`
— the same checks as every interface, all entries or none. A refusal becomes an <rpc-error> with
the error-tag of RFC 6241 Appendix A, an error-path to the node at fault and, as error-app-tag,
the refusal's stable code (out-of-bounds, too-soon, capacity-exceeded, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from controller.domain.catalog import Catalog, ServiceClass, ServiceClassName
from controller.domain.conformance import Conformance
from controller.domain.errors import (
    CapacityExceeded,
    ClassNotAllowed,
    Conflict,
    CsmmError,
    Forbidden,
    InvalidValue,
    NotFound,
    OutOfBounds,
    TooSoon,
)
from controller.domain.principal import Channel, Principal
from controller.domain.sla import Sla
from controller.domain.sls import Sls, SlsSetting
from controller.service.layer import ServiceLayer

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CSM = "urn:csmm:yang:csm-service"
CSM_MODULE = "csm-service"
CSM_REVISION = "2026-12-03"
_NC = f"{{{NC}}}"
_CSM = f"{{{CSM}}}"


class RpcError(Exception):
    """An <rpc-error> (RFC 6241 4.3)."""

    def __init__(self, tag: str, message: str, *, error_type: str = "application", path: str | None = None,
                 app_tag: str | None = None, info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.error_type = error_type
        self.path = path
        self.app_tag = app_tag
        self.info = info or {}

    def element(self) -> etree._Element:
        error = etree.Element(_NC + "rpc-error")
        etree.SubElement(error, _NC + "error-type").text = self.error_type
        etree.SubElement(error, _NC + "error-tag").text = self.tag
        etree.SubElement(error, _NC + "error-severity").text = "error"
        if self.app_tag:
            etree.SubElement(error, _NC + "error-app-tag").text = self.app_tag
        if self.path:
            path = etree.SubElement(error, _NC + "error-path", nsmap={"csm": CSM})
            path.text = self.path
        message = etree.SubElement(error, _NC + "error-message")
        message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        message.text = self.message
        if self.info:
            info = etree.SubElement(error, _NC + "error-info", nsmap={"csm": CSM})
            for name, value in self.info.items():
                namespace = NC if name in ("bad-element", "bad-attribute", "session-id", "ok-element") else CSM
                etree.SubElement(info, f"{{{namespace}}}{name}").text = str(value)
        return error


def sls_path(sla_id: int | str, leaf: str | None = None) -> str:
    path = f"/csm:csm/csm:sla[csm:id='{sla_id}']/csm:sls"
    return f"{path}/csm:{leaf}" if leaf else path


def refusal_to_rpc_error(error: CsmmError, sla_id: int | str | None) -> RpcError:
    """The service layer's refusal as an rpc-error: tag, path to the leaf at fault, bound and value."""
    leaf = "class" if isinstance(error, ClassNotAllowed) or error.field == "sls.class" else "bandwidth"
    path = sls_path(sla_id, leaf) if sla_id is not None else None
    info = {key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in (("field", error.field), ("bound", error.bound), ("value", error.value))
            if value is not None}
    if isinstance(error, NotFound):
        # Another peer's SLA looks exactly like one that does not exist, and neither may be created.
        return RpcError("access-denied", error.message, error_type="protocol",
                        path=sls_path(sla_id) if sla_id is not None else None, app_tag=error.code)
    if isinstance(error, Forbidden):
        return RpcError("access-denied", error.message, error_type="protocol", app_tag=error.code)
    if isinstance(error, CapacityExceeded):
        return RpcError("resource-denied", error.message, path=path, app_tag=error.code, info=info)
    if isinstance(error, (OutOfBounds, ClassNotAllowed, InvalidValue)):
        return RpcError("invalid-value", error.message, path=path, app_tag=error.code, info=info)
    if isinstance(error, (TooSoon, Conflict)):
        return RpcError("operation-failed", error.message, path=path, app_tag=error.code, info=info)
    return RpcError("operation-failed", error.message, path=path, app_tag=error.code, info=info)


# --------------------------------------------------------------------------------------------- data

def config_text(settings: Iterable[SlsSetting]) -> str:
    """<csm> with one <sla> per SLA holding only its SLS's class and bandwidth (get-config), as text.

    Written as text rather than element by element: for 10,000 entries that is several times
    faster. The values are integers and the class names, so nothing needs escaping."""
    text = "".join(f"<sla><id>{s.sla_id}</id><sls><class>{s.service_class.value}</class>"
                   f"<bandwidth>{s.bandwidth_bps}</bandwidth></sls></sla>" for s in settings)
    return f'<csm xmlns="{CSM}">{text}</csm>'


def config_tree(settings: Iterable[SlsSetting]) -> etree._Element:
    return etree.fromstring(config_text(settings))


Counters = tuple[int, int, int]  # octets, packets, drops


@dataclass(frozen=True)
class StateData:
    """What a <get> shows beyond the SLAs and their SLSs."""

    catalog: Catalog
    now: datetime
    last_customer_changes: Mapping[int, datetime] = field(default_factory=dict)  # SLA id -> when
    usage: Mapping[tuple[str, str], Counters] = field(default_factory=dict)  # (SLA name, class) -> counters
    conformance: Mapping[int, Conformance] = field(default_factory=dict)   # SLA id -> latest conformance


def data_tree(entries: Iterable[tuple[Sla, Sls]], *, config_only: bool,
              state: StateData | None = None) -> etree._Element:
    """<csm> with one <sla> per SLA: the SLS (config); unless `config_only`, also the service and,
    per SLA, the SLS's state leaves, the contract, the counters and the conformance (from `state`)."""
    if not config_only and state is None:
        raise ValueError("a tree with state data needs the state")
    root = etree.Element(_CSM + "csm", nsmap={None: CSM})
    if state is not None and not config_only:
        root.append(_service(state.catalog))
    for sla, sls in entries:
        entry = etree.SubElement(root, _CSM + "sla")
        etree.SubElement(entry, _CSM + "id").text = str(sla.id)
        sls_element = etree.SubElement(entry, _CSM + "sls")
        etree.SubElement(sls_element, _CSM + "class").text = sls.service_class.value
        etree.SubElement(sls_element, _CSM + "bandwidth").text = str(sls.bandwidth_bps)
        if state is None or config_only:
            continue
        etree.SubElement(sls_element, _CSM + "version").text = str(sls.version)
        etree.SubElement(sls_element, _CSM + "changed-at").text = sls.changed_at.isoformat()
        etree.SubElement(sls_element, _CSM + "changed-by").text = sls.changed_by
        etree.SubElement(sls_element, _CSM + "channel").text = sls.channel.value
        allowed = _next_change_allowed(sla, state.last_customer_changes.get(sla.id), state.now)
        if allowed is not None:
            etree.SubElement(sls_element, _CSM + "next-change-allowed").text = allowed.isoformat()
        entry.append(_contract(sla))
        entry.append(_statistics(sla, state.usage))
        entry.append(_conformance(state.conformance.get(sla.id)))
    return root


def _conformance(found: Conformance | None) -> etree._Element:
    """The feedback part's latest measurement and the month's availability (only the state,
    unknown, before the first measurement)."""
    conformance = etree.Element(_CSM + "conformance")
    if found is not None and found.measured_at is not None:
        leaves = (("measured-at", found.measured_at.isoformat()), ("interval", round(found.interval_s or 0)),
                  ("sls-class", found.sls_class.value if found.sls_class else None),
                  ("sls-bandwidth", found.sls_bandwidth_bps), ("throughput", found.throughput_bps),
                  ("loss", found.loss_ppm), ("availability-this-month", found.availability_percent),
                  ("longest-outage-this-month", found.longest_outage_s))
        for name, value in leaves:
            if value is not None:
                etree.SubElement(conformance, _CSM + name).text = str(value)
    etree.SubElement(conformance, _CSM + "state").text = found.state if found is not None else "unknown"
    if found is not None and found.violations:
        etree.SubElement(conformance, _CSM + "violations").text = " ".join(_YANG_METRIC.get(v, v)
                                                                          for v in found.violations)
    return conformance


_YANG_METRIC = {"outageDuration": "outage-duration", "delayVariation": "delay-variation"}


def _next_change_allowed(sla: Sla, last_customer_change: datetime | None, now: datetime) -> datetime | None:
    """When the customer may change its SLS again, if that is later than now."""
    interval = sla.terms.change_policy.min_interval
    if last_customer_change is None or not interval or last_customer_change + interval <= now:
        return None
    return last_customer_change + interval


def _service(catalog: Catalog) -> etree._Element:
    service = etree.Element(_CSM + "service")
    etree.SubElement(service, _CSM + "name").text = catalog.service
    etree.SubElement(service, _CSM + "currency").text = catalog.currency
    for name, service_class in sorted(catalog.classes.items()):
        entry = etree.SubElement(service, _CSM + "class")
        etree.SubElement(entry, _CSM + "name").text = name.value
        etree.SubElement(entry, _CSM + "phb").text = service_class.phb
        etree.SubElement(entry, _CSM + "dscp").text = str(service_class.dscp)
        etree.SubElement(entry, _CSM + "guaranteed").text = "true" if service_class.guaranteed else "false"
        for metric, unit, bound in _metric_bounds(service_class):
            bound_entry = etree.SubElement(entry, _CSM + "metric-bound")
            etree.SubElement(bound_entry, _CSM + "metric").text = metric
            etree.SubElement(bound_entry, _CSM + "metric-unit").text = unit
            etree.SubElement(bound_entry, _CSM + "bound").text = str(bound)
    return service


def _metric_bounds(service_class: ServiceClass) -> list[tuple[str, str, int]]:
    """The class's quality objectives, in the units the metric typedef gives."""
    bounds = []
    if service_class.one_way_delay_ms is not None:
        bounds.append(("delay", "microseconds", service_class.one_way_delay_ms * 1000))
    if service_class.delay_variation_ms is not None:
        bounds.append(("delay-variation", "microseconds", service_class.delay_variation_ms * 1000))
    if service_class.loss_ratio is not None:
        bounds.append(("loss", "parts per million", round(service_class.loss_ratio * 1_000_000)))
    return bounds


def _statistics(sla: Sla, usage: Mapping[tuple[str, str], Counters]) -> etree._Element:
    """Counters per class, cumulative since the SLA began and kept across restarts: the start is
    their only discontinuity."""
    statistics = etree.Element(_CSM + "statistics")
    for service_class in ServiceClassName:
        octets, packets, drops = usage.get((sla.name, service_class.value), (0, 0, 0))
        entry = etree.SubElement(statistics, _CSM + "class")
        for name, value in (("class", service_class.value), ("octets", octets), ("packets", packets),
                            ("drops", drops), ("discontinuity-time", sla.terms.valid_from.isoformat())):
            etree.SubElement(entry, _CSM + name).text = str(value)
    return statistics


def _contract(sla: Sla) -> etree._Element:
    terms = sla.terms
    contract = etree.Element(_CSM + "contract")
    for name, value in (("name", sla.name), ("customer", sla.customer), ("customer-kind", sla.customer_kind.value),
                        ("offering", terms.offering), ("state", sla.state.value),
                        ("valid-from", terms.valid_from.isoformat())):
        etree.SubElement(contract, _CSM + name).text = value
    if terms.valid_until is not None:
        etree.SubElement(contract, _CSM + "valid-until").text = terms.valid_until.isoformat()
    access = etree.SubElement(contract, _CSM + "access")
    etree.SubElement(access, _CSM + "router").text = terms.attachment.router
    etree.SubElement(access, _CSM + "interface").text = terms.attachment.interface
    etree.SubElement(access, _CSM + "speed").text = str(terms.attachment.access_speed_bps)
    for prefix in terms.attachment.prefixes:
        etree.SubElement(access, _CSM + "prefix").text = prefix
    for service_class, bounds in sorted(terms.bounds.items()):
        entry = etree.SubElement(contract, _CSM + "class-bounds")
        etree.SubElement(entry, _CSM + "class").text = service_class.value
        etree.SubElement(entry, _CSM + "min").text = str(bounds.min)
        etree.SubElement(entry, _CSM + "max").text = str(bounds.max)
    tariff = etree.SubElement(contract, _CSM + "tariff")
    etree.SubElement(tariff, _CSM + "monthly-fee").text = str(terms.tariff.monthly_fee)
    for service_class, class_tariff in sorted(terms.tariff.classes.items()):
        entry = etree.SubElement(tariff, _CSM + "class-tariff")
        etree.SubElement(entry, _CSM + "class").text = service_class.value
        hours = class_tariff.included_hours
        etree.SubElement(entry, _CSM + "included-hours").text = "unlimited" if hours is None else str(hours)
        etree.SubElement(entry, _CSM + "price-per-hour").text = str(class_tariff.price_per_hour)
    availability = etree.SubElement(contract, _CSM + "availability")
    etree.SubElement(availability, _CSM + "objective-percent").text = str(terms.availability.objective_percent)
    etree.SubElement(availability, _CSM + "max-outage").text = str(terms.availability.max_outage_s)
    etree.SubElement(availability, _CSM + "penalty-percent").text = str(
        terms.availability.penalty_percent_of_monthly_fee)
    policy = etree.SubElement(contract, _CSM + "change-policy")
    etree.SubElement(policy, _CSM + "min-interval").text = str(terms.change_policy.min_interval_s)
    etree.SubElement(policy, _CSM + "fee-per-change").text = str(terms.change_policy.fee_per_change)
    return contract


# --------------------------------------------------------------------------------------------- subtree filter

def subtree_filter(data: etree._Element, filter_element: etree._Element) -> list[etree._Element]:
    """RFC 6241 6: the parts of `data` (a top-level node) that the filter's top-level nodes select."""
    selected: list[etree._Element] = []
    for wanted in filter_element:
        if not isinstance(wanted.tag, str):
            continue
        if _matches(wanted, data):
            result = _select(data, wanted)
            if result is not None:
                selected.append(result)
    return selected


def filtered_sla_ids(filter_element: etree._Element) -> set[int] | None:
    """The SLA ids a subtree filter can select at most, when each of its csm/sla nodes names its
    entries by key (<sla><id>5</id>...): the SLAs to read before the filter runs on them. None when
    some filter node may select SLAs otherwise (the whole <csm>, an <sla> without an id match)."""
    ids: set[int] = set()
    for top in _elements(filter_element):
        if _split(top.tag)[1] != "csm":
            continue  # selects nothing of csm-service
        if not _elements(top):
            return None
        for entry in _elements(top):
            if _split(entry.tag)[1] != "sla":
                continue
            keys = [c for c in _elements(entry) if _split(c.tag)[1] == "id" and len(c) == 0 and (c.text or "").strip()]
            if not keys:
                return None
            ids.update(int(k.text.strip()) for k in keys if _DIGITS.fullmatch(k.text.strip()))
    return ids


def _elements(node: etree._Element) -> list[etree._Element]:
    return [child for child in node if isinstance(child.tag, str)]


def _matches(wanted: etree._Element, node: etree._Element) -> bool:
    """Same name, and the same namespace if the filter names one (an unqualified filter node
    matches any namespace, as RFC 6241 6.2.1 allows)."""
    wanted_ns, wanted_name = _split(wanted.tag)
    node_ns, node_name = _split(node.tag)
    return wanted_name == node_name and (wanted_ns is None or wanted_ns == node_ns)


def _split(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _select(node: etree._Element, wanted: etree._Element) -> etree._Element | None:
    children = [c for c in wanted if isinstance(c.tag, str)]
    if not children:
        text = (wanted.text or "").strip()
        if text and (node.text or "").strip() != text:
            return None
        return _copy(node)  # a selection node (or a matching content-match leaf): the whole subtree
    content_matches = [c for c in children if len(c) == 0 and (c.text or "").strip()]
    for match in content_matches:
        if not any(_matches(match, child) and (child.text or "").strip() == match.text.strip() for child in node):
            return None  # this instance does not match: leave it out
    others = [c for c in children if c not in content_matches]
    result = etree.Element(node.tag, nsmap=node.nsmap)
    if not others:
        return _copy(node)  # only content-match nodes: the whole matching instance
    for child in node:
        if any(_matches(match, child) for match in content_matches):
            result.append(_copy(child))
            continue
        # Several sibling filter nodes may name the same element (RFC 6241 6.4.7): the union.
        picked = [p for p in (_select(child, want) for want in others if _matches(want, child)) if p is not None]
        if picked:
            result.append(_union(picked))
    if len(result) == 0:
        return None
    return result


def _union(selections: list[etree._Element]) -> etree._Element:
    """One element holding every child any of the selections of the same node picked, once."""
    merged = selections[0]
    seen = {etree.tostring(child) for child in merged}
    for other in selections[1:]:
        for child in other:
            text = etree.tostring(child)
            if text not in seen:
                seen.add(text)
                merged.append(_copy(child))
    return merged


def _copy(node: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(node))


# --------------------------------------------------------------------------------------------- edit-config

@dataclass
class EditPlan:
    """The SLS changes an <edit-config> asks for, checked for shape (not yet for the SLA's terms)."""

    changes: dict[int, dict[str, Any]] = field(default_factory=dict)  # SLA id -> {"class": ..., "bandwidth": ...}
    entries: dict[int, str] = field(default_factory=dict)  # SLA id -> create, delete or remove of the entry


_OPERATIONS = ("merge", "replace", "create", "delete", "remove")


def plan_edit(config: etree._Element, default_operation: str) -> EditPlan:
    """Read <config>: only csm/sla[id]/sls/{class,bandwidth} may be edited, and SLA entries can be
    neither created nor deleted (the domain manager makes SLAs)."""
    plan = EditPlan()
    for top in config:
        if not isinstance(top.tag, str):
            continue
        if top.tag != _CSM + "csm":
            raise RpcError("unknown-element", f"unknown top-level element {top.tag}", error_type="application",
                           info={"bad-element": _split(top.tag)[1]})
        _refuse_structural(top, "/csm:csm")
        for entry in top:
            if not isinstance(entry.tag, str):
                continue
            if entry.tag != _CSM + "sla":
                raise RpcError("unknown-element", f"unknown element {entry.tag} in csm", info={"bad-element":
                                                                                                 _split(entry.tag)[1]})
            _plan_entry(entry, default_operation, plan)
    return plan


def _plan_entry(entry: etree._Element, default_operation: str, plan: EditPlan) -> None:
    ident = entry.find(_CSM + "id")
    if ident is None or not _DIGITS.fullmatch((ident.text or "").strip()):
        raise RpcError("missing-element", "an sla entry needs its key <id> (the SLA id)", error_type="protocol",
                       info={"bad-element": "id"})
    sla_id = int(ident.text.strip())
    operation = entry.get(_NC + "operation", default_operation)
    if operation in ("create", "delete", "remove"):
        plan.entries[sla_id] = operation  # judged against what exists, in apply_edit
        return
    wanted: dict[str, Any] = {}
    for child in entry:
        if not isinstance(child.tag, str) or child.tag == _CSM + "id":
            continue
        if child.tag != _CSM + "sls":
            raise RpcError("access-denied" if child.tag == _CSM + "contract" else "unknown-element",
                           f"only the sls of an SLA can be edited, not {_split(child.tag)[1]}",
                           error_type="protocol", path=f"/csm:csm/csm:sla[csm:id='{sla_id}']",
                           info={"bad-element": _split(child.tag)[1]})
        sls_operation = child.get(_NC + "operation", operation)
        _refuse_on_mandatory(sls_operation, sls_path(sla_id), "the SLS of an SLA")
        wanted["replace"] = sls_operation == "replace"
        for leaf in child:
            if not isinstance(leaf.tag, str):
                continue
            name = _split(leaf.tag)[1]
            if leaf.tag not in (_CSM + "class", _CSM + "bandwidth"):
                raise RpcError("invalid-value" if name in ("version", "changed-at", "changed-by", "channel",
                                                           "next-change-allowed") else "unknown-element",
                               f"sls/{name} is not writable", error_type="application", path=sls_path(sla_id, name),
                               info={"bad-element": name})
            _refuse_on_mandatory(leaf.get(_NC + "operation"), sls_path(sla_id, name), f"sls/{name}")
            if leaf.get(_NC + "operation", sls_operation) == "none":
                continue  # default-operation none: only nodes with an operation of their own change
            wanted[name] = _leaf_value(name, (leaf.text or "").strip(), sla_id, dict(leaf.nsmap))
    if wanted.get("replace") and not ("class" in wanted and "bandwidth" in wanted):
        raise RpcError("missing-element", "replace of an sls needs both class and bandwidth", error_type="protocol",
                       path=sls_path(sla_id))
    if "class" in wanted or "bandwidth" in wanted:
        plan.changes.setdefault(sla_id, {}).update({k: v for k, v in wanted.items() if k != "replace"})


def _refuse_on_mandatory(operation: str | None, path: str, what: str) -> None:
    """The SLS and its two leaves always exist: they can be neither created nor deleted."""
    if operation == "create":
        raise RpcError("data-exists", f"{what} always exists; merge or replace it", path=path)
    if operation in ("delete", "remove"):
        raise RpcError("operation-failed", f"{what} is mandatory; it cannot be deleted", path=path,
                       app_tag="mandatory")


_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²" and other scripts' digits
_UINT = re.compile(r"\+?[0-9]+")  # YANG integers may carry a "+" (RFC 7950 9.2.1)


def _leaf_value(name: str, text: str, sla_id: int, namespaces: dict[str | None, str]) -> Any:
    if name == "class":
        prefix, _, value = text.rpartition(":")  # an identity may come prefixed (csm:gold)
        try:
            if prefix and namespaces.get(prefix) != CSM:
                raise ValueError(prefix)
            return ServiceClassName(value)
        except ValueError:
            raise RpcError("invalid-value", f"class must be gold, silver or bronze, not {text!r}",
                           path=sls_path(sla_id, "class"), info={"value": text}) from None
    if not _UINT.fullmatch(text) or int(text) >= 2**64:
        raise RpcError("invalid-value", f"bandwidth must be a whole number of bit/s, not {text!r}",
                       path=sls_path(sla_id, "bandwidth"), info={"value": text})
    return int(text)


def _refuse_structural(node: etree._Element, path: str) -> None:
    operation = node.get(_NC + "operation")
    if operation in ("create", "delete", "remove", "replace"):
        raise RpcError("operation-not-supported", f"{operation} of the whole csm container is refused",
                       error_type="protocol", path=path)


def apply_edit(service: ServiceLayer, principal: Principal, plan: EditPlan, *, test_only: bool) -> None:
    """Check (and unless `test_only`, apply) every change of the plan in one transaction."""
    _judge_entry_operations(service, principal, plan.entries)
    if not plan.changes:
        return
    # A leaf left out keeps its value (None), read in the change's own transaction.
    batch = [(sla_id, wanted.get("class"), wanted.get("bandwidth")) for sla_id, wanted in sorted(plan.changes.items())]
    try:
        service.change_sls_batch(principal, batch, Channel.NETCONF, dry_run=test_only)
    except CsmmError as exc:
        raise refusal_to_rpc_error(exc, exc.subject if exc.subject is not None else None) from None


def _judge_entry_operations(service: ServiceLayer, principal: Principal, entries: dict[int, str]) -> None:
    """create, delete and remove of SLA entries (RFC 6241 7.2), which only the domain manager makes
    and ends, through its own interfaces: each is refused with the tag the entry's existence
    calls for. Another peer's SLA counts as missing, as everywhere."""
    for sla_id, operation in sorted(entries.items()):
        try:
            service.get_sls(principal, sla_id)
            exists = True
        except NotFound:
            exists = False
        path = f"/csm:csm/csm:sla[csm:id='{sla_id}']"
        if operation == "create":
            if exists:
                raise RpcError("data-exists", f"SLA {sla_id} exists", path=path)
            raise RpcError("access-denied", "SLA entries are made by the domain manager", error_type="protocol",
                           path=path)
        if not exists:
            if operation == "delete":
                raise RpcError("data-missing", f"no SLA {sla_id}", path=path)
            continue  # remove of what is not there: nothing to do
        raise RpcError("access-denied", "SLAs are ended by the domain manager", error_type="protocol", path=path)
