"""The agent's nftables driver against the real kernel, in network namespaces of our own: the
table it writes lists exactly as planned, reads back into the same plans, notices a rule deleted
by hand, takes element changes, and on a router between a customer and a receiver really remarks
DSCP and picks the HTB leaf (IP_RECVTOS on the receiver, `tc -s class show` on the router)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.driver import nft as nft_module
from agent.driver.netns import entered
from agent.driver.nft import Nft, NftError, NftState, element_commands, full_commands
from agent.plan import NftPlan


def _lab_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2's ip and tc (./scripts/test installs iproute2)"
    if shutil.which("nft") is None:
        return "needs the nft command (./scripts/test installs nftables and python3-nftables)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0:
        return "`ip netns` does not work here"
    return None


pytestmark = [pytest.mark.lab, pytest.mark.skipif(_lab_ready() is not None, reason=str(_lab_ready()))]

PREFIX = f"csmm-t{os.getpid()}-nft"
PLANS = {"edge0": NftPlan(remarks={"198.19.1.0/24": 34, "198.19.2.0/24": 46, "198.19.3.7/32": 46}, default_dscp=0),
         "eth0.100": NftPlan(prefix_leaf={"198.19.1.0/24": 10, "198.19.2.0/24": 11}, dscp_leaf={46: 3, 34: 2})}


@contextmanager
def _namespaces(*suffixes: str) -> Iterator[list[str]]:
    """Namespaces named for this run; deleted afterwards (processes in them killed first)."""
    names: list[str] = []
    try:
        for suffix in suffixes:
            name = PREFIX + suffix
            subprocess.run(["ip", "netns", "add", name], check=True)
            names.append(name)
        yield names
    finally:
        for name in names:
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", name], check=False)


def _root_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def router() -> Iterator[str]:
    before = _root_tables()   # read only: the root namespace's ruleset is never ours to change
    with _namespaces("") as (name,):
        yield name
    assert _root_tables() == before


@pytest.fixture(params=["libnftables", "nft"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "nft":
        monkeypatch.setattr(nft_module, "_load_library_module", lambda: None)
    return str(request.param)


def _nft(namespace: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", namespace, "nft", *args], capture_output=True, text=True,
                          check=True).stdout


def _rules(namespace: str, chain: str) -> list[str]:
    text = _nft(namespace, "list", "chain", "ip", "csmm", chain)
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith(("table", "chain", "type", "}"))]


def _listed_elements(namespace: str) -> dict[str, list[Any]]:
    listing = json.loads(_nft(namespace, "-j", "list", "table", "ip", "csmm"))["nftables"]
    return {o["map"]["name"]: o["map"].get("elem", []) for o in listing if "map" in o}


def _without_handles(namespace: str) -> list[str]:
    listing = json.loads(_nft(namespace, "-j", "list", "table", "ip", "csmm"))["nftables"]
    return sorted(json.dumps({k: {f: v for f, v in b.items() if f != "handle"} for k, b in o.items()}, sort_keys=True)
                  for o in listing)


def test_an_applied_plan_lists_exactly_its_maps_elements_and_rules(router: str, backend: str) -> None:
    nft = Nft(router)
    assert nft.backend == backend
    nft.run(full_commands(PLANS))
    assert _listed_elements(router) == {   # plain hash maps of network addresses, one per length
        "remark32_edge0": [["198.19.3.7", {"goto": {"target": "dscp_46"}}]],
        "remark24_edge0": [["198.19.1.0", {"goto": {"target": "dscp_34"}}],
                           ["198.19.2.0", {"goto": {"target": "dscp_46"}}]],
        "leaf_dscp_edge0": [],
        "leaf_dscp_eth0_2e100": [["af41", "1:2"], ["ef", "1:3"]],
        "leaf_prefix24_eth0_2e100": [["198.19.1.0", "1:a"], ["198.19.2.0", "1:b"]],
    }
    assert _rules(router, "ingress") == [
        'iifname "edge0" ip saddr vmap @remark32_edge0',
        'iifname "edge0" ip saddr & 255.255.255.0 vmap @remark24_edge0',
        'iifname "edge0" ip dscp set cs0',
    ]
    assert _rules(router, "egress") == [   # nft 1.0.6 prints `ip dscp` as a map key in raw form
        'oifname "edge0" meta priority set (@nh,8,8 & 0xfc) >> 2 map @leaf_dscp_edge0',
        'oifname "eth0.100" meta priority set (@nh,8,8 & 0xfc) >> 2 map @leaf_dscp_eth0_2e100',
        'oifname "eth0.100" meta priority set ip saddr & 255.255.255.0 map @leaf_prefix24_eth0_2e100',
    ]
    assert _rules(router, "dscp_34") == ["ip dscp set af41"]
    chains = _nft(router, "list", "chains", "ip")
    assert sorted(re.findall(r"chain (\S+) \{", chains)) == sorted([*(f"dscp_{n}" for n in range(64)), "ingress", "egress"])


def test_the_table_reads_back_into_the_same_plans_intact(router: str, backend: str) -> None:
    nft = Nft(router)
    assert nft.read() == NftState({}, True)              # no table yet
    nft.run(full_commands(PLANS))
    assert nft.read() == NftState(PLANS, True)
    nft.run(full_commands(PLANS))                        # a replace over itself changes nothing
    assert nft.read() == NftState(PLANS, True)
    nft.run(full_commands({}))
    assert "csmm" not in _nft(router, "list", "tables")
    assert nft.read() == NftState({}, True)
    nft.run(full_commands({}))                           # and removing nothing is no error


def test_a_rule_deleted_by_hand_is_noticed_and_a_full_replace_restores_it(router: str) -> None:
    nft = Nft(router)
    nft.run(full_commands(PLANS))
    built = _without_handles(router)
    egress = json.loads(_nft(router, "-j", "-a", "list", "chain", "ip", "csmm", "egress"))["nftables"]
    handle = [o["rule"]["handle"] for o in egress if "rule" in o][2]   # eth0.100's prefix -> leaf rule
    _nft(router, "delete", "rule", "ip", "csmm", "egress", "handle", str(handle))
    state = nft.read()
    assert state.intact is False and state.plans == PLANS
    nft.run(full_commands(PLANS))
    assert nft.read() == NftState(PLANS, True)
    assert _without_handles(router) == built


def test_element_changes_apply_in_one_transaction_and_read_back(router: str, backend: str) -> None:
    nft = Nft(router)
    nft.run(full_commands(PLANS))
    new = {"edge0": NftPlan(remarks={"198.19.1.0/24": 46, "198.19.3.7/32": 10, "198.19.9.0/24": 34}, default_dscp=0),
           "eth0.100": NftPlan(prefix_leaf={"198.19.1.0/24": 12, "198.19.9.0/24": 11}, dscp_leaf={46: 3, 0: 1})}
    commands = element_commands(PLANS, new)
    assert commands is not None
    nft.run(commands)
    assert nft.read() == NftState(new, True)


def test_a_refused_transaction_changes_nothing_and_says_why(router: str) -> None:
    nft = Nft(router)
    nft.run(full_commands(PLANS))
    add = element_commands(PLANS, {**PLANS, "edge0": NftPlan(remarks={**PLANS["edge0"].remarks, "198.19.8.0/24": 0},
                                                               default_dscp=0)})
    assert add is not None
    # the kernel, not nft, refuses this one (a key re-added with another value): the batch aborts
    clash = {"add": {"element": {"family": "ip", "table": "csmm", "name": "remark24_edge0",
                                 "elem": [["198.19.1.0", {"goto": {"target": "dscp_0"}}]]}}}
    with pytest.raises(NftError, match="File exists"):
        nft.run([*add, clash])
    assert nft.read() == NftState(PLANS, True)


def test_the_library_acts_in_the_namespace_it_was_made_for(router: str) -> None:
    before = _root_tables()
    nft = Nft(router)                  # made in `router`: its netlink socket stays there
    nft.run(full_commands(PLANS))
    assert "table ip csmm" in _nft(router, "list", "tables")
    assert _root_tables() == before


def test_read_and_a_class_move_at_ten_thousand_prefixes(router: str) -> None:
    count = 10_000
    prefixes = [f"198.{18 + (i >> 14)}.{(i >> 6) & 255}.{(i & 63) * 4}/30" for i in range(count)]
    plans = {"edge0": NftPlan(remarks={p: (0, 34, 46)[i % 3] for i, p in enumerate(prefixes)}, default_dscp=0),
             "core0": NftPlan(prefix_leaf={p: 1 + i % 50 for i, p in enumerate(prefixes)}, dscp_leaf={46: 3, 34: 2, 0: 1})}
    nft = Nft(router)
    started = time.perf_counter()
    nft.run(full_commands(plans))
    full_s = time.perf_counter() - started
    reads = []
    for _ in range(3):
        started = time.perf_counter()
        state = nft.read()
        reads.append(time.perf_counter() - started)
    assert state == NftState(plans, True)
    moved = {"edge0": NftPlan(remarks={**plans["edge0"].remarks, prefixes[7]: 46}, default_dscp=0),
             "core0": NftPlan(prefix_leaf={**plans["core0"].prefix_leaf, prefixes[7]: 3}, dscp_leaf=plans["core0"].dscp_leaf)}
    commands = element_commands(plans, moved)
    assert commands is not None and len(commands) == 4
    started = time.perf_counter()
    nft.run(commands)
    move_s = time.perf_counter() - started
    assert nft.read() == NftState(moved, True)
    print(f"\n{count} prefixes x 2 maps: full build {full_s * 1000:.0f} ms, read() best {min(reads) * 1000:.0f} ms, "
          f"class move transaction {move_s * 1000:.0f} ms")
    assert min(reads) < 2.0   # a reconcile every few seconds must stay affordable


# --- traffic through a router ------------------------------------------------------------------

HOST, ROUTER, RECEIVER = "-h", "-r", "-x"
CUSTOMER = "198.19.1.10"      # in 198.19.1.0/24: remarked to AF41 (34), leaf 1:10
STRANGER = "198.19.2.10"      # in no remark: gets the default DSCP 0, then leaf 1:20 by DSCP
SINK = ("198.18.20.2", 5001)
TOS_EF = 46 << 2


def _ip(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "-n", namespace, *args], check=True)


@pytest.fixture
def path() -> Iterator[tuple[str, str, str]]:
    """customer host (h0) -- (r0) router (r1) -- (x0) receiver, all in 198.18.0.0/15."""
    before = _root_tables()
    with _namespaces(HOST, ROUTER, RECEIVER) as (host, rtr, sink):
        _ip(rtr, "link", "add", "r0", "type", "veth", "peer", "name", "h0", "netns", host)
        _ip(rtr, "link", "add", "r1", "type", "veth", "peer", "name", "x0", "netns", sink)
        for ns, dev, addr in ((host, "h0", "198.18.10.2/24"), (rtr, "r0", "198.18.10.1/24"),
                              (rtr, "r1", "198.18.20.1/24"), (sink, "x0", "198.18.20.2/24")):
            _ip(ns, "addr", "add", addr, "dev", dev)
            _ip(ns, "link", "set", dev, "up")
        for addr in (CUSTOMER, STRANGER):
            _ip(host, "addr", "add", f"{addr}/32", "dev", "h0")
        _ip(host, "route", "add", "default", "via", "198.18.10.1")
        _ip(sink, "route", "add", "default", "via", "198.18.20.1")
        _ip(rtr, "route", "add", "198.19.0.0/16", "via", "198.18.10.2")
        subprocess.run(["ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        lines = ["qdisc add dev r1 root handle 1: htb default 30"] + [
            f"class add dev r1 parent 1: classid 1:{minor} htb rate 50mbit ceil 100mbit quantum 1514" for minor in (10, 20, 30)]
        subprocess.run(["tc", "-n", rtr, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
        yield host, rtr, sink
    assert _root_tables() == before


def _class_packets(namespace: str) -> dict[str, int]:
    out = subprocess.run(["tc", "-n", namespace, "-s", "class", "show", "dev", "r1"], capture_output=True,
                         text=True, check=True).stdout
    return {cid: int(pkts) for cid, pkts in re.findall(r"class htb (\S+) .*\n\s+Sent \d+ bytes (\d+) pkt", out)}


def _exchange(host: str, sink: str, sources: list[str], count: int) -> dict[str, list[int]]:
    """`count` UDP datagrams marked EF from each source; the DSCPs the receiver saw, by source."""
    with entered(sink):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with entered(host):
        senders = {src: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for src in sources}
    try:
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        rx.bind(SINK)
        rx.settimeout(3)
        for src, tx in senders.items():
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_EF)
            tx.bind((src, 0))
            for _ in range(count):
                tx.sendto(b"csmm", SINK)
        seen: dict[str, list[int]] = {src: [] for src in sources}
        for _ in range(count * len(sources)):
            _, ancillary, _, (addr, _) = rx.recvmsg(64, socket.CMSG_SPACE(1))
            tos = [data[0] for level, kind, data in ancillary if (level, kind) == (socket.IPPROTO_IP, socket.IP_TOS)]
            seen[addr].append(tos[0] >> 2)
        return seen
    finally:
        rx.close()
        for tx in senders.values():
            tx.close()


def test_traffic_through_the_router_is_remarked_and_queued_in_the_planned_leaf(path: tuple[str, str, str]) -> None:
    host, rtr, sink = path
    plans = {"r0": NftPlan(remarks={"198.19.1.0/24": 34}, default_dscp=0),
             # DSCP 34 would say 1:20 too: the prefix rule comes later and wins
             "r1": NftPlan(prefix_leaf={"198.19.1.0/24": 0x10}, dscp_leaf={0: 0x20, 34: 0x20})}
    nft = Nft(rtr)
    nft.run(full_commands(plans))
    _exchange(host, sink, [CUSTOMER, STRANGER], 1)   # neighbours resolved before counting
    before = _class_packets(rtr)
    seen = _exchange(host, sink, [CUSTOMER, STRANGER], 20)
    after = _class_packets(rtr)
    assert seen == {CUSTOMER: [34] * 20, STRANGER: [0] * 20}
    assert after["1:10"] - before["1:10"] == 20
    assert after["1:20"] - before["1:20"] == 20

    # a class move as the reconciler does it: remark and leaf switch in one element transaction
    moved = {"r0": NftPlan(remarks={"198.19.1.0/24": 46}, default_dscp=0),
             "r1": NftPlan(prefix_leaf={"198.19.1.0/24": 0x30}, dscp_leaf={0: 0x20, 34: 0x20})}
    commands = element_commands(nft.read().plans, moved)
    assert commands is not None
    nft.run(commands)
    before = _class_packets(rtr)
    seen = _exchange(host, sink, [CUSTOMER], 20)
    after = _class_packets(rtr)
    assert seen == {CUSTOMER: [46] * 20}
    assert after["1:30"] - before["1:30"] >= 20 and after["1:10"] == before["1:10"]
