"""Agent benchmarks at 10,000 customers on one router interface (issue 3, items 6a and 6b).

Router namespace of our own, with a veth pair: `upl` (the uplink, scheduled: root -> gold/silver/
bronze -> one leaf per customer) and `acc` (the access port, remarking by source prefix). Each
customer has a /30 in 198.18.0.0/15.

* Full build: the agent's `Reconciler.apply_config` on an empty kernel (plan, `tc -batch` for the
  HTB tree, one nftables transaction for remark and leaf maps) against the anchor `tc -batch` of
  the same HTB tree, and, for scale, the classic tc-only design (the same tree plus one u32
  filter per customer) also by `tc -batch`. Alternated, median of --runs.
* Single rate change and single class move at 10,000 customers, median of --changes (--moves):
  - kernel: the agent's kernel operations only (netlink class change; for a move: add the new
    leaf, one nftables transaction switching remark and leaf, delete the old leaf);
  - agent: the whole `Reconciler.apply_diff` (diff applied to the held config, fingerprint
    check, plan, kernel operations, state file written);
  - anchor: `tc class change` of the same class in one `tc` process; for a move, `tc class add`,
    `nft -j -f` of the same transaction and `tc class del`, alternating with the agent's moves.

Run as root:  .venv/bin/python bench/agent_build.py [--customers 10000] [--runs 3] [--changes 200] [--moves 50]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csmm_proto import agent_pb2 as pb  # noqa: E402
from csmm_proto.configs import fingerprint  # noqa: E402

from agent.kernel import Kernel  # noqa: E402
from agent.reconcile import HtbOp  # noqa: E402
from agent.reconciler import Reconciler  # noqa: E402
from agent.state import StateStore  # noqa: E402
from bench.common import machine_note  # noqa: E402

NS = f"csmm-b{os.getpid()}-agent"
BASE = ipaddress.ip_network("198.18.0.0/15")
CLASSES = ("gold", "silver", "bronze")
DSCP = {"gold": 46, "silver": 34, "bronze": 0}


def prefix(i: int) -> str:
    return str(ipaddress.ip_network((int(BASE.network_address) + 4 * (i + 1), 30)))


def config(customers: int, version: int = 1) -> pb.DesiredConfig:
    capacity = 10 * 10**9
    leaves = []
    for i in range(customers):
        cls = CLASSES[i % 3]
        leaves.append(pb.QosClass(name=f"{cls}/c{i}", parent=cls, rate_bps=1_000_000, ceil_bps=1_000_000,
                                  priority=CLASSES.index(cls), members=[f"c{i}"]))
    per = {c: sum(1 for leaf in leaves if leaf.parent == c) * 1_000_000 for c in CLASSES}
    classes = [pb.QosClass(name="root", rate_bps=capacity, ceil_bps=capacity)]
    classes += [pb.QosClass(name=c, parent="root", rate_bps=per[c], ceil_bps=per[c] if c != "bronze" else capacity,
                            priority=CLASSES.index(c)) for c in CLASSES]
    classes.append(pb.QosClass(name="bronze/default", parent="bronze", rate_bps=1_000_000, ceil_bps=capacity, priority=2))
    classes += leaves
    up = pb.InterfaceQos(name="upl", role="core", scheduler=pb.Scheduler(
        capacity_bps=capacity, classes=classes, default_leaf="bronze/default",
        by_prefix=[pb.PrefixMatch(prefix=prefix(i), sla=f"c{i}", leaf=leaves[i].name) for i in range(customers)]))
    acc = pb.InterfaceQos(name="acc", role="access", default_dscp=0,
                          remarks=[pb.Remark(prefix=prefix(i), sla=f"c{i}", dscp=DSCP[CLASSES[i % 3]]) for i in range(customers)])
    out = pb.DesiredConfig(router_id="r", version=version, interfaces=[up, acc])
    out.fingerprint = fingerprint(out)
    return out


def sh(*command: str, stdin: str | None = None) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, input=stdin)


def reset_kernel() -> None:
    subprocess.run(["tc", "-n", NS, "qdisc", "del", "dev", "upl", "root"], capture_output=True)
    subprocess.run(["ip", "netns", "exec", NS, "nft", "delete", "table", "ip", "csmm"], capture_output=True)


def anchor_lines(customers: int, filters: bool) -> str:
    lines = ["qdisc add dev upl root handle 1: htb default 5",
             "class add dev upl parent 1: classid 1:1 htb rate 10gbit ceil 10gbit quantum 60000"]
    lines += [f"class add dev upl parent 1:1 classid 1:{2 + k:x} htb rate 4gbit ceil 10gbit prio {k} quantum 60000"
              for k in range(3)]
    lines.append("class add dev upl parent 1:4 classid 1:5 htb rate 1mbit ceil 10gbit prio 2 quantum 12500")
    for i in range(customers):
        minor = 6 + i
        lines.append(f"class add dev upl parent 1:{2 + i % 3:x} classid 1:{minor:x} htb rate 1mbit ceil 1mbit "
                     f"prio {i % 3} quantum 12500")
        if filters:
            lines.append(f"filter add dev upl parent 1: protocol ip prio 1 u32 match ip src {prefix(i)} flowid 1:{minor:x}")
    return "\n".join(lines) + "\n"


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def full_build(customers: int, runs: int, state: Path) -> tuple[Reconciler, Kernel]:
    desired = config(customers)
    ours, tree, tc_only = [], [], []
    kernel = Kernel(NS)
    reconciler = Reconciler(kernel, StateStore(state))
    for _ in range(runs):
        reset_kernel()
        tree.append(timed(lambda: sh("tc", "-n", NS, "-batch", "-", stdin=anchor_lines(customers, False))))
        reset_kernel()
        tc_only.append(timed(lambda: sh("tc", "-n", NS, "-batch", "-", stdin=anchor_lines(customers, True))))
        reset_kernel()
        (state / "applied.json").unlink(missing_ok=True)
        reconciler = Reconciler(kernel, StateStore(state))
        result = None

        def build() -> None:
            nonlocal result
            result = reconciler.apply_config(desired)
        ours.append(timed(build))
        assert result is not None and result.ok, result
    m_ours, m_tree, m_tc = (statistics.median(x) for x in (ours, tree, tc_only))
    print(f"full build, {customers} customers: agent {m_ours:.2f} s; anchor tc -batch of the tree {m_tree:.2f} s "
          f"-> ratio {m_ours / m_tree:.2f}; tree + {customers} u32 filters by tc -batch {m_tc:.2f} s "
          f"-> ratio {m_ours / m_tc:.2f}")
    return reconciler, kernel


def rate_changes(reconciler: Reconciler, kernel: Kernel, changes: int, customers: int) -> None:
    minors = reconciler.minors["upl"]
    plan = reconciler._plan  # noqa: SLF001 (the benchmark reads the held plan to pick classes)
    assert plan is not None
    htb = plan.interfaces["upl"].htb
    assert htb is not None
    kernel_times, tc_times, agent_times = [], [], []
    for k in range(changes):
        name = f"{CLASSES[k % 3]}/c{k % customers}"
        cls = htb.classes[minors[name]]
        changed = type(cls)(cls.minor, cls.parent, cls.rate_bps + 8_000 * (1 + k % 2), cls.ceil_bps + 8_000 * (1 + k % 2),
                            cls.prio, cls.quantum)
        kernel_times.append(timed(lambda: kernel.run_htb([HtbOp("change", "upl", changed)])))
        tc_times.append(timed(lambda: sh("tc", "-n", NS, "class", "change", "dev", "upl", "parent", f"1:{cls.parent:x}",
                                         "classid", f"1:{cls.minor:x}", "htb", "rate", f"{cls.rate_bps}bit", "ceil",
                                         f"{cls.ceil_bps}bit", "prio", str(cls.prio), "quantum", str(cls.quantum))))
    for k in range(changes // 4):
        agent_times.append(timed(lambda: _agent_rate_change(reconciler, k)))
    print(f"rate change at {customers}: kernel op {_ms(kernel_times)}; anchor tc class change {_ms(tc_times)} "
          f"-> ratio {statistics.median(kernel_times) / statistics.median(tc_times):.2f}; "
          f"whole agent diff path {_ms(agent_times)}")


def class_moves(reconciler: Reconciler, kernel: Kernel, moves: int, customers: int) -> None:
    """A customer's move between classes, as the agent does it: new leaf (netlink), one nftables
    transaction switching its remark and leaf, old leaf deleted (netlink). Every other move is the
    anchor: the same three steps by the command-line tools (`tc class add`, `nft -j -f` of the
    same transaction, `tc class del`), as an operator's script would do them."""
    import json

    from agent.driver.nft import element_commands
    from agent.plan import HtbClass

    plan = reconciler._plan  # noqa: SLF001
    assert plan is not None
    htb = plan.interfaces["upl"].htb
    assert htb is not None
    nft_now = {d: p for d, p in plan.nft().items()}
    kernel_times, nft_times, add_times, delete_times, tool_times = [], [], [], [], []
    free = max(htb.classes) + 1
    for k in range(moves):
        i = k % customers
        pfx = prefix(i)
        old_minor = nft_now["upl"].prefix_leaf[pfx]
        old = htb.classes[old_minor]
        target_parent = 2 + (old.parent - 2 + 1) % 3 if old.parent in (2, 3, 4) else old.parent
        new = HtbClass(free, target_parent, old.rate_bps, old.ceil_bps, old.prio, old.quantum)
        after = {d: type(p)(dict(p.remarks), p.default_dscp, dict(p.prefix_leaf), dict(p.dscp_leaf))
                 for d, p in nft_now.items()}
        after["upl"].prefix_leaf[pfx] = free
        after["acc"].remarks[pfx] = (after["acc"].remarks[pfx] + 12) % 64
        commands = element_commands(nft_now, after)
        assert commands is not None

        def move() -> None:
            add_times.append(timed(lambda: kernel.run_htb([HtbOp("add", "upl", new)])))
            nft_times.append(timed(lambda: kernel.run_nft(commands)))
            delete_times.append(timed(lambda: kernel.run_htb([HtbOp("delete", "upl", old)])))

        def by_tools() -> None:
            sh("tc", "-n", NS, "class", "add", "dev", "upl", "parent", f"1:{new.parent:x}",
               "classid", f"1:{new.minor:x}", "htb", "rate", f"{new.rate_bps}bit", "ceil", f"{new.ceil_bps}bit",
               "prio", str(new.prio))
            sh("ip", "netns", "exec", NS, "nft", "-j", "-f", "-", stdin=json.dumps({"nftables": commands}))
            sh("tc", "-n", NS, "class", "del", "dev", "upl", "classid", f"1:{old.minor:x}")
        if k % 2:
            tool_times.append(timed(by_tools))
        else:
            kernel_times.append(timed(move))
        htb.classes[free] = new
        del htb.classes[old_minor]
        nft_now, free = after, old_minor
    ratio = statistics.median(kernel_times) / statistics.median(tool_times)
    print(f"class move at {customers}: kernel ops {_ms(kernel_times)}: new leaf {_ms(add_times)}, nftables "
          f"transaction {_ms(nft_times)}, old leaf deleted {_ms(delete_times)}; anchor tc + nft + tc "
          f"{_ms(tool_times)} -> ratio {ratio:.2f}")


def _agent_rate_change(reconciler: Reconciler, k: int) -> None:
    held = reconciler.config
    assert held is not None
    new = pb.DesiredConfig()
    new.CopyFrom(held)
    new.version = held.version + 1
    up = new.interfaces[0]
    leaf = up.scheduler.classes[5 + k]
    leaf.rate_bps = leaf.ceil_bps = 1_000_000 + 8_000 * (k % 5 + 1)
    new.fingerprint = fingerprint(new)
    change = pb.ConfigDiff(router_id="r", base_version=held.version, version=new.version, fingerprint=new.fingerprint)
    change.interfaces.add(name="upl").upsert_classes.append(leaf)
    result = reconciler.apply_diff(change)
    assert result.ok, result


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values) * 1000:.2f} ms (p90 {values[int(len(values) * 0.9)] * 1000:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace of its own)")
    print(machine_note())
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "add", "upl", "type", "veth", "peer", "name", "acc")
        sh("ip", "-n", NS, "link", "set", "upl", "up")
        sh("ip", "-n", NS, "link", "set", "acc", "up")
        with tempfile.TemporaryDirectory() as state:
            reconciler, kernel = full_build(args.customers, args.runs, Path(state))
            rate_changes(reconciler, kernel, args.changes, args.customers)
            class_moves(reconciler, kernel, args.moves, args.customers)
            kernel.close()
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
    print(machine_note())


if __name__ == "__main__":
    main()
