"""CSMM's SNMP agent against net-snmp's snmpd: GET and bulkwalk throughput, and a customer's walk.

Both agents serve a table of the same size on this machine, in the same run, over SNMPv3 authPriv
with the same protocols (HMAC-SHA-256-192 authentication, AES-128 privacy), so both do the same
cryptography for every message:
  * CSMM: `csmm serve --no-agents` on a SQLite database provisioned with N customers (one SLA each,
    bench/common.py), user `noc` (domain manager) and user `cust000005` (one customer);
  * snmpd (net-snmp 5.9): its IF-MIB ifTable over a network namespace holding N `ifb` interfaces
    named like the SLAs (`cust000123-sla`), so ifDescr has the same rows and the same strings as
    csmSlaName. snmpd's GETBULK cap is raised from its default 100 varbinds to CSMM's 1000, and its
    data caches (nsCacheTable) are set to 1 hour, so that it serves from memory like CSMM: with
    their default timeouts (ifTable 3 s) snmpd re-reads the 10,000 interfaces every few seconds,
    idle or not, and stalls for 0.5-1.5 s each time (--snmpd-default-caches keeps them).
Everything runs inside one network namespace (`csmm-bench<pid>-snmp`, loopback only), clients too.

Measured, each --runs times, alternating the two agents; while one agent is measured the other is
paused (SIGSTOP), so that it takes no CPU from the measured one on this 2-core machine:
  1. bulkwalk: `snmpbulkwalk -Cr<R>` of one column (csmSlaName vs ifDescr, N varbinds), or with
     --walk table the whole csmSlaTable (17 x N) vs ifTable (22 x (N + 1)): varbinds/s.
  2. GET: requests/s with 1 varbind (a random row's name) and varbinds/s with 10 varbinds (10
     columns of a random row) per request. Client: real authPriv requests made by `snmpget`
     (through a recording UDP proxy, 20 different requests per kind) are replayed from this
     process with --window requests in flight. The agents do all their work for every message
     (USM time window and HMAC check, decryption, the lookup, encryption, HMAC) while the client
     only sends and receives datagrams, so the client is not the bottleneck. Each response is
     checked to be an authPriv message of the recorded response's length (a report or an error
     would differ). The requests are recorded afresh before each measurement: USM refuses a
     request whose engine time is more than 150 s off.
  3. A customer's walk of its own rows: `snmpbulkwalk` of 1.3.6.1.4.1.32473 as cust000005, against
     a database of 10 and one of N customers: median time of the whole command (process start,
     engine discovery, key derivation included), and of the walk's own requests replayed in order
     (one in flight), without the process around them. Ratio N / 10 (goal: 1).

Needs root (network namespace) and net-snmp's snmpd, snmpget and snmpbulkwalk.

    .venv/bin/python bench/snmp_agent.py [--customers 10000] [--runs 3] [--walk column|table]
                                         [--repetitions 10,100,1000]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, Stopwatch, customer_name, customers_entry, machine_note, sla_name, topology_entry

CSMM = Path(sys.executable).parent / "csmm"
EDGES = 8
ACCESS_PER_EDGE = 8
CORE_CAPACITY = "1000G"
SMALL = 10                      # customers in the small database of the customer-walk comparison
USER, AUTH_PASS, PRIV_PASS = "noc", "authpass123", "privpass123"
CUSTOMER_INDEX = 5              # the customer whose walk is timed: cust000005
CUSTOMER_USER = customer_name(CUSTOMER_INDEX)
SNMPD_PORT, CSMM_PORT, CSMM_SMALL_PORT = 16100, 16161, 16162
CSM_MIB = "1.3.6.1.4.1.32473"
SLA_ENTRY = "1.3.6.1.4.1.32473.1.2.1"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
WALK = {"column": {"csmm": f"{SLA_ENTRY}.2", "snmpd": f"{IF_ENTRY}.2"},        # csmSlaName / ifDescr
        "table": {"csmm": "1.3.6.1.4.1.32473.1.2", "snmpd": "1.3.6.1.2.1.2.2"}}  # csmSlaTable / ifTable
GET_COLUMNS = {"csmm": list(range(2, 12)), "snmpd": list(range(1, 11))}  # 10 columns of one row
CAPTURED = 20                   # different recorded requests per GET kind
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def usm_args(user: str) -> list[str]:
    return ["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", AUTH_PASS, "-x", "AES", "-X", PRIV_PASS,
            "-On", "-r", "1", "-t", "5"]


# ---------------------------------------------------------------------------------------------- processes

class Stop(Exception):
    """SIGTERM or SIGHUP: leave through the same clean-up as Ctrl-C."""


def _stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@dataclass
class Lab:
    """Everything the benchmark started, so that `close` can remove exactly that."""

    tmp: Path
    netns: str
    made_netns: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *argv: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def in_netns(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                       start_new_session=True)  # Ctrl-C reaches us only; we stop it by PID
        self.processes[name] = process
        return process

    def pause(self, name: str, paused: bool) -> None:
        os.kill(self.processes[name].pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)

    def close(self) -> None:
        for name in list(self.processes):
            try:
                self.stop(name)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"clean-up: stopping {name}: {exc}", file=sys.stderr)
        if self.made_netns:
            left = self.run("ip", "netns", "pids", self.netns, check=False).stdout.split()
            for pid in left:  # only ours can be in our namespace; report them, stop them by PID
                print(f"clean-up: process {pid} still in {self.netns}, killing it", file=sys.stderr)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.run("ip", "netns", "delete", self.netns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def socket_in_netns(netns: str) -> socket.socket:
    """A UDP socket bound to 127.0.0.1 inside `netns`: made by a short-lived thread that enters the
    namespace (setns affects only the calling thread), so this process stays where it is."""
    made: list[socket.socket | BaseException] = []

    def enter_and_make() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("127.0.0.1", 0))
            made.append(sock)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=enter_and_make)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


# ---------------------------------------------------------------------------------------------- SNMPv3 header

def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the BER TLV at `at`."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def header(message: bytes) -> tuple[int, int]:
    """(msgID, msgFlags) of an SNMPv3 message: the unencrypted msgGlobalData."""
    _, at, _ = _tlv(message, 0)          # SEQUENCE
    _, _, at = _tlv(message, at)         # msgVersion
    _, at, _ = _tlv(message, at)         # msgGlobalData SEQUENCE
    _, start, end = _tlv(message, at)    # msgID
    msg_id = int.from_bytes(message[start:end], "big")
    _, _, at = _tlv(message, at)
    _, _, at = _tlv(message, at)         # msgMaxSize
    _, start, _ = _tlv(message, at)      # msgFlags
    return msg_id, message[start]


AUTH_PRIV_FLAGS = 0x03


# ---------------------------------------------------------------------------------------------- recording proxy

@dataclass
class Exchange:
    request: bytes
    response: bytes


class Recorder:
    """A UDP proxy in the namespace between net-snmp's tools and an agent. It keeps the authPriv
    request/response pairs (engine discovery and reports are left out)."""

    def __init__(self, netns: str, agent_port: int) -> None:
        self.front = socket_in_netns(netns)
        self.back = socket_in_netns(netns)
        self.back.connect(("127.0.0.1", agent_port))
        self.port = self.front.getsockname()[1]
        self.exchanges: list[Exchange] = []
        self._pending: dict[int, bytes] = {}
        self._client: tuple[str, int] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._done.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, sender = sock.recvfrom(65535)
                if sock is self.front:
                    self._client = sender
                    msg_id, flags = header(data)
                    if flags & AUTH_PRIV_FLAGS == AUTH_PRIV_FLAGS:
                        self._pending[msg_id] = data
                    self.back.send(data)
                elif self._client is not None:
                    msg_id, flags = header(data)
                    request = self._pending.pop(msg_id, None)
                    if request is not None and flags & AUTH_PRIV_FLAGS == AUTH_PRIV_FLAGS:
                        self.exchanges.append(Exchange(request, data))
                    self.front.sendto(data, self._client)

    def take(self) -> list[Exchange]:
        taken, self.exchanges = self.exchanges, []
        return taken

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.front.close()
        self.back.close()


# ---------------------------------------------------------------------------------------------- replaying client

@dataclass
class Blast:
    responses: int
    seconds: float
    bad: int
    resent: int
    longest_gap: float    # seconds: the longest wait for a response
    cpu: float            # CPU seconds the agent process used meanwhile

    @property
    def rate(self) -> float:
        return self.responses / self.seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def blast(sock: socket.socket, port: int, exchanges: list[Exchange], seconds: float, window: int, pid: int) -> Blast:
    """Send the recorded requests round-robin with `window` in flight for about `seconds`; check
    each response's flags and length against the recorded response."""
    target = ("127.0.0.1", port)
    expected = {header(e.request)[0]: len(e.response) for e in exchanges}
    requests = [e.request for e in exchanges]
    sock.settimeout(2.0)
    sent = received = bad = resent = 0
    longest = 0.0
    cpu = cpu_seconds(pid)
    start = last = time.perf_counter()
    deadline = start + seconds
    for _ in range(window):
        sock.sendto(requests[sent % len(requests)], target)
        sent += 1
    while received < sent - resent:
        try:
            data = sock.recv(65535)
        except TimeoutError:  # nothing for 2 s: count the window as lost, put as many back in flight
            for _ in range(window):
                sock.sendto(requests[sent % len(requests)], target)
                sent += 1
                resent += 1
            continue
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        received += 1
        msg_id, flags = header(data)
        if flags & AUTH_PRIV_FLAGS != AUTH_PRIV_FLAGS or abs(len(data) - expected.get(msg_id, -99)) > 2:
            bad += 1
        if now < deadline:
            sock.sendto(requests[sent % len(requests)], target)
            sent += 1
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu
    _drain(sock)
    return Blast(received, elapsed, bad, resent, longest, cpu)


def replay_in_order(sock: socket.socket, port: int, exchanges: list[Exchange], times: int) -> list[float]:
    """Send the recorded requests one at a time, in order, `times` over: seconds per pass."""
    target = ("127.0.0.1", port)
    sock.settimeout(2.0)
    passes = []
    for _ in range(times):
        with Stopwatch() as watch:
            for exchange in exchanges:
                sock.sendto(exchange.request, target)
                data = sock.recv(65535)
                if header(data)[1] & AUTH_PRIV_FLAGS != AUTH_PRIV_FLAGS or abs(len(data) - len(exchange.response)) > 2:
                    raise RuntimeError("a replayed request got an unexpected response")
        passes.append(watch.seconds)
    return passes


def _drain(sock: socket.socket) -> None:
    sock.settimeout(0.2)
    try:
        while True:
            sock.recv(65535)
    except TimeoutError:
        pass


# ---------------------------------------------------------------------------------------------- set-up

def write_snmpd_conf(path: Path) -> None:
    path.write_text("\n".join([
        f"agentAddress udp:127.0.0.1:{SNMPD_PORT}",
        f"createUser {USER} SHA-256 {AUTH_PASS} AES {PRIV_PASS}",
        f"rwuser {USER} priv",  # read-write: the benchmark sets nsCacheTimeout (NET-SNMP-AGENT-MIB)
        # CSMM caps a GETBULK response at 1000 varbinds (and the manager's size); snmpd's default is 100.
        "maxGetbulkRepeats 1000",
        "maxGetbulkResponses 1000",
        "",
    ]))


def make_netns(lab: Lab, interfaces: int) -> float:
    lab.run("ip", "netns", "add", lab.netns)
    lab.made_netns = True
    lab.run("ip", "-n", lab.netns, "link", "set", "lo", "up")
    batch = lab.tmp / "links.batch"
    batch.write_text("".join(f"link add {sla_name(i)} type ifb\n" for i in range(interfaces)))
    with Stopwatch() as watch:
        lab.run("ip", "-n", lab.netns, "-batch", str(batch))
    return watch.seconds


def provision(lab: Lab, customers: int) -> str:
    """A SQLite database with `customers` customers and the two SNMP users; returns its URL."""
    url = f"sqlite:///{lab.tmp}/csmm{customers}.sqlite3"
    env = {**os.environ, "CSMM_DB": url}
    file = lab.tmp / f"provisioning{customers}.json"
    file.write_text(json.dumps({"topology": topology_entry(EDGES, ACCESS_PER_EDGE, CORE_CAPACITY),
                                "customers": customers_entry(customers, EDGES, ACCESS_PER_EDGE)}))
    lab.run(str(CSMM), "db", "upgrade", env=env)
    lab.run(str(CSMM), "apply", str(file), env=env)
    for user, extra in ((USER, []), (CUSTOMER_USER, ["--customer", CUSTOMER_USER])):
        done = subprocess.run([str(CSMM), "snmp", "user", "add", user, *extra, "--passphrases-from-stdin"],
                              input=f"{AUTH_PASS}\n{PRIV_PASS}\n", capture_output=True, text=True, env=env, cwd=ROOT,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"csmm snmp user add {user} failed:\n{done.stdout}\n{done.stderr}")
    return url


def start_csmm(lab: Lab, name: str, url: str, port: int, http_port: int) -> None:
    env = {**os.environ, "CSMM_DB": url}
    lab.start(name, lab.in_netns(str(CSMM), "serve", "--no-agents", "--no-netconf", "--http", f"127.0.0.1:{http_port}",
                                 "--snmp", f"127.0.0.1:{port}"), env=env)


def start_snmpd(lab: Lab) -> None:
    conf = lab.tmp / "snmpd.conf"
    write_snmpd_conf(conf)
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(lab.tmp / "snmpd-persist"), "MIBS": ""}
    lab.start("snmpd", lab.in_netns("snmpd", "-f", "-C", "-c", str(conf), "-Lf", str(lab.tmp / "snmpd-own.log"),
                                    "-p", str(lab.tmp / "snmpd.pid"), "-m", ""), env=env)


def wait_ready(lab: Lab, name: str, port: int, timeout: float = 120.0) -> float:
    """Seconds until the agent answers an authPriv GET of sysUpTime."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if lab.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited: {(lab.tmp / f'{name}.log').read_text()[-2000:]}")
        done = lab.run(*lab.in_netns("snmpget", *usm_args(USER), "-t", "1", f"127.0.0.1:{port}",
                                     "1.3.6.1.2.1.1.3.0"), env=_mibless(), check=False)
        if done.returncode == 0 and "Timeticks" in done.stdout:
            return time.perf_counter() - start
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer within {timeout:.0f} s")


NS_CACHE_TIMEOUT = "1.3.6.1.4.1.8072.1.5.3.1.2"  # NET-SNMP-AGENT-MIB nsCacheTimeout, indexed by the cached subtree


def long_snmpd_caches(lab: Lab, seconds: int) -> int:
    """Set every data cache of snmpd (ifTable's is 3 s, others 5-60 s) to `seconds`: with 10,000
    interfaces each reload blocks snmpd for 0.5-1.5 s, and the ifTable cache reloads itself every 3 s
    even when idle. Returns how many caches were set."""
    _, lines = bulkwalk(lab, SNMPD_PORT, NS_CACHE_TIMEOUT, 100)
    oids = [line.split(" ", 1)[0] for line in lines if line.startswith("." + NS_CACHE_TIMEOUT + ".")]
    triples = [part for oid in oids for part in (oid, "i", str(seconds))]
    lab.run(*lab.in_netns("snmpset", *usm_args(USER), f"127.0.0.1:{SNMPD_PORT}", *triples), env=_mibless())
    return len(oids)


def _mibless() -> dict[str, str]:
    return {**os.environ, "MIBS": ""}


# ---------------------------------------------------------------------------------------------- measurements

def bulkwalk(lab: Lab, port: int, oid: str, repetitions: int, user: str = USER) -> tuple[float, list[str]]:
    """Run snmpbulkwalk; return its wall-clock seconds and its output lines."""
    argv = lab.in_netns("snmpbulkwalk", *usm_args(user), f"-Cr{repetitions}", f"127.0.0.1:{port}", oid)
    with Stopwatch() as watch:
        done = lab.run(*argv, env=_mibless())
    return watch.seconds, done.stdout.splitlines()


def record_gets(lab: Lab, recorder: Recorder, oid_sets: list[list[str]]) -> list[Exchange]:
    for oids in oid_sets:
        done = lab.run(*lab.in_netns("snmpget", *usm_args(USER), f"127.0.0.1:{recorder.port}", *oids), env=_mibless())
        if "No Such" in done.stdout or done.stdout.count("\n") != len(oids):
            raise RuntimeError(f"unexpected GET answer: {done.stdout}")
    exchanges = recorder.take()
    if len(exchanges) != len(oid_sets):
        raise RuntimeError(f"recorded {len(exchanges)} exchanges for {len(oid_sets)} GETs")
    return exchanges


@dataclass
class Agent:
    name: str           # process name in the lab
    kind: str           # "csmm" or "snmpd"
    port: int
    rows: list[int]     # the table's row indexes
    gets1: list[Exchange] = field(default_factory=list)
    gets10: list[Exchange] = field(default_factory=list)


def record(lab: Lab, agent: Agent, rng: random.Random) -> None:
    """Record the GET requests the replaying client sends: real snmpget requests for random rows."""
    entry = SLA_ENTRY if agent.kind == "csmm" else IF_ENTRY
    recorder = Recorder(lab.netns, agent.port)
    try:
        rows = rng.sample(agent.rows, CAPTURED)
        agent.gets1 = record_gets(lab, recorder, [[f"{entry}.2.{row}"] for row in rows])
        rows = rng.sample(agent.rows, CAPTURED)
        agent.gets10 = record_gets(lab, recorder, [[f"{entry}.{c}.{row}" for c in GET_COLUMNS[agent.kind]]
                                                   for row in rows])
    finally:
        recorder.close()


@contextmanager
def only(lab: Lab, running: str, others: list[str]) -> Iterator[None]:
    """Pause every other agent while `running` is measured."""
    for name in others:
        lab.pause(name, True)
    try:
        yield
    finally:
        for name in others:
            lab.pause(name, False)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--customers", type=int, default=10000,
                        help="customers (one SLA each) in CSMM's database, and interfaces under snmpd (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="measurement rounds, alternating the agents (default 3)")
    parser.add_argument("--walk", choices=["column", "table"], default="column",
                        help="what the bulkwalk covers: one column (csmSlaName / ifDescr, N varbinds) or the whole "
                             "table (csmSlaTable 17 x N / ifTable 22 x (N + 1); slow for CSMM) (default column)")
    parser.add_argument("--repetitions", default="10,100,1000",
                        help="snmpbulkwalk -Cr value(s), comma-separated (default 10,100,1000)")
    parser.add_argument("--get-seconds", type=float, default=3.0, help="length of each GET measurement (default 3)")
    parser.add_argument("--window", type=int, default=8, help="GET requests in flight (default 8)")
    parser.add_argument("--customer-walks", type=int, default=20,
                        help="timed snmpbulkwalk commands per database for the customer's walk (default 20)")
    parser.add_argument("--snmpd-default-caches", action="store_true",
                        help="keep snmpd's own cache timeouts (ifTable 3 s: with N interfaces it then stalls for "
                             "0.5-1.5 s every few seconds, idle or not); by default all are set to 3600 s")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (network namespace)")
    for tool in ("snmpd", "snmpget", "snmpbulkwalk", "ip"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            parser.error(f"{tool} not found (net-snmp's snmpd and snmp packages, iproute2)")
    repetitions = [int(r) for r in args.repetitions.split(",") if r.strip()]

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    lab = Lab(Path(tempfile.mkdtemp(prefix="csmm-bench-snmp-")), f"csmm-bench{os.getpid()}-snmp")
    try:
        measure(lab, args, repetitions)
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


def measure(lab: Lab, args: argparse.Namespace, repetitions: list[int]) -> None:
    n = args.customers
    print(f"before: {machine_note()}")
    made = make_netns(lab, n)
    print(f"namespace {lab.netns}: {n} ifb interfaces in {made:.1f} s")
    start_snmpd(lab)  # it reads the interfaces while CSMM's databases are provisioned
    with Stopwatch() as watch:
        big = provision(lab, n)
        small = provision(lab, SMALL)
    print(f"provisioned CSMM databases with {n} and {SMALL} customers in {watch.seconds:.1f} s")
    start_csmm(lab, "csmm", big, CSMM_PORT, 18080)
    start_csmm(lab, "csmm-small", small, CSMM_SMALL_PORT, 18081)
    for name, port in (("snmpd", SNMPD_PORT), ("csmm", CSMM_PORT), ("csmm-small", CSMM_SMALL_PORT)):
        print(f"{name} answers after {wait_ready(lab, name, port):.1f} s")
    if not args.snmpd_default_caches:
        print(f"snmpd: {long_snmpd_caches(lab, 3600)} data caches (nsCacheTable) set to 3600 s")
    agents = [Agent("csmm", "csmm", CSMM_PORT, list(range(1, n + 1))), Agent("snmpd", "snmpd", SNMPD_PORT, [])]
    names = ["csmm", "snmpd", "csmm-small"]

    # The tables, walked once: their sizes, and snmpd's ifIndex values.
    for agent in agents:
        with only(lab, agent.name, [x for x in names if x != agent.name]):
            _, lines = bulkwalk(lab, agent.port, WALK["column"][agent.kind], 1000)
        indexes = [int(line.split(" ", 1)[0].rsplit(".", 1)[1]) for line in lines]
        if agent.kind == "snmpd":
            agent.rows = [i for i, line in zip(indexes, lines) if "-sla" in line]
        print(f"{agent.name}: column walk {len(lines)} rows, {len(agent.rows)} of them SLA rows")
        if len(agent.rows) != n:
            raise RuntimeError(f"{agent.name} serves {len(agent.rows)} rows, expected {n}")

    client = socket_in_netns(lab.netns)
    rng = random.Random(5)

    results: dict[str, dict[str, list[float]]] = {a.name: {} for a in agents}
    walked: dict[str, int] = {}
    for run in range(1, args.runs + 1):
        order = agents if run % 2 else agents[::-1]
        for agent in order:
            with only(lab, agent.name, [x for x in names if x != agent.name]):
                for r in repetitions:
                    seconds, lines = bulkwalk(lab, agent.port, WALK[args.walk][agent.kind], r)
                    walked[agent.name] = len(lines)
                    results[agent.name].setdefault(f"walk{r}", []).append(len(lines) / seconds)
                    print(f"run {run} {agent.name:<5} bulkwalk -Cr{r}: {len(lines)} varbinds in {seconds:.2f} s = "
                          f"{len(lines) / seconds:,.0f} varbinds/s")
                record(lab, agent, rng)  # afresh: USM refuses a request more than 150 s old
                for kind, exchanges, per in (("get1", agent.gets1, 1), ("get10", agent.gets10, 10)):
                    b = blast(client, agent.port, exchanges, args.get_seconds, args.window,
                              lab.processes[agent.name].pid)
                    if b.bad:
                        raise RuntimeError(f"{agent.name}: {b.bad} of {b.responses} GET responses were not as recorded")
                    results[agent.name].setdefault(kind, []).append(b.rate * per)
                    print(f"run {run} {agent.name:<5} GET x{per:<2}: {b.responses} responses in {b.seconds:.2f} s = "
                          f"{b.rate:,.0f} requests/s, {b.rate * per:,.0f} varbinds/s; agent CPU "
                          f"{b.cpu / b.responses * 1000:.3f} ms/request; longest wait {b.longest_gap * 1000:.0f} ms"
                          + (f"; {b.resent} resent after 2 s without a response" if b.resent else ""))
                    results[agent.name].setdefault(f"{kind}cpu", []).append(b.cpu / b.responses * 1000)

    # A customer's walk of its own rows, with 10 and with N customers.
    customer_oid = CSM_MIB
    walks: dict[str, list[float]] = {"csmm-small": [], "csmm": []}
    replayed: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for name, port in (("csmm-small", CSMM_SMALL_PORT), ("csmm", CSMM_PORT)):
        recorder = Recorder(lab.netns, port)
        try:
            with only(lab, name, [x for x in names if x != name]):
                _, lines = bulkwalk(lab, recorder.port, customer_oid, 10, CUSTOMER_USER)
                counts[name] = len(lines)
                if any(CUSTOMER_USER not in line for line in lines if f"{SLA_ENTRY}.3." in line):
                    raise RuntimeError("the customer's walk shows another customer's row")
                sequence = recorder.take()
                passes = replay_in_order(client, port, sequence, 200)
                replayed[name] = passes
                print(f"{name}: customer walk {len(lines)} varbinds in {len(sequence)} GETBULKs (-Cr10); replayed "
                      f"x200: median {median(passes) * 1000:.2f} ms")
        finally:
            recorder.close()
    for i in range(args.customer_walks):
        for name, port in (("csmm-small", CSMM_SMALL_PORT), ("csmm", CSMM_PORT)):
            with only(lab, name, [x for x in names if x != name]):
                seconds, lines = bulkwalk(lab, port, customer_oid, 10, CUSTOMER_USER)
            if len(lines) != counts[name]:
                raise RuntimeError(f"{name}: the customer's walk gave {len(lines)} varbinds, then {counts[name]}")
            walks[name].append(seconds)
    client.close()
    print(f"after: {machine_note()}")

    print()
    what = {"column": "one column: csmSlaName vs ifDescr", "table": "whole table: csmSlaTable vs ifTable"}[args.walk]
    print(f"SNMPv3 authPriv (SHA-256, AES-128), {n} rows, medians of {args.runs} runs; goal: CSMM >= 1/5 of snmpd")
    print(f"{'measurement':<42} {'CSMM':>12} {'snmpd':>12} {'CSMM/snmpd':>11}")
    rows = [(f"bulkwalk -Cr{r} ({what.split(':')[0]}), varbinds/s", f"walk{r}") for r in repetitions]
    rows += [("GET, 1 varbind, requests/s", "get1"), ("GET, 10 varbinds, varbinds/s", "get10")]
    for label, key in rows:
        ours, theirs = median(results["csmm"][key]), median(results["snmpd"][key])
        print(f"{label:<42} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>11.3f}")
    for label, key in (("agent CPU per GET x1, ms", "get1cpu"), ("agent CPU per GET x10, ms", "get10cpu")):
        ours, theirs = median(results["csmm"][key]), median(results["snmpd"][key])
        print(f"{label:<42} {ours:>12.3f} {theirs:>12.3f} {ours / theirs:>11.1f}")
    print(f"(bulkwalk {what}: CSMM {walked['csmm']} varbinds, snmpd {walked['snmpd']})")
    print()
    print(f"customer {CUSTOMER_USER}'s walk of {customer_oid} ({counts['csmm']} varbinds), milliseconds (median)")
    print(f"{'':<42} {f'{SMALL} cust.':>12} {f'{n} cust.':>12} {'ratio':>11}")
    for label, data in (("snmpbulkwalk command", walks), ("its GETBULKs replayed (no process)", replayed)):
        a, b = median(data["csmm-small"]) * 1000, median(data["csmm"]) * 1000
        print(f"{label:<42} {a:>12.2f} {b:>12.2f} {b / a:>11.3f}")
    if counts["csmm"] != counts["csmm-small"]:
        raise RuntimeError(f"the customer's walk differs: {counts}")


if __name__ == "__main__":
    main()
