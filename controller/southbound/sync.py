"""Check-sync: the config a router should have now against what its agent last reported applied
(`csmm config diff`). Pure: renders the difference item by item, as an engineer reads it."""

from __future__ import annotations

from datetime import datetime, timezone

from csmm_proto import agent_pb2 as pb
from csmm_proto.configs import diff

from controller.domain.units import format_bandwidth
from controller.southbound.store import AgentStatus


def _class(c: pb.QosClass) -> str:
    return f"{c.name} rate {format_bandwidth(c.rate_bps)} ceil {format_bandwidth(c.ceil_bps)} prio {c.priority}"


def _by_key(items, key) -> dict:  # type: ignore[no-untyped-def]
    return {key(item): item for item in items}


def describe_sync(desired: pb.DesiredConfig, status: AgentStatus | None, now: datetime | None = None) -> tuple[list[str], bool]:
    """Lines to print and whether the router is in sync (its agent applied exactly `desired`)."""
    now = now or datetime.now(timezone.utc)
    router = desired.router_id
    if status is None or not status.applied_fingerprint:
        return [f"router {router}: no agent has reported applying any config; wants config {desired.fingerprint}"], False
    seen = f"last seen {int((now - status.last_seen).total_seconds())} s ago" if status.last_seen else "never seen"
    head = (f"router {router}: agent {'connected' if status.connected else 'NOT connected'} ({seen}), "
            f"applied version {status.applied_version} ({status.applied_fingerprint}); wants {desired.fingerprint}")
    lines = [head]
    if status.last_error:
        lines.append(f"  last error: {status.last_error}")
    if status.applied_fingerprint == desired.fingerprint:
        lines.append("  in sync")
        return lines, True
    if status.applied_config is None:
        lines.append("  OUT OF SYNC (the applied config's content is not known here: only its fingerprint)")
        return lines, False
    lines.append("  OUT OF SYNC: - what the router has, + what it should have")
    lines.extend(_item_lines(status.applied_config, desired))
    return lines, False


def _item_lines(have: pb.DesiredConfig, want: pb.DesiredConfig) -> list[str]:
    change = diff(have, want)
    if change is None:   # interfaces appeared, vanished or changed shape: list them whole
        have_ifaces = {i.name: i for i in have.interfaces}
        want_ifaces = {i.name: i for i in want.interfaces}
        out = []
        for name in sorted(have_ifaces | want_ifaces):
            if name not in want_ifaces:
                out.append(f"  - interface {name}")
            elif name not in have_ifaces:
                out.append(f"  + interface {name}")
            elif have_ifaces[name] != want_ifaces[name]:
                out.append(f"  ~ interface {name} (role, default DSCP, capacity or scheduler presence changed)")
        return out
    old_ifaces = {i.name: i for i in have.interfaces}
    out = []
    for d in change.interfaces:
        old = old_ifaces[d.name]
        out.append(f"  interface {d.name}:")
        old_classes = _by_key(old.scheduler.classes, lambda c: c.name)
        for c in d.upsert_classes:
            if c.name in old_classes:
                out.append(f"    - class {_class(old_classes[c.name])}")
            out.append(f"    + class {_class(c)}")
        out.extend(f"    - class {_class(old_classes[name])}" for name in d.remove_classes)
        old_prefix = _by_key(old.scheduler.by_prefix, lambda m: m.prefix)
        for m in d.upsert_prefix_matches:
            if m.prefix in old_prefix:
                out.append(f"    - from {m.prefix} -> {old_prefix[m.prefix].leaf}")
            out.append(f"    + from {m.prefix} -> {m.leaf}")
        out.extend(f"    - from {p} -> {old_prefix[p].leaf}" for p in d.remove_prefix_matches)
        old_dscp = _by_key(old.scheduler.by_dscp, lambda m: m.dscp)
        for m in d.upsert_dscp_matches:
            if m.dscp in old_dscp:
                out.append(f"    - dscp {m.dscp} -> {old_dscp[m.dscp].leaf}")
            out.append(f"    + dscp {m.dscp} -> {m.leaf}")
        out.extend(f"    - dscp {x} -> {old_dscp[x].leaf}" for x in d.remove_dscp_matches)
        old_remarks = _by_key(old.remarks, lambda r: r.prefix)
        for r in d.upsert_remarks:
            if r.prefix in old_remarks:
                out.append(f"    - remark {r.prefix} to DSCP {old_remarks[r.prefix].dscp}")
            out.append(f"    + remark {r.prefix} ({r.sla}) to DSCP {r.dscp}")
        out.extend(f"    - remark {p} to DSCP {old_remarks[p].dscp}" for p in d.remove_remarks)
    return out
