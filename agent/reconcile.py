"""Reconcile the kernel to the desired config: compute the difference, change only that.

The same path serves a full snapshot, a diff and the periodic drift check: a KernelPlan for what
should be is compared with a KernelPlan of what is (read from the kernel, or, for a diff from the
controller, the plan last applied), and the difference is applied make-before-break:

1. HTB classes that are new or changed (parents first) — a moved customer's new leaf exists
   before any packet is steered to it;
2. one nftables transaction switching remarks and leaf maps together (atomic for packets);
3. HTB classes no longer wanted (children first) — the old leaf goes once nothing uses it.

No step runs when its part already matches, so a restart against an unchanged config, or a
drift check on a router that did not drift, changes nothing in the kernel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from agent.plan import HTB_MAJOR, HtbClass, HtbPlan

log = logging.getLogger("csmm.agent.reconcile")

OpAction = Literal["add-root", "delete-root", "add", "change", "delete", "leaf-qdisc"]


@dataclass(frozen=True)
class HtbOp:
    action: OpAction
    device: str
    cls: HtbClass | None = None
    default_minor: int = 0
    leaf_qdisc: str = ""

    def describe(self) -> str:
        if self.cls is None:
            return f"{self.action} {self.device}" + (f" default 1:{self.default_minor:x}" if self.action == "add-root" else "")
        c = self.cls
        return (f"{self.action} {self.device} class {HTB_MAJOR}:{c.minor:x}"
                + (f" rate {c.rate_bps} ceil {c.ceil_bps} prio {c.prio}" if self.action in ("add", "change") else ""))

    def tc_line(self) -> str:
        """The same operation as a `tc -batch` line (the fast path for many operations)."""
        d = self.device
        if self.action == "add-root":
            return f"qdisc add dev {d} root handle {HTB_MAJOR}: htb default {self.default_minor:x}"
        if self.action == "delete-root":
            return f"qdisc del dev {d} root"
        assert self.cls is not None
        c = self.cls
        if self.action == "delete":
            return f"class del dev {d} classid {HTB_MAJOR}:{c.minor:x}"
        if self.action == "leaf-qdisc":
            return f"qdisc add dev {d} parent {HTB_MAJOR}:{c.minor:x} {self.leaf_qdisc}"
        parent = f"{HTB_MAJOR}:" if c.parent == 0 else f"{HTB_MAJOR}:{c.parent:x}"
        return (f"class replace dev {d} parent {parent} classid {HTB_MAJOR}:{c.minor:x} htb "
                f"rate {c.rate_bps}bit ceil {c.ceil_bps}bit prio {c.prio} quantum {c.quantum}")


@dataclass
class HtbSteps:
    """Operations on one device: `before` runs ahead of the nftables switch, `after` behind it."""

    before: list[HtbOp] = field(default_factory=list)
    after: list[HtbOp] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.before or self.after)


def _depths(classes: dict[int, HtbClass]) -> dict[int, int]:
    depths: dict[int, int] = {}

    def depth(minor: int) -> int:
        if minor not in depths:
            parent = classes[minor].parent
            depths[minor] = 0 if parent == 0 or parent not in classes else depth(parent) + 1
        return depths[minor]

    for minor in classes:
        depth(minor)
    return depths


def htb_steps(device: str, want: HtbPlan | None, have: HtbPlan | None) -> HtbSteps:
    """What turns `have` (None: no HTB root of ours) into `want` (None: remove ours)."""
    if want is None:
        return HtbSteps(after=[HtbOp("delete-root", device)] if have is not None else [])
    if have is None or have.default_minor != want.default_minor:
        # A new tree (the kernel cannot change an HTB root's default class in place).
        steps = HtbSteps(before=[HtbOp("delete-root", device)] if have is not None else [])
        steps.before.append(HtbOp("add-root", device, default_minor=want.default_minor))
        steps.before.extend(_adds(device, want, list(want.classes.values())))
        return steps
    steps = HtbSteps()
    moved = [m for m, c in want.classes.items() if m in have.classes and have.classes[m].parent != c.parent]
    # HTB cannot re-parent a class: delete and re-add it (stable minors make this rare: a class
    # name keeps its parent; it happens only when a minor is reused after a restart without state).
    for minor in sorted(moved, key=lambda m: -_depths(have.classes)[m]):
        steps.before.append(HtbOp("delete", device, have.classes[minor]))
    new = [c for m, c in want.classes.items() if m not in have.classes or m in moved]
    steps.before.extend(_adds(device, want, new))
    inner = {c.parent for c in want.classes.values()}
    steps.before.extend(HtbOp("change", device, c) for m, c in sorted(want.classes.items())
                        if m in have.classes and m not in moved and _differs(have.classes[m], c, m in inner))
    depths = _depths(have.classes)
    gone = sorted((m for m in have.classes if m not in want.classes), key=lambda m: (-depths[m], m))
    steps.after.extend(HtbOp("delete", device, have.classes[m]) for m in gone)
    return steps


def _differs(have: HtbClass, want: HtbClass, inner: bool) -> bool:
    """The kernel keeps an inner class's prio and quantum from when it was a leaf (it acks a
    change and ignores it; only leaves use them), so those are compared on leaves only."""
    if inner:
        return (have.rate_bps, have.ceil_bps) != (want.rate_bps, want.ceil_bps)
    return have != want


def _adds(device: str, want: HtbPlan, classes: list[HtbClass]) -> list[HtbOp]:
    depths = _depths(want.classes)
    ops = [HtbOp("add", device, c) for c in sorted(classes, key=lambda c: (depths[c.minor], c.minor))]
    if want.leaf_qdisc:
        parents = {c.parent for c in want.classes.values()}
        ops.extend(HtbOp("leaf-qdisc", device, c, leaf_qdisc=want.leaf_qdisc)
                   for c in sorted(classes, key=lambda c: c.minor) if c.minor not in parents)
    return ops
