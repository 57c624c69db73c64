"""The device-neutral QoS config the mapping function emits and the agents' drivers render.

Per router, per interface:
* `remarks` (customer access interfaces): on ingress, set the DSCP by source prefix to the class
  the customer's SLS selects now; any other source is remarked to best effort (untrusted marks
  are overwritten).
* `scheduler` (interfaces that send customer traffic toward the egress points): an HTB-like tree
  root -> class aggregates (gold, silver, bronze) -> leaves. Leaves are per customer for the
  customers attached to this router (classified by source prefix), and per class for transit
  traffic from other routers (classified by DSCP). Source prefixes are matched first, then DSCPs;
  anything else goes to `bronze/default`.

Only the upstream direction (customer toward the egress points) is scheduled: that is what an
SLS buys. The downstream direction is left to the routers' defaults.

Every leaf lists the SLAs whose traffic it carries, so device counters map back to customers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class QosClass:
    """One scheduler class. `rate` is guaranteed, `ceil` is the most it may borrow up to."""

    name: str                # "root", "gold", "gold/acme-hq", "silver/transit", "bronze/default"
    parent: str | None
    rate_bps: int
    ceil_bps: int
    priority: int            # 0 Gold (EF), 1 Silver (AF41), 2 Bronze (BE); lower is served first
    members: tuple[str, ...] = ()  # SLA names whose traffic this leaf carries (empty for inner classes)


@dataclass(frozen=True)
class PrefixMatch:
    """Traffic from `prefix` (SLA `sla`) goes to leaf `leaf`."""

    prefix: str
    sla: str
    leaf: str


@dataclass(frozen=True)
class DscpMatch:
    dscp: int
    leaf: str


@dataclass(frozen=True)
class Remark:
    """On ingress, traffic from `prefix` (SLA `sla`) is marked with `dscp`."""

    prefix: str
    sla: str
    dscp: int


@dataclass(frozen=True)
class Scheduler:
    capacity_bps: int
    classes: tuple[QosClass, ...]
    by_prefix: tuple[PrefixMatch, ...]
    by_dscp: tuple[DscpMatch, ...]
    default_leaf: str = "bronze/default"

    def leaf(self, name: str) -> QosClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)


@dataclass(frozen=True)
class InterfaceQos:
    name: str
    role: str
    remarks: tuple[Remark, ...] = ()
    default_dscp: int | None = None     # set on access interfaces: what unknown sources are marked with
    scheduler: Scheduler | None = None


@dataclass(frozen=True)
class RouterQos:
    router: str
    interfaces: tuple[InterfaceQos, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Identifies the config: equal configs have equal fingerprints. It is the agent
        protocol's fingerprint of the config's wire form (csmm_proto.configs), the one agents
        report back, so `csmm config show` and the agents' reports can be compared by eye."""
        from controller.southbound.wire import config_message  # the wire form depends on this module

        return config_message(self, version=0).fingerprint
