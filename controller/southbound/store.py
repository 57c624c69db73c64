"""The southbound's records in the database: config versions per router, what each agent said
last, counter marks and per-customer usage. Sync (SQLAlchemy); the gRPC server calls it from
worker threads."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from csmm_proto import agent_pb2 as pb
from csmm_proto.configs import fingerprint
from google.protobuf import json_format
from sqlalchemy import delete, select

from controller.accounting.usage import add_meter_usage
from controller.southbound.counters import CounterReport, Delta, Sample, customer_leaf, delta
from controller.store.database import Database
from controller.store.schema import AgentRow, ClassUsageRow, CounterMarkRow, RouterConfigRow

Members = Mapping[tuple[str, str], tuple[str, ...]]   # (interface, class name) -> SLAs the class carries


def _now() -> datetime:
    return datetime.now(timezone.utc)


def to_json(config: pb.DesiredConfig) -> dict:
    return json_format.MessageToDict(config)


def from_json(data: dict) -> pb.DesiredConfig:
    return json_format.ParseDict(data, pb.DesiredConfig())


@dataclass(frozen=True)
class AgentStatus:
    router: str
    connected: bool
    agent_version: str
    peer: str
    applied_version: int
    applied_fingerprint: str
    applied_config: pb.DesiredConfig | None
    last_error: str
    last_seen: datetime | None
    sent_version: int            # the newest config version the controller computed for the router
    sent_fingerprint: str

    @property
    def in_sync(self) -> bool:
        return self.applied_fingerprint != "" and self.applied_fingerprint == self.sent_fingerprint


class SouthboundStore:
    def __init__(self, database: Database, dscp: Mapping[str, int] | None = None) -> None:
        """`dscp` (class name -> DSCP) turns on volume metering: each report's deltas are added to
        the hour's usage records (controller.accounting.usage)."""
        self.database = database
        self.dscp = dscp

    # ------------------------------------------------------------------------------- config versions

    def publish(self, config: pb.DesiredConfig) -> pb.DesiredConfig:
        """`config` with its version: the stored one when the content is unchanged, else the next."""
        config.fingerprint = fingerprint(config)
        with self.database.write() as session:
            row = session.get(RouterConfigRow, config.router_id)
            if row is not None and row.fingerprint == config.fingerprint:
                config.version = row.version
                return config
            config.version = (row.version if row is not None else 0) + 1
            if row is None:
                session.add(RouterConfigRow(router=config.router_id, version=config.version,
                                            fingerprint=config.fingerprint, config=to_json(config), updated_at=_now()))
            else:
                row.version, row.fingerprint, row.config, row.updated_at = (config.version, config.fingerprint,
                                                                            to_json(config), _now())
            return config

    # ----------------------------------------------------------------------------------- agents

    def _agent(self, session, router: str) -> AgentRow:  # type: ignore[no-untyped-def]
        row = session.get(AgentRow, router)
        if row is None:
            row = AgentRow(router=router, connected=False, agent_version="", peer="", capabilities={}, boot_epoch=0,
                           applied_version=0, applied_fingerprint="", applied_config=None, last_error="")
            session.add(row)
        return row

    def agent_connected(self, hello: pb.Hello, peer: str) -> None:
        with self.database.write() as session:
            row = self._agent(session, hello.router_id)
            row.connected, row.agent_version, row.peer = True, hello.agent_version, peer
            row.capabilities = json_format.MessageToDict(hello.capabilities)
            row.boot_epoch = hello.boot_epoch
            if row.applied_fingerprint != hello.applied_fingerprint:   # the agent holds something else than we knew
                row.applied_config = None
            row.applied_version, row.applied_fingerprint = hello.applied_version, hello.applied_fingerprint
            row.connected_at = row.last_seen = _now()

    def agent_applied(self, router: str, result: pb.ApplyResult, sent: pb.DesiredConfig | None) -> None:
        with self.database.write() as session:
            row = self._agent(session, router)
            row.last_seen = _now()
            if result.ok:
                row.applied_version, row.applied_fingerprint, row.last_error = result.version, result.fingerprint, ""
                row.applied_config = to_json(sent) if sent is not None and sent.fingerprint == result.fingerprint else None
            else:
                row.last_error = "; ".join(f"{e.interface} {e.item}: {e.message}".strip() for e in result.errors)

    def agent_seen(self, router: str) -> None:
        with self.database.write() as session:
            self._agent(session, router).last_seen = _now()

    def agent_disconnected(self, router: str, reason: str) -> None:
        with self.database.write() as session:
            row = self._agent(session, router)
            row.connected = False
            if reason:
                row.last_error = reason

    def mark_all_disconnected(self) -> None:
        """At start-up: no agent is connected to a controller that was not running."""
        with self.database.write() as session:
            for row in session.scalars(select(AgentRow).where(AgentRow.connected.is_(True))):
                row.connected = False

    def status(self, router: str) -> AgentStatus | None:
        with self.database.read() as session:
            agent, sent = session.get(AgentRow, router), session.get(RouterConfigRow, router)
            if agent is None and sent is None:
                return None
            return _status(router, agent, sent)

    def statuses(self) -> list[AgentStatus]:
        with self.database.read() as session:
            agents = {r.router: r for r in session.scalars(select(AgentRow))}
            sent = {r.router: r for r in session.scalars(select(RouterConfigRow))}
            return [_status(router, agents.get(router), sent.get(router)) for router in sorted(agents | sent)]

    # ---------------------------------------------------------------------------------- counters

    def ingest(self, router: str, report: CounterReport, members: Members) -> dict[tuple[str, str], Delta]:
        """Turn one report into usage (cumulative per SLA and class, and the hour's usage records):
        returns the (SLA, class) deltas it added."""
        now = _now()
        added: dict[tuple[str, str], Delta] = {}
        with self.database.write() as session:
            marks = {(m.interface, m.class_name): m for m in
                     session.scalars(select(CounterMarkRow).where(CounterMarkRow.router == router))}
            known_router = bool(marks)
            reported = set()
            for c in report.rows():
                key = (c.interface, c.class_name)
                reported.add(key)
                sample = Sample(report.boot_epoch, c.octets, c.packets, c.drops)
                mark = marks.get(key)
                d = delta(None if mark is None else Sample(mark.boot_epoch, mark.octets, mark.packets, mark.drops),
                          sample, new_class=known_router)
                if mark is None:
                    session.add(CounterMarkRow(router=router, interface=c.interface, class_name=c.class_name,
                                               boot_epoch=sample.boot_epoch, octets=c.octets, packets=c.packets,
                                               drops=c.drops, sampled_at=now))
                else:
                    mark.boot_epoch, mark.octets, mark.packets, mark.drops, mark.sampled_at = (
                        sample.boot_epoch, c.octets, c.packets, c.drops, now)
                owner = customer_leaf(c.class_name, members.get(key, ()))
                if d and owner is not None:
                    total = added.get(owner, Delta(0, 0, 0))
                    added[owner] = Delta(total.octets + d.octets, total.packets + d.packets, total.drops + d.drops)
            gone = [key for key in marks if key not in reported]   # classes removed: a re-creation starts from 0
            for interface, class_name in gone:
                session.execute(delete(CounterMarkRow).where(CounterMarkRow.router == router,
                                                             CounterMarkRow.interface == interface,
                                                             CounterMarkRow.class_name == class_name))
            for (sla, service_class), d in added.items():
                usage = session.get(ClassUsageRow, (sla, service_class))
                if usage is None:
                    session.add(ClassUsageRow(sla=sla, service_class=service_class, octets=d.octets, packets=d.packets,
                                              drops=d.drops, updated_at=now))
                else:
                    usage.octets += d.octets
                    usage.packets += d.packets
                    usage.drops += d.drops
                    usage.updated_at = now
            if self.dscp is not None:
                add_meter_usage(session, added, self.dscp, now)
        return added

    def usage(self, since: datetime | None = None,
              slas: Collection[str] | None = None) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(SLA, class) -> (octets, packets, drops) so far; only rows updated at or after `since`, and
        only of the SLAs named in `slas`, if given."""
        query = select(ClassUsageRow)
        if since is not None:
            query = query.where(ClassUsageRow.updated_at >= since)
        if slas is not None:
            query = query.where(ClassUsageRow.sla.in_(list(slas)))
        with self.database.read() as session:
            return {(r.sla, r.service_class): (r.octets, r.packets, r.drops) for r in session.scalars(query)}


def _status(router: str, agent: AgentRow | None, sent: RouterConfigRow | None) -> AgentStatus:
    return AgentStatus(
        router=router, connected=bool(agent and agent.connected), agent_version=agent.agent_version if agent else "",
        peer=agent.peer if agent else "", applied_version=agent.applied_version if agent else 0,
        applied_fingerprint=agent.applied_fingerprint if agent else "",
        applied_config=from_json(agent.applied_config) if agent and agent.applied_config else None,
        last_error=agent.last_error if agent else "", last_seen=agent.last_seen if agent else None,
        sent_version=sent.version if sent else 0, sent_fingerprint=sent.fingerprint if sent else "")
