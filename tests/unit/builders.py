"""Small domain values for the pure tests: a lab-like topology and SLAs on it."""

from __future__ import annotations

from datetime import datetime, timezone

from controller.domain.catalog import ClassBounds, ServiceClassName, load_catalog
from controller.domain.principal import Channel
from controller.domain.sla import Attachment, CustomerKind, LifecycleState, Sla, SlaTerms
from controller.domain.sls import Sls
from controller.domain.topology import Endpoint, Interface, InterfaceRole, Link, Router, Topology

M = 1_000_000
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
GOLD, SILVER, BRONZE = ServiceClassName.GOLD, ServiceClassName.SILVER, ServiceClassName.BRONZE


def lab_topology(core_capacity: int = 40 * M) -> Topology:
    def router(name: str, *ifaces: tuple[str, InterfaceRole, int]) -> Router:
        return Router(name, f"198.18.0.{len(name)}", tuple(Interface(name, n, c, r) for n, r, c in ifaces))
    core, access, peering = InterfaceRole.CORE, InterfaceRole.ACCESS, InterfaceRole.PEERING
    return Topology(
        routers=(
            router("edge1", ("eth1", core, core_capacity), ("eth2", access, 100 * M), ("eth3", access, 100 * M)),
            router("edge2", ("eth1", core, core_capacity), ("eth2", access, 100 * M)),
            router("core", ("eth1", core, core_capacity), ("eth2", core, core_capacity), ("eth3", core, core_capacity)),
            router("egress", ("eth1", core, core_capacity), ("eth2", peering, 100 * M), ("eth3", peering, 100 * M)),
        ),
        links=(
            Link("edge1-core", Endpoint("edge1", "eth1"), Endpoint("core", "eth1"), core_capacity),
            Link("edge2-core", Endpoint("edge2", "eth1"), Endpoint("core", "eth2"), core_capacity),
            Link("core-egress", Endpoint("core", "eth3"), Endpoint("egress", "eth1"), core_capacity),
            Link("internet", Endpoint("egress", "eth2"), None, 100 * M),
        ),
    )


def business_terms(access_speed: int = 20 * M, router: str = "edge1", interface: str = "eth2",
                   prefixes: tuple[str, ...] = ("198.19.1.0/24",), **bounds: ClassBounds) -> SlaTerms:
    offering = load_catalog().offering("gsb-business")
    chosen = {GOLD: ClassBounds(min=M, max=4 * M), SILVER: ClassBounds(min=M, max=8 * M), BRONZE: ClassBounds(min=M, max=20 * M)}
    chosen.update({ServiceClassName(k): v for k, v in bounds.items()})
    return SlaTerms(offering="gsb-business", attachment=Attachment(router, interface, access_speed, prefixes),
                    bounds=chosen, tariff=offering.tariff, change_policy=offering.change_policy,
                    availability=offering.availability, valid_from=T0)


def sla(terms: SlaTerms | None = None, state: LifecycleState = LifecycleState.OPERATIONAL) -> Sla:
    return Sla(1, "acme-hq", "acme", CustomerKind.CUSTOMER, terms or business_terms(), state,
               ("core-egress", "edge1-core", "internet"))


def sls(service_class: ServiceClassName = SILVER, bandwidth: int = 5 * M, version: int = 1) -> Sls:
    return Sls(1, service_class, bandwidth, version, T0, "domain-manager", Channel.PROVISIONING)
