"""Where each SLA's traffic is counted: its own leaf at home and the class-k hops of its path,
read off the mapping's router configs (pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from controller.domain.sla import ACTIVE_STATES, Sla
from controller.domain.sls import Sls
from controller.domain.topology import Endpoint, Topology
from controller.feedback.conformance import Hop, Leaf, Route
from controller.mapping.model import RouterQos

TRANSIT = "transit"


def routes(topology: Topology, configs: Mapping[str, RouterQos], slas: Iterable[tuple[Sla, Sls]]) -> list[Route]:
    """One Route per active SLA whose own leaf the configs carry (an SLA not yet mapped has none)."""
    far_end = _far_ends(topology)
    inputs: dict[tuple[str, str], list[Leaf]] = defaultdict(list)     # (router, class) -> upstream leaves
    outputs: dict[tuple[str, str], list[Leaf]] = defaultdict(list)    # (router, class) -> its transit leaves
    own: dict[str, Leaf] = {}
    for router, config in configs.items():
        for interface in config.interfaces:
            if interface.scheduler is None:
                continue
            receiver = far_end.get(Endpoint(router, interface.name))
            for leaf in interface.scheduler.classes:
                service_class, _, owner = leaf.name.partition("/")
                if not owner:
                    continue  # the root and the class aggregates: their leaves count the traffic
                key: Leaf = (router, interface.name, leaf.name)
                if receiver is not None:
                    inputs[(receiver, service_class)].append(key)
                if owner == TRANSIT:
                    outputs[(router, service_class)].append(key)
                elif len(leaf.members) == 1 and leaf.members[0] == owner:
                    own[owner] = key
    found = []
    hops_by_key: dict[tuple[str, str], Hop] = {}   # one Hop per router and class, shared by its customers
    for sla, sls in slas:
        if sla.state not in ACTIVE_STATES or sla.name not in own:
            continue
        service_class = sls.service_class.value
        home = sla.terms.attachment.router
        hops = []
        for router in sorted({far_end[end] for end in _sending_ends(topology, sla) if end in far_end} - {home}):
            key = (router, service_class)
            if key not in hops_by_key:
                hops_by_key[key] = Hop(router, tuple(sorted(inputs.get(key, ()))), tuple(sorted(outputs.get(key, ()))))
            hops.append(hops_by_key[key])
        found.append(Route(sla.name, service_class, sls.bandwidth_bps, own[sla.name], tuple(hops)))
    return found


def _far_ends(topology: Topology) -> dict[Endpoint, str]:
    """Each end of a router-to-router link -> the router at its other end."""
    ends: dict[Endpoint, str] = {}
    for link in topology.links:
        if link.b is not None:
            ends[link.a] = link.b.router
            ends[link.b] = link.a.router
    return ends


def _sending_ends(topology: Topology, sla: Sla) -> list[Endpoint]:
    hops = topology.hops_from(sla.terms.attachment.router)
    return [topology.sending_end(topology.link(name), hops) for name in sla.path]
