"""Who is asking: the domain manager, a customer, or a peer domain (a customer of its own kind)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    DOMAIN_MANAGER = "domain-manager"
    CUSTOMER = "customer"
    PEER = "peer"


class Channel(StrEnum):
    """The interface a change came through; recorded with every SLS change."""

    CLI = "cli"
    PROVISIONING = "provisioning"
    SNMP = "snmp"
    NETCONF = "netconf"
    WEB = "web"
    REST = "rest"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Principal:
    role: Role
    customer: str | None = None  # the customer's (or peer domain's) name; None for the domain manager

    def __post_init__(self) -> None:
        if (self.role == Role.DOMAIN_MANAGER) != (self.customer is None):
            raise ValueError("a customer or peer principal names its customer; the domain manager names none")

    @property
    def is_domain_manager(self) -> bool:
        return self.role == Role.DOMAIN_MANAGER

    def owns(self, customer_name: str) -> bool:
        """May this principal see and act on objects of `customer_name`?"""
        return self.is_domain_manager or self.customer == customer_name

    def __str__(self) -> str:
        return self.role.value if self.customer is None else f"{self.role.value}:{self.customer}"

    @classmethod
    def parse(cls, text: str) -> "Principal":
        """Parse "domain-manager", "customer:acme" or "peer:as64500"."""
        role, _, name = text.partition(":")
        try:
            parsed = Role(role)
        except ValueError:
            raise ValueError(f"principal must be domain-manager, customer:NAME or peer:NAME, not {text!r}") from None
        return cls(parsed, name or None)


DOMAIN_MANAGER = Principal(Role.DOMAIN_MANAGER)
