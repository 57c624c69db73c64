"""Which tc parts this kernel has. There is no netlink call that lists them, and modules may not
load on demand, so the agent tries each on a veth pair of its own and removes the pair again."""

from __future__ import annotations

import os
import shutil
import subprocess

from csmm_proto import agent_pb2 as pb

# Each probe is the smallest valid command for the part.
QDISCS = {"htb": ["htb"], "tbf": ["tbf", "rate", "1mbit", "burst", "10k", "latency", "50ms"], "fq_codel": ["fq_codel"],
          "sfq": ["sfq"], "fq": ["fq"], "cake": ["cake"], "prio": ["prio"]}
CLASSIFIERS = {"u32": ["u32", "match", "u32", "0", "0"], "bpf": ["bpf", "bytecode", "1,6 0 0 0", "classid", "1:1"],
               "flower": ["flower"], "matchall": ["matchall"]}
ACTIONS = {"mirred": ["mirred", "egress", "redirect", "dev"], "police": ["police", "rate", "1mbit", "burst", "10k"],
           "skbedit": ["skbedit", "priority", "1"]}


def _tc(netns: str | None, *args: str) -> bool:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "tc", *args], capture_output=True).returncode == 0


def _ip(netns: str | None, *args: str) -> bool:
    return subprocess.run(["ip", *(["-n", netns] if netns else []), *args], capture_output=True).returncode == 0


def detect(netns: str | None = None) -> pb.KernelCapabilities:
    caps = pb.KernelCapabilities(nftables=_nftables_works(netns))
    probe = f"cprb{os.getpid() % 100000}"
    if not _ip(netns, "link", "add", f"{probe}a", "type", "veth", "peer", "name", f"{probe}b"):
        return caps   # cannot probe (no veth): report nothing rather than guess
    try:
        dev = f"{probe}a"
        for kind, spec in QDISCS.items():
            if _tc(netns, "qdisc", "add", "dev", dev, "root", *spec):
                caps.qdiscs.append(kind)
                _tc(netns, "qdisc", "del", "dev", dev, "root")
        if _tc(netns, "qdisc", "add", "dev", dev, "clsact"):
            caps.qdiscs.append("clsact")
            for kind, spec in CLASSIFIERS.items():
                if _tc(netns, "filter", "add", "dev", dev, "ingress", "protocol", "ip", "pref", "1", *spec):
                    caps.classifiers.append(kind)
                    _tc(netns, "filter", "del", "dev", dev, "ingress", "pref", "1")
            for kind, spec in ACTIONS.items():
                action = [*spec, f"{probe}b"] if kind == "mirred" else spec
                if _tc(netns, "filter", "add", "dev", dev, "ingress", "protocol", "ip", "pref", "2", "u32", "match",
                       "u32", "0", "0", "action", *action):
                    caps.actions.append(kind)
                    _tc(netns, "filter", "del", "dev", dev, "ingress", "pref", "2")
    finally:
        _ip(netns, "link", "del", f"{probe}a")
    return caps


def _nftables_works(netns: str | None) -> bool:
    if shutil.which("nft") is None:
        return False
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "nft", "list", "tables"], capture_output=True).returncode == 0


def leaf_qdisc(caps: pb.KernelCapabilities) -> str | None:
    """fq_codel under every leaf where the kernel has it (flow isolation, low standing queues);
    otherwise the kernel's default leaf queue."""
    return "fq_codel" if "fq_codel" in caps.qdiscs else None
