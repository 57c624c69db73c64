"""A real `csmm serve` with its SNMP agent, net-snmp's tools and snmptrapd, for the SNMP tests.

Everything listens on 127.0.0.1 on ports the OS picked free; processes are stopped by their PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from controller.config import Settings, open_service
from controller.domain.principal import DOMAIN_MANAGER
from controller.northbound.snmp.access import SnmpAccess
from controller.provisioning.apply import apply
from controller.provisioning.model import load_provisioning
from controller.service.layer import ServiceLayer
from controller.store import migrate
from controller.store.database import Database
from tests.conftest import DEMO_FILE, ROOT

CSMM = str(Path(sys.executable).with_name("csmm"))
MIB_DIR = ROOT / "mib"
ENGINE_ID = "80007ed905c5a0000000000001"  # fixed, so trap receivers can be configured before the agent starts


@dataclass(frozen=True)
class User:
    name: str
    customer: str | None
    auth: str
    auth_passphrase: str
    priv_passphrase: str

    def args(self, level: str = "authPriv") -> list[str]:
        args = ["-v3", "-l", level, "-u", self.name, "-a", self.auth, "-A", self.auth_passphrase]
        return args + (["-x", "AES", "-X", self.priv_passphrase] if level == "authPriv" else [])


ACME = User("acme-nms", "acme", "SHA-256", "acme auth passphrase", "acme priv passphrase")
GLOBEX = User("globex-nms", "globex", "SHA", "globex-auth-pass", "globex-priv-pass")
PEER = User("as64500-nms", "as64500", "SHA-512", "peer-auth-passphrase", "peer-priv-passphrase")
NOC = User("noc", None, "SHA-512", "operator-auth-pass", "operator-priv-pass")
USERS = (ACME, GLOBEX, PEER, NOC)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def thin_link_provisioning(directory: Path) -> Path:
    """The demo network with a thin edge1-core link (10 Mbit/s: 3 Mbit/s for Gold), so that
    admission control can refuse an SLS change, and an SLA without Gold (umbrella-lab)."""
    plan = yaml.safe_load(DEMO_FILE.read_text())
    for router in plan["topology"]["routers"]:
        for interface in router["interfaces"]:
            if (router["id"], interface["name"]) in (("edge1", "eth1"), ("core", "eth1")):
                interface["capacity"] = "10M"
    for customer in plan["customers"]:
        for sla in customer["slas"]:
            if sla["name"] == "umbrella-lab":
                del sla["bounds"]["gold"]
    path = directory / "provisioning.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


class SnmpController:
    """`csmm serve` (no router agents) with its SNMP agent on a SQLite database in `directory`."""

    OPTIONS = ["--overbooking", "3"]  # SLA reservations may exceed the thin link; SLSs may not

    def __init__(self, directory: Path, *, fast_path: bool = True) -> None:
        self.directory = directory
        self.fast_path = fast_path
        self.url = f"sqlite:///{directory}/csmm.sqlite3"
        self.port = free_udp_port()
        self.log = directory / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Schema, the test network and the SNMP users, in-process (the CLI's own tests cover the CLI)."""
        migrate.upgrade(Database(self.url))
        service = self.service()
        apply(service, DOMAIN_MANAGER, load_provisioning(thin_link_provisioning(self.directory)))
        for user in USERS:
            SnmpAccess(service).add_user(DOMAIN_MANAGER, user.name, user.customer, user.auth_passphrase,
                                         user.priv_passphrase, user.auth)
        service.database.dispose()

    def service(self) -> ServiceLayer:
        """The service layer on this controller's database, for reading what the agent stored."""
        return open_service(Settings(self.url, overbooking=Decimal(self.OPTIONS[1])))

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [CSMM, "--db", self.url, *self.OPTIONS, "serve", "--no-agents", "--no-netconf", "--http",
                 f"127.0.0.1:{free_tcp_port()}", "--snmp", f"127.0.0.1:{self.port}", "--snmp-engine-id", ENGINE_ID,
                 *([] if self.fast_path else ["--snmp-no-fast-path"])],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until("the SNMP agent", lambda: "SNMP agent on udp" in self.log.read_text()[offset:]
                   or self.process is None or self.process.poll() is not None)
        assert self.process.poll() is None, self.log.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def csmm(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([CSMM, "--db", self.url, *self.OPTIONS, *args], capture_output=True, text=True,
                                input=stdin, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"csmm {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def snmp(self, tool: str, user: User, *args: str, level: str = "authPriv", mib: bool = True,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a net-snmp tool (snmpget, snmpset, snmpwalk, ...) against the agent. Options in `args`
        are single words ("-Cr50", "-On"); the rest are OIDs and values, placed after the agent."""
        mibs = ["-M", f"+{MIB_DIR}", "-m", "CSM-MIB"] if mib else ["-m", ""]
        command = [tool, *mibs, *user.args(level), "-t", "2", "-r", "0"]
        options = [a for a in args if a.startswith("-")]
        rest = [a for a in args if not a.startswith("-")]
        command += options + [f"127.0.0.1:{self.port}"] + rest
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check)


class TrapReceiver:
    """net-snmp's snmptrapd accepting SNMPv3 traps from the agent's engine for one user."""

    def __init__(self, directory: Path, user: User) -> None:
        self.directory = directory
        self.user = user
        self.port = free_udp_port()
        self.log = directory / "traps.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "snmptrapd.conf"
        conf.write_text(f'createUser -e 0x{ENGINE_ID} {self.user.name} {self.user.auth} "{self.user.auth_passphrase}" '
                        f'AES "{self.user.priv_passphrase}"\nauthUser log {self.user.name}\n')
        self.log.touch()
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.directory / "persist")}
        self.process = subprocess.Popen(
            ["snmptrapd", "-f", "-C", "-c", str(conf), "-M", f"+{MIB_DIR}", "-m", "CSM-MIB", "-Lf", str(self.log),
             "-p", str(self.directory / "snmptrapd.pid"), f"udp:127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_until("snmptrapd", lambda: "NET-SNMP version" in self.log.read_text() or self.process.poll() is not None)
        assert self.process.poll() is None, self.log.read_text()

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
