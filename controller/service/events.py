"""Events the service layer emits after a change commits (sla.created, sls.changed, ...).

They are also written to the `events` table in the same transaction as the change, so a
subscriber that was down (or another controller replica) can catch up from the database.
Subscribers only learn "something changed, recompute"; the database stays the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

# The event types, in the operator's words.
CUSTOMER_ADDED = "customer.added"
CUSTOMER_CHANGED = "customer.changed"
SLA_CREATED = "sla.created"
SLA_CHANGED = "sla.changed"
SLA_STATE_CHANGED = "sla.state-changed"
SLS_CHANGED = "sls.changed"
TOPOLOGY_CHANGED = "topology.changed"
# The feedback part (controller.feedback) emits these; their payload: sla_id, customer,
# service_class, metric (a CSM-MIB CsmMetric name: throughput, loss, availability, outageDuration,
# delay, delayVariation), measured and bound (integers in that metric's CSM-MIB unit). An
# availability violation also carries penalty_credit (a decimal string, in the catalog's currency)
# and month (ISO 8601, the calendar month it is for): the credit is recorded once per SLA and month.
SLA_VIOLATION = "sla.violation"
SLA_CLEARED = "sla.cleared"
# The accounting part (controller.accounting) emits these. month.closed: the month's invoices are
# issued (payload: month "2026-11", invoices: how many). invoice.corrected: a credit or debit note
# was issued (invoice, note, amount). offering.added / offering.altered / offering.deleted: the
# catalog the controller started with differs from the one it last saw (offering: its name).
# notification.sent: an accounting policy told a customer something (customer, sla, text, policy).
MONTH_CLOSED = "month.closed"
INVOICE_CORRECTED = "invoice.corrected"
OFFERING_ADDED = "offering.added"
OFFERING_ALTERED = "offering.altered"
OFFERING_DELETED = "offering.deleted"
NOTIFICATION_SENT = "notification.sent"


@dataclass(frozen=True)
class Event:
    type: str
    at: datetime
    subject: str  # the object it is about: "sla:acme-1", "customer:acme", "topology"
    principal: str
    payload: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


Handler = Callable[[Event], None]


class EventBus:
    """In-process fan-out. A failing subscriber is logged and never undoes a committed change."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    def subscribe(self, prefix: str, handler: Handler) -> None:
        """Call `handler` for every event whose type starts with `prefix` ("" for all)."""
        self._handlers.append((prefix, handler))

    def publish(self, events: list[Event]) -> None:
        for event in events:
            for prefix, handler in self._handlers:
                if event.type.startswith(prefix):
                    try:
                        handler(event)
                    except Exception:  # a subscriber's bug must not break the caller's change
                        log.exception("event subscriber failed on %s %s", event.type, event.subject)
