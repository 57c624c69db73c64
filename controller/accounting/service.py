"""The accounting part of the service layer: metering, charging, billing and reporting.

It reads the SLA and SLS databases (the SLS history is what time is charged from), the usage
records, policy charges and penalty credits, and keeps invoices. Authorization is the service
layer's rule: a customer (or peer) sees only its own records; another customer's invoice answers
exactly like a missing one.

Every month is computed from the data "as of" a moment: an invoice is issued as of its issue time,
and verification recomputes it as of that same moment (it must match byte for byte) and as of
now (any difference is a late correction, issued as a credit or debit note).
"""

from __future__ import annotations

import gc
import logging
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, extract, func, insert, select
from sqlalchemy.orm import Session

from controller.accounting import invoice as documents
from controller.accounting.charging import (ChangeFee, PenaltyCredit, PolicyCharge, SlaMonth, Volume, charge_month,
                                            included_hours)
from controller.accounting.invoice import Invoice
from controller.accounting.parallel import issue_in_parallel
from controller.accounting.metering import (UTC, Span, billable_span, class_usage, epoch_ms, hours, iso,
                                            month_name, month_of, parse_month)
from controller.accounting.usage import METER, ImportResult, UsageRecord, import_records, parse_record
from controller.domain.catalog import ServiceClassName, Tariff
from controller.domain.checks import require_domain_manager
from controller.domain.errors import Conflict, InvalidValue, NotFound
from controller.domain.principal import Principal
from controller.domain.sla import LifecycleState
from controller.domain.units import format_bandwidth, from_cents, to_cents
from controller.service import events as ev
from controller.service.layer import ServiceLayer, kind_of
from controller.store.records import json_as_text
from controller.store.schema import (AccountingMarkRow, ChargeRow, CustomerRow, InvoiceRow, NotificationRow,
                                     PenaltyCreditRow, SlaRow, SlaStateChangeRow, SlsHistoryRow, UsageRecordRow)

log = logging.getLogger(__name__)

_VERSION = re.compile(r"\S+ v\d+")
_ID_LIST_LIMIT = 10_000   # SQLite allows 32,766 parameters per statement
_PREFIX = {documents.INVOICE: "INV", documents.CREDIT_NOTE: "CN", documents.DEBIT_NOTE: "DN"}


@dataclass(frozen=True)
class Verification:
    number: str
    digest_ok: bool                 # the stored document is the one issued
    as_issued: list[str]            # differences recomputing as of the issue time (must be empty)
    since: list[str]                # differences recomputing now, net of notes (a correction is due)
    notes: list[str]                # numbers of the notes already issued

    @property
    def ok(self) -> bool:
        return self.digest_ok and not self.as_issued


@dataclass(frozen=True)
class Issued:
    """What `issue_month` says of each invoice it issued (`invoice(number)` reads the whole one)."""

    number: str
    customer: str
    total: Decimal
    currency: str


@dataclass(frozen=True)
class ClassUsage:
    sla: str
    service_class: str
    hours: Decimal
    included_hours: Decimal | None
    octets: int
    packets: int


@dataclass(frozen=True)
class Notification:
    id: int
    customer: str
    sla: str | None
    at: datetime
    text: str
    policy: str


@dataclass
class _Customer:
    id: int
    name: str
    display_name: str
    slas: list[SlaMonth]


class Accounting:
    def __init__(self, service: ServiceLayer) -> None:
        self.service = service
        self.database = service.database
        self.catalog = service.catalog
        self.dscp = {name.value: cls.dscp for name, cls in service.catalog.classes.items()}

    # ------------------------------------------------------------------ invoices

    def statement(self, principal: Principal, customer: str, now: datetime | None = None) -> Invoice:
        """Hot billing: the month so far, computed now, not stored: the month's fee and included
        hours, and the hours, changes and charges up to now."""
        now = now or self.service.clock()
        month = month_of(now)
        with self.database.read() as session:
            row = self._customer(session, principal, customer)
            loaded = self.load_month(session, month, now, until=now, customer_ids=[row.id])
        return self._document(loaded[row.id], month, documents.STATEMENT, "", now) if row.id in loaded else \
            self._empty(row, month, now)

    def compute(self, principal: Principal, customer: str, month_text: str, as_of: datetime | None = None) -> Invoice:
        """The month's invoice as it would be issued now (or as of `as_of`), not stored."""
        month = parse_month(month_text)
        as_of = as_of or self.service.clock()
        with self.database.read() as session:
            row = self._customer(session, principal, customer)
            loaded = self.load_month(session, month, as_of, customer_ids=[row.id])
        return self._document(loaded[row.id], month, documents.INVOICE, "", as_of) if row.id in loaded else \
            self._empty(row, month, as_of)

    def issue_month(self, principal: Principal, month_text: str) -> list[Issued]:
        """Issue the month's invoice of every customer with a billable SLA that has none yet, then
        announce month.closed. Refused while the month is still running.

        The documents are computed outside any write transaction, on every CPU when there are
        many and the process may fork (controller.accounting.parallel), and stored a chunk at a
        time (each chunk all or nothing): SLS changes are never held up for long. A run cut short
        leaves whole invoices only, and running it again issues the rest; a customer invoiced
        meanwhile keeps its invoice."""
        require_domain_manager(principal, "issue invoices")
        month = parse_month(month_text)
        now = self.service.clock()
        if now < month.end:
            raise Conflict(f"month {month_text} has not ended (it ends {month.end.isoformat()}); "
                           "use a statement for the month to date", field="month", value=month_text)
        with self.database.read() as session:
            pending = sorted(set(session.scalars(select(SlaRow.customer_id))) - _invoiced(session, month_text))
        issued = [Issued(number, customer, from_cents(total), currency)
                  for number, customer, total, currency in issue_in_parallel(self, principal, month_text, now, pending)]
        with self.service.transaction(principal) as tx:
            # month.closed once per month, even if a run cut short is run again
            if tx.session.get(AccountingMarkRow, f"closed {month_text}") is None:
                tx.session.add(AccountingMarkRow(name=f"closed {month_text}", value={"at": now.isoformat()}))
                tx.emit(ev.MONTH_CLOSED, "accounting", month=month_text, invoices=len(issued))
        log.info("issued %d invoices for %s", len(issued), month_text)
        issued.sort(key=lambda i: i.number)
        return issued

    def issue_chunk(self, principal: Principal, month_text: str, at: datetime, customers: Collection[int],
                    id_range: tuple[int, int] | None = None) -> list[tuple[str, str, int, str]]:
        """Compute and store, in one transaction, the month's invoice of each of `customers` that
        has something billable and no invoice yet; `id_range` bounds what is read. Returns
        (number, customer, total in cents, currency) of each."""
        month = parse_month(month_text)
        with without_cycle_collection():
            with self.database.read() as session:
                loaded = self.load_month(session, month, at, customer_range=id_range)
            rows = []
            for customer_id, customer in sorted(loaded.items()):
                if customer_id in customers and _billed(customer):
                    number = invoice_number(month_text, customer_id)
                    invoice = self._document(customer, month, documents.INVOICE, number, at)
                    rows.append((customer.name, _row(invoice, customer_id, 0, None)))
        with self.service.transaction(principal) as tx:
            done = _invoiced(tx.session, month_text, [row["customer_id"] for _, row in rows])
            fresh = [(customer, row) for customer, row in rows if row["customer_id"] not in done]
            for start in range(0, len(fresh), 5000):
                tx.session.execute(insert(InvoiceRow.__table__), [row for _, row in fresh[start:start + 5000]])
        return [(row["number"], customer, row["total_cents"], row["currency"]) for customer, row in fresh]

    def invoices(self, principal: Principal, customer: str | None = None, month: str | None = None) -> list[Invoice]:
        query = self._visible_invoices(principal).order_by(InvoiceRow.id)
        if customer is not None:
            query = query.where(CustomerRow.name == customer)
        if month is not None:   # "2026-1" means 2026-01; "garbage" is refused like everywhere else
            query = query.where(InvoiceRow.month == month_name(parse_month(month)))
        with self.database.read() as session:
            return [documents.from_document(documents.parse_json(doc)) for doc in session.scalars(query)]

    def invoice(self, principal: Principal, number: str) -> Invoice:
        with self.database.read() as session:
            doc = session.scalar(self._visible_invoices(principal).where(InvoiceRow.number == number))
        if doc is None:
            raise NotFound(f"invoice {number!r} does not exist", field="invoice", value=number)
        return documents.from_document(documents.parse_json(doc))

    def verify(self, principal: Principal, number: str) -> Verification:
        """Recompute an issued invoice: as of its issue time it must equal what was issued."""
        issued = self.invoice(principal, number)
        if issued.kind != documents.INVOICE:
            raise InvalidValue(f"{number} is a {issued.kind}; verify the invoice it corrects ({issued.refers_to})",
                               field="invoice", value=number)
        with self.database.read() as session:
            row = session.scalar(select(InvoiceRow).where(InvoiceRow.number == number))
            assert row is not None
            digest_ok = documents.digest(documents.parse_json(row.document)) == row.digest
            notes = [documents.from_document(documents.parse_json(d)) for d in session.scalars(
                select(InvoiceRow.document).where(InvoiceRow.refers_to == number).order_by(InvoiceRow.seq))]
        again = self.compute(principal, issued.customer, issued.month, as_of=issued.issued_at)
        again = _renumbered(again, issued)
        now = self.compute(principal, issued.customer, issued.month)
        pending = documents.correction_lines([issued, *notes], now)
        return Verification(number, digest_ok, documents.differences(issued, again),
                            [f"{line.key}: {line.amount:+} {issued.currency}" for line in pending],
                            [n.number for n in notes])

    def correct(self, principal: Principal, number: str) -> Invoice | None:
        """Issue a credit or debit note for what changed since the invoice (None: nothing did)."""
        require_domain_manager(principal, "issue credit and debit notes")
        issued = self.invoice(principal, number)
        with self.service.transaction(principal) as tx:
            notes = [documents.from_document(documents.parse_json(d)) for d in tx.session.scalars(
                select(InvoiceRow.document).where(InvoiceRow.refers_to == number).order_by(InvoiceRow.seq))]
            customer = tx.session.scalar(select(CustomerRow).where(CustomerRow.name == issued.customer))
            assert customer is not None
            month = parse_month(issued.month)
            loaded = self.load_month(tx.session, month, tx.now, customer_ids=[customer.id])
            now = self._document(loaded[customer.id], month, documents.INVOICE, "", tx.now) if customer.id in loaded \
                else self._empty(customer, month, tx.now)
            lines = documents.correction_lines([issued, *notes], now)
            if not lines:
                return None
            seq = len(notes) + 1
            kind = documents.note_kind(lines)
            note = Invoice(invoice_number(issued.month, customer.id, kind, seq), kind, issued.customer,
                           issued.customer_name, issued.month, issued.period_start, issued.period_end, tx.now,
                           issued.currency, issued.tax_name, issued.tax_percent, lines, refers_to=number)
            tx.session.execute(insert(InvoiceRow.__table__), [_row(note, customer.id, seq, number)])
            tx.emit(ev.INVOICE_CORRECTED, f"customer:{issued.customer}", invoice=number, note=note.number,
                    amount=str(note.total))
            return note

    def version_notes(self, principal: Principal, invoice: Invoice) -> dict[str, str]:
        """What each SLS version an invoice names ("acme-hq v2") was: class, bandwidth, when it was
        in effect, who set it and through which interface, from the SLS history (append-only, so
        the description of an issued invoice never changes)."""
        wanted = {source for line in invoice.lines for source in line.sources if _VERSION.fullmatch(source)}
        names = sorted({source.rsplit(" v", 1)[0] for source in wanted})
        if not names:
            return {}
        h = SlsHistoryRow.__table__.c
        query = (select(SlaRow.name, h.version, h.service_class, h.bandwidth_bps, h.effective_from, h.principal,
                        h.channel).join(SlaRow, SlaRow.id == h.sla_id).join(CustomerRow)
                 .where(SlaRow.name.in_(names)).order_by(SlaRow.name, h.version))
        with self.database.read() as session:
            rows = session.execute(_only_own(query, principal)).all()
        notes = {}
        for row, following in zip(rows, [*rows[1:], None]):
            key = f"{row[0]} v{row[1]}"
            if key in wanted:
                until = iso(following[4]) if following is not None and following[0] == row[0] else "now"
                notes[key] = (f"{row[2]} {format_bandwidth(row[3])} from {iso(row[4])} until {until}, "
                              f"set by {row[5]} via {row[6]}")
        return notes

    # ------------------------------------------------------------------ usage and reports

    def import_usage(self, principal: Principal, data: Sequence[dict[str, Any]], where: str = "record") -> ImportResult:
        require_domain_manager(principal, "import usage records")
        records = [parse_record(item, self.dscp, f"{where} {i}") for i, item in enumerate(data, start=1)]
        with self.service.transaction(principal) as tx:
            return import_records(tx.session, records, tx.now)

    def usage_records(self, principal: Principal, customer: str, month_text: str) -> list[UsageRecord]:
        month = parse_month(month_text)
        with self.database.read() as session:
            row = self._customer(session, principal, customer)
            table = UsageRecordRow.__table__.c
            query = (select(table.source, SlaRow.name, table.service_class, table.dscp, table.flow_start_ms,
                            table.flow_end_ms, table.octets, table.packets, table.dropped_packets)
                     .join(SlaRow, SlaRow.id == table.sla_id).where(SlaRow.customer_id == row.id)
                     .where(table.flow_start_ms >= epoch_ms(month.start), table.flow_start_ms < epoch_ms(month.end))
                     .order_by(table.flow_start_ms, SlaRow.name, table.dscp))
            return [UsageRecord(*r) for r in session.execute(query)]

    def throughput_series(self, principal: Principal, sla: str, start: datetime,
                          end: datetime) -> dict[str, list[tuple[datetime, float]]]:
        """Per class, the average throughput (bit/s) of each of an SLA's hourly meter records that
        start in [start, end): a running hour counts up to its latest report."""
        found = self.service.get_sla(principal, sla)   # NotFound for another customer's, like a missing one
        table = UsageRecordRow.__table__.c
        query = (select(table.service_class, table.flow_start_ms, table.flow_end_ms, table.octets, table.recorded_at)
                 .where(table.sla_id == found.id, table.source == METER,
                        table.flow_start_ms >= epoch_ms(start), table.flow_start_ms < epoch_ms(end))
                 .order_by(table.flow_start_ms))
        series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        with self.database.read() as session:
            for service_class, first_ms, last_ms, octets, recorded_at in session.execute(query):
                covered_ms = min(last_ms, epoch_ms(recorded_at)) - first_ms
                if covered_ms > 0:
                    middle = datetime.fromtimestamp((first_ms + covered_ms / 2) / 1000, UTC)
                    series[service_class].append((middle, octets * 8000 / covered_ms))
        return dict(series)

    def usage_report(self, principal: Principal, customer: str, month_text: str,
                     now: datetime | None = None) -> list[ClassUsage]:
        """Per SLA and class: hours (to date, for a running month), included hours, volume."""
        month = parse_month(month_text)
        now = now or self.service.clock()
        with self.database.read() as session:
            row = self._customer(session, principal, customer)
            loaded = self.load_month(session, month, now, until=min(now, month.end), customer_ids=[row.id])
        return [u for m in (loaded[row.id].slas if row.id in loaded else []) for u in _class_usage(m)]

    def summary(self, principal: Principal, month_text: str) -> dict[str, Any]:
        """The domain manager's month: revenue by offering (issued invoices and notes), customers,
        and hours per class over every SLA."""
        require_domain_manager(principal, "read the revenue summary")
        month = parse_month(month_text)
        month_text = month_name(month)
        now = self.service.clock()
        with self.database.read() as session:
            loaded = self.load_month(session, month, now, until=min(now, month.end))
            issued = [documents.from_document(documents.parse_json(d)) for d in
                      session.scalars(select(InvoiceRow.document).where(InvoiceRow.month == month_text))]
        offering_of = {m.sla: m.offering for c in loaded.values() for m in c.slas}
        revenue: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for document in issued:
            for line in document.lines:
                revenue[offering_of.get(line.sla, "(unknown)")] += line.amount
        hours_per_class: dict[str, Decimal] = defaultdict(Decimal)
        customers: dict[str, set[str]] = defaultdict(set)
        for c in loaded.values():
            for m in c.slas:
                customers[m.offering].add(c.name)
                for service_class, use in m.usage.items():
                    hours_per_class[service_class.value] += hours(use.ms)
        return {"month": month_text, "currency": self.catalog.currency,
                "invoices": sum(1 for d in issued if d.kind == documents.INVOICE),
                "notes": sum(1 for d in issued if d.kind != documents.INVOICE),
                "revenue_before_tax": str(sum(revenue.values(), Decimal("0.00"))),
                "revenue_by_offering": {k: str(v) for k, v in sorted(revenue.items())},
                "customers_by_offering": {k: len(v) for k, v in sorted(customers.items())},
                "hours_by_class": {k: str(v.normalize()) for k, v in sorted(hours_per_class.items())}}

    # ------------------------------------------------------------------ policy activities

    def charge(self, session: Session, sla_id: int, at: datetime, amount: Decimal, text_: str, policy: str,
               event_key: str) -> bool:
        """Record a policy's charge once per (policy, event); False if it was already recorded."""
        if session.scalar(select(ChargeRow.id).where(ChargeRow.policy == policy, ChargeRow.event_key == event_key)):
            return False
        session.add(ChargeRow(sla_id=sla_id, at=at, amount_cents=to_cents(amount), text=text_[:300], policy=policy,
                              event_key=event_key))
        return True

    def notify(self, session: Session, customer_id: int, sla_id: int | None, at: datetime, text_: str, policy: str,
               event_key: str) -> bool:
        if session.scalar(select(NotificationRow.id).where(NotificationRow.policy == policy,
                                                           NotificationRow.event_key == event_key)):
            return False
        session.add(NotificationRow(customer_id=customer_id, sla_id=sla_id, at=at, text=text_[:500], policy=policy,
                                    event_key=event_key))
        return True

    def notifications(self, principal: Principal, customer: str | None = None, limit: int = 100) -> list[Notification]:
        query = (select(NotificationRow, CustomerRow.name, SlaRow.name)
                 .join(CustomerRow, CustomerRow.id == NotificationRow.customer_id)
                 .outerjoin(SlaRow, SlaRow.id == NotificationRow.sla_id)
                 .order_by(NotificationRow.id.desc()).limit(limit))
        query = _only_own(query, principal)
        if customer is not None:
            query = query.where(CustomerRow.name == customer)
        with self.database.read() as session:
            return [Notification(n.id, c, s, n.at, n.text, n.policy) for n, c, s in session.execute(query)]

    # ------------------------------------------------------------------ loading a month

    def load_month(self, session: Session, month: Span, as_of: datetime, until: datetime | None = None,
                   customer_ids: Iterable[int] | None = None,
                   customer_range: tuple[int, int] | None = None) -> dict[int, _Customer]:
        """Everything the month of the chosen customers (a few ids, an id range, or all) is charged
        from, as of `as_of`."""
        if customer_ids is not None:
            chosen: Any = SlaRow.customer_id.in_(list(customer_ids))
        elif customer_range is not None:
            chosen = SlaRow.customer_id.between(*customer_range)
        else:
            chosen = None
        slas = self._slas(session, chosen)
        if not slas:
            return {}
        # The chosen SLAs by id (the index on sls_history's (sla_id, version) reads only theirs), or
        # by subquery when there are too many ids for one statement.
        sla_ids: Any = None
        if chosen is not None:
            sla_ids = list(slas) if len(slas) <= _ID_LIST_LIMIT else select(SlaRow.id).where(chosen)
        starts = _state_times(session, sla_ids, as_of)
        history, fees = _history(session, month, as_of, sla_ids)
        charges = _charges(session, month, as_of, sla_ids)
        penalties = _penalties(session, month, as_of, sla_ids)
        volumes = _volumes(session, month, as_of, sla_ids)
        customers: dict[int, _Customer] = {}
        for sla_id, (name, customer_id, customer, display, offering, tariff, valid_from, valid_until) in slas.items():
            operational, deinstalled = starts.get(sla_id, (None, None))
            # The fee and included hours are the month's (as the contract stands); usage runs to `until`.
            span = billable_span(month, valid_from, valid_until, operational, deinstalled)
            so_far = span if until is None else billable_span(month, valid_from, valid_until, operational,
                                                              deinstalled, until=until)
            m = SlaMonth(name, offering, _tariff(tariff), month, span,
                         class_usage(history.get(sla_id, []), so_far),
                         tuple(fees.get(sla_id, ())), tuple(charges.get(sla_id, ())),
                         tuple(penalties.get(sla_id, ())), volumes.get(sla_id, {}))
            if span is None and not (m.change_fees or m.policy_charges or m.penalties or m.volumes):
                continue
            customers.setdefault(customer_id, _Customer(customer_id, customer, display, [])).slas.append(m)
        return customers

    def _slas(self, session: Session, chosen: Any) -> dict[int, tuple[Any, ...]]:
        query = (select(SlaRow.id, SlaRow.name, SlaRow.customer_id, CustomerRow.name, CustomerRow.display_name,
                        SlaRow.offering, json_as_text(SlaRow.tariff), SlaRow.valid_from, SlaRow.valid_until)
                 .join(CustomerRow, CustomerRow.id == SlaRow.customer_id).order_by(SlaRow.id))
        if chosen is not None:
            query = query.where(chosen)
        return {row[0]: tuple(row[1:]) for row in session.connection().execute(query).all()}

    def _document(self, customer: _Customer, month: Span, kind: str, number: str, at: datetime) -> Invoice:
        lines = tuple(line for m in customer.slas for line in charge_month(m))
        return Invoice(number, kind, customer.name, customer.display_name, month_name(month), month.start, month.end,
                       at, self.catalog.currency, self.catalog.tax.name, self.catalog.tax.rate_percent, lines)

    def _empty(self, row: CustomerRow, month: Span, at: datetime) -> Invoice:
        return self._document(_Customer(row.id, row.name, row.display_name, []), month, documents.STATEMENT, "", at)

    def _customer(self, session: Session, principal: Principal, name: str) -> CustomerRow:
        row = session.scalar(select(CustomerRow).where(CustomerRow.name == name))
        if row is None or not principal.owns(name) or not (principal.is_domain_manager or
                                                             row.kind == kind_of(principal)):
            raise NotFound(f"customer {name!r} does not exist", field="customer", value=name)
        return row

    def _visible_invoices(self, principal: Principal) -> Any:
        query = select(InvoiceRow.document).join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
        return _only_own(query, principal)


# ---------------------------------------------------------------------- queries (bulk, one per table)

def _in(column: Any, sla_ids: Any) -> Any:
    """The SLAs chosen: all (None), a list of ids, or those a subquery selects."""
    return True if sla_ids is None else column.in_(sla_ids)


def _state_times(session: Session, sla_ids: Any,
                 as_of: datetime) -> dict[int, tuple[datetime | None, datetime | None]]:
    """When each SLA first became operational and when it was deinstalled."""
    t = SlaStateChangeRow.__table__.c
    query = (select(t.sla_id, t.to_state, func.min(t.at))
             .where(t.to_state.in_([LifecycleState.OPERATIONAL.value, LifecycleState.DEINSTALLED.value]),
                    t.at <= as_of, _in(t.sla_id, sla_ids))
             .group_by(t.sla_id, t.to_state))
    rows = session.connection().execute(query)
    out: dict[int, list[datetime | None]] = {}
    for sla_id, state, at in rows:
        slot = out.setdefault(sla_id, [None, None])
        slot[0 if state == LifecycleState.OPERATIONAL.value else 1] = _utc(at)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _history(session: Session, month: Span, as_of: datetime,
             sla_ids: Any) -> tuple[dict[int, list[tuple[int, ServiceClassName, int]]], dict[int, list[ChangeFee]]]:
    """Per SLA, the versions in effect during the month (the one in effect at its start, and every
    later one) as (version, class, effective_from in epoch ms), and the fees of the month's
    changes. Times are converted to integers in SQL: half a million rows for 40,000 SLAs."""
    h = SlsHistoryRow.__table__.c
    before = (select(h.sla_id, func.max(h.version).label("version")).where(h.effective_from < month.start,
                                                                          _in(h.sla_id, sla_ids))
              .group_by(h.sla_id).subquery())
    columns = (h.sla_id, h.version, h.service_class, _epoch_ms(session, h.effective_from), h.fee_cents)
    first = select(*columns).join(before, (before.c.sla_id == h.sla_id) & (before.c.version == h.version))
    later = select(*columns).where(h.effective_from >= month.start, h.effective_from < month.end,
                                   h.effective_from <= as_of, _in(h.sla_id, sla_ids))
    history: dict[int, list[tuple[int, ServiceClassName, int]]] = defaultdict(list)
    fees: dict[int, list[ChangeFee]] = defaultdict(list)
    start = epoch_ms(month.start)
    # Core, not the ORM session: the ORM's row loading costs as much as the query itself here.
    rows = session.connection().execute(select(first.union_all(later).subquery()).order_by("sla_id", "version")).all()
    for sla_id, version, service_class, at, fee in rows:
        history[sla_id].append((version, _CLASSES[service_class], at))
        if fee and at >= start:
            fees[sla_id].append(ChangeFee(version, from_cents(fee)))
    return history, fees


def _epoch_ms(session: Session, column: Any) -> Any:
    """A time column as integer milliseconds since 1970 (sub-millisecond parts dropped), exactly:
    SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (whole seconds from strftime, milliseconds from
    the text); PostgreSQL's EXTRACT(EPOCH) is an exact numeric."""
    if session.get_bind().dialect.name == "sqlite":
        seconds = func.cast(func.strftime("%s", column), Integer)
        return (seconds * 1000 + func.cast(func.substr(column, 21, 3), Integer)).label("at_ms")
    return func.cast(func.floor(extract("epoch", column) * 1000), BigInteger).label("at_ms")


def _charges(session: Session, month: Span, as_of: datetime,
             sla_ids: Any) -> dict[int, list[PolicyCharge]]:
    c = ChargeRow.__table__.c
    query = (select(c.sla_id, c.id, c.at, c.amount_cents, c.text, c.policy, c.event_key)
             .where(c.at >= month.start, c.at < month.end, c.at <= as_of, _in(c.sla_id, sla_ids)).order_by(c.id))
    rows = session.connection().execute(query)
    out: dict[int, list[PolicyCharge]] = defaultdict(list)
    for sla_id, id_, at, cents_, text_, policy, event_key in rows:
        out[sla_id].append(PolicyCharge(id_, _utc(at), from_cents(cents_), text_, policy, event_key))
    return out


def _penalties(session: Session, month: Span, as_of: datetime,
               sla_ids: Any) -> dict[int, list[PenaltyCredit]]:
    p = PenaltyCreditRow.__table__.c
    query = (select(p.sla_id, p.amount_cents, p.reason)
             .where(p.month == month.start, p.created_at <= as_of, _in(p.sla_id, sla_ids)).order_by(p.id))
    rows = session.connection().execute(query)
    out: dict[int, list[PenaltyCredit]] = defaultdict(list)
    for sla_id, cents_, reason in rows:
        out[sla_id].append(PenaltyCredit(from_cents(cents_), reason))
    return out


def _volumes(session: Session, month: Span, as_of: datetime,
             sla_ids: Any) -> dict[int, dict[ServiceClassName, Volume]]:
    """Usage records attributed to the month their interval starts in."""
    u = UsageRecordRow.__table__.c
    query = (select(u.sla_id, u.service_class, func.sum(u.octets), func.sum(u.packets), func.count())
             .where(u.flow_start_ms >= epoch_ms(month.start), u.flow_start_ms < epoch_ms(month.end),
                    u.recorded_at <= as_of, _in(u.sla_id, sla_ids))
             .group_by(u.sla_id, u.service_class))
    rows = session.connection().execute(query)
    out: dict[int, dict[ServiceClassName, Volume]] = defaultdict(dict)
    for sla_id, service_class, octets, packets, count in rows:
        out[sla_id][_CLASSES[service_class]] = Volume(int(octets), int(packets), int(count))
    return out


# ---------------------------------------------------------------------- small pieces

_CLASSES = {c.value: c for c in ServiceClassName}
_TARIFFS: dict[str, Tariff] = {}


def _tariff(text_: str) -> Tariff:
    # Thousands of SLAs share a handful of tariffs: parse each distinct text once.
    if text_ not in _TARIFFS:
        _TARIFFS[text_] = Tariff.model_validate_json(text_)
    return _TARIFFS[text_]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _renumbered(again: Invoice, issued: Invoice) -> Invoice:
    return replace(again, number=issued.number, kind=issued.kind, issued_at=issued.issued_at)


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """A month of invoices allocates millions of short-lived objects and makes no reference
    cycles; the cyclic collector would rescan everything already loaded again and again (a
    quarter of the time at 12,000 customers, growing with the batch)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def invoice_number(month: str, customer_id: int, kind: str = documents.INVOICE, seq: int = 0) -> str:
    """INV-2026-11-000042 for customer 42's November invoice; its notes CN-/DN-2026-11-000042-1, -2...
    Derived, not drawn from a counter: issuers computing in parallel need no lock, and the
    database's uniqueness of (customer, month, seq) is the guard."""
    base = f"{_PREFIX[kind]}-{month}-{customer_id:06d}"
    return base if seq == 0 else f"{base}-{seq}"


def _row(invoice: Invoice, customer_id: int, seq: int, refers_to: str | None) -> dict[str, Any]:
    text_ = documents.canonical_json(documents.to_document(invoice))
    return {"number": invoice.number, "kind": invoice.kind, "customer_id": customer_id, "month": invoice.month,
            "seq": seq, "refers_to": refers_to, "issued_at": invoice.issued_at, "currency": invoice.currency,
            "total_cents": to_cents(invoice.total), "document": text_, "digest": documents.digest(text_)}


def _invoiced(session: Session, month: str, among: Sequence[int] | None = None) -> set[int]:
    """The customers that have the month's invoice (among these, if given)."""
    query = select(InvoiceRow.customer_id).where(InvoiceRow.month == month, InvoiceRow.seq == 0)
    if among is not None and len(among) <= _ID_LIST_LIMIT:
        query = query.where(InvoiceRow.customer_id.in_(list(among)))
    return set(session.scalars(query))


def _billed(customer: _Customer) -> bool:
    return any(m.billable is not None or m.change_fees or m.policy_charges or m.penalties for m in customer.slas)


def _only_own(query: Any, principal: Principal) -> Any:
    """The service layer's reading rule: a customer or peer reaches its own customer row only."""
    if principal.is_domain_manager:
        return query
    return query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))


def _class_usage(m: SlaMonth) -> list[ClassUsage]:
    share = m.share
    used = {c: use.ms for c, use in m.usage.items()}
    return [ClassUsage(m.sla, c.value, hours(used.get(c, 0)), included_hours(t, share) if m.billable else None,
                       m.volumes.get(c, Volume()).octets, m.volumes.get(c, Volume()).packets)
            for c, t in m.tariff.classes.items() if used.get(c) or c in m.volumes]
