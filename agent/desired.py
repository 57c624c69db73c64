"""The desired config from the controller, translated into the kernel's terms (a KernelPlan).

Class names become HTB minor ids that stay stable across configs (agent.driver.htb), rates are
rounded down to whole bytes per second (the kernel keeps bytes/s, so a plan compares equal to
what the kernel reports back), and every class gets an explicit quantum.
"""

from __future__ import annotations

from csmm_proto import agent_pb2 as pb

from agent.driver.htb import MIN_RATE_BPS, allocate_minors, quantum_bytes
from agent.plan import HtbClass, HtbPlan, InterfacePlan, KernelPlan, NftPlan

Minors = dict[str, dict[str, int]]   # device -> class name -> HTB minor


def kernel_plan(config: pb.DesiredConfig, previous: Minors, leaf_qdisc: str | None = None) -> tuple[KernelPlan, Minors]:
    """The plan for `config`, and the minor ids it uses (keep them for the next config)."""
    plan = KernelPlan()
    minors: Minors = {}
    for iface in config.interfaces:
        device_minors: dict[str, int] = {}
        htb = None
        if iface.HasField("scheduler"):
            device_minors = allocate_minors(list(iface.scheduler.classes), previous.get(iface.name))
            minors[iface.name] = device_minors
            htb = _htb_plan(iface.scheduler, device_minors, leaf_qdisc)
        plan.interfaces[iface.name] = InterfacePlan(iface.name, htb, _nft_plan(iface, device_minors))
    return plan, minors


def _bytes_exact(bps: int) -> int:
    return max(bps, MIN_RATE_BPS) // 8 * 8


def _htb_plan(scheduler: pb.Scheduler, minors: dict[str, int], leaf_qdisc: str | None) -> HtbPlan:
    classes = {}
    for cls in scheduler.classes:
        rate = _bytes_exact(cls.rate_bps)
        ceil = max(_bytes_exact(cls.ceil_bps), rate)
        classes[minors[cls.name]] = HtbClass(minors[cls.name], minors[cls.parent] if cls.parent else 0,
                                             rate, ceil, cls.priority, quantum_bytes(rate))
    return HtbPlan(minors[scheduler.default_leaf], classes, leaf_qdisc)


def _nft_plan(iface: pb.InterfaceQos, minors: dict[str, int]) -> NftPlan:
    nft = NftPlan(remarks={r.prefix: r.dscp for r in iface.remarks},
                  default_dscp=iface.default_dscp if iface.HasField("default_dscp") else None)
    if iface.HasField("scheduler"):
        nft.prefix_leaf = {m.prefix: minors[m.leaf] for m in iface.scheduler.by_prefix}
        nft.dscp_leaf = {m.dscp: minors[m.leaf] for m in iface.scheduler.by_dscp}
    return nft


def class_names(minors: Minors) -> dict[str, dict[int, str]]:
    """device -> minor -> class name: how counters read from the kernel map back to the config."""
    return {device: {minor: name for name, minor in names.items()} for device, names in minors.items()}


def check_config(config: pb.DesiredConfig) -> list[pb.ApplyError]:
    """What in a config this agent cannot apply, found before touching the kernel: classes with
    unknown parents, matches to unknown leaves, a parent listed after its child is fine."""
    errors = []
    for iface in config.interfaces:
        if not iface.HasField("scheduler"):
            continue
        s = iface.scheduler
        names = {c.name for c in s.classes}
        for cls in s.classes:
            if cls.parent and cls.parent not in names:
                errors.append(pb.ApplyError(interface=iface.name, item=cls.name, message=f"unknown parent class {cls.parent!r}"))
        for leaf in [s.default_leaf, *(m.leaf for m in s.by_prefix), *(m.leaf for m in s.by_dscp)]:
            if leaf not in names:
                errors.append(pb.ApplyError(interface=iface.name, item=leaf, message="match or default names an unknown class"))
    return errors
