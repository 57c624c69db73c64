"""The NETCONF server as peers meet it: ncclient, netconf-console2 and a raw asyncssh client against a
real `csmm serve` on 127.0.0.1. One controller serves the module; tests that change SLSs use the
peer domain (whose SLA has no change interval) or the domain manager, or say what they spend.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations.rpc import RPCError

from controller.config import Settings, open_service
from controller.domain.principal import DOMAIN_MANAGER
from controller.northbound.netconf.access import NetconfAccess
from controller.provisioning.apply import apply
from controller.provisioning.model import load_provisioning
from controller.service.events import SLA_VIOLATION
from controller.service.layer import ServiceLayer
from controller.store import migrate
from controller.store.database import Database
from controller.store.schema import ClassUsageRow
from tests.integration.snmp_support import free_tcp_port, thin_link_provisioning, wait_until

CSMM = str(Path(sys.executable).with_name("csmm"))
CONSOLE = str(Path(sys.executable).with_name("netconf-console2"))
CSM = "urn:csmm:yang:csm-service"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
PASSWORDS = {"as64500-nms": "peer password 123", "acme-nms": "acme password 123", "globex-nms": "globex password 1",
             "noc": "operator password 1"}
CUSTOMERS = {"as64500-nms": "as64500", "acme-nms": "acme", "globex-nms": "globex", "noc": None}


class NetconfController:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = f"sqlite:///{directory}/csmm.sqlite3"
        self.port = free_tcp_port()
        self.log = directory / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")

    def prepare(self) -> None:
        migrate.upgrade(Database(self.url))
        service = self.service()
        apply(service, DOMAIN_MANAGER, load_provisioning(thin_link_provisioning(self.directory)))
        access = NetconfAccess(service)
        for name, password in PASSWORDS.items():
            keys = (self.client_key.export_public_key("openssh").decode(),) if name == "acme-nms" else ()
            access.add_user(DOMAIN_MANAGER, name, CUSTOMERS[name], password, keys)
        service.database.dispose()

    def service(self) -> ServiceLayer:
        return open_service(Settings(self.url, overbooking=Decimal(3)))  # as `csmm --overbooking 3 serve`

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [CSMM, "--db", self.url, "--overbooking", "3", "serve", "--no-agents", "--no-snmp", "--http",
                 f"127.0.0.1:{free_tcp_port()}", "--netconf", f"127.0.0.1:{self.port}", "--netconf-host-key",
                 str(self.directory / "host_key")], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        wait_until("the NETCONF server", lambda: "NETCONF over SSH" in self.log.read_text()
                   or self.process is None or self.process.poll() is not None)
        assert self.process.poll() is None, self.log.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def connect(self, user: str, password: str | None = None) -> manager.Manager:
        return manager.connect(host="127.0.0.1", port=self.port, username=user,
                               password=password if password is not None else PASSWORDS[user], hostkey_verify=False,
                               look_for_keys=False, allow_agent=False, timeout=15)

    def console(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CONSOLE, "--host", "127.0.0.1", "--port", str(self.port), "-u", user,
                               "-p", PASSWORDS[user], *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetconfController]:
    controller = NetconfController(tmp_path_factory.mktemp("netconf"))
    controller.prepare()
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture(scope="module")
def ids(server: NetconfController) -> dict[str, int]:
    service = server.service()
    try:
        return {sla.name: sla.id for sla in service.list_slas(DOMAIN_MANAGER)}
    finally:
        service.database.dispose()


def sls_now(server: NetconfController, sla: str) -> tuple[str, int, int, str]:
    service = server.service()
    try:
        now = service.get_sls(DOMAIN_MANAGER, sla)
        return now.service_class.value, now.bandwidth_bps, now.version, now.channel.value
    finally:
        service.database.dispose()


def config(*entries: tuple[int, str | None, int | None], operation: str | None = None) -> str:
    body = ""
    for sla_id, service_class, bandwidth in entries:
        leaves = (f"<class>{service_class}</class>" if service_class else "") + (
            f"<bandwidth>{bandwidth}</bandwidth>" if bandwidth is not None else "")
        op = f' xmlns:nc="{NC}" nc:operation="{operation}"' if operation else ""
        body += f"<sla{op}><id>{sla_id}</id><sls>{leaves}</sls></sla>"
    return f'<config><csm xmlns="{CSM}">{body}</csm></config>'


def ids_in(xml: str) -> set[int]:
    root = etree.fromstring(xml.encode())
    return {int(e.text) for e in root.iter(f"{{{CSM}}}id")}


# ------------------------------------------------------------------------------------------ reads

def test_each_peer_reads_only_its_own_slas(server: NetconfController, ids: dict[str, int]) -> None:
    for user, sla in (("as64500-nms", "as64500-transit"), ("acme-nms", "acme-hq"), ("globex-nms", "globex-main")):
        with server.connect(user) as session:
            assert ids_in(session.get_config(source="running").data_xml) == {ids[sla]}
            assert ids_in(session.get().data_xml) == {ids[sla]}
    with server.connect("noc") as session:
        assert ids_in(session.get_config(source="running").data_xml) == set(ids.values())


def test_get_shows_the_contract_and_a_subtree_filter_selects(server: NetconfController, ids: dict[str, int]) -> None:
    with server.connect("noc") as session:
        reply = session.get(filter=("subtree", f'<csm xmlns="{CSM}"><sla><id>{ids["acme-hq"]}</id><contract>'
                                               f'<offering/><class-bounds/></contract></sla></csm>'))
    root = etree.fromstring(reply.data_xml.encode())
    assert ids_in(reply.data_xml) == {ids["acme-hq"]}
    assert root.findtext(f".//{{{CSM}}}offering") == "gsb-business"
    assert {e.findtext(f"{{{CSM}}}class") for e in root.iter(f"{{{CSM}}}class-bounds")} == {"gold", "silver", "bronze"}
    assert root.find(f".//{{{CSM}}}sls") is None and root.find(f".//{{{CSM}}}access") is None


def test_get_shows_the_service_tariff_counters_and_conformance_of_its_own_slas(server: NetconfController,
                                                                               ids: dict[str, int]) -> None:
    """The counters the southbound keeps (class_usage) show as statistics, to their owner only."""
    service = server.service()
    try:
        with service.database.write() as session:
            for sla, octets in (("acme-hq", 123_456), ("globex-main", 654_321)):
                session.merge(ClassUsageRow(sla=sla, service_class="gold", octets=octets, packets=100, drops=7,
                                            updated_at=datetime.now(timezone.utc)))
    finally:
        service.database.dispose()
    with server.connect("acme-nms") as session:
        root = etree.fromstring(session.get().data_xml.encode())
    ns = f"{{{CSM}}}"
    assert root.findtext(f"{ns}csm/{ns}service/{ns}name") == "GSB"
    assert {c.findtext(f"{ns}name") for c in root.iterfind(f"{ns}csm/{ns}service/{ns}class")} == {
        "gold", "silver", "bronze"}
    [entry] = root.iterfind(f"{ns}csm/{ns}sla")
    assert entry.findtext(f"{ns}id") == str(ids["acme-hq"])
    assert entry.findtext(f"{ns}contract/{ns}tariff/{ns}monthly-fee") is not None
    stats = {c.findtext(f"{ns}class"): (c.findtext(f"{ns}octets"), c.findtext(f"{ns}packets"), c.findtext(f"{ns}drops"))
             for c in entry.iterfind(f"{ns}statistics/{ns}class")}
    assert stats == {"gold": ("123456", "100", "7"), "silver": ("0", "0", "0"), "bronze": ("0", "0", "0")}
    assert entry.findtext(f"{ns}conformance/{ns}state") == "unknown"
    assert b"654321" not in etree.tostring(root)  # globex's counters are not acme's to see


def test_netconf_console2_reads_and_edits_as_the_readme_says(server: NetconfController, ids: dict[str, int],
                                                              tmp_path: Path) -> None:
    peer = ids["as64500-transit"]
    got = server.console("as64500-nms", "--get-config")
    assert got.returncode == 0, got.stderr
    assert ids_in(got.stdout) == {peer}
    edit = tmp_path / "edit.xml"
    edit.write_text(f'<csm xmlns="{CSM}"><sla><id>{peer}</id><sls><class>silver</class>'
                    f'<bandwidth>5000000</bandwidth></sls></sla></csm>')
    done = server.console("as64500-nms", "--edit-config", str(edit))
    assert done.returncode == 0 and "<ok" in done.stdout, done.stdout + done.stderr
    assert sls_now(server, "as64500-transit")[:2] == ("silver", 5_000_000)
    edit.write_text(edit.read_text().replace("5000000", "60000000"))  # silver max is 6 Mbit/s
    refused = server.console("as64500-nms", "--edit-config", str(edit))
    assert refused.returncode == 255
    assert "<error-tag>invalid-value</error-tag>" in refused.stdout
    assert f"/csm:csm/csm:sla[csm:id='{peer}']/csm:sls/csm:bandwidth" in refused.stdout
    assert "exceeds the SLA's silver maximum 6 Mbit/s" in refused.stdout and ">6000000<" in refused.stdout
    assert sls_now(server, "as64500-transit")[:2] == ("silver", 5_000_000)


# ------------------------------------------------------------------------------------------ edits

def test_an_edit_within_bounds_goes_to_the_store_with_its_channel(server: NetconfController,
                                                                   ids: dict[str, int]) -> None:
    peer = ids["as64500-transit"]
    before = sls_now(server, "as64500-transit")
    with server.connect("as64500-nms") as session:
        assert session.edit_config(target="running", config=config((peer, "gold", 1_500_000))).ok
        assert session.edit_config(target="running", config=config((peer, None, 2_000_000))).ok  # bandwidth alone
    assert sls_now(server, "as64500-transit") == ("gold", 2_000_000, before[2] + 2, "netconf")


def _refusal(session: manager.Manager, xml: str, **options: Any) -> RPCError:
    with pytest.raises(RPCError) as refused:
        session.edit_config(target="running", config=xml, **options)
    return refused.value


def test_refusals_name_the_path_and_change_nothing(server: NetconfController, ids: dict[str, int]) -> None:
    peer, acme = ids["as64500-transit"], ids["acme-hq"]
    before = {name: sls_now(server, name) for name in ("as64500-transit", "acme-hq")}
    with server.connect("as64500-nms") as session:
        above = _refusal(session, config((peer, "gold", 9_000_000)))
        assert (above.tag, above.path) == ("invalid-value", f"/csm:csm/csm:sla[csm:id='{peer}']/csm:sls/csm:bandwidth")
        other = _refusal(session, config((acme, "bronze", 1_000_000)))  # acme's SLA: not this peer's
        assert other.tag == "access-denied"
        atomic = _refusal(session, config((peer, "bronze", 3_000_000), (acme, "bronze", 1_000_000)))
        assert atomic.tag == "access-denied"
        exists = _refusal(session, config((peer, "gold", 1_000_000), operation="create"))
        assert (exists.tag, exists.path) == ("data-exists", f"/csm:csm/csm:sla[csm:id='{peer}']")
        create = _refusal(session, config((4242, "gold", 1_000_000), operation="create"))
        assert create.tag == "access-denied"  # SLAs are the domain manager's to make
        delete = _refusal(session, config((peer, None, None), operation="delete"))
        assert delete.tag == "access-denied"
        for missing in (4242, acme):  # another peer's SLA is as missing as one that does not exist
            assert _refusal(session, config((missing, None, None), operation="delete")).tag == "data-missing"
        assert session.edit_config(target="running", config=config((4242, None, None), operation="remove")).ok
        mandatory = _refusal(session, f'<config><csm xmlns="{CSM}" xmlns:nc="{NC}"><sla><id>{peer}</id>'
                                      f'<sls><bandwidth nc:operation="delete">1</bandwidth></sls></sla></csm></config>')
        assert (mandatory.tag, mandatory.app_tag) == ("operation-failed", "mandatory")
        version = _refusal(session, f'<config><csm xmlns="{CSM}"><sla><id>{peer}</id><sls><version>9</version>'
                                    f'</sls></sla></csm></config>')
        assert version.tag == "invalid-value"
        unknown = _refusal(session, config((peer, "platinum", 1_000_000)))
        assert (unknown.tag, unknown.path) == ("invalid-value", f"/csm:csm/csm:sla[csm:id='{peer}']/csm:sls/csm:class")
        continue_on_error = _refusal(session, config((peer, "gold", 1_000_000)), error_option="continue-on-error")
        assert continue_on_error.tag == "operation-not-supported"
        assert session.edit_config(target="running", config=config((peer, "bronze", 7_000_000)),
                                   test_option="test-only").ok  # checked, not applied
    assert {name: sls_now(server, name) for name in before} == before


def test_admission_control_refuses_with_resource_denied(server: NetconfController, ids: dict[str, int]) -> None:
    acme, globex = ids["acme-hq"], ids["globex-main"]
    with server.connect("noc") as session:
        # edge1-core carries 3 Mbit/s of Gold; globex holds 2 of it.
        refused = _refusal(session, config((acme, "gold", 3_000_000)))
    assert refused.tag == "resource-denied" and "edge1-core" in refused.message
    assert sls_now(server, "globex-main")[0] == "gold" and sls_now(server, "acme-hq")[0] != "gold"
    assert globex != acme


# ------------------------------------------------------------------------------------------ sessions

def test_a_lock_holds_back_the_peers_other_sessions_but_no_other_peer(server: NetconfController,
                                                                       ids: dict[str, int]) -> None:
    with server.connect("as64500-nms") as first, server.connect("as64500-nms") as second, \
            server.connect("noc") as operator:
        assert first.lock(target="running").ok
        with pytest.raises(RPCError) as denied:
            second.lock(target="running")
        assert denied.value.tag == "lock-denied"
        in_use = _refusal(second, config((ids["as64500-transit"], "silver", 3_000_000)))
        assert in_use.tag == "in-use"
        assert operator.lock(target="running").ok  # another principal: not blocked
        assert operator.unlock(target="running").ok
        assert first.unlock(target="running").ok
        assert second.edit_config(target="running", config=config((ids["as64500-transit"], "silver", 3_000_000))).ok


def test_kill_session_reaches_only_the_peers_own_sessions(server: NetconfController) -> None:
    peer, acme, peer_again = server.connect("as64500-nms"), server.connect("acme-nms"), server.connect("as64500-nms")
    try:
        with pytest.raises(RPCError) as foreign:
            peer.kill_session(acme.session_id)
        assert foreign.value.tag == "invalid-value"
        assert peer.kill_session(peer_again.session_id).ok
        wait_until("the killed session to end", lambda: not peer_again.connected, timeout=5)
        assert acme.get_config(source="running").ok
    finally:
        peer.close_session()
        acme.close_session()


def test_public_key_login_and_wrong_password(server: NetconfController, ids: dict[str, int]) -> None:
    raw = RawSession(server, "acme-nms", key=server.client_key)
    try:
        assert ids_in(raw.get_config()) == {ids["acme-hq"]}
    finally:
        raw.close()
    with pytest.raises(Exception, match="(?i)auth"):
        server.connect("acme-nms", password="not the password")


# ------------------------------------------------------------------------------------------ raw client

HELLO_10 = (f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability>'
            f'</capabilities></hello>]]>]]>').encode()
HELLO_11 = (f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability>'
            f'</capabilities></hello>]]>]]>').encode()


def chunk(message: str | bytes) -> bytes:
    data = message.encode() if isinstance(message, str) else message
    return b"\n#%d\n" % len(data) + data + b"\n##\n"


class RawSession:
    """A NETCONF session over asyncssh with hand-made framing, for what libraries won't send."""

    def __init__(self, server: NetconfController, user: str, *, key: asyncssh.SSHKey | None = None,
                 base11: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._open(server, user, key, base11))

    async def _open(self, server: NetconfController, user: str, key: asyncssh.SSHKey | None, base11: bool) -> None:
        options: dict[str, Any] = {"client_keys": [key]} if key else {"password": PASSWORDS[user], "client_keys": None}
        self.connection = await asyncssh.connect("127.0.0.1", server.port, username=user, known_hosts=None,
                                                 agent_path=None, **options)
        self.writer, self.reader, _ = await self.connection.open_session(subsystem="netconf", encoding=None)
        self.buffer = b""
        await self._until(b"]]>]]>")  # the server's hello
        self.buffer = self.buffer[self.buffer.index(b"]]>]]>") + 6:]
        self.writer.write(HELLO_11 if base11 else HELLO_10)

    async def _until(self, marker: bytes) -> None:
        while marker not in self.buffer:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data

    def exchange(self, data: bytes, end: bytes = b"\n##\n") -> str:
        async def run() -> str:
            self.writer.write(data)
            await self._until(end)
            reply, _, self.buffer = self.buffer.partition(end)
            return reply.decode()
        return self.loop.run_until_complete(run())

    def get_config(self) -> str:
        """The <rpc-reply> to a get-config of running."""
        reply = self.exchange(chunk(f'<rpc xmlns="{NC}" message-id="1"><get-config><source><running/></source>'
                                    f'</get-config></rpc>'))
        return reply[reply.index("<rpc-reply"):]

    def close(self) -> None:
        self.connection.close()
        self.loop.run_until_complete(self.connection.wait_closed())
        self.loop.close()


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + f']><rpc xmlns="{NC}" message-id="1"><get-config><source><running/></source></get-config>'
                  f'<x>&lol9;</x></rpc>')
XXE = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       f'<rpc xmlns="{NC}" message-id="1"><get-config><source><running/></source></get-config><x>&xxe;</x></rpc>')


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, "<rpc message-id='1'><unclosed></rpc>", "\x00\xff garbage"],
                         ids=["billion-laughs", "xxe", "not-well-formed", "garbage"])
def test_malicious_and_malformed_xml_get_malformed_message_and_others_keep_going(
        server: NetconfController, payload: str) -> None:
    raw = RawSession(server, "as64500-nms")
    bystander = server.connect("globex-nms")
    try:
        started = time.monotonic()
        reply = raw.exchange(chunk(payload.encode("latin-1")))
        assert "<error-tag>malformed-message</error-tag>" in reply and "root:" not in reply
        assert time.monotonic() - started < 5
        assert ids_in(raw.get_config())  # base:1.1 keeps the session after a malformed message
        assert bystander.get_config(source="running").ok
    finally:
        raw.close()
        bystander.close_session()


def test_an_oversized_message_ends_only_that_session(server: NetconfController) -> None:
    raw = RawSession(server, "as64500-nms")
    bystander = server.connect("globex-nms")
    try:
        with pytest.raises((ConnectionError, asyncio.TimeoutError, asyncssh.Error)):
            raw.exchange(b"\n#%d\n" % (17 * 1024 * 1024) + b"<rpc>" + b"x" * (17 * 1024 * 1024))
        assert bystander.get_config(source="running").ok
    finally:
        raw.close()
        bystander.close_session()


def test_a_base_10_client_uses_end_of_message_framing(server: NetconfController, ids: dict[str, int]) -> None:
    raw = RawSession(server, "as64500-nms", base11=False)
    try:
        reply = raw.exchange(f'<rpc xmlns="{NC}" message-id="7"><get-config><source><running/></source>'
                             f'</get-config></rpc>]]>]]>'.encode(), end=b"]]>]]>")
        assert 'message-id="7"' in reply and ids_in(reply[reply.index("<rpc-reply"):]) == {ids["as64500-transit"]}
    finally:
        raw.close()


def test_the_host_key_persists_across_restarts(tmp_path: Path) -> None:
    controller = NetconfController(tmp_path)
    controller.prepare()
    fingerprints = []
    for _ in range(2):
        controller.start()
        try:
            fingerprints.append(controller.log.read_text().rsplit("SHA256:", 1)[1].split(")")[0])
        finally:
            controller.stop()
    assert fingerprints[0] == fingerprints[1]
    assert oct((tmp_path / "host_key").stat().st_mode & 0o777) == "0o600"


# ------------------------------------------------------------------------------------------ notifications

def _notifications(session: manager.Manager, within: float = 3.0) -> list[str]:
    """Every notification that arrives within `within` seconds."""
    received, deadline = [], time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        got = session.take_notification(block=True, timeout=left)
        if got is None:
            break
        received.append(got.notification_xml)
    return received


def test_sls_changes_notify_only_the_peer_concerned_and_the_operator(server: NetconfController,
                                                                      ids: dict[str, int]) -> None:
    peer = ids["as64500-transit"]
    with server.connect("as64500-nms") as watcher, server.connect("acme-nms") as other, \
            server.connect("noc") as operator, server.connect("as64500-nms") as editor:
        for session in (watcher, other, operator):
            assert session.create_subscription().ok
        assert editor.edit_config(target="running", config=config((peer, "silver", 2_500_000))).ok
        seen = _notifications(watcher)
        assert len(seen) == 1 and "<sls-changed" in seen[0]
        change = etree.fromstring(seen[0].encode())
        assert change.findtext(f".//{{{CSM}}}sla-id") == str(peer)
        assert change.findtext(f".//{{{CSM}}}bandwidth") == "2500000"
        assert change.findtext(f".//{{{CSM}}}channel") == "netconf"
        assert any("<sls-changed" in n for n in _notifications(operator, 1.0))
        assert _notifications(other, 1.0) == []  # acme learns nothing of the peer's SLS


def test_a_subscription_replays_from_its_start_time(server: NetconfController, ids: dict[str, int]) -> None:
    peer = ids["as64500-transit"]
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))
    with server.connect("as64500-nms") as editor:
        assert editor.edit_config(target="running", config=config((peer, "silver", 2_200_000))).ok
    time.sleep(0.6)  # stored before the subscription is made
    with server.connect("as64500-nms") as late:
        assert late.create_subscription(start_time=start).ok
        seen = _notifications(late, 2.0)
    assert any("<sls-changed" in n and ">2200000<" in n for n in seen)
    assert "replayComplete" in seen[-1]


def test_violation_events_become_sla_violation_notifications(server: NetconfController, ids: dict[str, int]) -> None:
    peer = ids["as64500-transit"]
    with server.connect("as64500-nms") as watcher:
        assert watcher.create_subscription().ok
        service = server.service()
        try:
            with service.transaction(DOMAIN_MANAGER) as tx:
                tx.emit(SLA_VIOLATION, "sla:as64500-transit", sla_id=peer, customer="as64500", service_class="silver",
                        metric="throughput", measured=1800, bound=2200)
        finally:
            service.database.dispose()
        seen = _notifications(watcher)
    assert len(seen) == 1 and "<sla-violation" in seen[0]
    violation = etree.fromstring(seen[0].encode())
    assert violation.findtext(f".//{{{CSM}}}metric") == "throughput"
    assert violation.findtext(f".//{{{CSM}}}measured") == "1800000"  # kbit/s in the event, bit/s in YANG
    assert violation.findtext(f".//{{{CSM}}}bound") == "2200000"


def test_create_subscription_refuses_an_unknown_stream(server: NetconfController) -> None:
    with server.connect("as64500-nms") as session:
        with pytest.raises(RPCError) as refused:
            session.create_subscription(stream_name="SYSLOG")
        assert refused.value.tag == "invalid-value"
        assert session.create_subscription().ok
        with pytest.raises(RPCError) as twice:
            session.create_subscription()
        assert twice.value.tag == "operation-failed"


# ------------------------------------------------------------------------------------------ the server's own schema

LIBRARY = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"


def test_get_schema_serves_the_module_texts(server: NetconfController) -> None:
    with server.connect("as64500-nms") as session:
        text = session.get_schema("csm-service").data
        assert "module csm-service" in text and "namespace \"urn:csmm:yang:csm-service\"" in text
        assert "module ietf-inet-types" in session.get_schema("ietf-inet-types", version="2013-07-15").data
        with pytest.raises(RPCError) as missing:
            session.get_schema("ietf-interfaces")
        assert missing.value.tag == "invalid-value"
        listed = session.get(filter=("subtree", f'<netconf-state xmlns="{MONITORING}"><schemas/></netconf-state>'))
    identifiers = {e.text for e in etree.fromstring(listed.data_xml.encode()).iter(f"{{{MONITORING}}}identifier")}
    assert identifiers == {"csm-service", "ietf-yang-types", "ietf-inet-types"}


def test_the_yang_library_lists_the_modules_and_matches_the_hello(server: NetconfController) -> None:
    with server.connect("as64500-nms") as session:
        reply = session.get(filter=("subtree", f'<yang-library xmlns="{LIBRARY}"/>'))
        hello = [c for c in session.server_capabilities if "yang-library" in c]
    root = etree.fromstring(reply.data_xml.encode())
    implemented = {m.findtext(f"{{{LIBRARY}}}name"): m.findtext(f"{{{LIBRARY}}}revision")
                   for m in root.iter(f"{{{LIBRARY}}}module")}
    assert implemented == {"csm-service": "2026-12-03"}
    content_id = root.findtext(f".//{{{LIBRARY}}}content-id")
    assert hello and hello[0].endswith(f"content-id={content_id}")


def test_with_defaults_modes_are_accepted_and_checked(server: NetconfController) -> None:
    with server.connect("as64500-nms") as session:
        plain = session.get_config(source="running").data_xml
        for mode in ("report-all", "trim", "explicit", "report-all-tagged"):
            assert session.get_config(source="running", with_defaults=mode).data_xml == plain  # no defaults here
    raw = RawSession(server, "as64500-nms")
    try:
        reply = raw.exchange(chunk(f'<rpc xmlns="{NC}" message-id="3"><get-config><source><running/></source>'
                                   f'<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">'
                                   f'everything</with-defaults></get-config></rpc>'))
        assert "<error-tag>invalid-value</error-tag>" in reply
    finally:
        raw.close()


def test_nacm_rules_are_readable_by_operators_only(server: NetconfController, ids: dict[str, int]) -> None:
    nacm_ns = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
    with server.connect("noc") as operator:
        rules = etree.fromstring(operator.get(filter=("subtree", f'<nacm xmlns="{nacm_ns}"/>')).data_xml.encode())
    paths = {r.text for r in rules.iter(f"{{{nacm_ns}}}path")}
    assert f"/csm:csm/csm:sla[csm:id='{ids['as64500-transit']}']" in paths
    with server.connect("as64500-nms") as peer:
        hidden = etree.fromstring(peer.get(filter=("subtree", f'<nacm xmlns="{nacm_ns}"/>')).data_xml.encode())
    assert len(hidden) == 0


def test_validate_checks_a_config_against_the_sla_without_applying_it(server: NetconfController,
                                                                        ids: dict[str, int]) -> None:
    peer = ids["as64500-transit"]
    before = sls_now(server, "as64500-transit")
    raw = RawSession(server, "as64500-nms")
    try:
        def validate(bandwidth: int) -> str:
            candidate = config((peer, "bronze", bandwidth)).replace("<config>", f'<config xmlns="{NC}">')
            return raw.exchange(chunk(f'<rpc xmlns="{NC}" message-id="9"><validate><source>{candidate}</source>'
                                      f'</validate></rpc>'))
        assert "<ok/>" in validate(10_000_000)
        refused = validate(200_000_000)  # bronze max is 20 Mbit/s
        assert "<error-tag>invalid-value</error-tag>" in refused and "csm:bandwidth" in refused
        running = raw.exchange(chunk(f'<rpc xmlns="{NC}" message-id="10"><validate><source><running/></source>'
                                     f'</validate></rpc>'))
        assert "<ok/>" in running
    finally:
        raw.close()
    assert sls_now(server, "as64500-transit") == before
