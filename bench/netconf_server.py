"""CSMM's NETCONF server: edit-config round trips on one session, edit latency, get-config of N entries.

Two databases are provisioned (SQLite, bench/common.py's network and customers, one gsb-business SLA
each, change policy `min_interval: 0s` so that a customer may change its SLS at any rate): one with N
customers (default 10,000) and one with 10, and `csmm serve --no-agents --no-snmp` runs on each.
Logins: `noc` (the domain manager: sees and edits every SLA) and `peer` (customer cust000005: its
own SLA only), both by password. While one server is measured the other is paused (SIGSTOP), so that
it takes no CPU on a 2-core machine. Measured on each database:
  1. edit-config round trips/s on one session, one <edit-config> in flight: the SLS of one SLA
     (cust000005's), alternating between silver 5M and silver 6M, so every edit is a real change
     (admission on three links, one sls_history row, one event):
       (a) a raw client: asyncssh, base:1.1 chunked framing, as noc, and again as peer;
       (b) ncclient 0.7 (`manager.connect(..., hostkey_verify=False, look_for_keys=False,
           allow_agent=False)`, `edit_config(target="running", config=...)`), as noc.
     The raw client's edits also give the latency of each edit (median, p95, p99, from writing the
     <rpc> to the whole <rpc-reply> read), and the server's CPU time per edit (/proc).
  2. get-config of the whole datastore by noc (N entries; median of --gets), the same with a subtree
     filter selecting one SLA, and the peer's get-config of its own entry (median of --peer-gets).
Goals (issue 6): edit latency at 10,000 entries <= 5 ms (median); get-config of 10,000 entries
<= 100 ms. With --profile, the N database is also driven in process (NetconfServer._reply, no SSH)
under cProfile, and get-config is split into its phases, to show where the time goes.

    .venv/bin/python bench/netconf_server.py [--customers 10000] [--edits 1000] [--ncclient-edits 100]
                                             [--gets 7] [--peer-gets 50] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import ROOT, Stopwatch, customer_name, customers_entry, machine_note, topology_entry

CSMM = Path(sys.executable).parent / "csmm"
EDGES = 8
ACCESS_PER_EDGE = 8
CORE_CAPACITY = "10T"
OVERBOOKING = "100"
SMALL = 10
PASSWORD = "bench-password-0123"
NOC, PEER = "noc", "peer"
PEER_CUSTOMER = customer_name(5)
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CSM = "urn:csmm:yang:csm-service"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
BANDWIDTHS = (5_000_000, 6_000_000)   # silver, within the bounds (1M-20M): each edit is a real change
EDIT_GOAL_MS = 5.0
GET_GOAL_MS = 100.0
WARM_UP = 20


# ---------------------------------------------------------------------------------------------- processes

class Stop(Exception):
    """SIGTERM or SIGHUP: leave through the same clean-up as Ctrl-C."""


def _stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@dataclass
class Lab:
    """Everything the benchmark started, so that `close` removes exactly that."""

    tmp: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *argv: str, env: dict[str, str], stdin: str | None = None) -> str:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:5])} ... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                       start_new_session=True)  # Ctrl-C reaches us only; we stop it by PID
        self.processes[name] = process
        return process

    def pause(self, name: str, paused: bool) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)

    def close(self) -> None:
        for name in list(self.processes):
            try:
                self.stop(name)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"clean-up: stopping {name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    customers: int
    url: str
    port: int = 0
    pid: int = 0


def environment(url: str) -> dict[str, str]:
    return {**os.environ, "CSMM_DB": url, "CSMM_OVERBOOKING": OVERBOOKING}


def provision(lab: Lab, customers: int) -> Server:
    """A SQLite database with `customers` customers (SLAs whose SLS may change at any rate) and the
    two NETCONF logins."""
    url = f"sqlite:///{lab.tmp}/csmm{customers}.sqlite3"
    env = environment(url)
    file = lab.tmp / f"provisioning{customers}.json"
    policy = {"change_policy": {"min_interval": "0s", "fee_per_change": "0.00"}}
    file.write_text(json.dumps({"topology": topology_entry(EDGES, ACCESS_PER_EDGE, CORE_CAPACITY),
                                "customers": customers_entry(customers, EDGES, ACCESS_PER_EDGE, policy)}))
    lab.run(str(CSMM), "db", "upgrade", env=env)
    lab.run(str(CSMM), "apply", str(file), env=env)
    lab.run(str(CSMM), "netconf", "user", "add", NOC, "--password-from-stdin", env=env, stdin=PASSWORD + "\n")
    lab.run(str(CSMM), "netconf", "user", "add", PEER, "--customer", PEER_CUSTOMER, "--password-from-stdin",
            env=env, stdin=PASSWORD + "\n")
    return Server(f"csmm{customers}", customers, url)


def start_server(lab: Lab, server: Server, timeout: float = 120.0) -> float:
    """Start `csmm serve` on the server's database; seconds until the NETCONF server is up."""
    server.port = free_port()
    argv = [str(CSMM), "serve", "--no-agents", "--no-snmp", "--http", f"127.0.0.1:{free_port()}",
            "--netconf", f"127.0.0.1:{server.port}", "--netconf-host-key", str(lab.tmp / "ssh_host_key")]
    process = lab.start(server.name, argv, environment(server.url))
    server.pid = process.pid
    log = lab.tmp / f"{server.name}.log"
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if b"NETCONF over SSH on" in log.read_bytes():
            return time.perf_counter() - start
        time.sleep(0.1)
    raise RuntimeError(f"{server.name}: no NETCONF server after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------------------------------------- raw client

_CHUNK = re.compile(rb"\n#(?:([1-9][0-9]{0,9})|#)\n")
CLIENT_HELLO = (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC}"><capabilities>'
                f"<capability>{BASE_11}</capability></capabilities></hello>").encode() + EOM


class RawSession:
    """One NETCONF session over asyncssh, base:1.1 chunked framing, one rpc in flight. By default it
    negotiates the cipher and MAC that ncclient and netconf-console2 (paramiko) negotiate with
    the server; --cipher picks another (asyncssh computes chacha20-poly1305 in six calls per packet)."""

    cipher = "aes128-ctr"
    mac = "hmac-sha2-256"

    def __init__(self, connection: Any, process: Any) -> None:
        self.connection = connection
        self.process = process
        self.buffer = bytearray()
        self.at = 0
        self.message_id = 0

    @classmethod
    async def open(cls, port: int, user: str) -> RawSession:
        import asyncssh

        connection = await asyncssh.connect("127.0.0.1", port, username=user, password=PASSWORD, known_hosts=None,
                                            client_keys=None, agent_path=None, encryption_algs=[cls.cipher],
                                            mac_algs=[cls.mac])
        process = await connection.create_process(subsystem="netconf", encoding=None)
        session = cls(connection, process)
        while (end := session.buffer.find(EOM)) < 0:
            await session._more()
        hello = bytes(session.buffer[:end])
        session.at = end + len(EOM)
        if BASE_11.encode() not in hello:
            raise RuntimeError("the server does not offer base:1.1")
        process.stdin.write(CLIENT_HELLO)
        return session

    async def _more(self) -> None:
        data = await self.process.stdout.read(1 << 20)
        if not data:
            raise EOFError("the server closed the session")
        if self.at > (1 << 20):
            del self.buffer[:self.at]
            self.at = 0
        self.buffer += data

    async def rpc(self, body: bytes) -> bytes:
        self.message_id += 1
        message = f'<rpc message-id="{self.message_id}" xmlns="{NC}">'.encode() + body + b"</rpc>"
        self.process.stdin.write(b"\n#%d\n" % len(message) + message + b"\n##\n")
        parts = []
        while True:
            while (header := _CHUNK.match(self.buffer, self.at)) is None:
                if len(self.buffer) - self.at >= 14:
                    raise RuntimeError(f"bad chunk header: {bytes(self.buffer[self.at:self.at + 20])!r}")
                await self._more()
            self.at = header.end()
            if header.group(1) is None:
                return b"".join(parts)
            size = int(header.group(1))
            while len(self.buffer) - self.at < size:
                await self._more()
            parts.append(bytes(self.buffer[self.at:self.at + size]))
            self.at += size

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.rpc(b"<close-session/>"), 5)
        except (EOFError, asyncio.TimeoutError):
            pass
        self.connection.close()
        await self.connection.wait_closed()


def edit_body(sla_id: int, bandwidth: int) -> bytes:
    return (f"<edit-config><target><running/></target><config><csm xmlns=\"{CSM}\"><sla><id>{sla_id}</id><sls>"
            f"<class>silver</class><bandwidth>{bandwidth}</bandwidth></sls></sla></csm></config>"
            f"</edit-config>").encode()


GET_CONFIG = b"<get-config><source><running/></source></get-config>"


def filtered_get_config(sla_id: int) -> bytes:
    return (f'<get-config><source><running/></source><filter type="subtree"><csm xmlns="{CSM}"><sla>'
            f"<id>{sla_id}</id></sla></csm></filter></get-config>").encode()


_ENTRY = re.compile(rb"<sla><id>([0-9]+)</id><sls><class>([a-z]+)</class><bandwidth>([0-9]+)</bandwidth>")


def entries(reply: bytes) -> list[tuple[int, str, int]]:
    if b"<rpc-error" in reply:
        raise RuntimeError(f"rpc-error: {reply[:2000]!r}")
    return [(int(a), b.decode(), int(c)) for a, b, c in _ENTRY.findall(reply)]


async def peer_sla(port: int) -> tuple[int, int]:
    """The peer's SLA id and its current bandwidth."""
    session = await RawSession.open(port, PEER)
    try:
        found = entries(await session.rpc(GET_CONFIG))
    finally:
        await session.close()
    if len(found) != 1:
        raise RuntimeError(f"the peer sees {len(found)} entries, expected 1")
    return found[0][0], found[0][2]


@dataclass
class EditRun:
    edits: int
    seconds: float
    latencies: list[float]   # seconds
    cpu: float               # server CPU seconds meanwhile

    @property
    def rate(self) -> float:
        return self.edits / self.seconds


async def raw_edits(server: Server, user: str, sla_id: int, count: int) -> EditRun:
    session = await RawSession.open(server.port, user)
    try:
        _, current = (await peer_sla(server.port))
        k = 0 if current != BANDWIDTHS[0] else 1

        async def edit() -> None:
            nonlocal k
            k += 1
            reply = await session.rpc(edit_body(sla_id, BANDWIDTHS[k % 2]))
            if b"<ok/>" not in reply:
                raise RuntimeError(f"edit refused: {reply[:2000]!r}")

        for _ in range(WARM_UP):  # the first rpc derives the NACM rules; connections warm up
            await edit()
        latencies = []
        cpu = cpu_seconds(server.pid)
        start = time.perf_counter()
        for _ in range(count):
            sent = time.perf_counter()
            await edit()
            latencies.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(server.pid) - cpu
    finally:
        await session.close()
    return EditRun(count, elapsed, latencies, cpu)


async def timed_gets(server: Server, user: str, body: bytes, count: int, expect: int) -> tuple[list[float], int]:
    """Seconds per get-config (whole reply read), and the reply's size in bytes."""
    session = await RawSession.open(server.port, user)
    try:
        reply = await session.rpc(body)  # warm-up (and the NACM rules)
        if len(entries(reply)) != expect:
            raise RuntimeError(f"{user}: {len(entries(reply))} entries, expected {expect}")
        times = []
        for _ in range(count):
            with Stopwatch() as watch:
                reply = await session.rpc(body)
            times.append(watch.seconds)
            if b"<rpc-error" in reply:
                raise RuntimeError(f"rpc-error: {reply[:2000]!r}")
        if len(entries(reply)) != expect:
            raise RuntimeError(f"{user}: {len(entries(reply))} entries, expected {expect}")
    finally:
        await session.close()
    return times, len(reply)


# ---------------------------------------------------------------------------------------------- ncclient

def ncclient_edits(server: Server, sla_id: int, count: int) -> EditRun:
    from ncclient import manager

    logging.getLogger("ncclient").setLevel(logging.WARNING)
    _, current = asyncio.run(peer_sla(server.port))
    k = 0 if current != BANDWIDTHS[0] else 1
    with manager.connect(host="127.0.0.1", port=server.port, username=NOC, password=PASSWORD, hostkey_verify=False,
                         look_for_keys=False, allow_agent=False, timeout=60) as m:
        if BASE_11 not in m.server_capabilities:
            raise RuntimeError("no base:1.1")

        def edit() -> None:
            nonlocal k
            k += 1
            config = (f'<config xmlns="{NC}"><csm xmlns="{CSM}"><sla><id>{sla_id}</id><sls><class>silver</class>'
                      f"<bandwidth>{BANDWIDTHS[k % 2]}</bandwidth></sls></sla></csm></config>")
            reply = m.edit_config(target="running", config=config)
            if not reply.ok:
                raise RuntimeError(f"edit refused: {reply.xml[:2000]}")

        for _ in range(min(WARM_UP, 5)):
            edit()
        latencies = []
        cpu = cpu_seconds(server.pid)
        start = time.perf_counter()
        for _ in range(count):
            sent = time.perf_counter()
            edit()
            latencies.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(server.pid) - cpu
    return EditRun(count, elapsed, latencies, cpu)


# ---------------------------------------------------------------------------------------------- in-process profile

def profile(url: str, customers: int, sla_id: int) -> None:
    """NetconfServer driven in process (its _reply, as for a message read off SSH): get-config by
    the domain manager split into phases, then cProfile of get-config and of edit-config."""
    from decimal import Decimal


    from controller.config import Settings, open_service
    from controller.domain.principal import DOMAIN_MANAGER, Channel
    from controller.northbound.netconf.framing import frame, parse_xml
    from controller.northbound.netconf.rpc import config_text, plan_edit
    from controller.northbound.netconf.server import NetconfServer, NetconfSettings, Session, _reply_bytes

    service = open_service(Settings(database_url=url, overbooking=Decimal(OVERBOOKING)))
    server = NetconfServer(service, NetconfSettings())

    async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = inline  # type: ignore[assignment] # the server's thread work, in this thread for cProfile

    def rpc(body: bytes) -> bytes:
        return f'<rpc message-id="1" xmlns="{NC}">'.encode() + body + b"</rpc>"

    async def drive() -> None:
        session = Session(1, NOC, DOMAIN_MANAGER, process=None)
        with Stopwatch() as watch:
            rules = await server._access_rules()
        print(f"NACM rules derived in {watch.seconds * 1000:.1f} ms (cached until an SLA, customer or login is added)")
        phases: dict[str, list[float]] = {}
        for _ in range(5):  # the steps of NetconfServer._data for an unfiltered get-config
            marks = [time.perf_counter()]
            settings = service.sls_settings(DOMAIN_MANAGER)
            marks.append(time.perf_counter())
            readable = rules.readable_slas(NOC, [setting.sla_id for setting in settings])
            marks.append(time.perf_counter())
            text = config_text(setting for setting in settings if setting.sla_id in readable)
            marks.append(time.perf_counter())
            framed = frame(_reply_bytes({"message-id": "1"}, [], f'<data xmlns="{NC}">{text}</data>'.encode()), True)
            marks.append(time.perf_counter())
            for name, a, b in zip(("sls_settings (query)", "NACM read check", "config_text",
                                   "reply + frame"), marks, marks[1:]):
                phases.setdefault(name, []).append(b - a)
            whole = time.perf_counter()
            await server._reply(session, rpc(GET_CONFIG), chunked=True)
            phases.setdefault("whole _reply(get-config)", []).append(time.perf_counter() - whole)
        print(f"get-config of {customers} entries by {NOC}, in process, median of 5 ({len(framed):,} bytes):")
        for name, values in phases.items():
            print(f"  {name:<40} {statistics.median(values) * 1000:8.1f} ms")

        current = service.get_sls(DOMAIN_MANAGER, sla_id).bandwidth_bps
        k = 0 if current != BANDWIDTHS[0] else 1
        steps: dict[str, list[float]] = {}
        for i in range(200):  # apply_edit's steps, one by one, then the whole _reply
            bandwidth = BANDWIDTHS[(k + i + 1) % 2]
            marks = [time.perf_counter()]
            plan = plan_edit(parse_xml(rpc(edit_body(sla_id, bandwidth)))[0].find(f"{{{NC}}}config"), "merge")
            marks.append(time.perf_counter())
            service.change_sls_batch(DOMAIN_MANAGER, [(sla_id, plan.changes[sla_id].get("class"),
                                                       plan.changes[sla_id]["bandwidth"])], Channel.NETCONF)
            marks.append(time.perf_counter())
            for name, a, b in zip(("parse + plan_edit", "change_sls_batch (write transaction)"), marks, marks[1:]):
                steps.setdefault(name, []).append(b - a)
        k += 200
        for i in range(200):
            start = time.perf_counter()
            reply = await server._reply(session, rpc(edit_body(sla_id, BANDWIDTHS[(k + i + 1) % 2])), chunked=True)
            steps.setdefault("whole _reply(edit-config)", []).append(time.perf_counter() - start)
            if b"<ok/>" not in reply:
                raise RuntimeError(f"edit refused: {reply[:2000]!r}")
        print("edit-config by noc, in process (no SSH), median of 200:")
        for name, values in steps.items():
            print(f"  {name:<40} {statistics.median(values) * 1000:8.2f} ms")

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            await server._reply(session, rpc(GET_CONFIG), chunked=True)
        profiler.disable()
        show(profiler, "cProfile: 3 get-config of every entry by the domain manager")

        current = service.get_sls(DOMAIN_MANAGER, sla_id).bandwidth_bps
        k = 0 if current != BANDWIDTHS[0] else 1
        edits = 300
        times = []
        profiler = cProfile.Profile()
        for i in range(edits):
            message = rpc(edit_body(sla_id, BANDWIDTHS[(k + i + 1) % 2]))
            start = time.perf_counter()
            profiler.enable()
            reply = await server._reply(session, message, chunked=True)
            profiler.disable()
            times.append(time.perf_counter() - start)
            if b"<ok/>" not in reply:
                raise RuntimeError(f"edit refused: {reply[:2000]!r}")
        print(f"edit-config in process (no SSH), {edits} edits under cProfile: median "
              f"{statistics.median(times) * 1000:.2f} ms")
        show(profiler, f"cProfile: {edits} edit-config by the domain manager")

    asyncio.run(drive())
    service.database.dispose()


def show(profiler: cProfile.Profile, title: str, top: int = 22) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(order).print_stats(top)
        text = out.getvalue()
        body = text[text.find("   ncalls"):] if "   ncalls" in text else text
        print(f"--- {title}, by {order}")
        site = str(Path(logging.__file__).parent.parent)  # the standard library's directory
        lines = [re.sub(r"\S*site-packages/", "", line.replace(str(ROOT) + "/", "").replace(site + "/", ""))[:200]
                 for line in body.rstrip().splitlines()]
        print("\n".join(lines))


# ---------------------------------------------------------------------------------------------- main

def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--customers", type=int, default=10000,
                        help="customers (one SLA each) in the large database (default 10000)")
    parser.add_argument("--edits", type=int, default=1000,
                        help="timed edit-config round trips with the raw client, per database and login (default 1000)")
    parser.add_argument("--ncclient-edits", type=int, default=100,
                        help="timed edit-config round trips with ncclient, per database (default 100; ~10/s)")
    parser.add_argument("--gets", type=int, default=7,
                        help="timed get-config of every entry by noc, and with a filter of one SLA (default 7)")
    parser.add_argument("--peer-gets", type=int, default=50,
                        help="timed get-config by the peer (its own entry) (default 50)")
    parser.add_argument("--cipher", default=RawSession.cipher,
                        help="the raw client's SSH cipher (default aes128-ctr, as paramiko negotiates; "
                             "e.g. chacha20-poly1305@openssh.com, OpenSSH's first choice)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, drive the large database's NetconfServer in process under cProfile")
    args = parser.parse_args()
    RawSession.cipher = args.cipher

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    lab = Lab(Path(tempfile.mkdtemp(prefix="csmm-bench-netconf-")))
    try:
        measure(lab, args)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        sys.exit(130)
    except Stop as stop:
        print(f"\n{stop}: cleaning up", file=sys.stderr)
        sys.exit(143)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # clean-up is not to be interrupted half-way
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lab.close()


def measure(lab: Lab, args: argparse.Namespace) -> None:
    n = args.customers
    print(f"before: {machine_note()}")
    servers = []
    for customers in (SMALL, n):
        with Stopwatch() as watch:
            servers.append(provision(lab, customers))
        print(f"provisioned {customers} customers (+ logins {NOC}, {PEER} = {PEER_CUSTOMER}) in {watch.seconds:.1f} s")
    for server in servers:
        print(f"{server.name}: NETCONF up after {start_server(lab, server):.1f} s on 127.0.0.1:{server.port}")
    names = [s.name for s in servers]
    results: dict[str, dict[str, Any]] = {s.name: {} for s in servers}

    for server in servers:
        others = [x for x in names if x != server.name]
        for name in others:
            lab.pause(name, True)
        try:
            r = results[server.name]
            sla_id, _ = asyncio.run(peer_sla(server.port))
            r["sla"] = sla_id
            for user in (NOC, PEER):
                run = asyncio.run(raw_edits(server, user, sla_id, args.edits))
                r[f"raw-{user}"] = run
                print(f"{server.name} raw {user}: {run.edits} edits in {run.seconds:.2f} s = {run.rate:,.1f}/s; "
                      f"latency median {ms(statistics.median(run.latencies))} ms, p95 "
                      f"{ms(percentile(run.latencies, 95))}, p99 {ms(percentile(run.latencies, 99))}, max "
                      f"{ms(max(run.latencies))}; server CPU {run.cpu / run.edits * 1000:.2f} ms/edit")
            run = ncclient_edits(server, sla_id, args.ncclient_edits)
            r["ncclient"] = run
            print(f"{server.name} ncclient {NOC}: {run.edits} edits in {run.seconds:.2f} s = {run.rate:,.1f}/s; "
                  f"latency median {ms(statistics.median(run.latencies))} ms; server CPU "
                  f"{run.cpu / run.edits * 1000:.2f} ms/edit")
            times, size = asyncio.run(timed_gets(server, NOC, GET_CONFIG, args.gets, server.customers))
            r["get-all"] = times
            print(f"{server.name} get-config by {NOC}: {server.customers} entries, {size:,} bytes; median "
                  f"{ms(statistics.median(times))} ms (min {ms(min(times))}, max {ms(max(times))})")
            times, _ = asyncio.run(timed_gets(server, NOC, filtered_get_config(sla_id), args.gets, 1))
            r["get-filtered"] = times
            print(f"{server.name} get-config by {NOC}, subtree filter of SLA {sla_id}: median "
                  f"{ms(statistics.median(times))} ms")
            times, _ = asyncio.run(timed_gets(server, PEER, GET_CONFIG, args.peer_gets, 1))
            r["get-peer"] = times
            print(f"{server.name} get-config by {PEER}: median {ms(statistics.median(times))} ms")
        finally:
            for name in others:
                lab.pause(name, False)
    print(f"after: {machine_note()}")
    for name in names:
        lab.stop(name)

    small, big = (results[s.name] for s in servers)
    print()
    print(f"NETCONF over SSH (asyncssh server), SQLite, one session, one rpc in flight; {args.edits} raw / "
          f"{args.ncclient_edits} ncclient edits, get-config median of {args.gets} (noc) / {args.peer_gets} (peer); "
          f"raw client cipher {RawSession.cipher}")
    print(f"{'measurement':<50} {f'{SMALL} SLAs':>11} {f'{n} SLAs':>11}  {'goal':<12} {'met':<4}")

    def row(label: str, a: str, b: str, goal: str = "", met: str = "") -> None:
        print(f"{label:<50} {a:>11} {b:>11}  {goal:<12} {met:<4}")

    for user in (NOC, PEER):
        row(f"edit-config round trips/s, raw client ({user})", f"{small[f'raw-{user}'].rate:,.1f}",
            f"{big[f'raw-{user}'].rate:,.1f}")
    row(f"edit-config round trips/s, ncclient ({NOC})", f"{small['ncclient'].rate:,.1f}",
        f"{big['ncclient'].rate:,.1f}")
    for user in (NOC, PEER):
        a, b = small[f"raw-{user}"].latencies, big[f"raw-{user}"].latencies
        median_b = statistics.median(b)
        row(f"edit latency median, raw ({user}), ms", ms(statistics.median(a)), ms(median_b),
            f"<= {EDIT_GOAL_MS:g} ms", "yes" if median_b * 1000 <= EDIT_GOAL_MS else "NO")
        row(f"edit latency p95 / p99, raw ({user}), ms", f"{ms(percentile(a, 95))}/{ms(percentile(a, 99))}",
            f"{ms(percentile(b, 95))}/{ms(percentile(b, 99))}")
        a_run, b_run = small[f"raw-{user}"], big[f"raw-{user}"]
        row(f"server CPU per edit, raw ({user}), ms", f"{a_run.cpu / a_run.edits * 1000:.2f}",
            f"{b_run.cpu / b_run.edits * 1000:.2f}")
    row(f"edit latency median, ncclient ({NOC}), ms", ms(statistics.median(small["ncclient"].latencies)),
        ms(statistics.median(big["ncclient"].latencies)))
    get_b = statistics.median(big["get-all"])
    row(f"get-config of every entry ({NOC}), ms", ms(statistics.median(small["get-all"])), ms(get_b),
        f"<= {GET_GOAL_MS:g} ms", "yes" if get_b * 1000 <= GET_GOAL_MS else "NO")
    row(f"get-config, subtree filter of one SLA ({NOC}), ms", ms(statistics.median(small["get-filtered"])),
        ms(statistics.median(big["get-filtered"])))
    a, b = statistics.median(small["get-peer"]), statistics.median(big["get-peer"])
    row(f"get-config of its own entry ({PEER}), ms", ms(a), ms(b), "", f"x{b / a:.2f}")

    if args.profile:
        print()
        profile(servers[1].url, n, big["sla"])


if __name__ == "__main__":
    main()
