"""The NETCONF server inside the controller: SSH (asyncssh), the "netconf" subsystem, RFC 6241 sessions.

Each SSH login (`csmm netconf user add`) acts for one peer domain or customer, or for the domain
manager; its session sees and edits only that principal's SLSs (rpc.py). Locks are per principal:
a peer's <lock> keeps its own other sessions from editing its SLSs, and never blocks another peer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncssh
from lxml import etree
from sqlalchemy import func, select

from controller.domain.errors import CsmmError
from controller.domain.principal import DOMAIN_MANAGER, Principal
from controller.domain.sla import Sla
from controller.domain.sls import Sls
from controller.service.events import Event
from controller.service.layer import ServiceLayer
from controller.southbound.store import SouthboundStore
from controller.store.schema import EventRow

from . import library, nacm, notifications
from .access import NetconfAccess, password_matches
from .framing import MAX_MESSAGE_BYTES, FramingLost, MalformedMessage, MessageReader, frame, parse_xml
from .rpc import (
    CSM,
    CSM_MODULE,
    CSM_REVISION,
    NC,
    RpcError,
    StateData,
    apply_edit,
    config_text,
    config_tree,
    data_tree,
    filtered_sla_ids,
    plan_edit,
    refusal_to_rpc_error,
    subtree_filter,
)

log = logging.getLogger("csmm.netconf")

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
CAPABILITIES = (
    BASE_10, BASE_11,
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",   # every edit is all or nothing
    "urn:ietf:params:netconf:capability:validate:1.1",
    notifications.NOTIFICATION_CAPABILITY, notifications.INTERLEAVE_CAPABILITY,
    library.WITH_DEFAULTS_CAPABILITY, library.MONITORING,
    f"{CSM}?module={CSM_MODULE}&revision={CSM_REVISION}",
)
_NC = f"{{{NC}}}"
EVENT_POLL_S = 0.25
_BODY = "csmm:body"  # stands for a serialized body in _reply_bytes (attribute values cannot hold "<!--")
_MODULES_BY_NAMESPACE = {NC: "ietf-netconf", notifications.NOTIFICATION_NS: "notifications",
                         library.MONITORING: "ietf-netconf-monitoring"}


@dataclass(frozen=True)
class NetconfSettings:
    host: str = "127.0.0.1"
    port: int = 2022
    host_key: Path = Path("var/netconf/ssh_host_ed25519_key")
    max_message_bytes: int = MAX_MESSAGE_BYTES


@dataclass(eq=False)
class Session:
    id: int
    user: str
    principal: Principal
    process: Any
    closing: bool = False
    chunked: bool = False
    subscription: notifications.Subscription | None = None
    live_from: int = 0                 # event ids above this are sent live; at or below, by the replay
    replay: Any = None                 # what to run once the <ok/> of create-subscription is out
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def send(self, message: bytes) -> None:
        if not self.closing and not self.process.is_closing():
            self.process.stdout.write(frame(message, self.chunked))


class NetconfServer:
    def __init__(self, service: ServiceLayer, settings: NetconfSettings) -> None:
        self.service = service
        self.settings = settings
        self.access = NetconfAccess(service)
        self.sessions: dict[int, Session] = {}
        self.locks: dict[Principal, int] = {}  # principal -> the session holding its lock
        self._ids = itertools.count(1)
        self._server: asyncssh.SSHAcceptor | None = None
        self._last_event = 0
        self._feed: asyncio.Task[None] | None = None
        self._nacm: nacm.Nacm | None = None  # derived from logins and SLAs; dropped when they change

    async def start(self) -> None:
        key = await asyncio.to_thread(load_host_key, self.settings.host_key)
        self._server = await asyncssh.create_server(
            lambda: _SshServer(self.access), self.settings.host, self.settings.port, server_host_keys=[key],
            process_factory=self._serve, encoding=None, line_editor=False, allow_pty=False,
            x11_forwarding=False, agent_forwarding=False, login_timeout=30)
        self._last_event = await asyncio.to_thread(self._newest_event_id)
        self._feed = asyncio.create_task(self._feed_notifications())
        log.info("NETCONF over SSH on %s:%d (host key %s, %s)", self.settings.host, self.settings.port,
                 self.settings.host_key, key.get_fingerprint())

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------------ one session

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem != "netconf":
            process.stderr.write(b"this server offers only the netconf subsystem\n")
            process.exit(1)
            return
        name = process.get_extra_info("username")
        login = await asyncio.to_thread(self.access.login, name)
        if login is None:  # removed since it authenticated
            process.exit(1)
            return
        session = Session(next(self._ids), name, login[0].principal, process)
        self.sessions[session.id] = session
        log.info("session %d opened by %s (%s) from %s", session.id, name, session.principal,
                 process.get_extra_info("peername"))
        try:
            await self._converse(session, process)
        except (asyncssh.Error, ConnectionError, BrokenPipeError) as exc:
            log.info("session %d lost: %s", session.id, exc)
        finally:
            self.sessions.pop(session.id, None)
            if self.locks.get(session.principal) == session.id:
                del self.locks[session.principal]
            log.info("session %d closed", session.id)
            if not process.is_closing():
                process.exit(0)

    async def _converse(self, session: Session, process: asyncssh.SSHServerProcess[bytes]) -> None:
        process.stdout.write(frame(self._hello(session.id), chunked=False))
        reader = MessageReader(self.settings.max_message_bytes)
        hello_done = False
        while not session.closing:
            data = await process.stdin.read(65536)
            if not data:
                return
            try:
                reader.feed(data)
                while not session.closing and (message := reader.next()) is not None:
                    if not hello_done:
                        reader.chunked = session.chunked = self._read_hello(message)
                        hello_done = True
                        continue
                    reply = await self._reply(session, message, chunked=reader.chunked)
                    process.stdout.write(frame(reply, reader.chunked))
                    if session.replay is not None:  # after the <ok/>, as RFC 5277 orders it
                        asyncio.create_task(session.replay)
                        session.replay = None
            except FramingLost as exc:
                log.info("session %d: framing lost (%s); closing", session.id, exc)
                return
            except MalformedMessage as exc:  # a bad hello
                log.info("session %d: bad hello (%s); closing", session.id, exc)
                return

    def _hello(self, session_id: int) -> bytes:
        hello = etree.Element(_NC + "hello", nsmap={None: NC})
        capabilities = etree.SubElement(hello, _NC + "capabilities")
        for capability in capabilities_offered():
            etree.SubElement(capabilities, _NC + "capability").text = capability
        etree.SubElement(hello, _NC + "session-id").text = str(session_id)
        return etree.tostring(hello, xml_declaration=True, encoding="UTF-8")

    @staticmethod
    def _read_hello(message: bytes) -> bool:
        """The client's hello; True if both sides speak base:1.1 (chunked framing from now on)."""
        root = parse_xml(message)
        if root.tag != _NC + "hello" or root.find(_NC + "session-id") is not None:
            raise MalformedMessage("expected a client <hello> without a session-id")
        offered = {(c.text or "").strip() for c in root.iter(_NC + "capability")}
        if not offered & {BASE_10, BASE_11}:
            raise MalformedMessage("the client offers neither base:1.0 nor base:1.1")
        return BASE_11 in offered

    # ------------------------------------------------------------------ one rpc

    async def _reply(self, session: Session, message: bytes, *, chunked: bool) -> bytes:
        try:
            rpc = parse_xml(message)
        except MalformedMessage as exc:
            if not chunked:
                session.closing = True  # base:1.0 cannot find the next message reliably (RFC 6242 4.3)
            return _reply_bytes({}, [RpcError("malformed-message", str(exc), error_type="rpc")])
        attributes = dict(rpc.attrib)
        if rpc.tag != _NC + "rpc":
            return _reply_bytes(attributes, [RpcError("unknown-element", f"expected <rpc>, got {rpc.tag}",
                                                      error_type="protocol", info={"bad-element": rpc.tag})])
        if "message-id" not in attributes:
            return _reply_bytes({}, [RpcError("missing-attribute", "<rpc> needs a message-id", error_type="rpc",
                                              info={"bad-attribute": "message-id", "bad-element": "rpc"})])
        operation = next((child for child in rpc if isinstance(child.tag, str)), None)
        if operation is None:
            return _reply_bytes(attributes, [RpcError("missing-element", "<rpc> names no operation",
                                                      error_type="protocol", info={"bad-element": "rpc"})])
        try:
            body = await self._operate(session, operation)
        except RpcError as error:
            log.info("session %d (%s): %s refused: %s %s", session.id, session.principal,
                     etree.QName(operation).localname, error.tag, error.message)
            return _reply_bytes(attributes, [error])
        except CsmmError as error:
            return _reply_bytes(attributes, [refusal_to_rpc_error(error, None)])
        return _reply_bytes(attributes, [], body)

    async def _operate(self, session: Session, operation: etree._Element) -> etree._Element | bytes | None:
        """The reply's content: an element (<data>) or its serialization, or None for <ok/>."""
        name = etree.QName(operation)
        module = _MODULES_BY_NAMESPACE.get(name.namespace or "", "")
        rules = await self._access_rules()
        if not rules.allowed(session.user, "exec", module, rpc=name.localname):
            raise RpcError("access-denied", f"NACM: {session.user} may not run {name.localname}",
                           error_type="protocol", info={"bad-element": name.localname})
        if name.namespace == notifications.NOTIFICATION_NS and name.localname == "create-subscription":
            return await self._create_subscription(session, operation)
        if name.namespace == library.MONITORING and name.localname == "get-schema":
            return await asyncio.to_thread(library.get_schema, operation)
        if name.namespace != NC:
            raise RpcError("operation-not-supported", f"unknown operation {name.text}", error_type="protocol",
                           info={"bad-element": name.localname})
        handler = getattr(self, "_op_" + name.localname.replace("-", "_"), None)
        if handler is None:
            raise RpcError("operation-not-supported", f"{name.localname} is not supported", error_type="protocol",
                           info={"bad-element": name.localname})
        return await handler(session, operation)

    async def _op_get(self, session: Session, operation: etree._Element) -> etree._Element | bytes:
        return await self._data(session, operation, config_only=False)

    async def _op_get_config(self, session: Session, operation: etree._Element) -> etree._Element | bytes:
        _datastore(operation, "source")
        return await self._data(session, operation, config_only=True)

    async def _data(self, session: Session, operation: etree._Element, *, config_only: bool) -> etree._Element | bytes:
        library.check_with_defaults(operation)
        chosen = operation.find(_NC + "filter")
        if chosen is not None and chosen.get("type", "subtree") != "subtree":
            raise RpcError("operation-not-supported", "only subtree filters are supported", error_type="protocol",
                           info={"bad-attribute": "type", "bad-element": "filter"})
        rules = await self._access_rules()
        keyed = filtered_sla_ids(chosen) if chosen is not None else None  # the filter runs on these only

        def wanted(sla_id: int, readable: set[int]) -> bool:
            return sla_id in readable and (keyed is None or sla_id in keyed)

        if config_only:  # class and bandwidth only: a lighter read than the contracts
            settings = await asyncio.to_thread(self.service.sls_settings, session.principal)
            readable = rules.readable_slas(session.user, [setting.sla_id for setting in settings])
            mine = [setting for setting in settings if wanted(setting.sla_id, readable)]
            if chosen is None:  # the whole datastore: straight to text, no tree to build and serialize
                return f'<data xmlns="{NC}">{config_text(mine)}</data>'.encode()
            trees = [config_tree(mine)]
        else:
            entries = await asyncio.to_thread(self.service.list_sls, session.principal)
            readable = rules.readable_slas(session.user, [sla.id for sla, _ in entries])
            mine = [(sla, sls) for sla, sls in entries if wanted(sla.id, readable)]
            state = await asyncio.to_thread(self._state_data, session.principal, mine)
            trees = [data_tree(mine, config_only=False, state=state)]
        if not config_only:  # state about the server itself
            trees += [library.netconf_state(capabilities_offered()), library.yang_library()]
            if rules.allowed(session.user, "read", "ietf-netconf-acm"):
                trees.append(nacm.to_xml(rules))
        data = etree.Element(_NC + "data")
        for tree in trees:
            for selected in ([tree] if chosen is None else subtree_filter(tree, chosen)):
                data.append(selected)
        return data

    async def _op_edit_config(self, session: Session, operation: etree._Element) -> None:
        _datastore(operation, "target")
        self._check_lock(session)
        default_operation = _option(operation, "default-operation", ("merge", "replace", "none"), "merge")
        test_option = _option(operation, "test-option", ("test-then-set", "set", "test-only"), "test-then-set")
        error_option = _option(operation, "error-option", ("stop-on-error", "rollback-on-error",
                                                           "continue-on-error"), "stop-on-error")
        if error_option == "continue-on-error":
            raise RpcError("operation-not-supported", "edits are all or nothing: continue-on-error is not supported",
                           error_type="protocol", info={"bad-element": "error-option"})
        # ncclient sends <config> without a namespace when given a string rooted in <config>.
        config = operation.find(_NC + "config")
        config = config if config is not None else operation.find("config")
        if config is None:
            raise RpcError("missing-element", "edit-config needs <config> (<url> is not supported)",
                           error_type="protocol", info={"bad-element": "config"})
        plan = plan_edit(config, default_operation)
        rules = await self._access_rules()
        for sla_id in sorted(plan.changes):
            if not rules.allowed(session.user, "update", nacm.CSM_MODULE, node=nacm.sla_node(sla_id)):
                raise RpcError("access-denied", f"NACM: {session.user} may not change the SLS of SLA {sla_id}",
                               error_type="protocol", path=f"/csm:csm/csm:sla[csm:id='{sla_id}']/csm:sls")
        await asyncio.to_thread(apply_edit, self.service, session.principal, plan, test_only=test_option == "test-only")
        return None

    async def _op_validate(self, session: Session, operation: etree._Element) -> None:
        source = operation.find(_NC + "source")
        config = source.find(_NC + "config") if source is not None else None
        if config is None:
            _datastore(operation, "source")
            return None  # the running datastore is always valid
        await asyncio.to_thread(apply_edit, self.service, session.principal, plan_edit(config, "merge"),
                                test_only=True)
        return None

    async def _op_lock(self, session: Session, operation: etree._Element) -> None:
        _datastore(operation, "target")
        holder = self.locks.get(session.principal)
        if holder is not None and holder != session.id:
            raise RpcError("lock-denied", f"session {holder} holds this peer's lock", error_type="protocol",
                           info={"session-id": holder})
        if holder == session.id:
            raise RpcError("lock-denied", "this session already holds the lock", error_type="protocol",
                           info={"session-id": holder})
        self.locks[session.principal] = session.id
        return None

    async def _op_unlock(self, session: Session, operation: etree._Element) -> None:
        _datastore(operation, "target")
        if self.locks.get(session.principal) != session.id:
            raise RpcError("operation-failed", "this session holds no lock", error_type="protocol")
        del self.locks[session.principal]
        return None

    async def _op_close_session(self, session: Session, operation: etree._Element) -> None:
        session.closing = True
        return None

    async def _op_kill_session(self, session: Session, operation: etree._Element) -> None:
        text = (operation.findtext(_NC + "session-id") or "").strip()
        target = self.sessions.get(int(text)) if text.isdigit() else None
        if text == str(session.id):
            raise RpcError("invalid-value", "use close-session to end this session", error_type="protocol")
        # Only sessions of the same principal: another peer's session looks like no session.
        if target is None or target.principal != session.principal:
            raise RpcError("invalid-value", f"no session {text!r} of yours", error_type="protocol")
        target.closing = True
        if self.locks.get(target.principal) == target.id:
            del self.locks[target.principal]
        target.process.exit(0)
        return None

    # ------------------------------------------------------------------ notifications

    async def _create_subscription(self, session: Session, operation: etree._Element) -> None:
        if session.subscription is not None:
            raise RpcError("operation-failed", "this session already has a subscription", error_type="protocol")
        now = datetime.now(timezone.utc)
        subscription = notifications.parse_subscription(operation, session.principal, now)
        session.subscription = subscription
        session.live_from = self._last_event
        if subscription.start is not None:
            session.replay = self._replay(session, subscription, session.live_from)
        return None

    async def _replay(self, session: Session, subscription: notifications.Subscription, up_to: int) -> None:
        """Stored events from startTime (to stopTime), then replayComplete; live ones follow."""
        assert subscription.start is not None
        events = await asyncio.to_thread(self._stored_events, subscription.start, up_to)
        for event in events:
            if subscription.stop is not None and event.at > subscription.stop:
                break
            message = notifications.notification(event, subscription)
            if message is not None:
                session.send(message)
        now = datetime.now(timezone.utc)
        session.send(notifications.marker("replayComplete", now))
        if subscription.stop is not None and subscription.stop <= now:
            session.send(notifications.marker("notificationComplete", now))
            session.subscription = None
            return
        subscription.replaying = False

    async def _feed_notifications(self) -> None:
        """New events, as the log brings them, to every live subscription they are for."""
        while True:
            await asyncio.sleep(EVENT_POLL_S)
            try:
                events = await asyncio.to_thread(self._events_after, self._last_event)
            except Exception:  # the database is briefly unavailable: next round
                log.exception("reading the event log")
                continue
            for event in events:
                self._last_event = max(self._last_event, event.id or 0)
                if event.type.startswith(("sla.created", "netconf.", "customer.")):
                    self._nacm = None  # new SLAs or logins: derive the rules again
                for session in list(self.sessions.values()):
                    subscription = session.subscription
                    if subscription is None or (event.id or 0) <= session.live_from:
                        continue
                    if subscription.stop is not None and event.at > subscription.stop:
                        session.send(notifications.marker("notificationComplete", event.at))
                        session.subscription = None
                        continue
                    message = notifications.notification(event, subscription)
                    if message is not None:
                        session.send(message)

    async def _access_rules(self) -> nacm.Nacm:
        if self._nacm is None:
            self._nacm = await asyncio.to_thread(self._derive_rules)
        return self._nacm

    def _derive_rules(self) -> nacm.Nacm:
        logins = [(user.name, user.customer) for user in self.access.users(DOMAIN_MANAGER)]
        return nacm.generate(logins, self.service.sla_owners(DOMAIN_MANAGER).items())

    def _state_data(self, principal: Principal, entries: list[tuple[Sla, Sls]]) -> StateData:
        """The service, change marks and counters behind the state leaves of `entries`."""
        names = None if principal.is_domain_manager else [sla.name for sla, _ in entries]
        return StateData(self.service.catalog, datetime.now(timezone.utc),
                         self.service.last_customer_changes(principal),
                         SouthboundStore(self.service.database).usage(slas=names), self.service.conformance(principal))

    def _newest_event_id(self) -> int:
        with self.service.database.read() as session:
            return session.scalar(select(func.max(EventRow.id))) or 0

    def _events_after(self, last: int) -> list[Event]:
        with self.service.database.read() as session:
            rows = session.scalars(select(EventRow).where(EventRow.id > last).order_by(EventRow.id).limit(5000))
            return [Event(r.type, r.at, r.subject, r.principal, r.payload, r.id) for r in rows]

    def _stored_events(self, start: datetime, up_to: int) -> list[Event]:
        with self.service.database.read() as session:
            rows = session.scalars(select(EventRow).where(EventRow.at >= start, EventRow.id <= up_to,
                                                          EventRow.type.in_(notifications.EVENT_TYPES))
                                   .order_by(EventRow.id))
            return [Event(r.type, r.at, r.subject, r.principal, r.payload, r.id) for r in rows]

    def _check_lock(self, session: Session) -> None:
        holder = self.locks.get(session.principal)
        if holder is not None and holder != session.id:
            raise RpcError("in-use", f"session {holder} holds this peer's lock", error_type="protocol",
                           info={"session-id": holder})


def capabilities_offered() -> tuple[str, ...]:
    return (*CAPABILITIES, library.library_capability())


def _reply_bytes(attributes: dict[str, str], errors: list[RpcError],
                 body: etree._Element | bytes | None = None) -> bytes:
    """The <rpc-reply>, with the <rpc>'s attributes. A body given serialized (a large <data>) takes
    the place of a comment, so that lxml still writes the attributes and their namespaces."""
    reply = etree.Element(_NC + "rpc-reply", nsmap={None: NC})
    for key, value in attributes.items():
        reply.set(key, value)
    if errors:
        for error in errors:
            reply.append(error.element())
    elif body is None:
        etree.SubElement(reply, _NC + "ok")
    elif isinstance(body, bytes):
        reply.append(etree.Comment(_BODY))
        return etree.tostring(reply, xml_declaration=True, encoding="UTF-8").replace(b"<!--%s-->" % _BODY.encode(),
                                                                                   body, 1)
    else:
        reply.append(body)
    return etree.tostring(reply, xml_declaration=True, encoding="UTF-8")


def _datastore(operation: etree._Element, role: str) -> None:
    """<source>/<target> must name the running datastore (the only one there is)."""
    holder = operation.find(_NC + role)
    chosen = next((c for c in holder if isinstance(c.tag, str)), None) if holder is not None else None
    if chosen is None:
        raise RpcError("missing-element", f"<{role}> names no datastore", error_type="protocol",
                       info={"bad-element": role})
    if chosen.tag != _NC + "running":
        raise RpcError("invalid-value", f"only the running datastore exists, not {etree.QName(chosen).localname}",
                       error_type="protocol", info={"bad-element": etree.QName(chosen).localname})


def _option(operation: etree._Element, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (operation.findtext(_NC + name) or default).strip()
    if value not in allowed:
        raise RpcError("invalid-value", f"{name} must be one of {', '.join(allowed)}", error_type="protocol",
                       info={"bad-element": name})
    return value


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The persisted host key (peers pin it); made on first start, readable by the owner only."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.export_private_key())
    log.info("made the NETCONF host key %s", path)
    return key


class _SshServer(asyncssh.SSHServer):
    """Password (scrypt) or public-key logins of `csmm netconf user add`."""

    def __init__(self, access: NetconfAccess) -> None:
        self.access = access

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        login = await asyncio.to_thread(self.access.login, username)
        if login is None or login[1] is None:
            return False
        return await asyncio.to_thread(password_matches, password, login[1])

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        login = await asyncio.to_thread(self.access.login, username)
        if login is None:
            return False
        offered = key.export_public_key("openssh").decode().split()[:2]
        return any(stored.split()[:2] == offered for stored in login[0].public_keys)
