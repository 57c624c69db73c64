"""A router's QoS config as a network engineer reads it (`csmm config show`)."""

from __future__ import annotations

from controller.domain.units import format_bandwidth
from controller.mapping.model import QosClass, RouterQos, Scheduler

_DSCP_NAMES = {46: "EF", 34: "AF41", 0: "BE"}


def describe(config: RouterQos) -> str:
    lines = [f"router {config.router}  (config {config.fingerprint()})"]
    if not config.interfaces:
        lines.append("  no QoS: no customer traffic crosses this router")
    for iface in config.interfaces:
        lines.append(f"  interface {iface.name} ({iface.role})")
        if iface.default_dscp is not None:
            lines.append("    ingress: remark DSCP by source prefix" if iface.remarks else
                         "    ingress: no SLA in effect behind this port")
            for remark in iface.remarks:
                lines.append(f"      {remark.prefix:<20} {remark.sla:<22} -> DSCP {remark.dscp} ({_dscp(remark.dscp)})")
            lines.append(f"      {'any other source':<43} -> DSCP {iface.default_dscp} ({_dscp(iface.default_dscp)})")
        if iface.scheduler is not None:
            lines.extend(_scheduler_lines(iface.scheduler))
    return "\n".join(lines)


def _scheduler_lines(scheduler: Scheduler) -> list[str]:
    lines = [f"    egress: scheduler on {format_bandwidth(scheduler.capacity_bps)}",
             f"      {'class':<32} {'prio':>4} {'rate':>12} {'ceil':>12}  carries"]
    depth = {"root": 0}
    for cls in scheduler.classes:
        depth[cls.name] = 0 if cls.parent is None else depth[cls.parent] + 1
        lines.append(f"      {'  ' * depth[cls.name] + cls.name:<32} {cls.priority:>4} {format_bandwidth(cls.rate_bps):>12} "
                     f"{format_bandwidth(cls.ceil_bps):>12}  {_carries(cls)}")
    lines.append("      classify (first match wins):")
    for match in scheduler.by_prefix:
        lines.append(f"        {'source ' + match.prefix:<30} -> {match.leaf}")
    for dscp_match in scheduler.by_dscp:
        lines.append(f"        {f'DSCP {dscp_match.dscp} ({_dscp(dscp_match.dscp)})':<30} -> {dscp_match.leaf}")
    lines.append(f"        {'anything else':<30} -> {scheduler.default_leaf}")
    return lines


def _carries(cls: QosClass) -> str:
    if not cls.members:
        return ""
    if len(cls.members) > 4:
        return f"{len(cls.members)} SLAs: {', '.join(cls.members[:3])}, ..."
    return ", ".join(cls.members)


def _dscp(value: int) -> str:
    return _DSCP_NAMES.get(value, f"CS{value // 8}" if value % 8 == 0 else str(value))
