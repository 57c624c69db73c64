"""The agent's rtnetlink client against the real kernel, on a veth in a namespace of our own: what it
builds is what `tc class show` shows, it reads back exactly what `tc class add` made, changes and
deletes land, refusals name what was refused, and its counters are the ones `tc -s` prints after
real traffic went through the tree."""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from agent.driver.netlink import ClassStats, NetlinkError, Rtnl
from agent.driver.netns import entered
from agent.plan import HtbClass
from tests.lab.support import lab_unready

_UNITS = {"bit": 1, "Kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9}


pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_unready() is not None, reason=str(lab_unready()))]

SENDER, RECEIVER = "198.18.200.1", "198.18.200.2"   # RECEIVER is only a neighbour entry: frames leave v0
FRAME = 14 + 20 + 8 + 200                          # Ethernet + IPv4 + UDP + payload, as HTB counts it


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace named for this run, with a veth pair v0/v1 inside; removed afterwards.

    IPv6 is off so that no router solicitation or MLD report lands in a class behind our back."""
    name = f"csmm-t{os.getpid()}-nl"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        for command in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                        ["link", "set", "v0", "up"], ["link", "set", "v1", "up"]):
            subprocess.run(["ip", "-n", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def rtnl(namespace: str) -> Iterator[Rtnl]:
    with Rtnl(namespace) as client:
        yield client


def _tc(namespace: str, *args: str) -> str:
    return subprocess.run(["tc", "-n", namespace, *args], check=True, capture_output=True, text=True).stdout


def _kernel_classes(namespace: str) -> dict[str, tuple[str, int, int, int | None]]:
    """classid -> (parent, rate bit/s, ceil bit/s, prio or None for an inner class), from `tc class show`."""
    classes = {}
    for line in _tc(namespace, "class", "show", "dev", "v0").splitlines():
        match = re.match(r"class htb (\S+) (?:root|parent (\S+))(?: leaf \S+)?(?: prio (\d+))? "
                         r"rate (\d+)(\w+) ceil (\d+)(\w+)", line)
        assert match, line
        cid, parent, prio, rate, rate_unit, ceil, ceil_unit = match.groups()
        classes[cid] = (parent or "1:", int(rate) * _UNITS[rate_unit], int(ceil) * _UNITS[ceil_unit],
                        None if prio is None else int(prio))
    return classes


def _detailed_lines(namespace: str) -> dict[str, str]:
    """classid -> the rest of its `tc -d class show` line (rate, ceil, prio, quantum, burst, level...)."""
    lines = {}
    for line in _tc(namespace, "-d", "class", "show", "dev", "v0").splitlines():
        _, _, cid, rest = line.split(" ", 3)
        lines[cid] = rest.strip()
    return lines


def _tc_stats(namespace: str) -> dict[int, ClassStats]:
    """minor -> counters, from `tc -s class show`."""
    out = _tc(namespace, "-s", "class", "show", "dev", "v0")
    found = {}
    for match in re.finditer(r"class htb 1:(\w+) .*?\n Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)",
                             out):
        minor, *numbers = match.groups()
        found[int(minor, 16)] = ClassStats(*(int(n) for n in numbers))
    return found


TREE = [  # a root, two aggregates, three leaves; rates that `tc class show` prints exactly
    HtbClass(minor=0x1, parent=0, rate_bps=100_000_000, ceil_bps=100_000_000, prio=0, quantum=60000),
    HtbClass(minor=0x2, parent=0x1, rate_bps=30_000_000, ceil_bps=100_000_000, prio=0, quantum=60000),
    HtbClass(minor=0x3, parent=0x1, rate_bps=70_000_000, ceil_bps=100_000_000, prio=2, quantum=60000),
    HtbClass(minor=0x10, parent=0x2, rate_bps=1_500_000, ceil_bps=10_000_000, prio=0, quantum=1514),
    HtbClass(minor=0x11, parent=0x3, rate_bps=250_000, ceil_bps=77_000_000, prio=2, quantum=3000),
    HtbClass(minor=0x1ff, parent=0x3, rate_bps=8_000, ceil_bps=64_000, prio=7, quantum=1514),
]


def _build(rtnl: Rtnl, default_minor: int = 0x1ff) -> int:
    ifindex = rtnl.ifindex("v0")
    rtnl.add_htb_root(ifindex, default_minor)
    for cls in TREE:
        rtnl.set_htb_class(ifindex, cls, create=True)
    return ifindex


def test_root_qdisc_and_its_default_class_are_none_until_htb_1_is_added_and_after_it_is_deleted(
        namespace: str, rtnl: Rtnl) -> None:
    ifindex = rtnl.ifindex("v0")
    assert rtnl.root_qdisc(ifindex) is None                       # veth's default: noqueue 0:
    assert rtnl.htb_root(ifindex) is None
    rtnl.add_htb_root(ifindex, 0x10)
    assert rtnl.root_qdisc(ifindex) == ("htb", 1)
    assert rtnl.htb_root(ifindex) == 0x10
    assert re.match(r"qdisc htb 1: root refcnt \d+ r2q 10 default 0x10 ", _tc(namespace, "qdisc", "show", "dev", "v0"))
    rtnl.delete_root_qdisc(ifindex)
    assert rtnl.root_qdisc(ifindex) is None
    assert _tc(namespace, "qdisc", "show", "dev", "v0").startswith("qdisc noqueue 0: root")
    _tc(namespace, "qdisc", "add", "dev", "v0", "root", "handle", "2:", "htb", "default", "5")
    assert rtnl.root_qdisc(ifindex) == ("htb", 2) and rtnl.htb_root(ifindex) is None   # not our 1:
    subprocess.run(["ip", "-n", namespace, "link", "add", "d0", "type", "veth", "peer", "name", "d1"], check=True)
    assert rtnl.root_qdisc(rtnl.ifindex("d0")) is None            # never up: the builtin noop, not reported


def test_a_tree_built_through_netlink_is_exactly_what_tc_class_show_shows(namespace: str, rtnl: Rtnl) -> None:
    _build(rtnl)
    inner = {cls.parent for cls in TREE}
    expected = {f"1:{cls.minor:x}": ("1:" if cls.parent == 0 else f"1:{cls.parent:x}", cls.rate_bps, cls.ceil_bps,
                                     None if cls.minor in inner else cls.prio) for cls in TREE}
    assert _kernel_classes(namespace) == expected


def test_a_class_through_netlink_and_one_through_tc_class_add_look_alike_even_in_detail(
        namespace: str, rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)
    samples = [(1_000_000, 20_000_000, 3, 1514), (3_333_337, 4_000_001, 9, 2000), (8_000, 777_000, 0, 1000),
               (40_000_000_000, 80_000_000_000, 1, 60000)]   # odd bit rates, prio clamped to 7, 64-bit rates
    for i, (rate, ceil, prio, quantum) in enumerate(samples):
        ours, theirs = 0x100 + 2 * i, 0x101 + 2 * i
        rtnl.set_htb_class(ifindex, HtbClass(ours, 0x2, rate, ceil, prio, quantum), create=True)
        _tc(namespace, "class", "add", "dev", "v0", "parent", "1:2", "classid", f"1:{theirs:x}", "htb",
            "rate", f"{rate}bit", "ceil", f"{ceil}bit", "prio", str(prio), "quantum", str(quantum))
    lines = _detailed_lines(namespace)
    for i in range(len(samples)):
        assert lines[f"1:{0x100 + 2 * i:x}"] == lines[f"1:{0x101 + 2 * i:x}"]
    assert "linklayer ethernet" in lines["1:100"] and "burst 1600b" in lines["1:100"]


def test_htb_classes_reads_back_exactly_what_tc_class_add_created(namespace: str, rtnl: Rtnl) -> None:
    lines = ["qdisc add dev v0 root handle 1: htb default 20",
             "class add dev v0 parent 1: classid 1:1 htb rate 50mbit ceil 50mbit quantum 60000",
             "class add dev v0 parent 1:1 classid 1:10 htb rate 2mbit ceil 40mbit prio 1 quantum 1600",
             "class add dev v0 parent 1:1 classid 1:20 htb rate 123456bit ceil 50mbit prio 5 quantum 4000",
             "class add dev v0 parent 1:1 classid 1:30 htb rate 40gbit ceil 100gbit prio 2 quantum 60000"]
    subprocess.run(["tc", "-n", namespace, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
    assert rtnl.htb_classes(rtnl.ifindex("v0")) == {
        0x1: HtbClass(0x1, 0, 50_000_000, 50_000_000, 0, 60000),
        0x10: HtbClass(0x10, 0x1, 2_000_000, 40_000_000, 1, 1600),
        0x20: HtbClass(0x20, 0x1, 123_456, 50_000_000, 5, 4000),
        0x30: HtbClass(0x30, 0x1, 40_000_000_000, 100_000_000_000, 2, 60000),
    }


def test_htb_classes_round_trips_a_tree_built_through_netlink(rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)
    assert rtnl.htb_classes(ifindex) == {cls.minor: cls for cls in TREE}


def test_change_updates_a_class_in_place_and_delete_removes_it(namespace: str, rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)
    changed = HtbClass(minor=0x11, parent=0x3, rate_bps=500_000, ceil_bps=50_000_000, prio=4, quantum=2000)
    rtnl.set_htb_class(ifindex, changed, create=False)
    assert rtnl.htb_classes(ifindex)[0x11] == changed
    assert _kernel_classes(namespace)["1:11"] == ("1:3", 500_000, 50_000_000, 4)
    rtnl.delete_class(ifindex, 0x11)
    assert 0x11 not in rtnl.htb_classes(ifindex)
    assert "1:11" not in _kernel_classes(namespace)


def test_an_inner_class_keeps_its_prio_and_quantum_and_no_class_changes_parent(rtnl: Rtnl) -> None:
    """What the kernel does with requests HTB cannot honour: it acks them and keeps the old values."""
    ifindex = _build(rtnl)
    rtnl.set_htb_class(ifindex, HtbClass(0x2, 0x1, 20_000_000, 90_000_000, 5, 3000), create=False)
    rtnl.set_htb_class(ifindex, HtbClass(0x10, 0x3, 2_000_000, 10_000_000, 0, 1514), create=False)
    classes = rtnl.htb_classes(ifindex)
    assert classes[0x2] == HtbClass(0x2, 0x1, 20_000_000, 90_000_000, 0, 60000)
    assert classes[0x10].parent == 0x2 and classes[0x10].rate_bps == 2_000_000


def test_leaf_qdisc_gets_a_kernel_chosen_handle_under_its_class(namespace: str, rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)
    rtnl.add_leaf_qdisc(ifindex, 0x10, "pfifo")
    rtnl.add_leaf_qdisc(ifindex, 0x11, "bfifo")
    shown = _tc(namespace, "qdisc", "show", "dev", "v0")
    assert re.search(r"qdisc pfifo [0-9a-f]+: parent 1:10 ", shown), shown
    assert re.search(r"qdisc bfifo [0-9a-f]+: parent 1:11 ", shown), shown
    with pytest.raises(NetlinkError) as caught:
        rtnl.add_leaf_qdisc(ifindex, 0x10, "pfifo")
    assert caught.value.errno == errno.EEXIST and "under class 1:10 on v0" in str(caught.value)


def test_refusals_raise_netlink_error_naming_what_was_refused(rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)
    with pytest.raises(NetlinkError) as caught:
        rtnl.delete_class(ifindex, 0x77)
    assert caught.value.errno == errno.ENOENT
    assert "delete class 1:77 on v0 (ifindex" in str(caught.value)
    with pytest.raises(NetlinkError) as caught:
        rtnl.delete_class(ifindex, 0x3)                           # it has children
    assert caught.value.errno == errno.EBUSY and caught.value.extack == "HTB class in use"
    assert "delete class 1:3 on v0" in str(caught.value) and "HTB class in use" in str(caught.value)
    with pytest.raises(NetlinkError) as caught:
        rtnl.set_htb_class(ifindex, TREE[3], create=True)        # exists already
    assert caught.value.errno == errno.EEXIST and "add HTB class 1:10 (parent 1:2) on v0" in str(caught.value)
    with pytest.raises(NetlinkError) as caught:
        rtnl.set_htb_class(ifindex, HtbClass(0x99, 0x2, 8000, 8000, 0, 1514), create=False)
    assert caught.value.errno == errno.ENOENT and "change HTB class 1:99" in str(caught.value)
    with pytest.raises(NetlinkError) as caught:
        rtnl.ifindex("nosuch0")
    assert caught.value.errno == errno.ENODEV and "look up device nosuch0" in str(caught.value)
    rtnl.delete_root_qdisc(ifindex)
    with pytest.raises(NetlinkError) as caught:
        rtnl.delete_root_qdisc(ifindex)                           # only the default is left
    assert caught.value.errno == errno.ENOENT and "Cannot delete qdisc with handle of zero" in str(caught.value)


def _send(namespace: str, minor: int, count: int) -> None:
    """`count` UDP datagrams out of v0 into class 1:minor (SO_PRIORITY names the class)."""
    with entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, (1 << 16) | minor)
        for _ in range(count):
            sock.sendto(bytes(FRAME - 42), (RECEIVER, 9))


def _settled(rtnl: Rtnl, ifindex: int, namespace: str) -> dict[int, ClassStats]:
    """The counters once nothing is queued any more (tc shows every backlog empty)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not re.search(r"backlog (?!0b 0p)", _tc(namespace, "-s", "class", "show", "dev", "v0")):
            before = rtnl.class_stats(ifindex)
            time.sleep(0.05)
            if rtnl.class_stats(ifindex) == before:
                return before
        time.sleep(0.05)
    raise AssertionError("the HTB queues did not drain")


def test_class_stats_are_the_counters_tc_prints_after_traffic(namespace: str, rtnl: Rtnl) -> None:
    ifindex = _build(rtnl)                                      # leaves get pfifo queues of 1000 packets
    for command in (["link", "set", "v0", "txqueuelen", "4"],   # a new pfifo's default limit: 4 packets
                    ["addr", "add", f"{SENDER}/24", "dev", "v0"],
                    ["neigh", "add", RECEIVER, "lladdr", "02:00:00:00:00:02", "dev", "v0", "nud", "permanent"]):
        subprocess.run(["ip", "-n", namespace, *command], check=True)
    rtnl.add_leaf_qdisc(ifindex, 0x1ff, "pfifo")                # 8 kbit/s behind 4 packets: most are dropped
    _send(namespace, 0x10, 30)
    _send(namespace, 0x1ff, 20)
    ours = _settled(rtnl, ifindex, namespace)
    assert ours == _tc_stats(namespace)
    assert ours[0x10] == ClassStats(bytes=30 * FRAME, packets=30, drops=0, overlimits=ours[0x10].overlimits)
    slow = ours[0x1ff]
    assert slow.packets + slow.drops == 20 and slow.drops > 0 and slow.overlimits > 0
    assert slow.bytes == slow.packets * FRAME
    assert ours[0x11] == ClassStats(0, 0, 0, 0)
    assert ours[0x1].bytes == ours[0x2].bytes + ours[0x3].bytes == 30 * FRAME + slow.bytes
