"""Deploy a containerlab topology on network namespaces, and take it down again.

What `up` builds, in this order (containerlab's order, except where noted):

1. A management bridge in the root namespace holding the gateway address (198.18.0.1/24 by
   default): the agents reach the controller there. containerlab's default management network
   is 172.20.20.0/24 on a Docker bridge; this emulator uses 198.18.0.0/24 (`mgmt.ipv4-subnet`
   may choose another /24 inside 198.18.0.0/15) and says so when it starts.
2. Per node a namespace named as containerlab names its container (`clab-<lab>-<node>`), IPv6
   off as in a Docker container, `eth0` on the management bridge with the node's `mgmt-ipv4`
   (or the next free address) and a default route via the gateway.
3. The links: one veth pair per link, each end in its node's namespace under its interface name.
4. Each node's `exec` commands, in order, with the node's `env`. As in containerlab, a command is
   split into words (shell quoting rules) and run without a shell: write `sh -c '…'` for one.
5. Each node's `cmd`, in the background, split the same way (logs in `<lab dir>/<node>/cmd.log`).
   containerlab starts `cmd` with the container, before the links exist; here it starts after
   them. The router agent copes with both (it retries interfaces that are not there yet).

There is no container filesystem: a node's processes see the host's files. A bind
`HOST:CONTAINER` is honoured by writing HOST wherever CONTAINER appears in the node's `cmd`,
`exec` and `env` (longest container path first); missing bind sources under the lab directory
(`__clabNodeDir__`) are created, any other missing source is an error naming it.

Every object is recorded in the state file (`/run/csmm-lab/<lab>.json`) *before* it is created,
so `down`, or the next `up` of the same lab, removes a crashed run's leftovers: only what the
state file names. Processes are stopped by PID, and only when the PID is inside one of the lab's
own namespaces (a recorded PID may have been reused after a crash).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from emulation.topology import Link, Node, Topology, load_topology

log = logging.getLogger("csmm.lab")

STATE_DIR = Path(os.environ.get("CSMM_LAB_STATE_DIR", "/run/csmm-lab"))
STOP_GRACE_S = 3.0


class LabError(RuntimeError):
    """A lab cannot be brought up, used or taken down; the text says what and why."""


# --- the state file ------------------------------------------------------------------------------

@dataclass
class LabState:
    """What one lab created, recorded before it is created."""

    name: str
    topology: str                                            # the file it was brought up from
    lab_dir: str                                             # logs and node directories
    bridge: str = ""
    gateway: str = ""                                        # "198.18.0.1/24"
    namespaces: dict[str, str] = field(default_factory=dict)  # node -> namespace
    root_links: list[str] = field(default_factory=list)      # root-side ends of management veths
    mgmt: dict[str, str] = field(default_factory=dict)        # node -> management address
    processes: dict[str, int] = field(default_factory=dict)   # node -> PID of its cmd
    complete: bool = False                                   # up finished

    @staticmethod
    def path(name: str) -> Path:
        return STATE_DIR / f"{name}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path(self.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.path(self.name))

    @classmethod
    def load(cls, name: str) -> LabState | None:
        try:
            return cls(**json.loads(cls.path(name).read_text()))
        except FileNotFoundError:
            return None

    def forget(self) -> None:
        self.path(self.name).unlink(missing_ok=True)


def running_labs() -> list[LabState]:
    """Every lab with a state file, by name."""
    if not STATE_DIR.is_dir():
        return []
    names = sorted(p.stem for p in STATE_DIR.glob("*.json"))
    return [s for s in (LabState.load(n) for n in names) if s is not None]


def find_lab(name: str | None) -> LabState:
    """The lab called `name`, or the only one there is."""
    labs = running_labs()
    if name is not None:
        state = next((s for s in labs if s.name == name), None)
        if state is None:
            raise LabError(f"no lab {name!r} is up (labs up: {', '.join(s.name for s in labs) or 'none'})")
        return state
    if len(labs) != 1:
        raise LabError("no lab is up: csmm-lab up FILE" if not labs else
                       f"several labs are up ({', '.join(s.name for s in labs)}): say which with --lab NAME")
    return labs[0]


# --- small helpers -------------------------------------------------------------------------------

def _run(*argv: str, what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{what}: `{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _exists(kind: str, name: str) -> bool:
    if kind == "netns":
        return Path("/run/netns", name).exists()
    return Path("/sys/class/net", name).exists()


def _short(lab: str) -> str:
    """Six hex digits that name a lab's root-side links (Linux allows 15 bytes per name)."""
    return hashlib.sha1(lab.encode()).hexdigest()[:6]


def _netns_inode(namespace: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{namespace}").st_ino
    except FileNotFoundError:
        return None


def _pid_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None


def _pids_in(namespace: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def node_environment(node: Node) -> dict[str, str]:
    """The environment of a node's processes: the host's, the node's `env`, and this
    installation's scripts first on PATH (in a container they would be in the image)."""
    env = dict(os.environ)
    env.update(rewrite_binds(node, dict(node.env)))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    return env


def rewrite_binds(node: Node, values: Mapping[str, str]) -> dict[str, str]:
    return {k: rewrite_paths(node, v) for k, v in values.items()}


def rewrite_paths(node: Node, text: str) -> str:
    """`text` with every bind's container path replaced by its host path, longest first."""
    for bind in sorted(node.binds, key=lambda b: len(b.container), reverse=True):
        text = text.replace(bind.container, str(bind.host))
    return text


# --- up ------------------------------------------------------------------------------------------

class Lab:
    """One lab: bring it up from a topology, or act on one that is up (from its state)."""

    def __init__(self, state: LabState) -> None:
        self.state = state

    # ----------------------------------------------------------------------------------- up

    @classmethod
    def up(cls, topology: Topology, topology_file: Path) -> Lab:
        leftover = LabState.load(topology.name)
        if leftover is not None:
            if leftover.complete:
                raise LabError(f"lab {topology.name!r} is up already (csmm-lab down --lab {topology.name} first)")
            log.warning("lab %s: removing what an earlier run left behind", topology.name)
            Lab(leftover).down()
        state = LabState(name=topology.name, topology=str(topology_file.resolve()), lab_dir=str(topology.lab_dir))
        lab = cls(state)
        try:
            lab._check_free(topology)
            lab._build(topology)
        except BaseException:
            log.error("lab %s: bringing it up failed; removing what was made", topology.name)
            lab.down()
            raise
        state.complete = True
        state.save()
        return lab

    def _check_free(self, topology: Topology) -> None:
        taken = [n.namespace for n in topology.nodes.values() if _exists("netns", n.namespace)]
        if taken:
            raise LabError(f"namespace(s) {', '.join(taken)} exist but are not this lab's: remove them or "
                           "bring the lab up under another name (--name)")
        gateway = topology.mgmt.ipv4_gw
        for line in _run("ip", "-4", "-o", "addr", "show", what="list addresses").splitlines():
            fields = line.split()
            if "inet" in fields and fields[fields.index("inet") + 1].split("/")[0] == str(gateway):
                raise LabError(f"the management gateway {gateway} is already on {fields[1]} (another lab up?): "
                               "take that lab down or give this one another mgmt ipv4-subnet")

    def _build(self, topology: Topology) -> None:
        log.info("lab %s: management network %s on a bridge in the root namespace (containerlab's default "
                 "172.20.20.0/24 is not used here)", topology.name, topology.mgmt.ipv4_subnet)
        self._bridge(topology)
        addresses = self._management_addresses(topology)
        for index, node in enumerate(topology.nodes.values()):
            self._node(node, index, addresses[node.name], topology)
        for link in topology.links:
            self._link(topology, link)
        for node in topology.nodes.values():
            self._exec_all(node)
        for node in topology.nodes.values():
            if node.cmd:
                self._start(node)

    def _bridge(self, topology: Topology) -> None:
        state = self.state
        state.bridge = f"cm{_short(topology.name)}br"
        state.gateway = f"{topology.mgmt.ipv4_gw}/{topology.mgmt.ipv4_subnet.prefixlen}"
        state.save()
        _run("ip", "link", "add", state.bridge, "type", "bridge", what="management bridge")
        _run("ip", "addr", "add", state.gateway, "dev", state.bridge, what="management gateway address")
        _run("ip", "link", "set", state.bridge, "up", what="management bridge up")

    @staticmethod
    def _management_addresses(topology: Topology) -> dict[str, ipaddress.IPv4Address]:
        """Each node's mgmt-ipv4, or the next free host address (as containerlab assigns them)."""
        taken = {ipaddress.IPv4Address(n.mgmt_ipv4) for n in topology.nodes.values() if n.mgmt_ipv4}
        taken.add(topology.mgmt.ipv4_gw)
        free = (a for a in topology.mgmt.ipv4_subnet.hosts() if a not in taken)
        out = {}
        for node in topology.nodes.values():
            if node.mgmt_ipv4:
                out[node.name] = ipaddress.IPv4Address(node.mgmt_ipv4)
            else:
                try:
                    out[node.name] = next(free)
                except StopIteration:
                    raise LabError(f"management subnet {topology.mgmt.ipv4_subnet} has no address left "
                                   f"for node {node.name}") from None
        return out

    def _node(self, node: Node, index: int, address: ipaddress.IPv4Address, topology: Topology) -> None:
        state, ns = self.state, node.namespace
        state.namespaces[node.name] = ns
        root_end = f"cm{_short(topology.name)}{index:03d}"
        state.root_links.append(root_end)
        state.mgmt[node.name] = str(address)
        state.save()
        _run("ip", "netns", "add", ns, what=f"node {node.name}: namespace")
        for key in ("all", "default"):   # as in a Docker container without IPv6: no RS/NS noise on the links
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1",
                 what=f"node {node.name}: IPv6 off")
        _run("ip", "-n", ns, "link", "set", "lo", "up", what=f"node {node.name}: loopback")
        _run("ip", "link", "add", root_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
             what=f"node {node.name}: management veth")
        _run("ip", "link", "set", root_end, "master", state.bridge, "up", what=f"node {node.name}: management port")
        prefix = topology.mgmt.ipv4_subnet.prefixlen
        _run("ip", "-n", ns, "addr", "add", f"{address}/{prefix}", "dev", "eth0", what=f"node {node.name}: mgmt-ipv4")
        _run("ip", "-n", ns, "link", "set", "eth0", "up", what=f"node {node.name}: eth0 up")
        _run("ip", "-n", ns, "route", "add", "default", "via", str(topology.mgmt.ipv4_gw),
             what=f"node {node.name}: default route via the management gateway")
        node_dir = Path(state.lab_dir) / node.name
        node_dir.mkdir(parents=True, exist_ok=True)
        for bind in node.binds:
            if not bind.host.exists():
                if Path(state.lab_dir) in bind.host.parents:
                    bind.host.mkdir(parents=True, exist_ok=True)
                else:
                    raise LabError(f"node {node.name}: bind source {bind.host} does not exist "
                                   f"(for {bind.container})")

    def _link(self, topology: Topology, link: Link) -> None:
        a, b = link.a, link.b
        ns_a, ns_b = topology.nodes[a.node].namespace, topology.nodes[b.node].namespace
        what = f"link {a.node}:{a.interface} - {b.node}:{b.interface}"
        _run("ip", "link", "add", a.interface, "netns", ns_a, "type", "veth", "peer", "name", b.interface,
             "netns", ns_b, what=what)
        mtu = link.mtu
        for ns, name in ((ns_a, a.interface), (ns_b, b.interface)):
            if mtu:
                _run("ip", "-n", ns, "link", "set", name, "mtu", str(mtu), what=what)
            _run("ip", "-n", ns, "link", "set", name, "up", what=what)

    def _exec_all(self, node: Node) -> None:
        env = node_environment(node)
        for command in node.exec:
            done = subprocess.run(["ip", "netns", "exec", node.namespace, *_words(node, command)],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LabError(f"node {node.name}: exec `{command}` exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()}")

    def _start(self, node: Node) -> None:
        assert node.cmd is not None
        state = self.state
        log_path = Path(state.lab_dir) / node.name / "cmd.log"
        with open(log_path, "ab") as out:
            process = subprocess.Popen(["ip", "netns", "exec", node.namespace, *_words(node, node.cmd)],
                                       env=node_environment(node), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        state.processes[node.name] = process.pid
        state.save()
        log.info("lab %s: node %s: started `%s` (pid %d, log %s)", state.name, node.name, node.cmd, process.pid,
                 log_path)

    # --------------------------------------------------------------------------------- down

    def down(self) -> list[str]:
        """Remove everything the state file names; returns what was removed."""
        state, removed = self.state, []
        for node, namespace in state.namespaces.items():
            removed += self._stop_processes(node, namespace)
        for namespace in state.namespaces.values():
            if _exists("netns", namespace):
                subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
                removed.append(f"namespace {namespace}")
        deadline = time.monotonic() + 2.0   # root-side veth ends linger a little after their namespace
        while any(_exists("link", n) for n in state.root_links) and time.monotonic() < deadline:
            time.sleep(0.02)
        for name in state.root_links:
            if _exists("link", name):
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
                removed.append(f"link {name}")
        if state.bridge and _exists("link", state.bridge):
            subprocess.run(["ip", "link", "del", state.bridge], capture_output=True, check=False)
            removed.append(f"bridge {state.bridge}")
        state.forget()
        return removed

    def _stop_processes(self, node: str, namespace: str) -> list[str]:
        """Stop node's cmd and anything else running in its namespace (all of it the lab's)."""
        inode = _netns_inode(namespace)
        if inode is None:
            return []
        pids = set(_pids_in(namespace))
        recorded = self.state.processes.get(node)
        if recorded is not None and _pid_netns_inode(recorded) == inode:
            pids.add(recorded)
        _stop(pids, inode)
        return [f"process {pid} in {namespace}" for pid in sorted(pids)]

    # ------------------------------------------------------------------------------- using it

    def restart(self, node: str) -> int:
        """Stop `node`'s cmd and start it again from the topology file; the new PID."""
        namespace = self.namespace(node)
        topology = load_topology(Path(self.state.topology), name=self.state.name)
        spec = topology.nodes[node]
        if not spec.cmd:
            raise LabError(f"node {node} has no cmd to restart")
        inode = _netns_inode(namespace)
        pid = self.state.processes.get(node)
        if pid is not None and inode is not None and _pid_netns_inode(pid) == inode:
            _stop({pid}, inode)
        self._start(spec)
        return self.state.processes[node]

    def namespace(self, node: str) -> str:
        try:
            return self.state.namespaces[node]
        except KeyError:
            raise LabError(f"lab {self.state.name} has no node {node!r} "
                           f"(nodes: {', '.join(self.state.namespaces)})") from None

    def popen(self, node: str, argv: Sequence[str], *, stdout: IO[bytes] | int | None = None,
              stderr: IO[bytes] | int | None = None) -> subprocess.Popen[bytes]:
        """Run `argv` inside `node` (the traffic runner's way into the lab)."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(node), *argv], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL)

    def exec(self, node: str, argv: Sequence[str]) -> int:
        """Run `argv` inside `node` in the foreground, with the terminal; its exit status."""
        return subprocess.run(["ip", "netns", "exec", self.namespace(node), *argv], check=False).returncode

    def status(self) -> list[NodeStatus]:
        out = []
        for node, namespace in self.state.namespaces.items():
            inode = _netns_inode(namespace)
            pid = self.state.processes.get(node)
            running = pid is not None and inode is not None and _pid_netns_inode(pid) == inode
            out.append(NodeStatus(node, namespace, inode is not None, self.state.mgmt.get(node, ""),
                                  pid if running else None, pid is not None))
        return out


@dataclass(frozen=True)
class NodeStatus:
    node: str
    namespace: str
    present: bool
    mgmt: str
    pid: int | None          # the node's cmd, when it runs
    has_cmd: bool


def _words(node: Node, command: str) -> list[str]:
    """`command` as containerlab runs it: shell-style words, no shell; bind paths rewritten."""
    try:
        words = shlex.split(rewrite_paths(node, command))
    except ValueError as error:
        raise LabError(f"node {node.name}: cannot split `{command}` into words: {error}") from None
    if not words:
        raise LabError(f"node {node.name}: empty command")
    return words


def _stop(pids: set[int], inode: int) -> None:
    """SIGTERM to `pids`, SIGKILL after STOP_GRACE_S to those still in the namespace `inode`
    (checked by namespace, so a PID reused by another process is never signalled twice)."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_pid_netns_inode(p) == inode for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _pid_netns_inode(pid) == inode:
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
