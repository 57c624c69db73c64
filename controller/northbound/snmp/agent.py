"""The SNMP agent inside the controller process: pysnmp 7's engine for SNMPv3 (USM), our own answers.

pysnmp does the message layer — BER, USM authentication and privacy, engine discovery, time
windows. Everything after that is ours: `CsmResponder` takes the request's security name and
level, refuses anything below authPriv, and answers from `view.MibTree` for that user's
principal. pysnmp's own MIB tree and VACM never see a request (PITFALLS.md lists their leaks).

SNMPv1 and v2c are not configured at all. Users and notification targets come from the
database (`csmm snmp ...`) and are re-read when they change, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import context as snmp_context
from pysnmp.entity.rfc3413.cmdrsp import CommandResponderBase
from pysnmp.entity.rfc3413.ntforg import NotificationOriginator
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from sqlalchemy import func, select

from controller import __version__
from controller.domain.catalog import ServiceClassName
from controller.domain.conformance import Conformance
from controller.domain.errors import NotFound
from controller.domain.principal import DOMAIN_MANAGER, Principal
from controller.service.events import SLA_CLEARED, SLA_VIOLATION, SLS_CHANGED, Event
from controller.service.layer import ServiceLayer
from controller.southbound.store import SouthboundStore
from controller.store.schema import ConformanceRow, EventRow

from . import access
from .fastpath import Decline, FastPath, engine_clock, fast_user
from .view import (
    CLASS_NUMBERS,
    CSM_MIB,
    CSM_SERVICE,
    METRIC_NUMBERS,
    NOTIFY_OBJECTS,
    SLA_CUSTOMER,
    SLA_ENTRY,
    SLA_NAME,
    SLS_BANDWIDTH,
    SLS_CLASS,
    SLS_ENTRY,
    SNMP_ENGINE,
    SNMP_GROUP,
    SYSTEM,
    UNSIGNED32_MAX,
    MibData,
    MibTree,
    Scalars,
    SetRefused,
    SlaEntry,
    VarBind,
    apply_set,
    csm_tables,
    kbps,
    parse_set,
    text,
)
from .view import SLA_CLEARED as SLA_CLEARED_OID
from .view import SLA_VIOLATION as SLA_VIOLATION_OID
from .view import SLS_CHANGED as SLS_CHANGED_OID

log = logging.getLogger("csmm.snmp")

AUTH_PRIV = 3                 # securityLevel authPriv
USM = 3                       # securityModel USM
SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
EVENT_POLL_S = 0.25
FULL_RELOAD_ABOVE = 200       # more changed SLAs than this at once (a provisioning run): reload all
# Room a response keeps for the message header, USM parameters and padding around the varbinds.
_MESSAGE_OVERHEAD = 300


@dataclass(frozen=True)
class SnmpSettings:
    host: str = "127.0.0.1"
    port: int = 1161
    engine_id: bytes | None = None     # None: the one stored (made on first start)
    sys_name: str = "csmm"
    sys_contact: str = ""
    sys_location: str = ""
    bulk_max_varbinds: int = 1000      # per GETBULK response, besides the size the manager accepts
    usage_interval_s: float = 1.0      # how often the per-class counters and the conformance are re-read
    fast_path: bool = True             # answer plain authPriv reads without pysnmp (fastpath.py)


class CsmResponder(CommandResponderBase):
    """GET, GETNEXT, GETBULK and SET for every PDU the engine accepted, answered from `MibTree`."""

    SUPPORTED_PDU_TYPES = (rfc1905.GetRequestPDU.tagSet, rfc1905.GetNextRequestPDU.tagSet,
                           rfc1905.GetBulkRequestPDU.tagSet, rfc1905.SetRequestPDU.tagSet)

    def __init__(self, engine: SnmpEngine, context: snmp_context.SnmpContext, agent: "SnmpAgent") -> None:
        super().__init__(engine, context)
        self.agent = agent
        self._security: tuple[int, bytes, int, int] = (0, b"", 0, 0)

    def process_pdu(self, snmpEngine: SnmpEngine, messageProcessingModel: int, securityModel: int,  # noqa: N803
                    securityName: Any, securityLevel: int, contextEngineId: Any, contextName: Any,  # noqa: N803
                    pduVersion: int, PDU: Any, maxSizeResponseScopedPDU: int, stateReference: int) -> None:  # noqa: N803
        # The base class keeps these per request but hands the operation only the PDU: note who asks.
        self._security = (int(securityModel), bytes(securityName), int(securityLevel), int(maxSizeResponseScopedPDU))
        super().process_pdu(snmpEngine, messageProcessingModel, securityModel, securityName, securityLevel,
                            contextEngineId, contextName, pduVersion, PDU, maxSizeResponseScopedPDU, stateReference)

    def handle_management_operation(self, snmpEngine: SnmpEngine, stateReference: int, contextName: Any,  # noqa: N803
                                    PDU: Any) -> None:  # noqa: N803
        model, name, level, max_size = self._security
        varbinds = [(tuple(oid), value) for oid, value in v2c.apiPDU.get_varbinds(PDU)]
        principal = self.agent.principal_of(name.decode(errors="replace")) if model == USM else None
        if principal is None or level != AUTH_PRIV or bytes(contextName):
            log.info("refused %s from user %r: %s", PDU.__class__.__name__, name.decode(errors="replace"),
                     "authPriv is required" if principal else "unknown user or context")
            self._reply(snmpEngine, stateReference, "authorizationError", 1 if varbinds else 0, varbinds)
            return
        tag = PDU.tagSet
        tree = self.agent.tree
        if tag == rfc1905.GetRequestPDU.tagSet:
            answer = [(oid, tree.get(oid, principal)) for oid, _ in varbinds]
        elif tag == rfc1905.GetNextRequestPDU.tagSet:
            answer = [tree.next(oid, principal) for oid, _ in varbinds]
        elif tag == rfc1905.GetBulkRequestPDU.tagSet:
            answer = self._bulk(PDU, varbinds, principal, max_size)
        else:
            self._set(snmpEngine, stateReference, varbinds, principal)
            return
        self._reply(snmpEngine, stateReference, 0, 0, answer)

    def _bulk(self, pdu: Any, varbinds: list[VarBind], principal: Principal, max_size: int) -> list[VarBind]:
        """RFC 3416 4.2.3, stopping where the response would no longer fit the manager's size or our cap."""
        non_repeaters = min(max(int(v2c.apiBulkPDU.get_non_repeaters(pdu)), 0), len(varbinds))
        repetitions = max(int(v2c.apiBulkPDU.get_max_repetitions(pdu)), 0)
        tree = self.agent.tree
        answer = [tree.next(oid, principal) for oid, _ in varbinds[:non_repeaters]]
        budget = max_size - _MESSAGE_OVERHEAD - sum(_encoded_size(vb) for vb in answer)
        cap = self.agent.settings.bulk_max_varbinds
        row = [oid for oid, _ in varbinds[non_repeaters:]]
        for _ in range(repetitions if row else 0):
            found = [tree.next(oid, principal) for oid in row]
            size = sum(_encoded_size(vb) for vb in found)
            if size > budget or len(answer) + len(found) > cap:
                break
            answer.extend(found)
            budget -= size
            if all(value is rfc1905.endOfMibView for _, value in found):
                break
            row = [oid for oid, _ in found]
        return answer

    def _set(self, engine: SnmpEngine, state: int, varbinds: list[VarBind], principal: Principal) -> None:
        try:
            request = parse_set(varbinds, principal, self.agent.data, self.agent.tree)
            change = apply_set(request, principal, self.agent.service)
        except SetRefused as refusal:
            log.info("SET by %s refused: %s", principal, refusal)
            self._reply(engine, state, refusal.status, refusal.index + 1, varbinds)
            return
        if change.changed:
            self.agent.sls_changed_here(request.sla_id, change.sls)
        log.info("SET by %s: SLA %d now %s %d bit/s (version %d)", principal, request.sla_id,
                 change.sls.service_class, change.sls.bandwidth_bps, change.sls.version)
        self._reply(engine, state, 0, 0, varbinds)

    def _reply(self, engine: SnmpEngine, state: int, status: Any, index: int, varbinds: list[VarBind]) -> None:
        self.send_varbinds(engine, state, status, index, varbinds)
        self.release_state_information(state)


def _fast_transport(base: type) -> type:
    """pysnmp's UDP transport, offering each datagram to the fast path before pysnmp sees it."""

    class FastTransport(base):  # type: ignore[misc, valid-type]
        fast_path: FastPath | None = None

        def datagram_received(self, datagram: bytes, address: Any) -> None:
            if self.fast_path is not None and self.transport is not None:
                try:
                    self.transport.sendto(self.fast_path.answer(datagram), address)
                    return
                except Decline:
                    pass
                except Exception:  # a bug here must not cost the answer: pysnmp still gives one
                    log.exception("SNMP fast path failed; pysnmp answers")
            super().datagram_received(datagram, address)

    return FastTransport


FastUdpTransport = _fast_transport(udp.UdpTransport)
FastUdp6Transport = _fast_transport(udp6.Udp6Transport)


def _encoded_size(varbind: VarBind) -> int:
    """An upper estimate of a varbind's BER size, to keep a GETBULK response within the size asked."""
    oid, value = varbind
    value_size = len(value) if isinstance(value, rfc1902.OctetString) else 9
    return 2 * len(oid) + value_size + 8


class SnmpAgent:
    def __init__(self, service: ServiceLayer, settings: SnmpSettings) -> None:
        self.service = service
        self.settings = settings
        self.access = access.SnmpAccess(service)
        self.data = MibData()
        self.tree = MibTree([])
        self.engine: SnmpEngine | None = None
        self._principals: dict[str, Principal] = {}
        self._targets: list[access.SnmpTarget] = []
        self._notifier = NotificationOriginator()
        self._started = time.monotonic()
        self._pending: set[int] = set()
        self._reload_all = False
        self._conformance_mark: tuple[int, datetime | None] | None = None  # what the served conformance was read at
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notified: set[tuple[int, int]] = set()  # (SLA id, SLS version) already announced
        self._announced: set[tuple[str, str, datetime]] = set()  # violations/clears already sent
        self._access_lock = asyncio.Lock()
        self.bound: tuple[str, int] | None = None
        self.fast_path: FastPath | None = None
        self.engine_time: Callable[[], int] = lambda: int(time.monotonic() - self._started)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = self._bind()  # first: a port in use fails here, before anything is stored
        engine_id, boots = await asyncio.to_thread(self.access.start_engine, self.settings.engine_id)
        engine = SnmpEngine(rfc1902.OctetString(engine_id))
        self.engine = engine
        builder = engine.get_mib_builder()
        (engine_boots,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
        engine_boots.syntax = engine_boots.syntax.clone(boots)
        domain = udp6.DOMAIN_NAME if sock.family == socket.AF_INET6 else udp.DOMAIN_NAME
        transport = (FastUdp6Transport() if sock.family == socket.AF_INET6 else FastUdpTransport())
        (engine_time,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineTime")
        self.engine_time = engine_clock(int(engine_time.syntax))  # the load epoch; clone() gives the age
        self.fast_path = FastPath(lambda: self.tree, engine_id, boots, self.engine_time,
                                  self.settings.bulk_max_varbinds) if self.settings.fast_path else None
        transport.fast_path = self.fast_path
        config.add_transport(engine, domain, transport.open_server_mode(sock=sock))
        self._domain = domain
        config.add_context(engine, "")  # VACM checks notifications against the default context
        self.data = await asyncio.to_thread(self._load_all)
        self.tree = self._build_tree(engine)
        self._apply_access(*await asyncio.to_thread(self._read_access))
        CsmResponder(engine, snmp_context.SnmpContext(engine), self)
        engine.open_dispatcher()
        for prefix in ("sla.", "sls.", "snmp."):
            self.service.bus.subscribe(prefix, self._on_event)
        self._tasks = [asyncio.create_task(self._refresh_loop()), asyncio.create_task(self._watch_event_log()),
                       asyncio.create_task(self._usage_loop())]
        log.info("SNMP agent on udp %s:%d: engine ID %s, boots %d, %d users, %d SLAs, %d notification targets",
                 *self.bound or ("?", 0), engine_id.hex(), boots, len(self._principals), len(self.data.rows),
                 len(self._targets))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.engine is not None:
            self.engine.close_dispatcher()
        answered = self.fast_path.answered if self.fast_path else 0
        log.info("SNMP agent stopped: %d reads answered on the fast path", answered)

    def _bind(self) -> socket.socket:
        """Bind the UDP socket ourselves: pysnmp's open_server_mode would swallow a bind error."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"SNMP agent cannot listen on udp {self.settings.host}:{self.settings.port}: "
                                     f"{exc.strerror}") from None
        sock.setblocking(False)
        self.bound = sock.getsockname()[:2]
        return sock

    # ------------------------------------------------------------------ who asks

    def principal_of(self, user: str) -> Principal | None:
        return self._principals.get(user)

    def _read_access(self) -> tuple[list[access.UserKeys], list[access.SnmpTarget]]:
        return self.access.user_keys(), self.access.targets()

    def _apply_access(self, keys: list[access.UserKeys], targets: list[access.SnmpTarget]) -> None:
        """(Re)configure USM users and notification targets. In the loop's thread only: pysnmp's
        configuration is not thread-safe, and requests are being served from it."""
        assert self.engine is not None
        wanted = {k.user.name for k in keys}
        for name in set(self._principals) - wanted:
            config.delete_v3_user(self.engine, name)
            self._principals.pop(name)
        for k in keys:
            config.add_v3_user(self.engine, k.user.name, access.AUTH_PROTOCOLS[k.user.auth_protocol], k.auth_key,
                               access.PRIV_PROTOCOLS[k.user.priv_protocol], k.priv_key,
                               authKeyType=config.USM_KEY_TYPE_MASTER, privKeyType=config.USM_KEY_TYPE_MASTER)
            # VACM only gates what *we* send (notifications); requests never reach it.
            config.add_vacm_user(self.engine, USM, k.user.name, "authPriv", notifySubTree=CSM_MIB)
            self._principals[k.user.name] = k.user.principal
        if self.fast_path is not None:
            engine_id = self.fast_path.engine_id
            self.fast_path.users = {k.user.name.encode(): fast_user(k.user.principal, k.user.auth_protocol, k.auth_key,
                                                                    k.priv_key, engine_id) for k in keys}
        self._configure_targets(targets)

    def _configure_targets(self, targets: list[access.SnmpTarget]) -> None:
        assert self.engine is not None
        for old in self._targets:
            config.delete_notification_target(self.engine, f"n-{old.name}", f"p-{old.name}")
            config.delete_target_address(self.engine, f"a-{old.name}")
            config.delete_target_parameters(self.engine, f"p-{old.name}")
        self._targets = []
        for target in targets:
            if target.user not in self._principals:
                continue
            config.add_target_parameters(self.engine, f"p-{target.name}", target.user, "authPriv", mpModel=3)
            config.add_target_address(self.engine, f"a-{target.name}", self._domain, (target.address, target.port),
                                      f"p-{target.name}", tagList=f"t-{target.name}")
            config.add_notification_target(self.engine, f"n-{target.name}", f"p-{target.name}", f"t-{target.name}",
                                           "trap")
            self._targets.append(target)

    # ------------------------------------------------------------------ the served tree

    def _build_tree(self, engine: SnmpEngine) -> MibTree:
        builder = engine.get_mib_builder()

        def stock(module: str, name: str) -> Any:
            (instance,) = builder.import_symbols(module, name)
            return lambda: instance.syntax

        catalog = self.service.catalog
        uptime = self.uptime
        system = Scalars(SYSTEM, {
            1: lambda: text(f"CSMM {__version__}: customer service management for the {catalog.service} service"),
            2: lambda: rfc1902.ObjectIdentifier(CSM_MIB),
            3: uptime,
            4: lambda: text(self.settings.sys_contact),
            5: lambda: text(self.settings.sys_name),
            6: lambda: text(self.settings.sys_location),
            7: lambda: rfc1902.Integer32(72),  # application + end-to-end (RFC 3418)
            8: lambda: rfc1902.TimeTicks(0),
        })
        in_packets = stock("__SNMPv2-MIB", "snmpInPkts")
        snmp = Scalars(SNMP_GROUP, {
            1: lambda: rfc1902.Counter32((int(in_packets()) + (self.fast_path.answered if self.fast_path else 0))
                                         % 2**32), 3: stock("__SNMPv2-MIB", "snmpInBadVersions"),
            4: stock("__SNMPv2-MIB", "snmpInBadCommunityNames"), 5: stock("__SNMPv2-MIB", "snmpInBadCommunityUses"),
            6: stock("__SNMPv2-MIB", "snmpInASNParseErrs"), 30: lambda: rfc1902.Integer32(2),  # authen traps off
            31: stock("__SNMPv2-MIB", "snmpSilentDrops"), 32: stock("__SNMPv2-MIB", "snmpProxyDrops"),
        })
        engine_group = Scalars(SNMP_ENGINE, {
            1: stock("__SNMP-FRAMEWORK-MIB", "snmpEngineID"), 2: stock("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots"),
            3: lambda: rfc1902.Integer32(self.engine_time()),
            4: stock("__SNMP-FRAMEWORK-MIB", "snmpEngineMaxMessageSize"),
        })
        service = Scalars(CSM_SERVICE, {1: lambda: text(catalog.service), 2: lambda: text(catalog.currency)})
        return MibTree([system, snmp, engine_group, service, *csm_tables(self.data)])

    def uptime(self) -> rfc1902.TimeTicks:
        return rfc1902.TimeTicks(int((time.monotonic() - self._started) * 100) % 2**32)

    # ------------------------------------------------------------------ keeping the data current

    def _load_all(self) -> MibData:
        marks = self.service.last_customer_changes(DOMAIN_MANAGER)
        usage = SouthboundStore(self.service.database).usage()
        conformance_mark, conformance = self._conformance_mark_now(), self.service.conformance(DOMAIN_MANAGER)
        data = MibData(conformance=conformance)
        for sla, sls in self.service.list_sls(DOMAIN_MANAGER):
            data.put(SlaEntry(sla, sls, _next_change(sla, marks.get(sla.id))))
        _apply_usage(data, usage)
        self._conformance_mark = conformance_mark
        return data

    def _conformance_mark_now(self) -> tuple[int, datetime | None]:
        """How many conformance rows there are and when the latest was written: a cheap query that
        tells whether the rows must be read again (the feedback part writes them every few seconds;
        reading thousands of them every second would cost the requests being served CPU)."""
        with self.service.database.read() as session:
            count, latest = session.execute(select(func.count(), func.max(ConformanceRow.updated_at))
                                            .select_from(ConformanceRow)).one()
            return int(count), latest

    def _changed_conformance(self) -> dict[int, Conformance] | None:
        """Every SLA's latest conformance, if any changed since it was last read; else None."""
        mark = self._conformance_mark_now()  # first: a row written after it is read again next time
        if mark == self._conformance_mark:
            return None
        conformance = self.service.conformance(DOMAIN_MANAGER)
        self._conformance_mark = mark
        return conformance

    def _load_one(self, sla_id: int) -> SlaEntry | None:
        try:
            sla = self.service.get_sla(DOMAIN_MANAGER, sla_id)
            sls = self.service.get_sls(DOMAIN_MANAGER, sla_id)
        except NotFound:
            return None
        marks = self.service.last_customer_changes(DOMAIN_MANAGER, sla_id)
        return SlaEntry(sla, sls, _next_change(sla, marks.get(sla_id)))

    def _on_event(self, event: Event) -> None:
        """Called after a change commits, in the writer's thread: hand it to the agent's loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._note, event)

    def _note(self, event: Event) -> None:
        """Note what to reload (the refresh loop does it) and announce SLS changes."""
        if event.type.startswith("snmp."):
            self._reload_all = True  # users and targets are few: re-read them all
        elif "sla_id" in event.payload:
            self._pending.add(int(event.payload["sla_id"]))
        if event.type == SLS_CHANGED:
            self._notify_sls_changed(event)
        elif event.type in (SLA_VIOLATION, SLA_CLEARED):
            self._notify_conformance(event)
        self._wake.set()

    def sls_changed_here(self, sla_id: int, sls: Any) -> None:
        """A SET just changed an SLS: show it in the next answer already, not after the reload."""
        entry = self.data.rows.get(sla_id)
        if entry is not None:
            now = datetime.now(timezone.utc)
            self.data.put(SlaEntry(entry.sla, sls, _next_change(entry.sla, now), entry.usage))

    async def _refresh_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, set()
            reload_access, self._reload_all = self._reload_all, False
            try:
                if reload_access:
                    await self._reload_access()
                if len(pending) > FULL_RELOAD_ABOVE:
                    self.data.reset(await asyncio.to_thread(self._load_all))
                for sla_id in sorted(pending) if len(pending) <= FULL_RELOAD_ABOVE else ():
                    entry = await asyncio.to_thread(self._load_one, sla_id)
                    if entry is None:
                        self.data.remove(sla_id)
                    else:
                        self.data.put(SlaEntry(entry.sla, entry.sls, entry.next_change,
                                               self.data.rows[sla_id].usage if sla_id in self.data.rows else {}))
            except Exception:  # the database is briefly unavailable: keep serving what we have
                log.exception("refreshing SNMP data")

    async def _reload_access(self) -> None:
        self._reload_all = False
        async with self._access_lock:  # the watcher and the refresh loop both reload: one at a time, in order
            self._apply_access(*await asyncio.to_thread(self._read_access))
        log.info("SNMP access reloaded: %d users, %d notification targets", len(self._principals), len(self._targets))

    async def _watch_event_log(self) -> None:
        """Changes made by another process (the csmm CLI, another replica) come through the event log."""
        last = await asyncio.to_thread(self._last_event_id)
        while True:
            await asyncio.sleep(EVENT_POLL_S)
            try:
                events = await asyncio.to_thread(self._events_after, last)
            except Exception:
                log.exception("reading the event log")
                continue
            for event in events:
                last = max(last, event.id or last)
                if event.type.startswith("snmp."):
                    # Users and targets first: a notification later in this batch must reach a
                    # target added before it.
                    await self._reload_access()
                self._note(event)

    def _last_event_id(self) -> int:
        with self.service.database.read() as session:
            return session.scalar(select(func.max(EventRow.id))) or 0

    def _events_after(self, last: int) -> list[Event]:
        with self.service.database.read() as session:
            rows = session.scalars(select(EventRow).where(EventRow.id > last).order_by(EventRow.id).limit(5000))
            return [Event(r.type, r.at, r.subject, r.principal, r.payload, r.id) for r in rows]

    async def _usage_loop(self) -> None:
        """The measurements: per-class counters and conformance, which change every few seconds
        without an event, re-read every `usage_interval_s`."""
        store = SouthboundStore(self.service.database)
        since: datetime | None = None
        while True:
            await asyncio.sleep(self.settings.usage_interval_s)
            started = datetime.now(timezone.utc)
            try:
                usage = await asyncio.to_thread(store.usage, since)
            except Exception:
                log.exception("reading per-class usage")
            else:
                _apply_usage(self.data, usage)
                since = started - timedelta(seconds=5)  # overlap: a row committed late is read again, harmlessly
            try:
                conformance = await asyncio.to_thread(self._changed_conformance)
            except Exception:
                log.exception("reading the conformance")
                continue
            if conformance is not None:
                self.data.set_conformance(conformance)

    # ------------------------------------------------------------------ notifications

    def _notify_sls_changed(self, event: Event) -> None:
        """csmSlsChanged, once per SLS version: this process's changes arrive both from the bus
        and, a moment later, from the event log."""
        payload = event.payload
        key = (int(payload["sla_id"]), int(payload["version"]))
        if key in self._notified or self.engine is None:
            return
        self._notified.add(key)
        if len(self._notified) > 100000:
            self._notified.clear()
        sla_id = int(payload["sla_id"])
        customer = str(payload.get("customer", ""))
        sla_name = event.subject.partition(":")[2]
        varbinds = [
            (SYS_UP_TIME, self.uptime()),
            (SNMP_TRAP_OID, rfc1902.ObjectIdentifier(SLS_CHANGED_OID)),
            (SLA_ENTRY + (SLA_CUSTOMER, sla_id), text(customer)),
            (SLA_ENTRY + (SLA_NAME, sla_id), text(sla_name)),
            (SLS_ENTRY + (SLS_CLASS, sla_id),
             rfc1902.Integer32(CLASS_NUMBERS[ServiceClassName(payload["service_class"])])),
            (SLS_ENTRY + (SLS_BANDWIDTH, sla_id), kbps(int(payload["bandwidth_bps"]))),
            (SLS_ENTRY + (3, sla_id), rfc1902.Unsigned32(int(payload["version"]))),
        ]
        self.send_notification(customer, varbinds)

    def _notify_conformance(self, event: Event) -> None:
        """csmSlaViolation or csmSlaCleared, from a feedback event (see controller.service.events);
        once, though this process's events arrive from the bus and again from the event log."""
        key = (event.type, event.subject, event.at)
        if key in self._announced or self.engine is None:
            return
        self._announced.add(key)
        payload = event.payload
        sla_id = int(payload["sla_id"])
        trap = SLA_VIOLATION_OID if event.type == SLA_VIOLATION else SLA_CLEARED_OID
        varbinds = [
            (SYS_UP_TIME, self.uptime()),
            (SNMP_TRAP_OID, rfc1902.ObjectIdentifier(trap)),
            (SLA_ENTRY + (SLA_CUSTOMER, sla_id), text(str(payload["customer"]))),
            (SLA_ENTRY + (SLA_NAME, sla_id), text(event.subject.partition(":")[2])),
            (NOTIFY_OBJECTS + (1, 0), rfc1902.Integer32(CLASS_NUMBERS[ServiceClassName(payload["service_class"])])),
            (NOTIFY_OBJECTS + (2, 0), rfc1902.Integer32(METRIC_NUMBERS[str(payload["metric"])])),
            (NOTIFY_OBJECTS + (3, 0), rfc1902.Unsigned32(min(int(payload["measured"]), UNSIGNED32_MAX))),
            (NOTIFY_OBJECTS + (4, 0), rfc1902.Unsigned32(min(int(payload["bound"]), UNSIGNED32_MAX))),
        ]
        self.send_notification(str(payload["customer"]), varbinds)

    def send_notification(self, customer: str, varbinds: list[VarBind]) -> int:
        """Send to the domain manager's targets and to `customer`'s own; returns how many targets."""
        assert self.engine is not None
        sent = 0
        for target in self._targets:
            if target.customer is not None and target.customer != customer:
                continue
            try:
                # b"": VACM keys contexts by octets; a str "" is "no such context" and the trap is dropped.
                self._notifier.send_varbinds(self.engine, f"n-{target.name}", None, b"", varbinds)
                sent += 1
            except Exception:
                log.exception("sending a notification to target %s", target.name)
        return sent


def _next_change(sla: Any, last_customer_change: datetime | None) -> datetime | None:
    interval = sla.terms.change_policy.min_interval
    if last_customer_change is None or not interval:
        return None
    return last_customer_change + interval


def _apply_usage(data: MibData, usage: dict[tuple[str, str], tuple[int, int, int]]) -> None:
    ids = {entry.sla.name: sla_id for sla_id, entry in data.rows.items()} if usage else {}
    for (sla_name, service_class), counts in usage.items():
        if sla_name in ids:
            data.set_usage(ids[sla_name], ServiceClassName(service_class), counts)
