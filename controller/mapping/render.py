"""render_router_configs(): the mapping function of the seed, as a pure function.

(topology, active SLAs with their SLSs, catalog DSCPs) -> one RouterQos per router. No I/O;
deterministic (same input, same output, byte for byte).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.domain.catalog import Catalog, ServiceClassName
from controller.domain.sla import ACTIVE_STATES, Sla
from controller.domain.sls import Sls
from controller.domain.topology import Endpoint, InterfaceRole, Topology
from controller.mapping.model import DscpMatch, InterfaceQos, PrefixMatch, QosClass, Remark, RouterQos, Scheduler

GOLD, SILVER, BRONZE = ServiceClassName.GOLD, ServiceClassName.SILVER, ServiceClassName.BRONZE
PRIORITY = {GOLD: 0, SILVER: 1, BRONZE: 2}
BEST_EFFORT_DSCP = 0


@dataclass
class _Sender:
    """What one interface sends toward the egress points."""

    capacity_bps: int
    local: list[tuple[Sla, Sls]] = field(default_factory=list)     # customers attached to this router
    transit: list[tuple[Sla, Sls]] = field(default_factory=list)   # customers from other routers


def render_router_configs(topology: Topology, slas: Iterable[tuple[Sla, Sls]], catalog: Catalog) -> dict[str, RouterQos]:
    """The QoS config of every router for the SLSs in effect. Only installed/operational SLAs are
    carried; an SLA's traffic crosses the sending end of every link on its path."""
    active = sorted(((sla, sls) for sla, sls in slas if sla.state in ACTIVE_STATES), key=lambda pair: pair[0].name)
    senders: dict[Endpoint, _Sender] = {}
    hops_cache: dict[str, dict[str, int]] = {}
    for sla, sls in active:
        home = sla.terms.attachment.router
        hops = hops_cache.setdefault(home, topology.hops_from(home))
        for link_name in sla.path:
            link = topology.link(link_name)
            end = topology.sending_end(link, hops)
            sender = senders.setdefault(end, _Sender(link.capacity_bps))
            (sender.local if end.router == home else sender.transit).append((sla, sls))

    dscp = {name: cls.dscp for name, cls in catalog.classes.items()}
    outside = {link.a for link in topology.egress_links()}
    configs: dict[str, RouterQos] = {}
    for router in topology.routers:
        interfaces = []
        for iface in router.interfaces:
            untrusted = iface.role != InterfaceRole.CORE and Endpoint(router.id, iface.name) not in outside
            remarks, default_dscp = _remarks(router.id, iface.name, active, dscp) if untrusted else ((), None)
            sender = senders.get(Endpoint(router.id, iface.name))
            scheduler = _scheduler(sender, dscp) if sender is not None else None
            if remarks or scheduler is not None or default_dscp is not None:
                interfaces.append(InterfaceQos(iface.name, iface.role.value, remarks, default_dscp, scheduler))
        configs[router.id] = RouterQos(router.id, tuple(interfaces))
    return configs


def _remarks(router: str, interface: str, active: list[tuple[Sla, Sls]],
             dscp: dict[ServiceClassName, int]) -> tuple[tuple[Remark, ...], int | None]:
    """Ingress remarking on a customer-facing port. Every such port remarks, even with no SLA in
    effect behind it: marks from outside the contract are never trusted."""
    attached = [(sla, sls) for sla, sls in active
                if (sla.terms.attachment.router, sla.terms.attachment.interface) == (router, interface)]
    remarks = tuple(Remark(prefix, sla.name, dscp[sls.service_class])
                    for sla, sls in attached for prefix in sla.terms.attachment.prefixes)
    return remarks, BEST_EFFORT_DSCP


def _scheduler(sender: _Sender, dscp: dict[ServiceClassName, int]) -> Scheduler:
    """root -> gold/silver/bronze -> leaves. Gold and Silver get exactly the joint SLSs (rate =
    ceil: guaranteed, and never more); Bronze gets the rest of the link and may borrow all of it."""
    capacity = sender.capacity_bps
    leaves: dict[ServiceClassName, list[QosClass]] = defaultdict(list)
    by_prefix: list[PrefixMatch] = []
    for sla, sls in sender.local:
        name = f"{sls.service_class.value}/{sla.name}"
        leaves[sls.service_class].append(QosClass(name, sls.service_class.value, sls.bandwidth_bps, sls.bandwidth_bps,
                                                  PRIORITY[sls.service_class], (sla.name,)))
        by_prefix.extend(PrefixMatch(prefix, sla.name, name) for prefix in sla.terms.attachment.prefixes)
    transit: dict[ServiceClassName, list[tuple[Sla, Sls]]] = defaultdict(list)
    for sla, sls in sender.transit:
        transit[sls.service_class].append((sla, sls))
    by_dscp: list[DscpMatch] = []
    for service_class in (GOLD, SILVER):
        members = transit.get(service_class, [])
        if members:
            rate = sum(sls.bandwidth_bps for _, sls in members)
            name = f"{service_class.value}/transit"
            leaves[service_class].append(QosClass(name, service_class.value, rate, rate, PRIORITY[service_class],
                                                  tuple(sla.name for sla, _ in members)))
            by_dscp.append(DscpMatch(dscp[service_class], name))

    guaranteed = {c: sum(leaf.rate_bps for leaf in leaves[c]) for c in (GOLD, SILVER)}
    remainder = max(capacity - guaranteed[GOLD] - guaranteed[SILVER], 0)
    bronze_local = leaves[BRONZE]
    share = remainder // (len(bronze_local) + 1)
    shaped = [QosClass(leaf.name, leaf.parent, min(leaf.ceil_bps, share), leaf.ceil_bps, leaf.priority, leaf.members)
              for leaf in bronze_local]
    default = QosClass("bronze/default", "bronze", remainder - sum(leaf.rate_bps for leaf in shaped), capacity,
                       PRIORITY[BRONZE], tuple(sla.name for sla, _ in transit.get(BRONZE, [])))
    leaves[BRONZE] = [*shaped, default]

    classes = [QosClass("root", None, capacity, capacity, 0)]
    for service_class in (GOLD, SILVER, BRONZE):
        children = sorted(leaves[service_class], key=lambda leaf: leaf.name)
        if not children:
            continue
        rate = sum(leaf.rate_bps for leaf in children)
        ceil = capacity if service_class == BRONZE else rate
        classes.append(QosClass(service_class.value, "root", rate, ceil, PRIORITY[service_class]))
        classes.extend(children)
    return Scheduler(capacity, tuple(classes), tuple(sorted(by_prefix, key=lambda m: (m.prefix, m.leaf))),
                     tuple(sorted(by_dscp, key=lambda m: m.dscp)))
