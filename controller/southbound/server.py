"""The controller's gRPC server for router agents (csmm.agent.v1.AgentService) and the registry
of their sessions.

One stream per router. On connect the agent says Hello; the controller checks who it is (with
mTLS the certificate's name must be the router id it claims), sends the session parameters and
the router's full config. After each change in the database it recomputes the configs and sends
each connected router whose config changed a small diff (or a snapshot when the agent has not
acknowledged the previous version). Apply results, counters and heartbeats are recorded in the
database (controller.southbound.store). Nothing is queued for a disconnected agent: on its next
Hello it gets the config of that moment.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from csmm_proto import agent_pb2 as pb
from csmm_proto import agent_pb2_grpc
from csmm_proto.configs import diff as config_diff
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from controller.domain.principal import DOMAIN_MANAGER
from controller.feedback.engine import FeedbackEngine, FeedbackSettings
from controller.service.events import SLA_CLEARED, SLA_VIOLATION, Event
from controller.service.layer import ServiceLayer
from controller.southbound.counters import ClassKey, ClassRow, CounterFormatError, CounterReport, decode_report
from controller.southbound.pki import peer_identity, server_credentials
from controller.southbound.store import Members, SouthboundStore
from controller.southbound.wire import config_message
from controller.store.schema import EventRow

log = logging.getLogger("csmm.southbound")

SERVICE_NAME = "csmm.agent.v1.AgentService"
FEEDBACK_EVENTS = (SLA_VIOLATION, SLA_CLEARED)
HELLO_TIMEOUT_S = 10.0
EVENT_POLL_S = 0.25      # how often the event log is checked for changes made by other processes
KEEPALIVE = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
             ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
             ("grpc.keepalive_permit_without_calls", 1)]


@dataclass
class ClassSample:
    bytes: int
    packets: int
    drops: int
    overlimits: int
    at_ns: int = 0
    rate_bps: float | None = None    # since the previous sample: what the class carries now


def sample_after(previous: ClassSample | None, row: ClassRow) -> ClassSample:
    """The class's new sample, with its rate since `previous` (none after a counter reset)."""
    rate = None
    if previous is not None and row.timestamp_ns > previous.at_ns and row.octets >= previous.bytes:
        rate = (row.octets - previous.bytes) * 8e9 / (row.timestamp_ns - previous.at_ns)
    return ClassSample(row.octets, row.packets, row.drops, row.overlimits, row.timestamp_ns, rate)


@dataclass
class AgentSession:
    router: str
    peer: str
    outbox: asyncio.Queue[pb.ControllerMessage | None] = field(default_factory=asyncio.Queue)
    sent: pb.DesiredConfig | None = None          # the newest config sent (snapshot or diff result)
    acked_version: int = 0                        # the newest version the agent applied without error
    members: Members = field(default_factory=dict)
    counters: dict[tuple[str, str], ClassSample] = field(default_factory=dict)
    layout: tuple[int, list[ClassKey]] = (0, [])   # the class list the agent's counter columns follow
    last_seen: float = field(default_factory=time.time)


class Southbound(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, service: ServiceLayer, *, counter_interval_ms: int = 1000, heartbeat_interval_ms: int = 5000,
                 check_identity: bool = True, feedback: FeedbackSettings | None = None) -> None:
        self.service = service
        dscp = {name.value: c.dscp for name, c in service.catalog.classes.items()}
        self.store = SouthboundStore(service.database, dscp)  # with volume metering
        self.counter_interval_ms = counter_interval_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.check_identity = check_identity
        self.sessions: dict[str, AgentSession] = {}
        self._dirty = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.feedback = FeedbackEngine(service, self.router_ok, feedback)

    # ----------------------------------------------------------------------------- change feed

    def changed(self, event: Event | None = None) -> None:
        """Something in the database changed: recompute soon. Safe from any thread."""
        if event is not None and event.type in FEEDBACK_EVENTS:
            return  # what the feedback part found changes no config
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._dirty.set)

    def class_rates(self) -> dict[tuple[str, str, str], float]:
        """What each QoS class carries now, by (router, interface, class), from the last two
        counter reports of the routers connected now."""
        return {(router, interface, name): sample.rate_bps
                for router, session in self.sessions.items()
                for (interface, name), sample in session.counters.items() if sample.rate_bps is not None}

    def router_ok(self, router: str) -> bool:
        """Is the router's agent connected, with the config last sent applied?"""
        session = self.sessions.get(router)
        return session is not None and session.sent is not None and session.acked_version == session.sent.version

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.store.mark_all_disconnected)
        for prefix in ("sla.", "sls.", "topology."):
            self.service.bus.subscribe(prefix, self.changed)
        self._tasks = [asyncio.create_task(self._recompute_loop()), asyncio.create_task(self._watch_event_log()),
                       asyncio.create_task(self.feedback.run())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self.sessions.values()):
            session.outbox.put_nowait(None)

    async def _watch_event_log(self) -> None:
        """Changes made by another process (the csmm CLI, another replica) reach us through the
        event log in the database."""
        last = await asyncio.to_thread(self._last_event_id)
        while True:
            await asyncio.sleep(EVENT_POLL_S)
            try:
                newest = await asyncio.to_thread(self._last_event_id)
            except Exception:  # the database is briefly unavailable: try again next round
                log.exception("reading the event log")
                continue
            if newest != last:
                last = newest
                self._dirty.set()

    def _last_event_id(self) -> int:
        """The newest event that may change a config (the feedback part's own ones do not)."""
        with self.service.database.read() as session:
            return session.scalar(select(func.max(EventRow.id)).where(EventRow.type.not_in(FEEDBACK_EVENTS))) or 0

    async def _recompute_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self.feedback.changed()
            if not self.sessions:
                continue
            try:
                configs = await asyncio.to_thread(self.service.router_configs, DOMAIN_MANAGER)
            except Exception:
                log.exception("recomputing router configs")
                continue
            for router, session in list(self.sessions.items()):
                if router in configs:
                    await self._offer(session, config_message(configs[router], version=0))

    async def _offer(self, session: AgentSession, config: pb.DesiredConfig) -> None:
        """Send `config` unless the agent already has it: a diff when the agent acknowledged the
        version it is against, a snapshot otherwise."""
        published = await asyncio.to_thread(self.store.publish, config)
        if session.sent is not None and session.sent.fingerprint == published.fingerprint:
            return
        change = None
        if session.sent is not None and session.acked_version == session.sent.version:
            change = config_diff(session.sent, published)
        session.sent = published
        session.members = {(i.name, c.name): tuple(c.members) for i in published.interfaces for c in i.scheduler.classes}
        if change is not None:
            log.info("router %s: diff to version %d (%s)", session.router, published.version, published.fingerprint)
            session.outbox.put_nowait(pb.ControllerMessage(diff=change))
        else:
            log.info("router %s: config version %d (%s)", session.router, published.version, published.fingerprint)
            session.outbox.put_nowait(pb.ControllerMessage(config=published))

    # ---------------------------------------------------------------------------------- sessions

    async def Session(self, request_iterator: AsyncIterator[pb.AgentMessage],  # noqa: N802 (gRPC's name)
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ControllerMessage]:
        hello = await self._hello(request_iterator, context)
        router = hello.router_id
        session = AgentSession(router, context.peer())
        previous = self.sessions.pop(router, None)
        if previous is not None:
            log.warning("router %s connected again from %s: closing its session from %s", router, session.peer,
                        previous.peer)
            previous.outbox.put_nowait(None)
        self.sessions[router] = session
        await asyncio.to_thread(self.store.agent_connected, hello, session.peer)
        log.info("agent %s connected from %s (agent %s, holds version %d %s)", router, session.peer,
                 hello.agent_version, hello.applied_version, hello.applied_fingerprint or "-")
        reader = asyncio.create_task(self._read(session, request_iterator))
        reason = ""
        try:
            yield pb.ControllerMessage(parameters=pb.SessionParameters(
                counter_interval_ms=self.counter_interval_ms, heartbeat_interval_ms=self.heartbeat_interval_ms))
            configs = await asyncio.to_thread(self.service.router_configs, DOMAIN_MANAGER)
            await self._offer(session, config_message(configs[router], version=0))
            while True:
                getter = asyncio.create_task(session.outbox.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                message = getter.result()
                if message is None:
                    reason = "replaced by a newer session" if self.sessions.get(router) is not session else ""
                    break
                yield message
        finally:
            reader.cancel()
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                reason = repr(reader.exception())
            if self.sessions.get(router) is session:
                del self.sessions[router]
                await asyncio.to_thread(self.store.agent_disconnected, router, reason)
            log.info("agent %s disconnected%s", router, f": {reason}" if reason else "")

    async def _hello(self, request_iterator: AsyncIterator[pb.AgentMessage],
                     context: grpc.aio.ServicerContext) -> pb.Hello:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT_S)
        except (asyncio.TimeoutError, StopAsyncIteration):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message of a session must be a Hello")
        if first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message of a session must be a Hello")
        hello = first.hello
        identity = peer_identity(context.auth_context())
        if self.check_identity and identity != hello.router_id:
            log.warning("refused agent from %s: certificate %r claims router %r", context.peer(), identity,
                        hello.router_id)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"this certificate ({identity}) may not speak for router {hello.router_id!r}")
        topology = await asyncio.to_thread(self.service.topology, DOMAIN_MANAGER)
        if hello.router_id not in {r.id for r in topology.routers}:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no router {hello.router_id!r} in the topology")
        return hello

    @staticmethod
    def _report(session: AgentSession, counters: pb.Counters) -> CounterReport | None:
        """The report's columns with their class list; None (logged) if they cannot be read."""
        if counters.keys:
            session.layout = (counters.layout, [(k.interface, k.class_name) for k in counters.keys])
        layout, keys = session.layout
        if counters.layout != layout:
            log.warning("%s: counters of layout %d, whose class list never came (have %d): ignored",
                        session.router, counters.layout, layout)
            return None
        try:
            return decode_report(counters, keys)
        except CounterFormatError as error:
            log.warning("%s: %s: ignored", session.router, error)
            return None

    async def _read(self, session: AgentSession, request_iterator: AsyncIterator[pb.AgentMessage]) -> None:
        async for message in request_iterator:
            session.last_seen = time.time()
            kind = message.WhichOneof("body")
            if kind == "apply_result":
                await self._applied(session, message.apply_result)
            elif kind == "counters":
                report = self._report(session, message.counters)
                if report is None:
                    continue
                for c in report.rows():
                    key = (c.interface, c.class_name)
                    session.counters[key] = sample_after(session.counters.get(key), c)
                self.feedback.counters(session.router, report)
                await asyncio.to_thread(self.store.ingest, session.router, report, session.members)
            elif kind == "heartbeat":
                await asyncio.to_thread(self.store.agent_seen, session.router)
                session.outbox.put_nowait(pb.ControllerMessage(heartbeat=pb.Heartbeat(sent_at_ns=time.time_ns())))
            else:
                log.warning("router %s sent an unexpected %s", session.router, kind)

    async def _applied(self, session: AgentSession, result: pb.ApplyResult) -> None:
        sent = session.sent if session.sent is not None and session.sent.version == result.version else None
        await asyncio.to_thread(self.store.agent_applied, session.router, result, sent)
        if result.ok:
            session.acked_version = result.version
            log.info("router %s applied version %d (%s)", session.router, result.version, result.fingerprint)
            return
        errors = "; ".join(f"{e.interface} {e.item}: {e.message}" for e in result.errors)
        log.error("router %s could not apply version %d: %s", session.router, result.version, errors)
        if any(e.item in ("base_version", "fingerprint") for e in result.errors) and session.sent is not None:
            session.outbox.put_nowait(pb.ControllerMessage(config=session.sent))   # out of step: a full snapshot


# --------------------------------------------------------------------------------------- server

@dataclass(frozen=True)
class AgentListener:
    addresses: tuple[str, ...]          # "127.0.0.1:50051", "unix:/run/csmm/agents.sock"
    tls_dir: Path | None                # the lab CA directory (csmm ca) with the controller's certificate
    certificate_name: str = "controller"
    counter_interval_ms: int = 1000     # how often agents report counters


RETRY_ADDRESS_S = 2.0   # how often an agent address not on this machine yet is tried again


class AgentServers:
    """The agents' gRPC servers: one for the addresses that can be bound at start, and one more
    for each address that is not on this machine yet (typically a lab's management bridge,
    198.18.0.1, which `csmm-lab up` brings), bound as soon as the address appears."""

    def __init__(self, southbound: Southbound, listener: AgentListener) -> None:
        self._southbound = southbound
        self._listener = listener
        self._servers: list[grpc.aio.Server] = []
        self._waiting: list[asyncio.Task[None]] = []
        self.bound: list[str] = []       # addresses served now
        self.pending: list[str] = []     # addresses waited for

    async def start(self) -> None:
        now = [a for a in self._listener.addresses if _address_state(a) != "absent"]
        later = [a for a in self._listener.addresses if a not in now]
        await self._southbound.start()
        if now:
            self._servers.append(await self._serve(now))
            self.bound += now
        self.pending = list(later)
        for address in later:
            log.warning("agents: %s is not an address of this machine yet; trying again every %.0f s "
                        "(a lab's management bridge brings it: csmm-lab up)", address, RETRY_ADDRESS_S)
            self._waiting.append(asyncio.create_task(self._bind_when_present(address)))

    async def stop(self, grace: float) -> None:
        for task in self._waiting:
            task.cancel()
        for server in self._servers:
            await server.stop(grace=grace)

    async def _bind_when_present(self, address: str) -> None:
        while _address_state(address) == "absent":
            await asyncio.sleep(RETRY_ADDRESS_S)
        try:
            self._servers.append(await self._serve([address]))
        except OSError as error:
            log.error("agents: %s appeared but cannot be bound: %s", address, error)
            return
        self.pending.remove(address)
        self.bound.append(address)
        log.info("agents: now listening on %s too", address)

    async def _serve(self, addresses: list[str]) -> grpc.aio.Server:
        listener = self._listener
        server = grpc.aio.server(options=KEEPALIVE)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self._southbound, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        credentials = server_credentials(listener.tls_dir, listener.certificate_name) if listener.tls_dir else None
        for address in addresses:
            port = (server.add_secure_port(address, credentials) if credentials is not None
                    else server.add_insecure_port(address))
            if port == 0 and not address.startswith("unix:"):
                raise OSError(f"cannot listen for agents on {address}")
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return server


def _address_state(address: str) -> str:
    """"absent" when HOST of HOST:PORT is not an address of this machine (EADDRNOTAVAIL), else
    "present" (a port in use, a name, a unix socket: gRPC reports those itself)."""
    if address.startswith("unix:"):
        return "present"
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError as error:
        return "absent" if error.errno == errno.EADDRNOTAVAIL else "present"
    return "present"


async def start_server(southbound: Southbound, listener: AgentListener) -> AgentServers:
    servers = AgentServers(southbound, listener)
    await servers.start()
    return servers
