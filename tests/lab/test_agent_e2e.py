"""The agent against the real kernel and a real controller process: a `csmm serve` on a unix
socket, a `csmm-agent` for router edge1 in a namespace of its own whose interfaces carry the
demo topology's names. What the acceptance of issue 3 asks, in order: the router gets exactly its
config; reported counters equal `tc -s`; drift is repaired; kill -9 and restart change nothing;
with the controller stopped the router keeps its QoS and converges after; an SLS change reaches
the kernel."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.driver.htb import allocate_minors
from controller.domain.catalog import load_catalog
from controller.domain.principal import DOMAIN_MANAGER, Channel
from controller.northbound.snmp.access import SnmpAccess
from controller.service.layer import ServiceLayer
from controller.southbound.store import SouthboundStore
from controller.southbound.wire import config_message
from controller.store.database import Database
from tests.lab.support import Controller, delete_namespace, lab_unready, run, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_unready(nft=True) is not None, reason=str(lab_unready(nft=True)))]

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
DEMO = ROOT / "labs" / "containerlab" / "gsb-provisioning.yaml"
ROUTER = "edge1"
UPLINK = "eth1"
NAMESPACE = f"csmm-t{os.getpid()}-edge1"
ACME = "198.19.1.1"             # a host of acme-hq's prefix 198.19.1.0/24
NEXT_HOP = "198.18.250.2"       # the core's side of edge1's uplink, in the lab range
_UNITS = {"bit": 1, "Kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9}


class Agent:
    def __init__(self, directory: Path, controller: Controller) -> None:
        self.state = directory / "agent-state"
        self.log = directory / "agent.log"
        self.controller = controller
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", NAMESPACE, BIN / "csmm-agent", "--router-id", ROUTER, "--controller",
                 f"unix:{self.controller.socket}", "--insecure-lab", "--state-dir", self.state,
                 "--reconcile-interval", "0.5"], stdout=log, stderr=log)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)   # `ip netns exec` execs the agent: this PID is the agent
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, Agent, ServiceLayer]]:
    directory = tmp_path_factory.mktemp("agent-e2e")
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    # No IPv6: its neighbour and router solicitations would tick the counters at random moments.
    for scope in ("all", "default"):
        run("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", netns=NAMESPACE)
    controller = Controller(directory, ["--agents", f"unix:{directory / 'agents.sock'}", "--agents-insecure-lab"])
    agent = Agent(directory, controller)
    try:
        for dev, peer in (("eth1", "core1"), ("eth2", "acme"), ("eth3", "globex")):
            run("ip", "link", "add", dev, "type", "veth", "peer", "name", peer, netns=NAMESPACE)
            run("ip", "link", "set", dev, "up", netns=NAMESPACE)
            run("ip", "link", "set", peer, "up", netns=NAMESPACE)
        run("ip", "link", "set", "lo", "up", netns=NAMESPACE)
        run("ip", "addr", "add", "198.18.250.1/24", "dev", UPLINK, netns=NAMESPACE)
        run("ip", "addr", "add", f"{ACME}/32", "dev", "lo", netns=NAMESPACE)
        run("ip", "neigh", "add", NEXT_HOP, "lladdr", "02:00:00:00:00:02", "dev", UPLINK, netns=NAMESPACE)
        subprocess.run([BIN / "csmm", "--db", controller.url, "db", "upgrade"], check=True, capture_output=True)
        controller.start()
        agent.start()
        service = ServiceLayer(Database(controller.url), load_catalog())
        yield controller, agent, service
    finally:
        agent.stop()
        controller.stop()
        delete_namespace(NAMESPACE)
        for path in (agent.log, controller.log):
            if path.exists():
                sys.stderr.write(f"--- {path.name} (last lines)\n" + "".join(path.read_text().splitlines(True)[-30:]))


# ------------------------------------------------------------------------------- kernel as text

def tc_classes(device: str = UPLINK) -> dict[str, dict[str, object]]:
    """classid -> parent, rate, ceil, bytes, packets, from `tc -s class show`."""
    out = run("tc", "-s", "class", "show", "dev", device, netns=NAMESPACE)
    classes: dict[str, dict[str, object]] = {}
    for block in out.split("class htb ")[1:]:
        m = re.match(r"(\S+) (?:root|parent (\S+)).* rate (\d+)(\w+) ceil (\d+)(\w+)", block)
        sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", block)
        assert m and sent, block
        cid, parent, rate, ru, ceil, cu = m.groups()
        classes[cid] = {"parent": parent or "1:", "rate": int(rate) * _UNITS[ru], "ceil": int(ceil) * _UNITS[cu],
                        "bytes": int(sent.group(1)), "packets": int(sent.group(2)), "drops": int(sent.group(3))}
    return classes


def nft_table() -> str:
    return run("nft", "list", "table", "ip", "csmm", netns=NAMESPACE, check=False)


def expected_tree(service: ServiceLayer, agent: Agent) -> tuple[dict[str, tuple[str, int, int]], dict[str, int]]:
    """The uplink's classes as the config says, with the class ids the agent chose (kept in its
    state file; the same as a fresh allocation for the first config)."""
    config = config_message(service.router_configs(DOMAIN_MANAGER)[ROUTER], 0)
    (uplink,) = [i for i in config.interfaces if i.name == UPLINK]
    state = agent.state / "applied.json"
    held = json.loads(state.read_text())["minors"].get(UPLINK, {}) if state.exists() else {}
    minors = allocate_minors(list(uplink.scheduler.classes), held)
    tree = {f"1:{minors[c.name]:x}": ("1:" if not c.parent else f"1:{minors[c.parent]:x}", c.rate_bps, c.ceil_bps)
            for c in uplink.scheduler.classes}
    return tree, minors


def kernel_matches(service: ServiceLayer, agent: Agent) -> bool:
    tree, _ = expected_tree(service, agent)
    have = {cid: (c["parent"], c["rate"], c["ceil"]) for cid, c in tc_classes().items()}
    return have == tree


def in_sync(controller: Controller) -> bool:
    result = subprocess.run([BIN / "csmm", "--db", controller.url, "config", "diff", "--router", ROUTER],
                            capture_output=True, text=True)
    return result.returncode == 0


def send_udp(count: int, source: str = ACME, tos: int = 0) -> None:
    """UDP from `source` out of the uplink (to a next hop with a static neighbour entry)."""
    from agent.driver.netns import entered
    with entered(NAMESPACE):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        sock.bind((source, 0))
        for _ in range(count):
            sock.sendto(b"x" * 1000, (NEXT_HOP, 9))


# ---------------------------------------------------------------------------------------- tests

def test_the_agent_programs_exactly_the_routers_config(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    controller, agent, service = lab
    wait_for("the agent to report the config applied (csmm config diff exits 0)", lambda: in_sync(controller), 20)
    assert kernel_matches(service, agent), (tc_classes(), expected_tree(service, agent)[0])
    table = nft_table()
    _, minors = expected_tree(service, agent)
    # remarking on the access ports, leaf choice on the uplink: acme-hq's prefix in both
    assert re.search(r"198\.19\.1\.0 : goto \S*34", table), table
    assert re.search(rf"198\.19\.1\.0 : 1:{minors['silver/acme-hq']:x}\b", table), table
    assert re.search(rf"198\.19\.2\.0 : 1:{minors['gold/globex-main']:x}\b", table), table


def test_reported_counters_equal_tc(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    controller, agent, service = lab
    _, minors = expected_tree(service, agent)
    # a first report sets the marks (traffic before it is never billed); everything after is usage
    wait_for("a first counters report",
             lambda: re.search(r'^csmm_class_octets_total\{.*router="edge1"', controller.metrics(), re.M))
    time.sleep(0.5)   # the report's marks are written to the database right after it is shown
    send_udp(200)
    leaf = f"1:{minors['silver/acme-hq']:x}"
    wait_for("acme's packets in its leaf", lambda: tc_classes()[leaf]["packets"] >= 200)
    time.sleep(2.5)   # two counter intervals: the controller holds a report taken after the traffic
    kernel = tc_classes()
    reported = {}
    for line in controller.metrics().splitlines():
        m = re.match(r"csmm_class_(octets|packets)_total\{(.*)\} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if (labels["router"], labels["interface"]) == (ROUTER, UPLINK):
                reported[(labels["class"], m.group(1))] = int(float(m.group(3)))
    for name, minor in minors.items():
        cid = f"1:{minor:x}"
        assert reported[(name, "octets")] == kernel[cid]["bytes"], name
        assert reported[(name, "packets")] == kernel[cid]["packets"], name
    assert reported[("silver/acme-hq", "packets")] >= 200
    # the customer's usage: exactly its own leaf's traffic, by class
    usage = SouthboundStore(service.database).usage()
    assert usage[("acme-hq", "silver")][:2] == (kernel[leaf]["bytes"], kernel[leaf]["packets"])


def test_drift_is_repaired(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    _, agent, service = lab
    _, minors = expected_tree(service, agent)
    run("tc", "class", "del", "dev", UPLINK, "classid", f"1:{minors['gold/globex-main']:x}", netns=NAMESPACE)
    remark_rule = 'iifname "eth2" ip saddr & 255.255.255.0 vmap'   # the access port's remark lookup
    listing = run("nft", "-a", "list", "table", "ip", "csmm", netns=NAMESPACE)
    handles = re.findall(re.escape(remark_rule) + r" .* # handle (\d+)", listing)
    assert handles, nft_table()
    repairs = agent.log.read_text().count("drift repaired")
    run("nft", "delete", "rule", "ip", "csmm", "ingress", "handle", handles[0], netns=NAMESPACE)
    # The agent checks every 0.5 s here, so it may repair before we look: count repairs, not a gap.
    wait_for("the deleted class and rule back",
             lambda: kernel_matches(service, agent) and remark_rule in nft_table(), 5)
    wait_for("the agent to report the repair", lambda: agent.log.read_text().count("drift repaired") > repairs, 5)


def test_kill_9_and_restart_change_nothing(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    controller, agent, service = lab
    wait_for("in sync", lambda: in_sync(controller), 10)
    before_tc = tc_classes()
    before_nft = nft_table()
    agent.kill9()
    agent.start()
    wait_for("the restarted agent in sync", lambda: in_sync(controller), 20)
    time.sleep(1.0)   # a drift check has run too
    after = tc_classes()
    assert {c: (v["parent"], v["rate"], v["ceil"]) for c, v in after.items()} == \
        {c: (v["parent"], v["rate"], v["ceil"]) for c, v in before_tc.items()}
    # counters never went back: no class was deleted and re-created
    assert all(after[c]["bytes"] >= before_tc[c]["bytes"] for c in before_tc)
    assert nft_table() == before_nft
    since_restart = agent.log.read_text().rsplit("csmm-agent 0.1.0 for router", 1)[1]
    assert "restored config version" in since_restart
    changes = [int(n) for n in re.findall(r"applied: (\d+) kernel changes", since_restart)]
    assert changes and set(changes) == {0}, since_restart   # the restore and the controller's snapshot


def test_controller_down_router_keeps_qos_and_converges(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    controller, agent, service = lab
    controller.stop()
    time.sleep(1.0)
    assert kernel_matches(service, agent)             # nothing was cleared
    sla = service.get_sla(DOMAIN_MANAGER, "acme-hq")
    service.change_sls(DOMAIN_MANAGER, sla.id, "silver", 6_000_000, Channel.CLI)
    assert not kernel_matches(service, agent)         # the router cannot know yet
    check = subprocess.run([BIN / "csmm", "--db", controller.url, "config", "diff", "--router", ROUTER],
                           capture_output=True, text=True)
    assert check.returncode == 1, check.stdout
    assert "agent NOT connected" in check.stdout and "OUT OF SYNC" in check.stdout
    assert "- class silver/acme-hq rate 5 Mbit/s" in check.stdout
    assert "+ class silver/acme-hq rate 6 Mbit/s" in check.stdout
    controller.start()
    wait_for("the router converged to the change made while the controller was down",
             lambda: kernel_matches(service, agent), 40)


def test_an_agent_restarted_without_controller_restores_the_routers_qos(
        lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    """As after a router reboot with the controller unreachable: the kernel has lost its QoS, the
    agent starts, and puts back the last config it applied (its state file)."""
    controller, agent, service = lab
    wait_for("in sync", lambda: in_sync(controller), 20)
    controller.stop()
    agent.kill9()
    run("tc", "qdisc", "del", "dev", UPLINK, "root", netns=NAMESPACE)
    run("nft", "delete", "table", "ip", "csmm", netns=NAMESPACE)
    assert tc_classes() == {} and nft_table() == ""
    agent.start()
    wait_for("the QoS back from the agent's state file", lambda: kernel_matches(service, agent)
             and "198.19.1.0 : goto" in nft_table(), 10)
    controller.start()
    wait_for("in sync again", lambda: in_sync(controller), 20)


def test_an_sls_change_reaches_the_kernel(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    controller, agent, service = lab
    wait_for("in sync", lambda: in_sync(controller), 20)
    sla = service.get_sla(DOMAIN_MANAGER, "acme-hq")
    started = time.monotonic()
    service.change_sls(DOMAIN_MANAGER, sla.id, "gold", 2_000_000, Channel.CLI)   # a class move
    wait_for("acme-hq's gold leaf in the kernel", lambda: kernel_matches(service, agent), 5)
    elapsed = time.monotonic() - started
    _, minors = expected_tree(service, agent)
    assert "silver/acme-hq" not in minors and "gold/acme-hq" in minors
    assert re.search(rf"198\.19\.1\.0 : 1:{minors['gold/acme-hq']:x}\b", nft_table())
    assert re.search(r"198\.19\.1\.0 : goto \S*46", nft_table())
    assert elapsed < 5


def test_an_snmpset_reaches_the_kernel(lab: tuple[Controller, Agent, ServiceLayer]) -> None:
    """Issue 5: a customer's snmpset of its SLS shows on the router."""
    controller, agent, service = lab
    SnmpAccess(service).add_user(DOMAIN_MANAGER, "acme-nms", "acme", "acme auth passphrase", "acme priv passphrase")
    wait_for("in sync", lambda: in_sync(controller), 20)
    sla = service.get_sla(DOMAIN_MANAGER, "acme-hq")
    auth = ["-v3", "-l", "authPriv", "-u", "acme-nms", "-a", "SHA-256", "-A", "acme auth passphrase", "-x", "AES",
            "-X", "acme priv passphrase", "-t", "2", "-r", "1", f"127.0.0.1:{controller.snmp_port}"]
    change = [f"1.3.6.1.4.1.32473.1.3.1.1.{sla.id}", "i", "2", f"1.3.6.1.4.1.32473.1.3.1.2.{sla.id}", "u", "3500"]
    wait_for("the agent to serve the new user", lambda: subprocess.run(
        ["snmpset", "-m", "", *auth, *change], capture_output=True).returncode == 0, 10)
    now = service.get_sls(DOMAIN_MANAGER, sla.id)
    assert (now.service_class.value, now.bandwidth_bps, now.channel.value) == ("silver", 3_500_000, "snmp")
    wait_for("acme-hq's silver leaf at 3.5 Mbit/s in the kernel", lambda: kernel_matches(service, agent), 5)
    _, minors = expected_tree(service, agent)
    assert tc_classes()[f"1:{minors['silver/acme-hq']:x}"]["rate"] == 3_500_000
