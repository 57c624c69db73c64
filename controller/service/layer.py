"""The service layer: principals, authorization, SLA/SLS checks, admission and events, in ONE place.

Every northbound adapter is a thin translation onto these methods. Each public method is one
database transaction: it loads state, asks the pure checking function (controller.domain.checks),
writes, records events in the same transaction, and publishes them once committed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import JSON, bindparam, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controller.domain.catalog import AvailabilityObjective, Catalog, ChangePolicy, ClassBounds, ServiceClassName
from controller.domain.checks import (Demand, LinkLoad, Measure, PrefixRegistry, admit, check_attachment,
                                      check_sla_terms, check_sls_change, require_domain_manager, shares_exceeded,
                                      sla_reservation, sls_demand)
from controller.domain.errors import ClassNotAllowed, Conflict, CsmmError, InvalidValue, NotFound, OutOfBounds
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import Attachment, Customer, CustomerKind, LifecycleState, Sla, SlaTerms, check_transition
from controller.domain.sls import Sls, SlsHistoryEntry, SlsSetting
from controller.domain.topology import Topology
from controller.domain.conformance import Conformance
from controller.domain.units import format_bandwidth, from_cents, to_cents
from controller.mapping import RouterQos, render_router_configs
from controller.service import events as ev
from controller.service.events import Event, EventBus
from controller.store import records
from controller.store.database import Database
from controller.store.records import FeedbackRecord
from controller.store.schema import (ConformanceRow, CustomerRow, EventRow, InterfaceRow, LinkRow, PenaltyCreditRow,
                                     RouterRow, SlaRow, SlaStateChangeRow, SlsHistoryRow, SlsRow)

log = logging.getLogger(__name__)

T = TypeVar("T")
SlaRef = int | str
Progress = Callable[[int], None]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SlaSpec:
    """What the domain manager asks for. Unset terms come from the offering; default bounds are
    the offering's with each maximum capped at the access speed."""

    name: str
    customer: str
    offering: str
    attachment: Attachment
    bounds: dict[ServiceClassName, ClassBounds] | None = None
    change_policy: ChangePolicy | None = None
    availability: AvailabilityObjective | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    state: LifecycleState = LifecycleState.OFFERED
    initial_class: ServiceClassName | None = None
    initial_bandwidth_bps: int | None = None


class Keep(Enum):
    """A term left as it is (where None has a meaning of its own: no end of validity)."""

    KEEP = "keep"


def amended_spec(current: Sla, *, offering: str | None = None, access_speed_bps: int | None = None,
                 prefixes: Sequence[str] = (), bounds: dict[ServiceClassName, ClassBounds] | None = None,
                 valid_until: datetime | None | Keep = Keep.KEEP) -> SlaSpec:
    """The spec of `current` with the given terms changed, the others kept: what `csmm sla set`,
    REST's PATCH and the console's form ask `modify_sla` for. Moving to another offering without
    bounds takes the new offering's; valid_until=None makes the SLA open-ended."""
    t = current.terms
    attachment = Attachment(t.attachment.router, t.attachment.interface,
                            access_speed_bps or t.attachment.access_speed_bps, tuple(prefixes) or t.attachment.prefixes)
    return SlaSpec(name=current.name, customer=current.customer, offering=offering or t.offering, attachment=attachment,
                   bounds=bounds or (None if offering and offering != t.offering else t.bounds),
                   change_policy=t.change_policy, availability=t.availability, valid_from=t.valid_from,
                   valid_until=t.valid_until if valid_until is Keep.KEEP else valid_until, state=current.state)


@dataclass(frozen=True)
class SlsChange:
    sls: Sls
    fee: Decimal
    changed: bool  # False when the request equalled the SLS in effect (nothing recorded, no fee)


@dataclass
class _Tx:
    """What one transaction collects: events to store and publish after commit."""

    session: Session
    now: datetime
    principal: Principal
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, subject: str, **payload: Any) -> None:
        self.events.append(Event(type_, self.now, subject, str(self.principal), payload))


class ServiceLayer:
    def __init__(self, database: Database, catalog: Catalog, *, overbooking: Decimal = Decimal(1),
                 clock: Callable[[], datetime] = utc_now, bus: EventBus | None = None) -> None:
        if overbooking <= 0:
            raise InvalidValue("overbooking factor must be positive", field="overbooking", value=str(overbooking))
        self.database = database
        self.catalog = catalog
        self.overbooking = overbooking
        self.clock = clock
        self.bus = bus or EventBus()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _write(self, principal: Principal) -> Iterator[_Tx]:
        with self.database.write() as session:
            tx = _Tx(session, self.clock(), principal)
            yield tx
            if tx.events:
                session.connection().execute(_INSERT_EVENT, [
                    {"at": e.at, "type": e.type, "subject": e.subject, "principal": e.principal, "payload": e.payload}
                    for e in tx.events])
        self.bus.publish(tx.events)

    def transaction(self, principal: Principal) -> AbstractContextManager[_Tx]:
        """One write transaction for an adapter's own records (SNMP users, ...): events emitted on
        the handle are stored in the same transaction and published once it commits."""
        return self._write(principal)

    def _retrying(self, action: Callable[[], T]) -> T:
        """Retry a write that PostgreSQL aborted as a deadlock or serialization failure."""
        for attempt in range(5):
            try:
                return action()
            except DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate not in ("40P01", "40001") or attempt == 4:
                    raise
                log.info("retrying after %s (attempt %d)", sqlstate, attempt + 1)
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _lock_tables_for_rebuild(self, session: Session) -> None:
        # Order sls -> links, as every writer takes its locks (see controller.store.database).
        if not self.database.is_sqlite:
            session.execute(text("LOCK TABLE sls, links IN EXCLUSIVE MODE"))

    def _serialize_sla_writers(self, session: Session) -> None:
        # SLA creations and modifications check prefixes against all other SLAs: let one at a time
        # run (they are rare). Taken before any other lock, so the lock order is unchanged.
        if not self.database.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SLA_WRITERS_LOCK})

    def _mark_sls_writer(self, session: Session) -> None:
        # SLA creation inserts into sls after locking links; take the sls table lock first so the
        # lock order stays sls -> links for every writer.
        if not self.database.is_sqlite:
            session.execute(text("LOCK TABLE sls IN ROW EXCLUSIVE MODE"))

    # ------------------------------------------------------------------ reads

    def list_customers(self, principal: Principal) -> list[Customer]:
        with self.database.read() as session:
            query = select(*CustomerRow.__table__.c).order_by(CustomerRow.name)
            if not principal.is_domain_manager:
                query = query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))
            return [records.customer_from_row(row) for row in session.execute(query)]

    def get_customer(self, principal: Principal, name: str) -> Customer:
        with self.database.read() as session:
            return records.customer_from_row(self._customer_row(session, principal, name))

    def list_slas(self, principal: Principal, customer: str | None = None) -> list[Sla]:
        with self.database.read() as session:
            return [records.sla_from_columns(row) for row in session.execute(self._visible_slas(principal, customer))]

    def _visible_slas(self, principal: Principal, customer: str | None, *extra: Any) -> Any:
        query = _sla_rows(*extra).order_by(SlaRow.id)
        if not principal.is_domain_manager:
            query = query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))
        if customer is not None:
            query = query.where(CustomerRow.name == customer)
        return query

    def get_sla(self, principal: Principal, ref: SlaRef) -> Sla:
        with self.database.read() as session:
            return self._sla(session, principal, ref)

    def get_sls(self, principal: Principal, ref: SlaRef) -> Sls:
        with self.database.read() as session:
            sla = self._sla(session, principal, ref)
            return records.sls_from_row(self._sls_row(session, sla.id))

    def list_sls(self, principal: Principal, customer: str | None = None) -> list[tuple[Sla, Sls]]:
        with self.database.read() as session:
            return self._list_sls(session, principal, customer)

    def _list_sls(self, session: Session, principal: Principal, customer: str | None = None) -> list[tuple[Sla, Sls]]:
        columns = [c.label(f"sls_{c.name}") for c in SlsRow.__table__.c if c.name != "sla_id"]
        query = self._visible_slas(principal, customer, *columns).join(SlsRow, SlsRow.sla_id == SlaRow.id)
        return [(records.sla_from_columns(row), records.sls_from_columns(row)) for row in session.execute(query)]

    def sls_settings(self, principal: Principal) -> list[SlsSetting]:
        """Class and bandwidth in effect of every SLA the principal may see, and nothing else: the
        cheap read behind a NETCONF get-config of thousands of entries."""
        sls = SlsRow.__table__.c  # table columns: plain rows, a third cheaper than through the ORM entity
        query = select(sls.sla_id, sls.service_class, sls.bandwidth_bps).order_by(sls.sla_id)
        if not principal.is_domain_manager:  # every SLS row has its SLA: the domain manager needs no join
            query = (query.join(SlaRow, sls.sla_id == SlaRow.id).join(CustomerRow, SlaRow.customer_id == CustomerRow.id)
                     .where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal)))
        with self.database.read() as session:
            return [records.sls_setting(*row) for row in session.execute(query)]

    def sla_owners(self, principal: Principal) -> dict[int, str]:
        """SLA id -> its customer's name, for the SLAs the principal may see."""
        query = select(SlaRow.id, CustomerRow.name).join(CustomerRow, SlaRow.customer_id == CustomerRow.id)
        if not principal.is_domain_manager:
            query = query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))
        with self.database.read() as session:
            return {sla_id: customer for sla_id, customer in session.execute(query)}

    def last_customer_changes(self, principal: Principal, sla_id: int | None = None) -> dict[int, datetime]:
        """SLA id -> when its customer last changed the SLS (the change policy counts from it), for
        the SLAs the principal may see that have had such a change; one SLA's only if given."""
        with self.database.read() as session:
            query = (self._visible_slas(principal, None, SlsRow.last_customer_change_at)
                     .join(SlsRow, SlsRow.sla_id == SlaRow.id).where(SlsRow.last_customer_change_at.is_not(None)))
            if sla_id is not None:
                query = query.where(SlaRow.id == sla_id)
            return {row.id: row.last_customer_change_at for row in session.execute(query)}

    def sls_history(self, principal: Principal, ref: SlaRef) -> list[SlsHistoryEntry]:
        with self.database.read() as session:
            sla = self._sla(session, principal, ref)
            rows = session.scalars(select(SlsHistoryRow).where(SlsHistoryRow.sla_id == sla.id).order_by(SlsHistoryRow.version))
            return [records.history_from_row(row) for row in rows]

    def next_change_allowed(self, principal: Principal, ref: SlaRef) -> datetime | None:
        """When a customer may next change this SLS (None: now)."""
        with self.database.read() as session:
            sla = self._sla(session, principal, ref)
            last = self._sls_row(session, sla.id).last_customer_change_at
        interval = sla.terms.change_policy.min_interval
        if last is None or not interval or last + interval <= self.clock():
            return None
        return last + interval

    def topology(self, principal: Principal) -> Topology:
        require_domain_manager(principal, "read the topology")
        with self.database.read() as session:
            return self._topology(session)

    def link_loads(self, principal: Principal) -> list[LinkLoad]:
        require_domain_manager(principal, "read link loads")
        with self.database.read() as session:
            return [_load_from_row(row) for row in session.scalars(select(LinkRow).order_by(LinkRow.name))]

    def router_configs(self, principal: Principal) -> dict[str, RouterQos]:
        """The mapping function's output for the SLSs in effect: one QoS config per router."""
        require_domain_manager(principal, "read router configurations")
        with self.database.read(snapshot=True) as session:
            topology, slas = self._topology(session), self._list_sls(session, principal)
        return render_router_configs(topology, slas, self.catalog)

    def conformance(self, principal: Principal) -> dict[int, Conformance]:
        """SLA id -> its latest conformance (controller.feedback), for the SLAs the principal may
        see that have been measured."""
        query = (select(ConformanceRow).join(SlaRow, SlaRow.id == ConformanceRow.sla_id)
                 .join(CustomerRow, SlaRow.customer_id == CustomerRow.id))
        if not principal.is_domain_manager:
            query = query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))
        with self.database.read() as session:
            return {row.sla_id: records.conformance_from_row(row) for row in session.scalars(query)}

    def feedback_records(self, principal: Principal) -> dict[int, FeedbackRecord]:
        """What the feedback part kept of every SLA: the month's accounting it carries on from."""
        require_domain_manager(principal, "read the feedback records")
        with self.database.read() as session:
            return {row.sla_id: records.feedback_record_from_row(row) for row in session.scalars(select(ConformanceRow))}

    def record_feedback(self, principal: Principal, measured: Sequence[FeedbackRecord],
                        crossings: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
        """Store what the feedback part measured, in one transaction: each SLA's conformance (an
        upsert), and sla.violation / sla.cleared events ((SLA id, event type, payload)). An
        availability violation's penalty credit is recorded once per SLA and month."""
        require_domain_manager(principal, "record conformance")

        def run() -> None:
            with self._write(principal) as tx:
                self._upsert_conformance(tx.session, [records.conformance_values(r, tx.now) for r in measured])
                names = dict(tx.session.execute(select(SlaRow.id, SlaRow.name).where(
                    SlaRow.id.in_({sla_id for sla_id, _, _ in crossings}))).all()) if crossings else {}
                for sla_id, event_type, payload in crossings:
                    credit = payload.get("penalty_credit")
                    if credit is not None and not self._credit_exists(tx.session, sla_id, payload["month"]):
                        tx.session.add(PenaltyCreditRow(
                            sla_id=sla_id, month=datetime.fromisoformat(payload["month"]),
                            amount_cents=to_cents(Decimal(credit)), created_at=tx.now,
                            reason=f"availability {payload['measured'] / 100:.2f} % below the objective"))
                    tx.emit(event_type, f"sla:{names.get(sla_id, sla_id)}", sla_id=sla_id, **payload)
        self._retrying(run)

    def _upsert_conformance(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Insert or replace conformance rows in one statement (thousands every few seconds)."""
        if not rows:
            return
        table = ConformanceRow.__table__
        statement = (sqlite_insert if self.database.is_sqlite else postgresql_insert)(table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.sla_id], set_={c.name: statement.excluded[c.name] for c in table.c if c.name != "sla_id"})
        session.connection().execute(statement, rows)

    @staticmethod
    def _credit_exists(session: Session, sla_id: int, month: str) -> bool:
        query = select(PenaltyCreditRow.id).where(PenaltyCreditRow.sla_id == sla_id,
                                                  PenaltyCreditRow.month == datetime.fromisoformat(month))
        return session.execute(query).first() is not None

    def penalty_credits(self, principal: Principal) -> list[tuple[int, datetime, Decimal, str]]:
        """(SLA id, month, amount, reason) of the credits owed on the SLAs the principal may see."""
        query = (select(PenaltyCreditRow).join(SlaRow, SlaRow.id == PenaltyCreditRow.sla_id)
                 .join(CustomerRow, SlaRow.customer_id == CustomerRow.id).order_by(PenaltyCreditRow.id))
        if not principal.is_domain_manager:
            query = query.where(CustomerRow.name == principal.customer, CustomerRow.kind == kind_of(principal))
        with self.database.read() as session:
            return [(r.sla_id, r.month, from_cents(r.amount_cents), r.reason) for r in session.scalars(query)]

    def recent_events(self, principal: Principal, limit: int = 50) -> list[Event]:
        require_domain_manager(principal, "read the event log")
        with self.database.read() as session:
            rows = session.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(limit))
            return [Event(r.type, r.at, r.subject, r.principal, r.payload, r.id) for r in rows]

    def sla_events(self, principal: Principal, types: Sequence[str], limit: int = 100) -> list[Event]:
        """The newest events of these types about the SLAs the principal may see (subject sla:NAME)."""
        query = select(EventRow).where(EventRow.type.in_(types)).order_by(EventRow.id.desc()).limit(limit)
        if not principal.is_domain_manager:
            query = query.where(EventRow.subject.in_([f"sla:{sla.name}" for sla in self.list_slas(principal)]))
        with self.database.read() as session:
            rows = session.scalars(query)
            return [Event(r.type, r.at, r.subject, r.principal, r.payload, r.id) for r in rows]

    # ------------------------------------------------------------------ customers

    def add_customer(self, principal: Principal, name: str, kind: CustomerKind, display_name: str = "") -> Customer:
        require_domain_manager(principal, "add customers")

        def run() -> Customer:
            with self._write(principal) as tx:
                return self._add_customers(tx, [(name, kind, display_name or name)])[0]
        try:
            return self._retrying(run)
        except IntegrityError:  # a concurrent add of the same name won the race
            raise Conflict(f"customer {name!r} already exists", field="customer.name", value=name) from None

    def _add_customers(self, tx: _Tx, wanted: Sequence[tuple[str, CustomerKind, str]]) -> list[Customer]:
        if not wanted:
            return []
        for name, _, _ in wanted:
            _check_name(name, "customer.name")
        names = [name for name, _, _ in wanted]
        taken = _present(tx.session, CustomerRow.name, names)
        if taken or len(set(names)) != len(names):
            duplicate = sorted(taken)[0] if taken else next(n for n in names if names.count(n) > 1)
            raise Conflict(f"customer {duplicate!r} already exists", field="customer.name", value=duplicate)
        rows = tx.session.execute(
            insert(CustomerRow.__table__).returning(CustomerRow.id, sort_by_parameter_order=True),
            [{"name": n, "kind": k.value, "display_name": d} for n, k, d in wanted]).scalars().all()
        for name, kind, _ in wanted:
            tx.emit(ev.CUSTOMER_ADDED, f"customer:{name}", kind=kind.value)
        return [Customer(i, n, k, d) for i, (n, k, d) in zip(rows, wanted)]

    # ------------------------------------------------------------------ SLAs

    def create_sla(self, principal: Principal, spec: SlaSpec, channel: Channel = Channel.CLI) -> Sla:
        require_domain_manager(principal, "create or change SLAs")

        def run() -> list[int]:
            with self._write(principal) as tx:
                return self._create_slas(tx, [spec], channel)
        created = self._retrying(run)
        return self.get_sla(principal, created[0])

    def _create_slas(self, tx: _Tx, specs: Sequence[SlaSpec], channel: Channel,
                     progress: Progress | None = None) -> list[int]:
        """Check and insert SLAs in bulk; all or nothing. Returns the new SLA ids."""
        if not specs:
            return []
        session = tx.session
        self._serialize_sla_writers(session)
        self._mark_sls_writer(session)
        topology = self._topology(session)
        customers = self._customers_by_name(session, {s.customer for s in specs})
        names = [s.name for s in specs]
        for name in names:
            _check_name(name, "sla.name")
        clash = sorted(_present(session, SlaRow.name, names))
        if clash or len(set(names)) != len(names):
            duplicate = clash[0] if clash else next(n for n in names if names.count(n) > 1)
            raise Conflict(f"SLA {duplicate!r} already exists", field="sla.name", value=duplicate)
        prefixes = self._prefix_registry(session)
        paths: dict[str, tuple[str, ...]] = {}
        planned: list[tuple[SlaSpec, SlaTerms, tuple[str, ...], ServiceClassName, int]] = []
        for spec in specs:
            try:
                customer = customers.get(spec.customer)
                if customer is None:
                    raise NotFound(f"customer {spec.customer!r} does not exist", field="customer", value=spec.customer)
                terms = self.resolve_terms(spec)
                check_sla_terms(terms, self.catalog.offering(spec.offering), customer.kind, topology)
                if spec.state == LifecycleState.DEINSTALLED:
                    raise InvalidValue("a new SLA cannot start deinstalled", field="state", value=spec.state.value)
                for prefix in terms.attachment.prefixes:
                    prefixes.add(prefix, spec.name)
                if terms.attachment.router not in paths:
                    paths[terms.attachment.router] = topology.path_to_egress(terms.attachment.router)
                service_class, bandwidth = self._initial_sls(spec, terms)
            except CsmmError as exc:
                raise exc.within(f"SLA {spec.name}") from None
            planned.append((spec, terms, paths[terms.attachment.router], service_class, bandwidth))

        loads = self._lock_loads(session, sorted({name for _, _, path, _, _ in planned for name in path}))
        for spec, terms, path, service_class, bandwidth in planned:
            try:
                self._admit_on(loads, path, sla_reservation(terms.bounds), "reserved")
                self._admit_on(loads, path, sls_demand(service_class, bandwidth), "in_use")
            except CsmmError as exc:
                raise exc.within(f"SLA {spec.name}") from None

        ids: list[int] = []
        chunk = max(100, min(2000, len(planned) // 20))  # ~20 progress steps on a large apply
        for start in range(0, len(planned), chunk):
            part = planned[start:start + chunk]
            ids.extend(self._insert_slas(tx, customers, part, channel))
            if progress:
                progress(len(part))
        self._store_loads(session, loads)
        return ids

    def _insert_slas(self, tx: _Tx, customers: dict[str, Customer],
                     planned: Sequence[tuple[SlaSpec, SlaTerms, tuple[str, ...], ServiceClassName, int]],
                     channel_used: Channel) -> list[int]:
        session, now, who, channel = tx.session, tx.now, str(tx.principal), channel_used.value
        ids = list(session.execute(insert(SlaRow.__table__).returning(SlaRow.id, sort_by_parameter_order=True), [
            {"name": spec.name, "customer_id": customers[spec.customer].id, **records.terms_columns(terms),
             "state": spec.state.value, "path": list(path), "created_at": now, "updated_at": now}
            for spec, terms, path, _, _ in planned]).scalars())
        session.execute(insert(SlsRow.__table__), [
            {"sla_id": i, "service_class": c.value, "bandwidth_bps": b, "version": 1, "changed_at": now,
             "changed_by": who, "channel": channel, "last_customer_change_at": None}
            for i, (_, _, _, c, b) in zip(ids, planned)])
        session.execute(insert(SlsHistoryRow.__table__), [
            {"sla_id": i, "version": 1, "service_class": c.value, "bandwidth_bps": b, "effective_from": now,
             "principal": who, "channel": channel, "fee_cents": 0}
            for i, (_, _, _, c, b) in zip(ids, planned)])
        session.execute(insert(SlaStateChangeRow.__table__), [
            {"sla_id": i, "at": now, "from_state": None, "to_state": spec.state.value, "principal": who, "note": "created"}
            for i, (spec, _, _, _, _) in zip(ids, planned)])
        for i, (spec, terms, _, c, b) in zip(ids, planned):
            tx.emit(ev.SLA_CREATED, f"sla:{spec.name}", sla_id=i, customer=spec.customer, offering=terms.offering,
                    state=spec.state.value, service_class=c.value, bandwidth_bps=b)
        return ids

    def modify_sla(self, principal: Principal, ref: SlaRef, spec: SlaSpec) -> Sla:
        """Replace an SLA's terms. The SLS in effect must still fit them; admission runs again."""
        require_domain_manager(principal, "create or change SLAs")

        def run() -> int:
            with self._write(principal) as tx:
                return self._modify_sla(tx, ref, spec)
        return self.get_sla(principal, self._retrying(run))

    def _modify_sla(self, tx: _Tx, ref: SlaRef, spec: SlaSpec) -> int:
        """Apply new terms to an SLA; returns its id."""
        session = tx.session
        self._serialize_sla_writers(session)
        sls_row = self._lock_sls(session, ref)
        sla_row = self._sla_row(session, ref)
        customer = session.get(CustomerRow, sla_row.customer_id)
        assert customer is not None
        if spec.name != sla_row.name:
            raise Conflict(f"SLA {sla_row.name} cannot be renamed to {spec.name}", field="name",
                           bound=sla_row.name, value=spec.name)
        if spec.customer != customer.name:
            raise Conflict(f"SLA {sla_row.name} belongs to {customer.name}; it cannot move to {spec.customer}",
                           field="customer", bound=customer.name, value=spec.customer)
        old = records.sla_from_row(sla_row, customer)
        if old.state == LifecycleState.DEINSTALLED:
            raise Conflict(f"SLA {old.name} is deinstalled; it cannot be modified", field="state", value=old.state.value)
        if spec.state == LifecycleState.DEINSTALLED:
            # A contract that ends now keeps the terms it ran under; deinstalling releases exactly
            # what those terms reserved.
            self._set_state(tx, sla_row, old, spec.state, "provisioning")
            return old.id
        terms = self.resolve_terms(spec, old.terms)
        topology = self._topology(session)
        check_sla_terms(terms, self.catalog.offering(spec.offering), old.customer_kind, topology)
        current = records.sls_from_row(sls_row)
        bounds = terms.bounds.get(current.service_class)
        if bounds is None or not bounds.min <= current.bandwidth_bps <= bounds.max:
            raise Conflict(f"the SLS in effect ({current.service_class} {format_bandwidth(current.bandwidth_bps)}) "
                           f"would be outside the new terms; change the SLS first",
                           field=f"bounds.{current.service_class.value}",
                           bound=bounds.model_dump() if bounds else None, value=current.bandwidth_bps)
        registry = self._prefix_registry(session, exclude=old.name)
        for prefix in terms.attachment.prefixes:
            registry.add(prefix, old.name)
        path = topology.path_to_egress(terms.attachment.router)
        loads = self._lock_loads(session, sorted(set(path) | set(old.path)))
        in_use = sls_demand(current.service_class, current.bandwidth_bps)
        self._admit_on(loads, old.path, Demand() - sla_reservation(old.terms.bounds), "reserved", check=False)
        self._admit_on(loads, old.path, Demand() - in_use, "in_use", check=False)
        self._admit_on(loads, path, sla_reservation(terms.bounds), "reserved")
        self._admit_on(loads, path, in_use, "in_use")
        self._store_loads(session, loads)
        changed = _changed_fields(records.terms_columns(old.terms), records.terms_columns(terms))
        for column, value in records.terms_columns(terms).items():
            setattr(sla_row, column, value)
        sla_row.path = list(path)
        sla_row.updated_at = tx.now
        if spec.state != old.state:
            self._set_state(tx, sla_row, replace(old, terms=terms, path=path), spec.state, "provisioning")
        if changed:
            tx.emit(ev.SLA_CHANGED, f"sla:{old.name}", sla_id=old.id, fields=changed)
        return old.id

    def set_sla_state(self, principal: Principal, ref: SlaRef, state: LifecycleState, note: str = "") -> Sla:
        require_domain_manager(principal, "create or change SLAs")

        def run() -> None:
            with self._write(principal) as tx:
                self._lock_sls(tx.session, ref)
                sla_row = self._sla_row(tx.session, ref)
                customer = tx.session.get(CustomerRow, sla_row.customer_id)
                assert customer is not None
                self._set_state(tx, sla_row, records.sla_from_row(sla_row, customer), state, note)
        self._retrying(run)
        return self.get_sla(principal, ref)

    def _set_state(self, tx: _Tx, sla_row: SlaRow, sla: Sla, state: LifecycleState, note: str) -> None:
        check_transition(sla.state, state)
        if state == LifecycleState.DEINSTALLED:
            # A deinstalled SLA no longer reserves or uses anything.
            sls = records.sls_from_row(self._sls_row(tx.session, sla.id))
            loads = self._lock_loads(tx.session, sorted(sla.path))
            self._admit_on(loads, sla.path, Demand() - sla_reservation(sla.terms.bounds), "reserved", check=False)
            self._admit_on(loads, sla.path, Demand() - sls_demand(sls.service_class, sls.bandwidth_bps), "in_use", check=False)
            self._store_loads(tx.session, loads)
        sla_row.state = state.value
        sla_row.updated_at = tx.now
        tx.session.add(SlaStateChangeRow(sla_id=sla.id, at=tx.now, from_state=sla.state.value, to_state=state.value,
                                         principal=str(tx.principal), note=note))
        tx.emit(ev.SLA_STATE_CHANGED, f"sla:{sla.name}", sla_id=sla.id, from_state=sla.state.value, to_state=state.value)

    def state_history(self, principal: Principal, ref: SlaRef) -> list[tuple[datetime, str | None, str, str, str]]:
        with self.database.read() as session:
            sla = self._sla(session, principal, ref)
            rows = session.scalars(select(SlaStateChangeRow).where(SlaStateChangeRow.sla_id == sla.id).order_by(SlaStateChangeRow.id))
            return [(r.at, r.from_state, r.to_state, r.principal, r.note) for r in rows]

    # ------------------------------------------------------------------ SLS

    def change_sls(self, principal: Principal, ref: SlaRef, service_class: ServiceClassName | str, bandwidth_bps: int,
                   channel: Channel, expected_version: int | None = None) -> SlsChange:
        """Change the class and bandwidth in effect. Customers and peers may change only their own
        SLS; the checking function and admission control decide; nothing changes on refusal."""
        try:
            wanted = ServiceClassName(service_class)
        except ValueError:
            raise InvalidValue(f"sls.class must be one of {', '.join(c.value for c in ServiceClassName)}, "
                               f"not {service_class!r}", field="sls.class",
                               bound=[c.value for c in ServiceClassName], value=str(service_class)) from None
        if bandwidth_bps < 0:
            raise OutOfBounds("sls.bandwidth must not be negative", field="sls.bandwidth", bound=0, value=bandwidth_bps)

        def run() -> SlsChange:
            with self._write(principal) as tx:
                return self._change_sls(tx, ref, wanted, bandwidth_bps, channel, expected_version)
        return self._retrying(run)

    def change_sls_batch(self, principal: Principal,
                         changes: Sequence[tuple[SlaRef, ServiceClassName | str | None, int | None]],
                         channel: Channel, *, dry_run: bool = False) -> list[SlsChange]:
        """Several SLS changes as one: all are checked and applied in one transaction, or none is
        (the first refusal is raised, with the SLA it concerns). A class or bandwidth of None keeps
        the one in effect (a NETCONF merge of one leaf), read in the same transaction. `dry_run`
        checks and changes nothing (NETCONF's test-only, SNMP's test phase)."""
        wanted: list[tuple[SlaRef, ServiceClassName | None, int | None]] = []
        for ref, service_class, bandwidth_bps in changes:
            try:
                wanted.append((ref, None if service_class is None else ServiceClassName(service_class), bandwidth_bps))
            except ValueError:
                raise InvalidValue(f"sls.class must be one of {', '.join(c.value for c in ServiceClassName)}, "
                                   f"not {service_class!r}", field="sls.class",
                                   bound=[c.value for c in ServiceClassName], value=str(service_class)) from None
            if bandwidth_bps is not None and bandwidth_bps < 0:
                raise OutOfBounds("sls.bandwidth must not be negative", field="sls.bandwidth", bound=0,
                                  value=bandwidth_bps)

        def run() -> list[SlsChange]:
            try:
                with self._write(principal) as tx:
                    done = []
                    for ref, service_class, bandwidth_bps in wanted:
                        try:
                            done.append(self._change_sls(tx, ref, service_class, bandwidth_bps, channel, None))
                        except CsmmError as exc:
                            exc.subject = ref
                            raise
                    if dry_run:
                        raise _DryRun(done)
                    return done
            except _DryRun as finished:
                return finished.changes
        return self._retrying(run)

    def _change_sls(self, tx: _Tx, ref: SlaRef, wanted_class: ServiceClassName | None, wanted_bandwidth: int | None,
                    channel: Channel, expected_version: int | None) -> SlsChange:
        # Core statements, not ORM objects: this is every interface's hot path (a NETCONF edit, an
        # SNMP set), and the unit of work's flush costs more than the change itself.
        session = tx.session
        locked = self._lock_sls_columns(session, ref)  # before reading the terms: a concurrent modify_sla holds it
        sla = self._sla(session, tx.principal, ref)
        current = records.sls_from_row(locked)
        wanted = current.service_class if wanted_class is None else wanted_class
        bandwidth_bps = current.bandwidth_bps if wanted_bandwidth is None else wanted_bandwidth
        if expected_version is not None and expected_version != current.version:
            raise Conflict(f"SLS of {sla.name} is at version {current.version}, not {expected_version}",
                           field="sls.version", bound=current.version, value=expected_version)
        if tx.now < current.changed_at:
            # Only a replayed scenario (`csmm --now`) can get here; billing needs history in time order.
            raise Conflict(f"SLS of {sla.name} was last changed at {current.changed_at.isoformat()}, after "
                           f"{tx.now.isoformat()}: time cannot run backwards", field="time",
                           bound=current.changed_at, value=tx.now)
        if (wanted, bandwidth_bps) == (current.service_class, current.bandwidth_bps):
            # Asking for what is in effect (a client retrying after a lost answer) is not a change.
            return SlsChange(current, Decimal("0.00"), changed=False)
        fee = check_sls_change(sla, current, locked.last_customer_change_at, wanted, bandwidth_bps, tx.principal,
                               tx.now)
        delta = sls_demand(wanted, bandwidth_bps) - sls_demand(current.service_class, current.bandwidth_bps)
        if delta != Demand():
            loads = self._lock_loads(session, sorted(sla.path))
            self._admit_on(loads, sla.path, delta, "in_use")
            self._store_loads(session, loads)
        changed = Sls(sla.id, wanted, bandwidth_bps, current.version + 1, tx.now, str(tx.principal), channel)
        by_customer = not tx.principal.is_domain_manager  # the change policy counts customers' changes only
        session.connection().execute(_UPDATE_SLS, {
            "sla": sla.id, "service_class": wanted.value, "bandwidth_bps": bandwidth_bps, "version": changed.version,
            "changed_at": tx.now, "changed_by": changed.changed_by, "channel": channel.value,
            "last_customer_change_at": tx.now if by_customer else locked.last_customer_change_at})
        session.connection().execute(_INSERT_HISTORY, {
            "sla_id": sla.id, "version": changed.version, "service_class": wanted.value, "bandwidth_bps": bandwidth_bps,
            "effective_from": tx.now, "principal": changed.changed_by, "channel": channel.value,
            "fee_cents": to_cents(fee)})
        tx.emit(ev.SLS_CHANGED, f"sla:{sla.name}", sla_id=sla.id, customer=sla.customer, version=changed.version,
                service_class=wanted.value, bandwidth_bps=bandwidth_bps,
                previous_class=current.service_class.value, previous_bandwidth_bps=current.bandwidth_bps,
                channel=channel.value, fee=str(fee))
        return SlsChange(changed, fee, changed=True)

    # ------------------------------------------------------------------ topology

    def replace_topology(self, principal: Principal, topology: Topology) -> bool:
        """Install a new topology; recompute every SLA's path and every link's load. Refused (and
        nothing changes) if an SLA's attachment disappears or a link would exceed its shares."""
        require_domain_manager(principal, "change the topology")

        def run() -> bool:
            with self._write(principal) as tx:
                self._serialize_sla_writers(tx.session)
                return self._replace_topology(tx, topology)
        return self._retrying(run)

    def _replace_topology(self, tx: _Tx, topology: Topology) -> bool:
        session = tx.session
        self._lock_tables_for_rebuild(session)
        topology.validate()
        if topology == self._topology(session):
            return False
        routers, interfaces, links = records.topology_rows(topology)
        loads = {link.name: LinkLoad(link, Demand(), Demand()) for link in topology.links}
        paths: dict[str, tuple[str, ...]] = {}
        active = session.execute(select(SlaRow, CustomerRow, SlsRow).join(CustomerRow, SlaRow.customer_id == CustomerRow.id)
                                 .join(SlsRow, SlsRow.sla_id == SlaRow.id)
                                 .where(SlaRow.state != LifecycleState.DEINSTALLED.value))
        path_updates = []
        for sla_row, customer, sls_row in active:
            sla = records.sla_from_row(sla_row, customer)
            try:
                check_attachment(sla.terms, sla.customer_kind, topology)
            except (InvalidValue, OutOfBounds, NotFound) as exc:
                raise Conflict(f"the new topology breaks SLA {sla.name}: {exc}", field="topology", value=sla.name) from exc
            router = sla.terms.attachment.router
            if router not in paths:
                paths[router] = topology.path_to_egress(router)
            for name in paths[router]:
                load = loads[name]
                loads[name] = LinkLoad(load.link, load.reserved + sla_reservation(sla.terms.bounds),
                                       load.in_use + sls_demand(ServiceClassName(sls_row.service_class), sls_row.bandwidth_bps))
            if tuple(sla_row.path) != paths[router]:
                path_updates.append({"sla_id": sla.id, "path": list(paths[router])})
        for load in loads.values():
            excess = [*shares_exceeded(load.link, load.reserved, "reserved", self.overbooking),
                      *shares_exceeded(load.link, load.in_use, "in_use")]
            if excess:
                raise excess[0]
        session.execute(LinkRow.__table__.delete())
        session.execute(InterfaceRow.__table__.delete())
        session.execute(RouterRow.__table__.delete())
        if routers:
            session.execute(insert(RouterRow), routers)
        if interfaces:
            session.execute(insert(InterfaceRow), interfaces)
        if links:
            session.execute(insert(LinkRow), links)
        self._store_loads(session, loads)
        for item in path_updates:
            session.execute(update(SlaRow).where(SlaRow.id == item["sla_id"]).values(path=item["path"]))
        tx.emit(ev.TOPOLOGY_CHANGED, "topology", routers=len(routers), links=len(links), paths_changed=len(path_updates))
        return True

    # ------------------------------------------------------------------ audit

    def audit(self, principal: Principal) -> list[str]:
        """Recompute every derived figure from first principles; return the discrepancies found.
        Checks: link loads equal the sums over SLAs, no link above its shares, the SLS in effect is
        the last history version, history versions are contiguous, every SLS within its SLA."""
        require_domain_manager(principal, "audit the database")
        problems: list[str] = []
        with self.database.read(snapshot=True) as session:
            links = {row.name: _load_from_row(row) for row in session.scalars(select(LinkRow))}
            expected = {name: LinkLoad(load.link, Demand(), Demand()) for name, load in links.items()}
            rows = session.execute(select(SlaRow, CustomerRow, SlsRow).join(CustomerRow, SlaRow.customer_id == CustomerRow.id)
                                   .join(SlsRow, SlsRow.sla_id == SlaRow.id))
            last_versions = dict(session.execute(select(SlsHistoryRow.sla_id, func.max(SlsHistoryRow.version))
                                                 .group_by(SlsHistoryRow.sla_id)).all())
            counts = dict(session.execute(select(SlsHistoryRow.sla_id, func.count()).group_by(SlsHistoryRow.sla_id)).all())
            last_entries = {row.sla_id: row for row in session.scalars(
                select(SlsHistoryRow).join(SlsRow, (SlsRow.sla_id == SlsHistoryRow.sla_id) & (SlsRow.version == SlsHistoryRow.version)))}
            for sla_row, customer, sls_row in rows:
                sla, sls = records.sla_from_row(sla_row, customer), records.sls_from_row(sls_row)
                if last_versions.get(sla.id) != sls.version or counts.get(sla.id) != sls.version:
                    problems.append(f"SLA {sla.name}: SLS version {sls.version}, history has {counts.get(sla.id)} "
                                    f"entries up to {last_versions.get(sla.id)}")
                entry = last_entries.get(sla.id)
                if entry is None or (entry.service_class, entry.bandwidth_bps) != (sls.service_class.value, sls.bandwidth_bps):
                    problems.append(f"SLA {sla.name}: SLS in effect differs from its last history entry")
                bounds = sla.terms.bounds.get(sls.service_class)
                if bounds is None or not bounds.min <= sls.bandwidth_bps <= bounds.max:
                    problems.append(f"SLA {sla.name}: SLS {sls.service_class} {sls.bandwidth_bps} outside its bounds")
                if sla.state == LifecycleState.DEINSTALLED:
                    continue
                for name in sla.path:
                    load = expected[name]
                    expected[name] = LinkLoad(load.link, load.reserved + sla_reservation(sla.terms.bounds),
                                              load.in_use + sls_demand(sls.service_class, sls.bandwidth_bps))
        for name, load in links.items():
            want = expected[name]
            if (load.reserved, load.in_use) != (want.reserved, want.in_use):
                problems.append(f"link {name}: stored load {load.reserved}/{load.in_use} != recomputed {want.reserved}/{want.in_use}")
            for excess in [*shares_exceeded(load.link, want.in_use, "in_use"),
                           *shares_exceeded(load.link, want.reserved, "reserved", self.overbooking)]:
                problems.append(f"{excess.field}: {excess.value} bit/s, above the share of {excess.bound} bit/s")
        return problems

    # ------------------------------------------------------------------ provisioning (one transaction)

    def provision(self, principal: Principal, plan: "ProvisioningPlan", progress: Progress | None = None) -> None:
        """Apply a whole provisioning plan in one transaction: all of it, or nothing."""
        require_domain_manager(principal, "provision")
        self._retrying(lambda: self._provision(principal, plan, progress))

    def _provision(self, principal: Principal, plan: "ProvisioningPlan", progress: Progress | None) -> None:
        with self._write(principal) as tx:
            self._serialize_sla_writers(tx.session)
            if plan.changed_slas and not self.database.is_sqlite:
                # Modifications lock SLS rows one after another while holding link locks; keep
                # customers' SLS changes out meanwhile, so no lock cycle can form.
                tx.session.execute(text("LOCK TABLE sls IN EXCLUSIVE MODE"))
            if plan.topology is not None:
                self._replace_topology(tx, plan.topology)
            self._add_customers(tx, plan.new_customers)
            for name, display_name in plan.renamed_customers:
                row = self._customer_row(tx.session, principal, name)
                row.display_name = display_name
                tx.emit(ev.CUSTOMER_CHANGED, f"customer:{name}", display_name=display_name)
            self._create_slas(tx, plan.new_slas, Channel.PROVISIONING, progress)
            for spec in plan.changed_slas:
                self._modify_sla(tx, spec.name, spec)
                if progress:
                    progress(1)

    # ------------------------------------------------------------------ internals

    def resolve_terms(self, spec: SlaSpec, existing: SlaTerms | None = None) -> SlaTerms:
        """The full SLA terms a spec asks for. Terms the spec leaves out come from the offering for
        a new SLA; for an existing SLA on the same offering they keep their signed values, so
        catalog edits never change a contract. Default bounds are the offering's, each maximum
        capped at the access speed."""
        offering = self.catalog.offering(spec.offering)
        keep = existing if existing is not None and existing.offering == spec.offering else None
        speed = spec.attachment.access_speed_bps
        if spec.bounds is not None:
            bounds = dict(spec.bounds)
        elif keep is not None and keep.attachment.access_speed_bps == speed:
            bounds = dict(keep.bounds)
        else:
            bounds = {}
            for service_class, offered in offering.bounds.items():
                if offered.min > speed:
                    raise OutOfBounds(f"access speed {format_bandwidth(speed)} is below the {service_class} minimum "
                                      f"{format_bandwidth(offered.min)} of offering {offering.name}",
                                      field="attachment.access_speed", bound=offered.min, value=speed)
                bounds[service_class] = ClassBounds(min=offered.min, max=min(offered.max, speed))
        return SlaTerms(
            offering=spec.offering, attachment=spec.attachment, bounds=bounds,
            tariff=keep.tariff if keep else offering.tariff,
            change_policy=spec.change_policy or (keep.change_policy if keep else offering.change_policy),
            availability=spec.availability or (keep.availability if keep else offering.availability),
            valid_from=spec.valid_from or (existing.valid_from if existing else self.clock()),
            valid_until=spec.valid_until)

    def _initial_sls(self, spec: SlaSpec, terms: SlaTerms) -> tuple[ServiceClassName, int]:
        """The SLS a new SLA starts with: the offering's default class at that class's maximum,
        unless the spec says otherwise."""
        service_class = spec.initial_class or self.catalog.offering(spec.offering).default_class
        bounds = terms.bounds.get(service_class)
        if bounds is None:
            raise ClassNotAllowed(f"initial class {service_class} has no bounds in the SLA",
                               field="sls.class", bound=sorted(c.value for c in terms.bounds), value=service_class.value)
        bandwidth = spec.initial_bandwidth_bps if spec.initial_bandwidth_bps is not None else bounds.max
        if not bounds.min <= bandwidth <= bounds.max:
            raise OutOfBounds(f"initial sls.bandwidth {format_bandwidth(bandwidth)} is outside "
                              f"{format_bandwidth(bounds.min)}..{format_bandwidth(bounds.max)}",
                              field="sls.bandwidth", bound=bounds.max if bandwidth > bounds.max else bounds.min,
                              value=bandwidth)
        return service_class, bandwidth

    def _topology(self, session: Session) -> Topology:
        return records.topology_from_rows(list(session.scalars(select(RouterRow))),
                                          list(session.scalars(select(InterfaceRow))),
                                          list(session.scalars(select(LinkRow))))

    def _customers_by_name(self, session: Session, names: set[str]) -> dict[str, Customer]:
        query = select(CustomerRow.id, CustomerRow.name, CustomerRow.kind, CustomerRow.display_name)
        if len(names) <= _IN_LIMIT:
            query = query.where(CustomerRow.name.in_(sorted(names)))
        return {row.name: Customer(row.id, row.name, CustomerKind(row.kind), row.display_name)
                for row in session.execute(query) if row.name in names}

    def _customer_row(self, session: Session, principal: Principal, name: str) -> CustomerRow:
        row = session.scalars(select(CustomerRow).where(CustomerRow.name == name)).first()
        if row is None or not principal.owns(row.name) or not _role_matches(principal, row):
            raise NotFound(f"no customer {name!r}", field="customer", value=name)
        return row

    def _sla_row(self, session: Session, ref: SlaRef) -> SlaRow:
        query = select(SlaRow).where(SlaRow.id == ref if isinstance(ref, int) else SlaRow.name == ref)
        row = session.scalars(query.execution_options(populate_existing=True)).first()
        if row is None:
            raise NotFound(f"no SLA {ref!r}", field="sla", value=ref)
        return row

    def _sla(self, session: Session, principal: Principal, ref: SlaRef) -> Sla:
        """Load an SLA the principal may see. Another customer's SLA is reported as not found,
        exactly like a missing one, so its existence does not leak."""
        query = _one_sla_query(by_name=not isinstance(ref, int), restricted=not principal.is_domain_manager)
        params: dict[str, Any] = {"ref": ref}
        if not principal.is_domain_manager:
            params |= {"customer": principal.customer, "kind": kind_of(principal)}
        found = session.connection().execute(query, params).first()
        if found is None:
            raise NotFound(f"no SLA {ref!r}", field="sla", value=ref)
        return records.sla_from_columns(found)

    def _lock_sls(self, session: Session, ref: SlaRef) -> SlsRow:
        """Lock the SLS row of an SLA (by name or id) before its SLA is read: every writer that
        changes an SLA or its SLS holds this lock, so what is read next is current."""
        query = (select(SlsRow).join(SlaRow, SlaRow.id == SlsRow.sla_id)
                 .where(SlaRow.id == ref if isinstance(ref, int) else SlaRow.name == ref)
                 .with_for_update(of=SlsRow).execution_options(populate_existing=True))
        row = session.scalars(query).first()
        if row is None:
            raise NotFound(f"no SLA {ref!r}", field="sla", value=ref)
        return row

    def _lock_sls_columns(self, session: Session, ref: SlaRef) -> Any:
        """_lock_sls, as a plain row of the sls columns."""
        if isinstance(ref, int):
            row = session.connection().execute(_LOCK_SLS_BY_ID, {"sla_id": ref}).first()
        else:
            row = session.connection().execute(_LOCK_SLS_BY_NAME, {"name": ref}).first()
        if row is None:
            raise NotFound(f"no SLA {ref!r}", field="sla", value=ref)
        return row

    def _sls_row(self, session: Session, sla_id: int) -> SlsRow:
        row = session.scalars(select(SlsRow).where(SlsRow.sla_id == sla_id)).first()
        if row is None:
            raise NotFound(f"SLA {sla_id} has no SLS", field="sls", value=sla_id)
        return row

    def _prefix_registry(self, session: Session, exclude: str | None = None) -> PrefixRegistry:
        registry = PrefixRegistry()
        rows = session.execute(select(SlaRow.name, SlaRow.prefixes).where(SlaRow.state != LifecycleState.DEINSTALLED.value))
        for name, prefixes in rows:
            if name != exclude:
                for prefix in prefixes:
                    registry.add(prefix, name)
        return registry

    def _lock_loads(self, session: Session, names: Sequence[str]) -> dict[str, LinkLoad]:
        """Lock the link rows (in name order: no deadlocks between writers) and read their loads."""
        if not names:
            return {}
        rows = session.connection().execute(_LOCK_LINKS, {"names": list(names)})
        return {row.name: _load_from_row(row) for row in rows}

    def _admit_on(self, loads: dict[str, LinkLoad], path: Sequence[str], delta: Demand, measure: Measure,
                  *, check: bool = True) -> None:
        """Admit `delta` on every link of `path` and add it to the loads (in memory)."""
        selected = [loads[name] for name in path]
        if check:
            admit(selected, delta, measure=measure,
                  overbooking=self.overbooking if measure == "reserved" else Decimal(1))
        for load in selected:
            if measure == "reserved":
                loads[load.link.name] = LinkLoad(load.link, load.reserved + delta, load.in_use)
            else:
                loads[load.link.name] = LinkLoad(load.link, load.reserved, load.in_use + delta)

    def _store_loads(self, session: Session, loads: dict[str, LinkLoad]) -> None:
        if not loads:
            return
        session.connection().execute(_STORE_LOAD, [
            {"link": name, "rg": load.reserved.gold, "rgs": load.reserved.gold_silver,
             "ug": load.in_use.gold, "ugs": load.in_use.gold_silver} for name, load in loads.items()])


class _DryRun(Exception):
    """Raised inside a write transaction to roll it back after every check passed."""

    def __init__(self, changes: list[SlsChange]) -> None:
        super().__init__("dry run")
        self.changes = changes


@dataclass(frozen=True)
class ProvisioningPlan:
    """The changes `csmm apply` found between a provisioning file and the database."""

    topology: Topology | None = None
    new_customers: list[tuple[str, CustomerKind, str]] = field(default_factory=list)
    renamed_customers: list[tuple[str, str]] = field(default_factory=list)
    new_slas: list[SlaSpec] = field(default_factory=list)
    changed_slas: list[SlaSpec] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return (self.topology is None and not self.new_customers and not self.renamed_customers
                and not self.new_slas and not self.changed_slas)


_SLA_WRITERS_LOCK = 0x43534D4D  # "CSMM": the PostgreSQL advisory lock of SLA creations/modifications
_links = LinkRow.__table__
_STORE_LOAD = (update(_links).where(_links.c.name == bindparam("link"))
               .values(reserved_gold_bps=bindparam("rg"), reserved_gold_silver_bps=bindparam("rgs"),
                       in_use_gold_bps=bindparam("ug"), in_use_gold_silver_bps=bindparam("ugs")))

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


# The statements of an SLS change, built once: building them costs more than running them.
_SLS = SlsRow.__table__
_SLA_COLUMNS = [records.json_as_text(c) if isinstance(c.type, JSON) else c for c in SlaRow.__table__.c]
_LOCK_SLS_BY_ID = select(*_SLS.c).where(_SLS.c.sla_id == bindparam("sla_id")).with_for_update(of=_SLS)
_LOCK_SLS_BY_NAME = (select(*_SLS.c).join(SlaRow, SlaRow.id == _SLS.c.sla_id).where(SlaRow.name == bindparam("name"))
                     .with_for_update(of=_SLS))
_LOCK_LINKS = (select(*_links.c).where(_links.c.name.in_(bindparam("names", expanding=True))).order_by(_links.c.name)
               .with_for_update())
_UPDATE_SLS = (update(_SLS).where(_SLS.c.sla_id == bindparam("sla"))
               .values({c.name: bindparam(c.name) for c in _SLS.c if c.name != "sla_id"}))
_INSERT_HISTORY = insert(SlsHistoryRow.__table__)
_INSERT_EVENT = insert(EventRow.__table__)


def _sla_rows(*extra: Any) -> Any:
    """SLAs with their customer's name and kind, as plain rows, not ORM objects: lists of every SLA
    (40,000 at rollout) read them; JSON columns as text, which records parses once per distinct value."""
    return (select(*_SLA_COLUMNS, CustomerRow.name.label("customer_name"), CustomerRow.kind.label("customer_kind"),
                   *extra).join(CustomerRow, SlaRow.customer_id == CustomerRow.id))


@lru_cache(maxsize=4)
def _one_sla_query(*, by_name: bool, restricted: bool) -> Any:
    """One SLA by id or name (bound as "ref"); `restricted` to a customer (bound "customer", "kind")."""
    query = _sla_rows().where((SlaRow.name if by_name else SlaRow.id) == bindparam("ref"))
    if restricted:
        query = query.where(CustomerRow.name == bindparam("customer"), CustomerRow.kind == bindparam("kind"))
    return query


def _check_name(name: str, field_name: str) -> None:
    # A leading letter keeps names apart from numeric ids (SNMP indexes, `csmm sla show 7`).
    if not _NAME.match(name):
        raise InvalidValue(f"{field_name} {name!r} must start with a letter and have at most 64 letters, digits, "
                           f"'-', '_' or '.'", field=field_name, value=name)


def kind_of(principal: Principal) -> str:
    """The kind of customer a customer or peer principal may reach."""
    return (CustomerKind.PEER if principal.role == Role.PEER else CustomerKind.CUSTOMER).value


# Above this many values, read the whole column instead of a huge IN list (SQLite caps parameters).
_IN_LIMIT = 20000


def _present(session: Session, column: Any, values: Sequence[str]) -> set[str]:
    """Which of `values` already exist in `column`."""
    if len(values) > _IN_LIMIT:
        return set(session.scalars(select(column))) & set(values)
    return set(session.scalars(select(column).where(column.in_(list(values)))))


def _role_matches(principal: Principal, customer: CustomerRow) -> bool:
    """A customer principal reaches only customers, a peer principal only peer domains."""
    return principal.is_domain_manager or customer.kind == kind_of(principal)


def _load_from_row(row: LinkRow) -> LinkLoad:
    return LinkLoad(records.link_from_row(row), Demand(row.reserved_gold_bps, row.reserved_gold_silver_bps),
                    Demand(row.in_use_gold_bps, row.in_use_gold_silver_bps))


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in new if old.get(key) != new[key])


__all__ = ["DOMAIN_MANAGER", "ProvisioningPlan", "ServiceLayer", "SlaSpec", "SlsChange", "utc_now"]
