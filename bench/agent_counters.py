"""The agent's netlink client at 10,000 HTB classes: one counters poll, and one rate change.

What it builds: a veth pair v0/v1 in a network namespace of its own (`csmm-b<pid>-nl`), and on v0
an HTB tree like an edge router's: root class 1:1, three aggregates (gold, silver, bronze:
1:2-1:4) and --classes leaf classes spread over them, with one `tc -batch`. The namespace is
deleted afterwards, whatever happens.

What it measures, --repeat times each, alternating with its anchor; medians are printed:
* counters poll: `Rtnl.class_stats` in-process (one dump, decoded into ClassStats), against the
  anchor `tc -s class show dev v0` as a subprocess (its output read fully from a pipe);
* tree read (extra, no goal): `Rtnl.htb_classes` against `tc class show dev v0`;
* rate change: `Rtnl.set_htb_class(create=False)` of one leaf (--changes times, each a different
  leaf, alternating between two rates), against the anchor `tc class change` of a leaf through
  one `tc` process (--tc-changes times: each costs a process start).
Printed: medians, the ratio ours/anchor (goals: counters ratio <= 1.0; a rate change <= 1 ms),
and the load average before and after, since other work on the machine skews every figure.

    .venv/bin/python bench/agent_counters.py [--classes N] [--repeat N] [--changes N] [--tc-changes N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable

from common import machine_note

from agent.driver.netlink import Rtnl
from agent.plan import HtbClass

AGGREGATES = {2: "gold", 3: "silver", 4: "bronze"}
FIRST_LEAF = 0x10
LINK_BPS = 10_000_000_000
LEAF_RATE_BPS, LEAF_CEIL_BPS = 1_000_000, 20_000_000
LEAF_QUANTUM = 1514


def leaf_parent(minor: int) -> int:
    return 2 + (minor - FIRST_LEAF) % len(AGGREGATES)


def build_lines(classes: int) -> list[str]:
    """`tc -batch` lines for the whole tree on v0; unclassified traffic goes to the first leaf."""
    lines = [f"qdisc add dev v0 root handle 1: htb default {FIRST_LEAF:x}",
             f"class add dev v0 parent 1: classid 1:1 htb rate {LINK_BPS}bit ceil {LINK_BPS}bit quantum 60000"]
    share = LINK_BPS // len(AGGREGATES)
    lines += [f"class add dev v0 parent 1:1 classid 1:{minor:x} htb rate {share}bit ceil {LINK_BPS}bit "
              f"prio {minor - 2} quantum 60000" for minor in AGGREGATES]
    lines += [f"class add dev v0 parent 1:{leaf_parent(minor):x} classid 1:{minor:x} htb rate {LEAF_RATE_BPS}bit "
              f"ceil {LEAF_CEIL_BPS}bit prio {leaf_parent(minor) - 2} quantum {LEAF_QUANTUM}"
              for minor in range(FIRST_LEAF, FIRST_LEAF + classes)]
    return lines


def make_namespace(name: str, classes: int) -> float:
    """The namespace with v0/v1 and the tree; returns the seconds `tc -batch` took."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    for command in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["link", "set", "v0", "up"], ["link", "set", "v1", "up"]):
        subprocess.run(["ip", "-n", name, *command], check=True)
    start = time.perf_counter()
    subprocess.run(["tc", "-n", name, "-batch", "-"], input="\n".join(build_lines(classes)) + "\n", text=True,
                   check=True)
    return time.perf_counter() - start


def timed(action: Callable[[int], object], i: int) -> float:
    start = time.perf_counter()
    action(i)
    return time.perf_counter() - start


def alternate(ours: Callable[[int], object], anchor: Callable[[int], object], ours_runs: int,
              anchor_runs: int) -> tuple[list[float], list[float]]:
    """Run both, interleaved, so drift in the machine's load hits both alike."""
    ours_times: list[float] = []
    anchor_times: list[float] = []
    for i in range(max(ours_runs, anchor_runs)):
        if i < ours_runs:
            ours_times.append(timed(ours, i))
        if i < anchor_runs:
            anchor_times.append(timed(anchor, i))
    return ours_times, anchor_times


def changed_leaf(i: int, classes: int, rate_bps: int) -> HtbClass:
    """The i-th change: a different leaf each time (a prime stride spreads them over the tree)."""
    minor = FIRST_LEAF + (i * 7919) % classes
    return HtbClass(minor=minor, parent=leaf_parent(minor), rate_bps=rate_bps, ceil_bps=LEAF_CEIL_BPS,
                    prio=leaf_parent(minor) - 2, quantum=LEAF_QUANTUM)


def tc_change(namespace: str, cls: HtbClass) -> None:
    subprocess.run(["tc", "-n", namespace, "class", "change", "dev", "v0", "parent", f"1:{cls.parent:x}",
                    "classid", f"1:{cls.minor:x}", "htb", "rate", f"{cls.rate_bps}bit", "ceil", f"{cls.ceil_bps}bit",
                    "prio", str(cls.prio), "quantum", str(cls.quantum)], check=True)


def report(what: str, ours: list[float], anchor: list[float], unit: float, unit_name: str) -> None:
    mine, theirs = statistics.median(ours), statistics.median(anchor)
    print(f"{what}: ours {mine / unit:.3f} {unit_name} (n={len(ours)}), anchor {theirs / unit:.3f} {unit_name} "
          f"(n={len(anchor)}), ratio ours/anchor {mine / theirs:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--tc-changes", type=int, default=50)
    args = parser.parse_args()
    classes = args.classes
    namespace = f"csmm-b{os.getpid()}-nl"
    print(f"before: {machine_note()}")
    try:
        built = make_namespace(namespace, classes)
        print(f"built {classes} leaves + 4 inner classes with tc -batch in {built:.2f} s")
        with Rtnl(namespace) as rtnl:
            ifindex = rtnl.ifindex("v0")
            stats = rtnl.class_stats(ifindex)
            assert len(stats) == classes + 4, len(stats)

            def anchor_dump(_: int) -> None:
                out = subprocess.run(["tc", "-n", namespace, "-s", "class", "show", "dev", "v0"],
                                     capture_output=True, check=True).stdout
                assert out.count(b"class htb") == classes + 4

            ours, anchor = alternate(lambda _: rtnl.class_stats(ifindex), anchor_dump, args.repeat, args.repeat)
            report(f"counters poll, {classes + 4} classes", ours, anchor, 1e-3, "ms")

            def anchor_tree(_: int) -> None:
                subprocess.run(["tc", "-n", namespace, "class", "show", "dev", "v0"], capture_output=True, check=True)

            ours, anchor = alternate(lambda _: rtnl.htb_classes(ifindex), anchor_tree, args.repeat, args.repeat)
            report(f"tree read (htb_classes vs tc class show), {classes + 4} classes", ours, anchor, 1e-3, "ms")

            # every change is a real one: ours sets 2 Mbit/s, then the anchor 3 Mbit/s on the same leaf
            ours, anchor = alternate(
                lambda i: rtnl.set_htb_class(ifindex, changed_leaf(i, classes, 2 * LEAF_RATE_BPS), create=False),
                lambda i: tc_change(namespace, changed_leaf(i, classes, 3 * LEAF_RATE_BPS)),
                args.changes, args.tc_changes)
            report(f"rate change at {classes} leaves", ours, anchor, 1e-3, "ms")
            last = changed_leaf(args.changes - 1, classes, 2 * LEAF_RATE_BPS)
            assert rtnl.htb_classes(ifindex)[last.minor] == last   # the changes did land
    finally:   # no process runs inside it (tc -n enters and leaves), so deleting it frees it
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    print(f"after: {machine_note()}")


if __name__ == "__main__":
    main()
