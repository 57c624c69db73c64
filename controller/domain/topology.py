"""The provider's network as the CSMM sees it: routers, interfaces, links, egress points.

A link joins two routers' core interfaces; an egress point is a link with one end outside the
domain (toward the internet or a peer). Every link has class shares that bound the guaranteed
traffic on it (defaults: Gold <= 30 % of capacity, Gold+Silver <= 80 %).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from controller.domain.errors import InvalidValue, NotFound


class InterfaceRole(StrEnum):
    ACCESS = "access"     # customer attachment (RFC 2475 edge)
    CORE = "core"         # inside the domain
    PEERING = "peering"   # toward an egress point (internet, peer domain)


@dataclass(frozen=True)
class ClassShares:
    """Fractions of a link's capacity that guaranteed classes may take."""

    gold: Decimal = Decimal("0.30")
    gold_silver: Decimal = Decimal("0.80")

    def __post_init__(self) -> None:
        if not (0 <= self.gold <= self.gold_silver <= 1):
            raise InvalidValue(f"class shares need 0 <= gold ({self.gold}) <= gold_silver ({self.gold_silver}) <= 1",
                               field="class_shares", value=f"{self.gold}/{self.gold_silver}")


@dataclass(frozen=True)
class Interface:
    router: str
    name: str
    capacity_bps: int
    role: InterfaceRole


@dataclass(frozen=True)
class Router:
    id: str
    mgmt_address: str
    interfaces: tuple[Interface, ...] = ()

    def __post_init__(self) -> None:
        # Canonical order, so two descriptions of the same router compare equal.
        object.__setattr__(self, "interfaces", tuple(sorted(self.interfaces, key=lambda i: i.name)))

    def interface(self, name: str) -> Interface:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        raise NotFound(f"router {self.id} has no interface {name!r}", field="interface", value=name)


@dataclass(frozen=True)
class Endpoint:
    router: str
    interface: str

    def __str__(self) -> str:
        return f"{self.router}:{self.interface}"


@dataclass(frozen=True)
class Link:
    """A router-to-router link (b set) or an egress point (b is None: the far end is outside)."""

    name: str
    a: Endpoint
    b: Endpoint | None
    capacity_bps: int
    shares: ClassShares = field(default_factory=ClassShares)

    @property
    def is_egress(self) -> bool:
        return self.b is None

    def gold_limit(self, overbooking: Decimal = Decimal(1)) -> int:
        return int(self.capacity_bps * self.shares.gold * overbooking)

    def gold_silver_limit(self, overbooking: Decimal = Decimal(1)) -> int:
        return int(self.capacity_bps * self.shares.gold_silver * overbooking)


@dataclass(frozen=True)
class Topology:
    routers: tuple[Router, ...] = ()
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        # Canonical order, so a topology read from a file equals the same one read from the database.
        object.__setattr__(self, "routers", tuple(sorted(self.routers, key=lambda r: r.id)))
        object.__setattr__(self, "links", tuple(sorted(self.links, key=lambda link: link.name)))

    def router(self, router_id: str) -> Router:
        for router in self.routers:
            if router.id == router_id:
                return router
        raise NotFound(f"no router {router_id!r} in the topology", field="router", value=router_id)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise NotFound(f"no link {name!r} in the topology", field="link", value=name)

    def interface(self, endpoint: Endpoint) -> Interface:
        return self.router(endpoint.router).interface(endpoint.interface)

    def validate(self) -> None:
        """Refuse dangling references, reused interfaces and wrong roles."""
        ids = [r.id for r in self.routers]
        if len(set(ids)) != len(ids):
            raise InvalidValue("two routers share an id", field="routers", value=sorted(ids))
        names = [link.name for link in self.links]
        if len(set(names)) != len(names):
            raise InvalidValue("two links share a name", field="links", value=sorted(names))
        used: dict[Endpoint, str] = {}
        for link in self.links:
            for end in (link.a, link.b):
                if end is None:
                    continue
                iface = self.interface(end)
                wanted = InterfaceRole.PEERING if link.is_egress else InterfaceRole.CORE
                if link.is_egress and iface.role != InterfaceRole.PEERING:
                    raise InvalidValue(f"egress point {link.name} uses {end}, whose role is {iface.role}, not peering",
                                       field=f"links[{link.name}]", value=str(end))
                if not link.is_egress and iface.role == InterfaceRole.ACCESS:
                    raise InvalidValue(f"link {link.name} uses access interface {end}; links need {wanted} interfaces",
                                       field=f"links[{link.name}]", value=str(end))
                if end in used:
                    raise InvalidValue(f"interface {end} is used by links {used[end]} and {link.name}",
                                       field=f"links[{link.name}]", value=str(end))
                used[end] = link.name

    def egress_links(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.is_egress)

    def path_to_egress(self, router_id: str) -> tuple[str, ...]:
        """Names of the links a customer attached at `router_id` may load: the shortest path (hop
        count, ties broken by link name so the answer is deterministic) to every egress point,
        and the egress links themselves. Traffic may leave by any egress, so all are reserved.
        """
        self.router(router_id)
        previous = self._shortest_path_tree(router_id)
        on_path: set[str] = set()
        for egress in self.egress_links():
            node = egress.a.router
            if node not in previous:
                raise InvalidValue(f"router {router_id} has no path to egress point {egress.name}",
                                   field="attachment.router", value=router_id)
            on_path.add(egress.name)
            while previous[node] is not None:
                hop_link, node = previous[node]  # type: ignore[misc]
                on_path.add(hop_link)
        return tuple(sorted(on_path))

    def hops_from(self, root: str) -> dict[str, int]:
        """Hop count from `root` to every router it reaches."""
        tree = self._shortest_path_tree(root)
        hops: dict[str, int] = {}
        for node in tree:
            count, walk = 0, node
            while tree[walk] is not None:
                walk = tree[walk][1]  # type: ignore[index]
                count += 1
            hops[node] = count
        return hops

    def sending_end(self, link: Link, hops: dict[str, int]) -> Endpoint:
        """The end of `link` that transmits traffic travelling away from the router `hops` was
        computed for (toward the egress points): the end nearer to it. An egress point sends
        from its only end."""
        if link.b is None:
            return link.a
        return link.a if hops.get(link.a.router, 1 << 30) <= hops.get(link.b.router, 1 << 30) else link.b

    def _shortest_path_tree(self, root: str) -> dict[str, tuple[str, str] | None]:
        neighbours: dict[str, list[tuple[str, str]]] = {}
        for link in sorted(self.links, key=lambda item: item.name):
            if link.b is None:
                continue
            neighbours.setdefault(link.a.router, []).append((link.name, link.b.router))
            neighbours.setdefault(link.b.router, []).append((link.name, link.a.router))
        previous: dict[str, tuple[str, str] | None] = {root: None}
        queue = deque([root])
        while queue:
            node = queue.popleft()
            for link_name, other in neighbours.get(node, []):
                if other not in previous:
                    previous[other] = (link_name, node)
                    queue.append(other)
        return previous
