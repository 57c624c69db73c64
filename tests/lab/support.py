"""Shared pieces of the lab tests: the skip rule, namespaces of our own, kernel state as text.

Namespaces are named `csmm-t<pid>-<what>` for the run that made them; only those are removed
(after killing, by PID, whatever still runs inside them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
DEMO = ROOT / "labs" / "containerlab" / "gsb-provisioning.yaml"


def lab_unready(*, nft: bool = False) -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, nftables)"
    for tool in ("ip", "tc", *(["nft"] if nft else [])):
        if shutil.which(tool) is None:
            return f"needs {tool} (./scripts/test installs iproute2 and nftables)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


def run(*command: str, netns: str | None = None, check: bool = True, text_input: str | None = None) -> str:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, input=text_input).stdout


def delete_namespace(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def namespace(what: str, *, veths: tuple[tuple[str, str], ...] = ()) -> Iterator[str]:
    """A namespace of our own with veth pairs (name, peer) inside it, up; removed afterwards."""
    name = f"csmm-t{os.getpid()}-{what}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        for dev, peer in veths:
            subprocess.run(["ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name", peer], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", peer, "up"], check=True)
        yield name
    finally:
        delete_namespace(name)


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Controller:
    """`csmm serve` with the demo provisioning, on a SQLite file in `directory`; `agent_args` say
    where and how agents connect (e.g. a unix socket in plaintext, or an address with mTLS)."""

    def __init__(self, directory: Path, agent_args: list[str], *, provisioning: Path = DEMO,
                 options: tuple[str, ...] = (), netconf: bool = False) -> None:
        self.url = f"sqlite:///{directory}/csmm.sqlite3"
        self.provisioning = provisioning
        self.options = options                    # csmm's global options, e.g. --overbooking
        self.socket = directory / "agents.sock"   # for agent_args that choose it
        self.log = directory / "controller.log"
        self.agent_args = agent_args
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.http_port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.snmp_port = s.getsockname()[1]  # not the default 1161: several controllers may run at once
        self.netconf_port = 0
        if netconf:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.netconf_port = s.getsockname()[1]
        self.netconf_key = directory / "netconf_host_key"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [BIN / "csmm", "--db", self.url, *self.options, "serve", "--apply", self.provisioning, *self.agent_args,
                 "--http", f"127.0.0.1:{self.http_port}", "--snmp", f"127.0.0.1:{self.snmp_port}",
                 *(["--netconf", f"127.0.0.1:{self.netconf_port}", "--netconf-host-key", str(self.netconf_key)]
                   if self.netconf_port else ["--no-netconf"])],
                stdout=log, stderr=log)
        wait_for("the controller's health endpoint", self._healthy, 30)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def csmm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `csmm` command on this controller's database (with its global options)."""
        return subprocess.run([BIN / "csmm", "--db", self.url, *self.options, *args], capture_output=True, text=True,
                              check=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


def lab_leftovers(name: str, mgmt: str) -> list[str]:
    """What of lab `name` (management /24 `mgmt`, e.g. "198.18.64") exists: its namespaces, its
    root-side links and bridge (named cm<6 hex of the name>…), its state file, its gateway
    address, processes naming it. [] once `csmm-lab down` has done its work."""
    short = hashlib.sha1(name.encode()).hexdigest()[:6]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    pids = subprocess.run(["pgrep", "-f", f"clab-{name}-"], capture_output=True, text=True).stdout.split()
    return ([line.split()[0] for line in namespaces.splitlines() if line.startswith(f"clab-{name}-")]
            + [line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if f" cm{short}" in line]
            + ([f"state file of {name}"] if Path(f"/run/csmm-lab/{name}.json").exists() else [])
            + [f"address {mgmt}.1" for line in addresses.splitlines() if f" {mgmt}.1/" in line]
            + [f"pid {pid}" for pid in pids])
