"""Conversions between the mapping function's RouterQos and the agent protocol's DesiredConfig."""

from __future__ import annotations

from csmm_proto import agent_pb2 as pb
from csmm_proto.configs import fingerprint

from controller.mapping.model import DscpMatch, InterfaceQos, PrefixMatch, QosClass, Remark, RouterQos, Scheduler


def config_message(config: RouterQos, version: int) -> pb.DesiredConfig:
    """The full snapshot an agent receives for `config` at `version`."""
    message = pb.DesiredConfig(router_id=config.router, version=version,
                               interfaces=[_interface_message(i) for i in config.interfaces])
    message.fingerprint = fingerprint(message)
    return message


def config_from_message(message: pb.DesiredConfig) -> RouterQos:
    return RouterQos(message.router_id, tuple(_interface(i) for i in message.interfaces))


def _interface_message(iface: InterfaceQos) -> pb.InterfaceQos:
    message = pb.InterfaceQos(name=iface.name, role=iface.role,
                              remarks=[pb.Remark(prefix=r.prefix, sla=r.sla, dscp=r.dscp) for r in iface.remarks])
    if iface.default_dscp is not None:
        message.default_dscp = iface.default_dscp
    if iface.scheduler is not None:
        s = iface.scheduler
        message.scheduler.CopyFrom(pb.Scheduler(
            capacity_bps=s.capacity_bps, default_leaf=s.default_leaf,
            classes=[pb.QosClass(name=c.name, parent=c.parent or "", rate_bps=c.rate_bps, ceil_bps=c.ceil_bps,
                                 priority=c.priority, members=list(c.members)) for c in s.classes],
            by_prefix=[pb.PrefixMatch(prefix=m.prefix, sla=m.sla, leaf=m.leaf) for m in s.by_prefix],
            by_dscp=[pb.DscpMatch(dscp=m.dscp, leaf=m.leaf) for m in s.by_dscp]))
    return message


def _interface(message: pb.InterfaceQos) -> InterfaceQos:
    scheduler = None
    if message.HasField("scheduler"):
        s = message.scheduler
        scheduler = Scheduler(
            s.capacity_bps,
            tuple(QosClass(c.name, c.parent or None, c.rate_bps, c.ceil_bps, c.priority, tuple(c.members)) for c in s.classes),
            tuple(PrefixMatch(m.prefix, m.sla, m.leaf) for m in s.by_prefix),
            tuple(DscpMatch(m.dscp, m.leaf) for m in s.by_dscp),
            s.default_leaf)
    return InterfaceQos(message.name, message.role, tuple(Remark(r.prefix, r.sla, r.dscp) for r in message.remarks),
                        message.default_dscp if message.HasField("default_dscp") else None, scheduler)
