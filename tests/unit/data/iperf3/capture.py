"""Re-capture the run directories beside this file with real iperf3 (root; run from the repository root):

    .venv/bin/python -m tests.unit.data.iperf3.capture clean|lossy|congested

Namespaces `csmm-t<pid>-{s1,s2,r,k}`: senders s1 (198.18.200.1/26) and s2 (.65/26) -> router r ->
sink k (.130/26); only 198.18.200.0/24, nothing leaves them. The router's eth3 (toward k) gets the
shaper: `lossy` a tbf of 5mbit, `congested` an HTB of 10mbit (EF ceil 4mbit, AF41 ceil 3mbit,
everything else rate 3mbit ceil 10mbit). Only the namespaces made here are removed, after killing
by PID whatever still runs in them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from emulation.traffic import LocalNodes, parse_scenario, run_scenario
from tests.lab.support import delete_namespace

HERE = Path(__file__).parent
NAMESPACES = {node: f"csmm-t{os.getpid()}-{node}" for node in ("s1", "s2", "r", "k")}
# (host, its address, router's interface, router's address)
LINKS = [("s1", "198.18.200.1", "eth1", "198.18.200.62"), ("s2", "198.18.200.65", "eth2", "198.18.200.126"),
         ("k", "198.18.200.130", "eth3", "198.18.200.129")]
SHAPERS = {
    "clean": [],
    "lossy": ["qdisc add dev eth3 root tbf rate 5mbit burst 32k latency 50ms"],
    "congested": ["qdisc add dev eth3 root handle 1: htb default 30",
                  "class add dev eth3 parent 1: classid 1:1 htb rate 10mbit ceil 10mbit",
                  "class add dev eth3 parent 1:1 classid 1:10 htb rate 4mbit ceil 4mbit prio 0",
                  "class add dev eth3 parent 1:1 classid 1:20 htb rate 3mbit ceil 3mbit prio 1",
                  "class add dev eth3 parent 1:1 classid 1:30 htb rate 3mbit ceil 10mbit prio 2",
                  "filter add dev eth3 parent 1: protocol ip prio 1 u32 match ip dsfield 0xb8 0xfc flowid 1:10",
                  "filter add dev eth3 parent 1: protocol ip prio 2 u32 match ip dsfield 0x88 0xfc flowid 1:20"],
}
_SINK = {"sink": "k", "sink_address": "198.18.200.130", "interval": 0.5}
SCENARIOS = {
    "clean": {**_SINK, "name": "clean", "duration": 2, "flows": [
        {"customer": "acme-hq", "node": "s1", "dscp": "AF41", "rate": "8M"},
        {"customer": "globex-main", "node": "s2", "dscp": "EF", "rate": "20M", "protocol": "tcp"}]},
    "lossy": {**_SINK, "name": "lossy", "duration": 3, "flows": [
        {"customer": "globex-main", "node": "s1", "dscp": "EF", "rate": "10M"}]},
    "congested": {**_SINK, "name": "congested", "duration": 3, "flows": [
        {"customer": "globex-main", "node": "s1", "dscp": "EF", "rate": "5M"},
        {"customer": "acme-hq", "node": "s2", "dscp": "AF41", "rate": "2M"},
        {"customer": "initech-office", "node": "s1", "dscp": "CS0", "rate": "12M"},
        {"customer": "umbrella-lab", "node": "s2", "dscp": 0, "rate": "3M", "protocol": "tcp", "start": 0.5,
         "duration": 2}]},
}


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def build() -> None:
    for namespace in NAMESPACES.values():
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
    router = NAMESPACES["r"]
    for n, (host, address, router_dev, router_address) in enumerate(LINKS):
        ns = NAMESPACES[host]
        a, b = f"c{os.getpid()}a{n}", f"c{os.getpid()}b{n}"
        ip("link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", router)
        ip("-n", ns, "link", "set", a, "name", "eth1")
        ip("-n", router, "link", "set", b, "name", router_dev)
        ip("-n", ns, "addr", "add", f"{address}/26", "dev", "eth1")
        ip("-n", router, "addr", "add", f"{router_address}/26", "dev", router_dev)
        ip("-n", ns, "link", "set", "eth1", "up")
        ip("-n", router, "link", "set", router_dev, "up")
        ip("-n", ns, "route", "add", "198.18.200.0/24", "via", router_address)
    subprocess.run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)


def destroy() -> None:
    for namespace in NAMESPACES.values():
        delete_namespace(namespace)


def main(which: str) -> None:
    out = HERE / which
    build()
    try:
        for line in SHAPERS[which]:
            subprocess.run(["tc", "-n", NAMESPACES["r"], *line.split()], check=True)
        shutil.rmtree(out, ignore_errors=True)
        result = run_scenario(parse_scenario(SCENARIOS[which]), LocalNodes(NAMESPACES), out)
        print(f"{out}: {'ok' if result.ok else 'FAILED'}")
        subprocess.run(["tc", "-n", NAMESPACES["r"], "-s", "qdisc", "show", "dev", "eth3"], check=False)
    finally:
        destroy()


if __name__ == "__main__":
    main(sys.argv[1])
