"""Policy-based accounting management: the seed's policies and meta-policies, kept in the
database and enforced on the controller's events.

`PolicyBook` is the Policy Factory (add, remove, activate, deactivate, list); `PolicyRunner` is the
Policy Enforcement: it reads the event log from its own durable cursor, asks the pure engine
(controller.policy) what the active policies call for, and carries that out through the
accounting part, in the same transaction that moves the cursor, so each event is handled once
even across restarts. Two kinds of happening do not come from the event log:

* offering.added / .altered / .deleted: the runner compares the catalog with the offerings it saw
  last, announces the difference as events, and hands it to the meta-policies;
* metering.ended: after each metering run, one per SLA and class with included hours in use, with
  `usage` = {service_class, hours, included_hours, percent_of_included, notified_80}.

Activities (the mediation layer's operations):
* `charging.charge(amount, text)`: a charge (negative: a credit) on the target SLA's invoice;
* `notification.send(text)`: a message to the target's customer (`csmm notifications`, the portal).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.accounting.charging import included_hours
from controller.accounting.metering import hours, month_name, month_of
from controller.accounting.service import Accounting
from controller.domain.checks import require_domain_manager
from controller.domain.errors import InvalidValue, NotFound
from controller.domain.principal import DOMAIN_MANAGER, Principal
from controller.policy import (Applied, Decision, Error, Happening, MetaPolicy, Policy, PolicyEngine,
                               PolicySyntaxError, parse)
from controller.service import events as ev
from controller.store.schema import (AccountingMarkRow, AccountingPolicyRow, CustomerRow, EventRow, NotificationRow,
                                     SlaRow, SlsHistoryRow)

log = logging.getLogger(__name__)

OPERATIONS = {"charging": {"charge"}, "notification": {"send"}}
CURSOR, OFFERINGS = "policy-cursor", "offerings-seen"
_BATCH = 500
_CHAIN_DEPTH = 8


@dataclass(frozen=True)
class PolicyInfo:
    id: str
    kind: str
    active: bool
    origin: str
    text: str


@dataclass
class RunReport:
    events: int = 0
    decisions: int = 0
    charges: int = 0
    notifications: int = 0
    policy_changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- the policy factory

class PolicyBook:
    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self.service = accounting.service

    def add(self, principal: Principal, text: str, source: str = "<policy>", active: bool = True) -> list[str]:
        """Parse and store the statements of `text` (a statement with an existing id replaces it).
        Nothing is stored if any statement is wrong; the error names line, column and what was expected."""
        require_domain_manager(principal, "manage accounting policies")
        try:
            statements = parse(text, source, operations=OPERATIONS)
        except PolicySyntaxError as exc:
            raise InvalidValue(str(exc), field="policy", value=f"{source}:{exc.line}:{exc.column}") from None
        if not statements:
            raise InvalidValue(f"{source}: no POLICY or META-POLICY statement", field="policy", value=source)
        with self.service.transaction(principal) as tx:
            start_cursor(tx.session, self.accounting)
            for statement in statements:
                _store(tx.session, statement, active, origin=f"{principal} from {source}", at=tx.now)
        return [s.id for s in statements]

    def remove(self, principal: Principal, policy_id: str) -> None:
        require_domain_manager(principal, "manage accounting policies")
        with self.service.transaction(principal) as tx:
            tx.session.delete(self._row(tx.session, policy_id))

    def set_active(self, principal: Principal, policy_id: str, active: bool) -> None:
        require_domain_manager(principal, "manage accounting policies")
        with self.service.transaction(principal) as tx:
            row = self._row(tx.session, policy_id)
            row.active, row.updated_at = active, tx.now

    def list(self, principal: Principal) -> list[PolicyInfo]:
        require_domain_manager(principal, "read accounting policies")
        with self.service.database.read() as session:
            return [PolicyInfo(r.id, r.kind, r.active, r.origin, r.text) for r in
                    session.scalars(select(AccountingPolicyRow).order_by(AccountingPolicyRow.position))]

    @staticmethod
    def _row(session: Session, policy_id: str) -> AccountingPolicyRow:
        row = session.get(AccountingPolicyRow, policy_id)
        if row is None:
            raise NotFound(f"accounting policy {policy_id!r} does not exist", field="policy", value=policy_id)
        return row


def _store(session: Session, statement: Policy | MetaPolicy, active: bool, origin: str, at: datetime) -> None:
    row = session.get(AccountingPolicyRow, statement.id)
    kind = "meta-policy" if isinstance(statement, MetaPolicy) else "policy"
    if row is None:
        position = (session.scalar(select(func.max(AccountingPolicyRow.position))) or 0) + 1
        session.add(AccountingPolicyRow(id=statement.id, kind=kind, text=statement.text, active=active, origin=origin,
                                        position=position, updated_at=at))
    else:
        row.kind, row.text, row.active, row.origin, row.updated_at = kind, statement.text, active, origin, at


def load_engine(session: Session) -> PolicyEngine:
    engine = PolicyEngine(OPERATIONS)
    for row in session.scalars(select(AccountingPolicyRow).order_by(AccountingPolicyRow.position)):
        try:
            engine.load(parse(row.text, f"policy {row.id}", operations=OPERATIONS), active=row.active)
        except PolicySyntaxError as exc:   # stored before a grammar change: say so, keep the others
            log.error("accounting policy %s no longer parses, skipped: %s", row.id, exc)
    return engine


def start_cursor(session: Session, accounting: Accounting) -> None:
    """Policies act on what happens from the moment the first one is added, never retroactively;
    the catalog as it is then is the baseline for offering changes."""
    if session.get(AccountingMarkRow, CURSOR) is None:
        last = session.scalar(select(func.max(EventRow.id))) or 0
        session.add(AccountingMarkRow(name=CURSOR, value={"event_id": last}))
    if session.get(AccountingMarkRow, OFFERINGS) is None:
        session.add(AccountingMarkRow(name=OFFERINGS, value=_offering_digests(accounting)))


def _offering_digests(accounting: Accounting) -> dict[str, str]:
    return {name: hashlib.sha256(offering.model_dump_json().encode()).hexdigest()[:16]
            for name, offering in accounting.catalog.offerings.items()}


# ---------------------------------------------------------------------- the policy enforcement

class PolicyRunner:
    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self.service = accounting.service

    def run_once(self, metering: bool = True) -> RunReport:
        """Announce catalog changes, handle every new event, then (optionally) a metering run."""
        report = RunReport()
        self.sync_offerings()
        while self._handle_batch(report):
            pass
        if metering:
            self.meter(report)
        for error in report.errors:
            log.warning("accounting policy: %s", error)
        return report

    def sync_offerings(self) -> None:
        # Read first: `csmm serve` asks every second, and a write transaction would take the
        # database's writer lock (SQLite) from SLS changes for nothing.
        now = _offering_digests(self.accounting)
        with self.service.database.read() as session:
            mark = session.get(AccountingMarkRow, OFFERINGS)
            if mark is None or dict(mark.value) == now:
                return   # no policy yet (nothing listens), or nothing changed
        with self.service.transaction(DOMAIN_MANAGER) as tx:
            mark = tx.session.get(AccountingMarkRow, OFFERINGS)
            if mark is None:
                return
            seen = dict(mark.value)
            for name in sorted(set(seen) | set(now)):
                if name not in seen:
                    tx.emit(ev.OFFERING_ADDED, f"offering:{name}", offering=name)
                elif name not in now:
                    tx.emit(ev.OFFERING_DELETED, f"offering:{name}", offering=name)
                elif seen[name] != now[name]:
                    tx.emit(ev.OFFERING_ALTERED, f"offering:{name}", offering=name)
            if seen != now:
                mark.value = now

    def _handle_batch(self, report: RunReport) -> bool:
        if not self._events_waiting():
            return False
        with self.service.transaction(DOMAIN_MANAGER) as tx:
            mark = tx.session.get(AccountingMarkRow, CURSOR)
            if mark is None:
                return False
            last = int(mark.value["event_id"])
            rows = list(tx.session.scalars(select(EventRow).where(EventRow.id > last).order_by(EventRow.id)
                                           .limit(_BATCH)))
            if not rows:
                return False
            engine = load_engine(tx.session)
            for row in rows:
                self._handle(tx, engine, row, report)
            mark.value = {"event_id": rows[-1].id}
            report.events += len(rows)
            return len(rows) == _BATCH

    def _events_waiting(self) -> bool:
        """Are there events past the cursor? (A read: the common answer, every second, is no.)"""
        with self.service.database.read() as session:
            mark = session.get(AccountingMarkRow, CURSOR)
            if mark is None:
                return False
            return session.scalar(select(EventRow.id).where(EventRow.id > int(mark.value["event_id"])).limit(1)) \
                is not None

    def _handle(self, tx: Any, engine: PolicyEngine, row: EventRow, report: RunReport) -> None:
        if row.type in (ev.OFFERING_ADDED, ev.OFFERING_ALTERED, ev.OFFERING_DELETED):
            change = row.type.split(".")[1]
            self._meta(tx, engine, change, "offering", {"offering": row.payload["offering"]}, report)
        happening = self._happening(tx.session, row)
        if happening is not None:
            self._enforce(tx, engine, happening, f"event {row.id}", report)

    def _meta(self, tx: Any, engine: PolicyEngine, change: str, entity: str, variables: dict[str, str],
              report: RunReport, depth: int = 0) -> None:
        outcomes = engine.apply(engine.changed(change, entity, variables))  # type: ignore[arg-type]
        for outcome in outcomes:
            if isinstance(outcome, Error):
                report.errors.append(f"{outcome.policy_id}: {outcome.message}")
                continue
            if not outcome.changed:
                continue
            self._persist(tx, engine, outcome)
            report.policy_changes.append(f"{outcome.verb} {outcome.policy_id} (by {outcome.meta_policy_id})")
            if outcome.change is not None and depth < _CHAIN_DEPTH:
                self._meta(tx, engine, outcome.change, "policy", {"policy": outcome.policy_id}, report, depth + 1)

    def _persist(self, tx: Any, engine: PolicyEngine, outcome: Applied) -> None:
        session = tx.session
        if outcome.verb == "delete":
            row = session.get(AccountingPolicyRow, outcome.policy_id)
            if row is not None:
                session.delete(row)
            return
        loaded = engine.get(outcome.policy_id)
        if loaded is None:
            return
        if outcome.verb == "create":
            _store(session, loaded.statement, loaded.active, f"meta-policy {outcome.meta_policy_id}", tx.now)
        else:
            row = session.get(AccountingPolicyRow, outcome.policy_id)
            if row is not None:
                row.active, row.updated_at = loaded.active, tx.now

    def _enforce(self, tx: Any, engine: PolicyEngine, happening: Happening, key: str, report: RunReport) -> None:
        self._carry_out_all(tx, self._decide(engine, happening, key, report), happening, key, report)

    @staticmethod
    def _decide(engine: PolicyEngine, happening: Happening, key: str, report: RunReport) -> list[Decision]:
        """The engine's decisions (pure); its errors go to the report."""
        decisions = []
        for decision in engine.decide(happening):
            if isinstance(decision, Error):
                report.errors.append(f"{decision.policy_id} on {key}: {decision.message}")
            else:
                decisions.append(decision)
        return decisions

    def _carry_out_all(self, tx: Any, decisions: list[Decision], happening: Happening, key: str,
                       report: RunReport) -> None:
        for decision in decisions:
            report.decisions += 1
            try:
                self._carry_out(tx, decision, happening, key, report)
            except (InvalidValue, NotFound) as exc:
                report.errors.append(f"{decision.policy_id} on {key}: {exc.message}")

    def _carry_out(self, tx: Any, decision: Decision, happening: Happening, key: str, report: RunReport) -> None:
        session = tx.session
        sla_name = decision.target.name_of("sla") or happening.context.get("sla")
        customer = decision.target.name_of("customer") or happening.context.get("customer")
        sla = session.scalar(select(SlaRow).where(SlaRow.name == sla_name)) if sla_name else None
        if (decision.object, decision.operation) == ("charging", "charge"):
            if sla is None:
                raise InvalidValue("charging.charge needs an SLA in its target or event", field="target")
            amount = _money(decision.args.get("amount"))
            text_ = str(decision.args.get("text", f"charge by policy {decision.policy_id}"))
            if self.accounting.charge(session, sla.id, tx.now, amount, text_, decision.policy_id, key):
                report.charges += 1
        elif (decision.object, decision.operation) == ("notification", "send"):
            row = session.scalar(select(CustomerRow).where(CustomerRow.name == customer)) if customer else None
            if row is None:
                raise InvalidValue("notification.send needs a customer in its target or event", field="target")
            text_ = str(decision.args.get("text", ""))
            if self.accounting.notify(session, row.id, sla.id if sla else None, tx.now, text_, decision.policy_id,
                                      key):
                report.notifications += 1
                tx.emit(ev.NOTIFICATION_SENT, f"customer:{row.name}", customer=row.name,
                        sla=sla.name if sla else None, text=text_, policy=decision.policy_id)

    # ------------------------------------------------------------------ happenings

    def _happening(self, session: Session, row: EventRow) -> Happening | None:
        payload = dict(row.payload)
        context: dict[str, str] = {}
        kind, _, name = row.subject.partition(":")
        if kind in ("sla", "customer", "offering") and name:
            context[kind] = name
        if payload.get("customer"):
            context["customer"] = str(payload["customer"])
        if "sla" in context and "offering" not in context:
            offering = session.scalar(select(SlaRow.offering).where(SlaRow.name == context["sla"]))
            if offering:
                context["offering"] = offering
        principal_kind = row.principal.partition(":")[0]
        event = {**payload, "id": row.id, "type": row.type, "at": row.at.isoformat(), "day": row.at.date().isoformat(),
                 "principal": row.principal, "principal_kind": principal_kind, **context}
        env: dict[str, Any] = {"event": event}
        if row.type == ev.SLS_CHANGED and "sla_id" in payload:
            env["changes_today"] = _customer_changes_on(session, int(payload["sla_id"]), row.at,
                                                        int(payload.get("version", 0)))
        return Happening(row.type, context, env)

    def meter(self, report: RunReport | None = None, now: datetime | None = None) -> RunReport:
        """A metering run: one metering.ended happening per SLA and class with included hours in use."""
        report = report or RunReport()
        with self.service.database.read() as session:
            engine = load_engine(session)
        if not any(isinstance(p.statement, Policy) and p.active and "metering.ended" in p.statement.events
                   for p in engine.policies()):
            return report
        now = now or self.service.clock()
        month = month_of(now)
        # Read and decide in a read transaction (the whole customer base); take the writer lock
        # only to carry out what was decided, usually nothing.
        with self.service.database.read() as session:
            loaded = self.accounting.load_month(session, month, now, until=now)
            notified = _notified(session, month_name(month))
        decided = [(happening, key, decisions)
                   for customer in loaded.values() for m in customer.slas
                   for happening, key in _usage_happenings(customer.name, m, month_name(month), notified)
                   if (decisions := self._decide(engine, happening, key, report))]
        if decided:
            with self.service.transaction(DOMAIN_MANAGER) as tx:
                for happening, key, decisions in decided:
                    self._carry_out_all(tx, decisions, happening, key, report)
        return report


def _notified(session: Session, month: str) -> set[str]:
    """The metering keys ("metering 2026-11 acme-hq gold") customers were notified about this month."""
    prefix = f"metering {month} "
    return set(session.scalars(select(NotificationRow.event_key).where(NotificationRow.event_key.startswith(prefix))))


def _usage_happenings(customer: str, m: Any, month: str, notified: set[str]) -> Iterable[tuple[Happening, str]]:
    share = m.share
    for service_class, tariff in m.tariff.classes.items():
        allowance = included_hours(tariff, share)
        use = m.usage.get(service_class)
        if use is None or not use.ms or not allowance:
            continue
        spent = hours(use.ms)
        key = f"metering {month} {m.sla} {service_class.value}"
        usage = {"service_class": service_class.value, "hours": spent, "included_hours": allowance,
                 "percent_of_included": (spent * 100 / allowance).quantize(Decimal("1")),
                 "notified_80": key in notified}
        context = {"customer": customer, "sla": m.sla, "offering": m.offering, "class": service_class.value}
        yield Happening("metering.ended", context, {"usage": usage, "event": {"sla": m.sla, "month": month}}), key


def _customer_changes_on(session: Session, sla_id: int, at: datetime, version: int) -> int:
    """The customer's (or peer's) own SLS changes of the day, up to this one."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    h = SlsHistoryRow.__table__.c
    return int(session.scalar(select(func.count()).where(
        h.sla_id == sla_id, h.effective_from >= day, h.effective_from <= at, h.version <= version,
        h.version > 1, ~h.principal.like("domain-manager%"))) or 0)


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidValue(f"charging.charge amount {value!r} is not an amount of money", field="amount",
                           value=str(value)) from None
    if not amount.is_finite():
        raise InvalidValue(f"charging.charge amount {value!r} is not an amount of money", field="amount")
    return amount

