"""What the agent wants in the kernel, per interface, in the kernel's own terms.

The desired config from the controller names classes ("gold/acme-hq"); the kernel knows HTB
class ids (1:5). A `KernelPlan` is the desired config after that translation: the HTB classes by
minor id, and the nftables maps that remark DSCP on ingress and pick the HTB leaf on egress
(`meta priority set` 1:minor). The drivers compare two plans (what should be, what the kernel
has) and change only the difference; the same types describe both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HTB_MAJOR = 1  # every scheduled interface has one HTB root qdisc, handle 1:


@dataclass(frozen=True)
class HtbClass:
    """One HTB class 1:minor. `parent` is a minor id, 0 meaning the root qdisc itself."""

    minor: int
    parent: int
    rate_bps: int
    ceil_bps: int
    prio: int
    quantum: int


@dataclass
class HtbPlan:
    """The HTB tree on one device: root qdisc 1: with `default_minor`, and its classes by minor."""

    default_minor: int
    classes: dict[int, HtbClass] = field(default_factory=dict)
    leaf_qdisc: str | None = None      # e.g. "fq_codel" where the kernel has it; None: the kernel's default


@dataclass
class NftPlan:
    """Classification and marking on one device, rendered into nftables maps.

    * `remarks`: on ingress from this device, source prefix -> DSCP; every other source gets
      `default_dscp` (None: this device does not remark at all).
    * `prefix_leaf` / `dscp_leaf`: on egress through this device, source prefix -> HTB minor, else
      DSCP -> HTB minor, else the HTB default class.
    """

    remarks: dict[str, int] = field(default_factory=dict)
    default_dscp: int | None = None
    prefix_leaf: dict[str, int] = field(default_factory=dict)
    dscp_leaf: dict[int, int] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.remarks or self.prefix_leaf or self.dscp_leaf) and self.default_dscp is None


@dataclass
class InterfacePlan:
    device: str
    htb: HtbPlan | None = None
    nft: NftPlan = field(default_factory=NftPlan)


@dataclass
class KernelPlan:
    interfaces: dict[str, InterfacePlan] = field(default_factory=dict)   # by device name

    def nft(self) -> dict[str, NftPlan]:
        return {name: iface.nft for name, iface in self.interfaces.items() if not iface.nft.is_empty()}

    def htb(self) -> dict[str, HtbPlan]:
        return {name: iface.htb for name, iface in self.interfaces.items() if iface.htb is not None}
