"""The CSMM database: the SLA and SLS databases of the seed, plus topology, loads and the event log.

Money is stored in integer cents, bandwidth in bit/s, times as UTC. `sls_history` is
append-only (triggers in the migration refuse UPDATE and DELETE).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RouterRow(Base):
    __tablename__ = "routers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mgmt_address: Mapped[str] = mapped_column(String(64))


class InterfaceRow(Base):
    __tablename__ = "interfaces"
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    capacity_bps: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))


class LinkRow(Base):
    """A router-to-router link, or an egress point (b_router NULL). Its load columns are the sums
    over the SLAs crossing it; admission locks this row, which serialises writers per link."""

    __tablename__ = "links"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    a_router: Mapped[str] = mapped_column(String(64))
    a_interface: Mapped[str] = mapped_column(String(64))
    b_router: Mapped[str | None] = mapped_column(String(64))
    b_interface: Mapped[str | None] = mapped_column(String(64))
    capacity_bps: Mapped[int] = mapped_column(BigInteger)
    gold_share: Mapped[str] = mapped_column(String(16))
    gold_silver_share: Mapped[str] = mapped_column(String(16))
    reserved_gold_bps: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_gold_silver_bps: Mapped[int] = mapped_column(BigInteger, default=0)
    in_use_gold_bps: Mapped[int] = mapped_column(BigInteger, default=0)
    in_use_gold_silver_bps: Mapped[int] = mapped_column(BigInteger, default=0)


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(200))


class SlaRow(Base):
    __tablename__ = "slas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    offering: Mapped[str] = mapped_column(String(64))
    router_id: Mapped[str] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(64))
    access_speed_bps: Mapped[int] = mapped_column(BigInteger)
    prefixes: Mapped[list[Any]] = mapped_column(JSON)
    bounds: Mapped[dict[str, Any]] = mapped_column(JSON)
    tariff: Mapped[dict[str, Any]] = mapped_column(JSON)
    change_policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    availability: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(20))
    path: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SlaStateChangeRow(Base):
    __tablename__ = "sla_state_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    principal: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")


class SlsRow(Base):
    """The SLS in effect now, one row per SLA. `version` guards against lost updates."""

    __tablename__ = "sls"
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"), primary_key=True)
    service_class: Mapped[str] = mapped_column(String(16))
    bandwidth_bps: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    last_customer_change_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SlsHistoryRow(Base):
    """Append-only: every SLS version ever in effect, with who changed it, how, and the fee."""

    __tablename__ = "sls_history"
    __table_args__ = (UniqueConstraint("sla_id", "version", name="uq_sls_history_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"))
    version: Mapped[int] = mapped_column(Integer)
    service_class: Mapped[str] = mapped_column(String(16))
    bandwidth_bps: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    principal: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)


class EventRow(Base):
    """Events written in the same transaction as the change they announce (an outbox)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_type_id", "type", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    type: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(100))
    principal: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


# ------------------------------------------------------------------------------------- southbound

class RouterConfigRow(Base):
    """The config the controller last computed for each router, with a version that only grows
    (the agent protocol's version), kept so versions survive a controller restart."""

    __tablename__ = "router_configs"
    router: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AgentRow(Base):
    """The last word from each router's agent: connected or not, what it has applied, its errors."""

    __tablename__ = "agents"
    router: Mapped[str] = mapped_column(String(64), primary_key=True)
    connected: Mapped[bool] = mapped_column(default=False)
    agent_version: Mapped[str] = mapped_column(String(40), default="")
    peer: Mapped[str] = mapped_column(String(200), default="")
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    boot_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_version: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_fingerprint: Mapped[str] = mapped_column(String(32), default="")
    applied_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CounterMarkRow(Base):
    """The last cumulative counter sample per router, interface and class: the base of the next
    delta, kept in the database so a controller restart neither loses nor double-counts usage."""

    __tablename__ = "counter_marks"
    router: Mapped[str] = mapped_column(String(64), primary_key=True)
    interface: Mapped[str] = mapped_column(String(64), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    boot_epoch: Mapped[int] = mapped_column(BigInteger)
    octets: Mapped[int] = mapped_column(BigInteger)
    packets: Mapped[int] = mapped_column(BigInteger)
    drops: Mapped[int] = mapped_column(BigInteger)
    sampled_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClassUsageRow(Base):
    """Per SLA and service class: octets, packets and drops carried since the SLA began
    (cumulative; deltas of the customer's own leaf on its access router)."""

    __tablename__ = "class_usage"
    sla: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_class: Mapped[str] = mapped_column(String(16), primary_key=True)
    octets: Mapped[int] = mapped_column(BigInteger, default=0)
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    drops: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ------------------------------------------------------------------------------------- SNMP northbound

class SnmpUserRow(Base):
    """An SNMPv3 USM user: a customer's (or peer's) NMS, or the domain manager's (customer_id NULL).

    Only master keys (RFC 3414 A.2: the passphrase stretched through the hash) are kept, never the
    passphrases; they are localized to the engine ID when the agent starts."""

    __tablename__ = "snmp_users"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    auth_protocol: Mapped[str] = mapped_column(String(16))
    priv_protocol: Mapped[str] = mapped_column(String(16))
    auth_key: Mapped[str] = mapped_column(String(128))  # hex master key
    priv_key: Mapped[str] = mapped_column(String(128))  # hex master key
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SnmpTargetRow(Base):
    """Where notifications go: a trap receiver of a customer (its own SLAs only) or of the domain
    manager (customer_id NULL: every SLA), sent as `user` with authPriv."""

    __tablename__ = "snmp_targets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    address: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    user: Mapped[str] = mapped_column(ForeignKey("snmp_users.name"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SnmpEngineRow(Base):
    """The agent's snmpEngineID and snmpEngineBoots (RFC 3414: boots must grow across restarts,
    or managers reject the agent's messages as replays)."""

    __tablename__ = "snmp_engine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    engine_id: Mapped[str] = mapped_column(String(64))  # hex
    boots: Mapped[int] = mapped_column(BigInteger)


# ------------------------------------------------------------------------------------- NETCONF northbound

class NetconfUserRow(Base):
    """An SSH login to the NETCONF server: a peer domain's (or customer's) software, or the domain
    manager's (customer_id NULL). A password is kept only as an scrypt hash; public keys in
    OpenSSH format."""

    __tablename__ = "netconf_users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    public_keys: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ------------------------------------------------------------------------------------- feedback

class ConformanceRow(Base):
    """The latest conformance of an SLA (controller.feedback): the latest measurement interval and
    the current calendar month's availability; written by the controller that measures it."""

    __tablename__ = "conformance"
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"), primary_key=True)
    measured_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    interval_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    sls_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sls_bandwidth_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    throughput_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    offered_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    loss_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    month: Mapped[datetime] = mapped_column(UtcDateTime)
    counted_from: Mapped[datetime] = mapped_column(UtcDateTime)
    down_s: Mapped[float] = mapped_column(Float, default=0.0)
    longest_outage_s: Mapped[float] = mapped_column(Float, default=0.0)
    availability_percent: Mapped[str] = mapped_column(String(16))   # a Decimal, 5 places
    violations: Mapped[str] = mapped_column(String(100), default="")  # CSM-MIB metric names, comma-separated
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PenaltyCreditRow(Base):
    """A credit the SLA owes its customer for an availability breach in a month (once per month)."""

    __tablename__ = "penalty_credits"
    __table_args__ = (UniqueConstraint("sla_id", "month", name="uq_penalty_credit_month"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"), index=True)
    month: Mapped[datetime] = mapped_column(UtcDateTime)
    amount_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ------------------------------------------------------------------------------------- accounting

class UsageRecordRow(Base):
    """Volume carried by one SLA in one class over [flow_start_ms, flow_end_ms), with IPFIX's
    information elements. The controller's meter keeps one record per SLA, class and hour (adding
    to it while the hour runs); records imported from another meter keep their own intervals. The
    unique key makes a record replayed twice count once."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("source", "sla_id", "dscp", "flow_start_ms", "flow_end_ms",
                                       name="uq_usage_record"),
                      Index("ix_usage_records_sla_start", "sla_id", "flow_start_ms"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))       # "meter" (the controller's), or the importing exporter
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"))
    service_class: Mapped[str] = mapped_column(String(16))
    dscp: Mapped[int] = mapped_column(Integer)            # ipDiffServCodePoint
    flow_start_ms: Mapped[int] = mapped_column(BigInteger)  # flowStartMilliseconds
    flow_end_ms: Mapped[int] = mapped_column(BigInteger)    # flowEndMilliseconds
    octets: Mapped[int] = mapped_column(BigInteger)       # octetDeltaCount
    packets: Mapped[int] = mapped_column(BigInteger)      # packetDeltaCount
    dropped_packets: Mapped[int] = mapped_column(BigInteger, default=0)  # droppedPacketDeltaCount
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChargeRow(Base):
    """A charge (or, negative, a credit) made by an accounting policy; once per policy and event."""

    __tablename__ = "charges"
    __table_args__ = (UniqueConstraint("policy", "event_key", name="uq_charge_policy_event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sla_id: Mapped[int] = mapped_column(ForeignKey("slas.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(String(300))
    policy: Mapped[str] = mapped_column(String(100))
    event_key: Mapped[str] = mapped_column(String(100))   # the event id, or what the metering run was about


class NotificationRow(Base):
    """A message to a customer from an accounting policy (shown in the portal and `csmm notifications`)."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("policy", "event_key", name="uq_notification_policy_event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    sla_id: Mapped[int | None] = mapped_column(ForeignKey("slas.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(String(500))
    policy: Mapped[str] = mapped_column(String(100))
    event_key: Mapped[str] = mapped_column(String(100))


class InvoiceRow(Base):
    """An issued invoice (seq 0) or a credit/debit note correcting it (seq 1, 2, ...). Never updated:
    `digest` is the SHA-256 of the document as issued."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("customer_id", "month", "seq", name="uq_invoice_customer_month_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    seq: Mapped[int] = mapped_column(Integer)
    refers_to: Mapped[str | None] = mapped_column(String(40), nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    document: Mapped[str] = mapped_column(Text)            # canonical JSON
    digest: Mapped[str] = mapped_column(String(64))


class AccountingPolicyRow(Base):
    """An accounting policy or meta-policy, in the seed's language, as written."""

    __tablename__ = "accounting_policies"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))          # policy, meta-policy
    text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    origin: Mapped[str] = mapped_column(String(200))       # who or what created it
    position: Mapped[int] = mapped_column(Integer)         # evaluation order
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AccountingMarkRow(Base):
    """Small durable state of the accounting part: the last event its policies handled, the
    offerings it has seen (so it can tell added from altered ones)."""

    __tablename__ = "accounting_marks"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


# ------------------------------------------------------------------------------------- REST northbound

class ApiTokenRow(Base):
    """A bearer token of the REST API: a customer's (or peer's) software, or the domain manager's
    (customer_id NULL). Only the SHA-256 of the token is kept; the token is shown once."""

    __tablename__ = "api_tokens"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ------------------------------------------------------------------------------------- web portal

class WebUserRow(Base):
    """A person's login to the web portal: a customer's (or peer's) staff, or the domain manager's
    (customer_id NULL). The password is kept only as an Argon2id hash with its parameters."""

    __tablename__ = "web_users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebSessionRow(Base):
    """A logged-in browser. The cookie carries a random token; only its SHA-256 is kept, with the
    session's CSRF token and its idle and absolute expiry."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("web_users.name", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


__all__ = ["Base", "RouterRow", "InterfaceRow", "LinkRow", "CustomerRow", "SlaRow", "SlaStateChangeRow",
           "SlsRow", "SlsHistoryRow", "EventRow", "RouterConfigRow", "AgentRow", "CounterMarkRow", "ClassUsageRow",
           "SnmpUserRow", "SnmpTargetRow", "SnmpEngineRow", "NetconfUserRow", "ConformanceRow", "PenaltyCreditRow",
           "UsageRecordRow", "ChargeRow", "NotificationRow", "InvoiceRow", "AccountingPolicyRow", "AccountingMarkRow",
           "ApiTokenRow", "WebUserRow", "WebSessionRow", "UtcDateTime"]
