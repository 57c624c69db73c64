"""RFC 5277 notifications: the csm-service events (sls-changed, sla-violation, sla-cleared) as
<notification> messages, for the principal whose SLA they concern only.

The event log in the database is the stream: live notifications are read from it as they are
written (by this process or any other), and a <create-subscription> with a startTime replays
it from there. Each event has one id, so nothing is sent twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from controller.domain.principal import Principal
from controller.service.events import SLA_CLEARED, SLA_VIOLATION, SLS_CHANGED, Event

from .rpc import CSM, RpcError, subtree_filter

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NOTIFICATION_CAPABILITY = "urn:ietf:params:netconf:capability:notification:1.0"
INTERLEAVE_CAPABILITY = "urn:ietf:params:netconf:capability:interleave:1.0"
STREAM = "NETCONF"
EVENT_TYPES = (SLS_CHANGED, SLA_VIOLATION, SLA_CLEARED)
_N = f"{{{NOTIFICATION_NS}}}"
_CSM = f"{{{CSM}}}"


@dataclass
class Subscription:
    principal: Principal
    filter: etree._Element | None
    start: datetime | None
    stop: datetime | None
    replaying: bool


def parse_subscription(operation: etree._Element, principal: Principal, now: datetime) -> Subscription:
    """<create-subscription>: stream NETCONF only, an optional subtree filter, replay times."""
    stream = (operation.findtext(_N + "stream") or STREAM).strip()
    if stream != STREAM:
        raise RpcError("invalid-value", f"no stream {stream!r}; there is only {STREAM}", error_type="protocol",
                       info={"bad-element": "stream"})
    chosen = operation.find(_N + "filter")
    if chosen is not None and chosen.get("type", "subtree") != "subtree":
        raise RpcError("operation-not-supported", "only subtree filters are supported", error_type="protocol",
                       info={"bad-element": "filter"})
    start, stop = _time(operation, "startTime"), _time(operation, "stopTime")
    if stop is not None and start is None:
        raise RpcError("missing-element", "stopTime needs a startTime", error_type="protocol",
                       info={"bad-element": "startTime"})
    if start is not None and start > now:
        raise RpcError("bad-element", "startTime is in the future", error_type="protocol",
                       info={"bad-element": "startTime"})
    if start is not None and stop is not None and stop < start:
        raise RpcError("bad-element", "stopTime is before startTime", error_type="protocol",
                       info={"bad-element": "stopTime"})
    return Subscription(principal, chosen, start, stop, replaying=start is not None)


def _time(operation: etree._Element, name: str) -> datetime | None:
    text = operation.findtext(_N + name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RpcError("bad-element", f"{name} is not a date-and-time: {text!r}", error_type="protocol",
                       info={"bad-element": name}) from None
    if moment.tzinfo is None:
        raise RpcError("bad-element", f"{name} needs a time zone", error_type="protocol", info={"bad-element": name})
    return moment


def visible(event: Event, principal: Principal) -> bool:
    customer = event.payload.get("customer")
    return event.type in EVENT_TYPES and isinstance(customer, str) and principal.owns(customer)


def notification(event: Event, subscription: Subscription) -> bytes | None:
    """The <notification> for one event, or None if it is not for this subscription."""
    if not visible(event, subscription.principal):
        return None
    content = _content(event)
    if subscription.filter is not None:
        if not subtree_filter(content, subscription.filter):
            return None
    message = etree.Element(_N + "notification", nsmap={None: NOTIFICATION_NS})
    etree.SubElement(message, _N + "eventTime").text = event.at.isoformat()
    message.append(content)
    return etree.tostring(message, xml_declaration=True, encoding="UTF-8")


def marker(name: str, at: datetime) -> bytes:
    """replayComplete or notificationComplete (RFC 5277 nc-notifications)."""
    message = etree.Element(_N + "notification", nsmap={None: NOTIFICATION_NS})
    etree.SubElement(message, _N + "eventTime").text = at.isoformat()
    etree.SubElement(message, f"{{urn:ietf:params:xml:ns:netmod:notification}}{name}")
    return etree.tostring(message, xml_declaration=True, encoding="UTF-8")


def _content(event: Event) -> etree._Element:
    payload = event.payload
    name = "sls-changed" if event.type == SLS_CHANGED else (
        "sla-violation" if event.type == SLA_VIOLATION else "sla-cleared")
    root = etree.Element(_CSM + name, nsmap={None: CSM})
    leaves: list[tuple[str, object]] = [("sla-id", payload.get("sla_id")),
                                        ("sla-name", event.subject.partition(":")[2]),
                                        ("customer", payload.get("customer"))]
    if event.type == SLS_CHANGED:
        leaves += [("class", payload.get("service_class")), ("bandwidth", payload.get("bandwidth_bps")),
                   ("version", payload.get("version")), ("previous-class", payload.get("previous_class")),
                   ("previous-bandwidth", payload.get("previous_bandwidth_bps")), ("changed-at", event.at.isoformat()),
                   ("changed-by", event.principal), ("channel", payload.get("channel")), ("fee", payload.get("fee"))]
    else:
        # The events carry CSM-MIB units; the module counts throughput in bit/s, not kbit/s.
        scale = 1000 if payload.get("metric") == "throughput" else 1
        leaves += [("class", payload.get("service_class")), ("metric", _kebab(str(payload.get("metric", "")))),
                   ("measured", _scaled(payload.get("measured"), scale)),
                   ("bound", _scaled(payload.get("bound"), scale))]
    for leaf, value in leaves:
        if value is not None:
            etree.SubElement(root, _CSM + leaf).text = str(value)
    return root


def _scaled(value: object, scale: int) -> object:
    return int(value) * scale if isinstance(value, int) else value


def _kebab(name: str) -> str:
    """CSM-MIB's CsmMetric names (outageDuration) in the YANG module's spelling (outage-duration)."""
    return re.sub(r"(?<!^)([A-Z])", lambda m: "-" + m.group(1).lower(), name)
