"""Protocol rules for DesiredConfig that both ends compute: fingerprint, diff, applying a diff.

A config's fingerprint is a digest of its content in canonical order (classes, matches and remarks
sorted by their keys), so that the controller can send a ConfigDiff and the agent, having applied
it to its copy, can check that it holds exactly what the controller holds. Version and
fingerprint fields themselves are not part of the digest.
"""

from __future__ import annotations

import hashlib

from csmm_proto import agent_pb2 as pb


def canonical(config: pb.DesiredConfig) -> pb.DesiredConfig:
    """A copy with every repeated field in key order, version and fingerprint cleared."""
    out = pb.DesiredConfig(router_id=config.router_id)
    for iface in sorted(config.interfaces, key=lambda i: i.name):
        copy = out.interfaces.add()
        copy.CopyFrom(iface)
        _sort(copy)
    return out


def fingerprint(config: pb.DesiredConfig) -> str:
    """The digest of `canonical(config)`, computed item by item (no sorted copy of the whole
    config: at 10,000 customers that copy is most of the cost)."""
    digest = hashlib.sha256(config.router_id.encode())
    for iface in sorted(config.interfaces, key=lambda i: i.name):
        frame = pb.InterfaceQos(name=iface.name, role=iface.role)
        if iface.HasField("default_dscp"):
            frame.default_dscp = iface.default_dscp
        if iface.HasField("scheduler"):
            frame.scheduler.capacity_bps = iface.scheduler.capacity_bps
            frame.scheduler.default_leaf = iface.scheduler.default_leaf
        _feed(digest, b"I", [frame])
        _feed(digest, b"R", sorted(iface.remarks, key=lambda r: r.prefix))
        if iface.HasField("scheduler"):
            s = iface.scheduler
            _feed(digest, b"C", sorted(s.classes, key=lambda c: c.name))
            _feed(digest, b"P", sorted(s.by_prefix, key=lambda m: m.prefix))
            _feed(digest, b"D", sorted(s.by_dscp, key=lambda m: m.dscp))
    return digest.hexdigest()[:16]


def _feed(digest, tag: bytes, items) -> None:  # type: ignore[no-untyped-def]
    """Each item length-prefixed, so that no two different configs feed the same bytes."""
    for item in items:
        data = item.SerializeToString(deterministic=True)
        digest.update(tag + len(data).to_bytes(4, "big") + data)


def _sort(iface: pb.InterfaceQos) -> None:
    _sort_field(iface.remarks, lambda r: r.prefix)
    if iface.HasField("scheduler"):
        s = iface.scheduler
        _sort_field(s.classes, lambda c: c.name)
        _sort_field(s.by_prefix, lambda m: m.prefix)
        _sort_field(s.by_dscp, lambda m: m.dscp)


def _sort_field(field, key) -> None:  # type: ignore[no-untyped-def]  (protobuf repeated containers)
    items = _copies(field)
    items.sort(key=key)
    del field[:]
    field.extend(items)


# ------------------------------------------------------------------------------------------- diff

def diff(old: pb.DesiredConfig, new: pb.DesiredConfig) -> pb.ConfigDiff | None:
    """The ConfigDiff that turns `old` into `new`, or None when only a full snapshot can: an
    interface appears or disappears, or an interface's role, default DSCP, scheduler presence,
    capacity or default leaf changes. Items are upserted whole and removed by key."""
    old_ifaces = {i.name: i for i in old.interfaces}
    new_ifaces = {i.name: i for i in new.interfaces}
    if old_ifaces.keys() != new_ifaces.keys():
        return None
    out = pb.ConfigDiff(router_id=new.router_id, base_version=old.version, version=new.version,
                        fingerprint=new.fingerprint)
    for name in sorted(new_ifaces):
        a, b = old_ifaces[name], new_ifaces[name]
        if not _same_frame(a, b):
            return None
        change = _interface_diff(a, b)
        if change is not None:
            out.interfaces.append(change)
    return out


def _same_frame(a: pb.InterfaceQos, b: pb.InterfaceQos) -> bool:
    if (a.role, a.HasField("default_dscp"), a.default_dscp, a.HasField("scheduler")) != \
            (b.role, b.HasField("default_dscp"), b.default_dscp, b.HasField("scheduler")):
        return False
    if not a.HasField("scheduler"):
        return True
    return (a.scheduler.capacity_bps, a.scheduler.default_leaf) == (b.scheduler.capacity_bps, b.scheduler.default_leaf)


def _interface_diff(a: pb.InterfaceQos, b: pb.InterfaceQos) -> pb.InterfaceDiff | None:
    d = pb.InterfaceDiff(name=b.name)
    _keyed(a.remarks, b.remarks, lambda r: r.prefix, d.upsert_remarks, d.remove_remarks)
    if b.HasField("scheduler"):
        _keyed(a.scheduler.classes, b.scheduler.classes, lambda c: c.name, d.upsert_classes, d.remove_classes)
        _keyed(a.scheduler.by_prefix, b.scheduler.by_prefix, lambda m: m.prefix,
               d.upsert_prefix_matches, d.remove_prefix_matches)
        _keyed(a.scheduler.by_dscp, b.scheduler.by_dscp, lambda m: m.dscp, d.upsert_dscp_matches, d.remove_dscp_matches)
    changed = (d.upsert_remarks or d.remove_remarks or d.upsert_classes or d.remove_classes or d.upsert_prefix_matches
               or d.remove_prefix_matches or d.upsert_dscp_matches or d.remove_dscp_matches)
    return d if changed else None


def _keyed(old, new, key, upserts, removals) -> None:  # type: ignore[no-untyped-def]
    before = {key(item): item for item in old}
    after = {key(item): item for item in new}
    upserts.extend(item for k, item in sorted(after.items()) if before.get(k) != item)
    removals.extend(k for k in sorted(before) if k not in after)


def apply_diff(config: pb.DesiredConfig, change: pb.ConfigDiff) -> pb.DesiredConfig:
    """`config` with `change` applied (a new message; `config` is left alone). The caller checks
    base_version against what it holds, and the result's fingerprint against change.fingerprint."""
    out = pb.DesiredConfig()
    out.CopyFrom(config)
    out.version, out.fingerprint = change.version, change.fingerprint
    ifaces = {i.name: i for i in out.interfaces}
    for d in change.interfaces:
        if d.name not in ifaces:
            raise KeyError(f"diff names interface {d.name!r}, which the config does not have")
        iface = ifaces[d.name]
        _apply_keyed(iface.remarks, d.upsert_remarks, d.remove_remarks, lambda r: r.prefix)
        if d.upsert_classes or d.remove_classes or d.upsert_prefix_matches or d.remove_prefix_matches \
                or d.upsert_dscp_matches or d.remove_dscp_matches:
            s = iface.scheduler
            _apply_keyed(s.classes, d.upsert_classes, d.remove_classes, lambda c: c.name)
            _apply_keyed(s.by_prefix, d.upsert_prefix_matches, d.remove_prefix_matches, lambda m: m.prefix)
            _apply_keyed(s.by_dscp, d.upsert_dscp_matches, d.remove_dscp_matches, lambda m: m.dscp)
    return out


def _apply_keyed(field, upserts, removals, key) -> None:  # type: ignore[no-untyped-def]
    """In place: an upserted item replaces the one with its key where it stands, or is appended;
    removed items are deleted (from the end, so positions stay valid)."""
    if not upserts and not removals:
        return
    position = {key(item): n for n, item in enumerate(field)}
    for item in upserts:
        n = position.get(key(item))
        if n is None:
            field.add().CopyFrom(item)
        else:
            field[n].CopyFrom(item)
    for n in sorted((position[k] for k in set(removals) if k in position), reverse=True):
        del field[n]


def _copies(items):  # type: ignore[no-untyped-def]
    """Detached copies: clearing a repeated field must not take the items we are about to re-add."""
    copies = []
    for item in items:
        copy = type(item)()
        copy.CopyFrom(item)
        copies.append(copy)
    return copies
