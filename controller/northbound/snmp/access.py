"""SNMP access, administered by the domain manager: SNMPv3 users, notification targets, engine state.

A user belongs to a customer (or peer domain) and acts as it, or to the domain manager. Its
passphrases are stretched into RFC 3414 master keys at once and only those keys are stored:
a passphrase is never stored, logged, or shown again, and no interface reads the keys back.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from pysnmp.entity import config
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.domain.checks import require_domain_manager
from controller.domain.errors import Conflict, InvalidValue, NotFound
from controller.domain.principal import DOMAIN_MANAGER, Principal, Role
from controller.domain.sla import CustomerKind
from controller.service.layer import ServiceLayer
from controller.store.schema import CustomerRow, SnmpEngineRow, SnmpTargetRow, SnmpUserRow

# Authentication: HMAC-SHA-1 (RFC 3414) and HMAC-SHA-2 (RFC 7860); privacy: AES-128 CFB (RFC 3826),
# the one AES that every manager keys the same way (AES-192/256 differ between vendors).
AUTH_PROTOCOLS = {
    "SHA": config.USM_AUTH_HMAC96_SHA,
    "SHA-224": config.USM_AUTH_HMAC128_SHA224,
    "SHA-256": config.USM_AUTH_HMAC192_SHA256,
    "SHA-384": config.USM_AUTH_HMAC256_SHA384,
    "SHA-512": config.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {"AES": config.USM_PRIV_CFB128_AES}
DEFAULT_AUTH = "SHA-256"
DEFAULT_PRIV = "AES"
MIN_PASSPHRASE = 8  # RFC 3414 11.2: shorter passphrases are refused

# RFC 3411 engine ID: enterprise 32473 with the "octets" format, then random octets.
ENGINE_ID_PREFIX = bytes.fromhex("80007ed905")

_USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,31}$")
USER_ADDED = "snmp.user-added"
USER_REMOVED = "snmp.user-removed"
TARGET_ADDED = "snmp.target-added"
TARGET_REMOVED = "snmp.target-removed"


@dataclass(frozen=True)
class SnmpUser:
    name: str
    customer: str | None  # None: the domain manager's user
    customer_kind: CustomerKind | None
    auth_protocol: str
    priv_protocol: str

    @property
    def principal(self) -> Principal:
        if self.customer is None:
            return DOMAIN_MANAGER
        return Principal(Role.PEER if self.customer_kind == CustomerKind.PEER else Role.CUSTOMER, self.customer)


@dataclass(frozen=True)
class UserKeys:
    """What the agent needs to serve a user: its master keys (never shown through any interface)."""

    user: SnmpUser
    auth_key: bytes
    priv_key: bytes

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"UserKeys({self.user.name!r})"


@dataclass(frozen=True)
class SnmpTarget:
    name: str
    customer: str | None  # None: receives every SLA's notifications
    address: str
    port: int
    user: str


def master_keys(auth_protocol: str, priv_protocol: str, auth_passphrase: str,
                priv_passphrase: str) -> tuple[bytes, bytes]:
    """RFC 3414 A.2 (and RFC 7860 for SHA-2): the passphrases stretched into master keys Ku."""
    for label, passphrase in (("auth", auth_passphrase), ("priv", priv_passphrase)):
        if len(passphrase) < MIN_PASSPHRASE:
            raise InvalidValue(f"the {label} passphrase must have at least {MIN_PASSPHRASE} characters",
                               field=f"{label}_passphrase", bound=MIN_PASSPHRASE)
    auth = AUTH_PROTOCOLS[auth_protocol]
    priv = PRIV_PROTOCOLS[priv_protocol]
    auth_key = config.AUTH_SERVICES[auth].hash_passphrase(auth_passphrase.encode())
    priv_key = config.PRIV_SERVICES[priv].hash_passphrase(auth, priv_passphrase.encode())
    return bytes(auth_key), bytes(priv_key)


class SnmpAccess:
    def __init__(self, service: ServiceLayer) -> None:
        self.service = service

    # ------------------------------------------------------------------ users

    def add_user(self, principal: Principal, name: str, customer: str | None, auth_passphrase: str,
                 priv_passphrase: str, auth_protocol: str = DEFAULT_AUTH,
                 priv_protocol: str = DEFAULT_PRIV) -> SnmpUser:
        """Create an SNMPv3 user acting for `customer` (None: for the domain manager)."""
        require_domain_manager(principal, "manage SNMP users")
        if not _USER_NAME.match(name):
            raise InvalidValue(f"SNMP user name {name!r} must start with a letter and have at most 32 letters, "
                               f"digits, '-', '_' or '.'", field="user", value=name)
        if auth_protocol not in AUTH_PROTOCOLS:
            raise InvalidValue(f"auth protocol must be one of {', '.join(AUTH_PROTOCOLS)}", field="auth_protocol",
                               bound=list(AUTH_PROTOCOLS), value=auth_protocol)
        if priv_protocol not in PRIV_PROTOCOLS:
            raise InvalidValue(f"privacy protocol must be one of {', '.join(PRIV_PROTOCOLS)}", field="priv_protocol",
                               bound=list(PRIV_PROTOCOLS), value=priv_protocol)
        auth_key, priv_key = master_keys(auth_protocol, priv_protocol, auth_passphrase, priv_passphrase)
        with self.service.transaction(principal) as tx:
            owner = self._customer(tx.session, customer)
            if tx.session.get(SnmpUserRow, name) is not None:
                raise Conflict(f"SNMP user {name!r} already exists", field="user", value=name)
            tx.session.add(SnmpUserRow(name=name, customer_id=owner.id if owner else None, auth_protocol=auth_protocol,
                                       priv_protocol=priv_protocol, auth_key=auth_key.hex(), priv_key=priv_key.hex(),
                                       created_at=tx.now))
            tx.emit(USER_ADDED, f"snmp-user:{name}", customer=customer, auth=auth_protocol, priv=priv_protocol)
        return SnmpUser(name, customer, CustomerKind(owner.kind) if owner else None, auth_protocol, priv_protocol)

    def remove_user(self, principal: Principal, name: str) -> None:
        require_domain_manager(principal, "manage SNMP users")
        with self.service.transaction(principal) as tx:
            if tx.session.get(SnmpUserRow, name) is None:
                raise NotFound(f"no SNMP user {name!r}", field="user", value=name)
            used = tx.session.scalars(select(SnmpTargetRow.name).where(SnmpTargetRow.user == name)).all()
            if used:
                raise Conflict(f"SNMP user {name!r} sends to target(s) {', '.join(used)}; remove them first",
                               field="user", value=name)
            tx.session.execute(delete(SnmpUserRow).where(SnmpUserRow.name == name))
            tx.emit(USER_REMOVED, f"snmp-user:{name}")

    def users(self, principal: Principal) -> list[SnmpUser]:
        require_domain_manager(principal, "list SNMP users")
        return [keys.user for keys in self.user_keys()]

    def user_keys(self) -> list[UserKeys]:
        """Every user with its master keys: for the agent only, never for an interface."""
        with self.service.database.read() as session:
            rows = session.execute(select(SnmpUserRow, CustomerRow.name, CustomerRow.kind)
                                   .outerjoin(CustomerRow, SnmpUserRow.customer_id == CustomerRow.id)
                                   .order_by(SnmpUserRow.name))
            return [UserKeys(SnmpUser(row.name, customer, CustomerKind(kind) if kind else None, row.auth_protocol,
                                      row.priv_protocol), bytes.fromhex(row.auth_key), bytes.fromhex(row.priv_key))
                    for row, customer, kind in rows]

    # ------------------------------------------------------------------ notification targets

    def add_target(self, principal: Principal, name: str, customer: str | None, address: str, port: int,
                   user: str) -> SnmpTarget:
        """A trap receiver for `customer`'s SLAs (None: every SLA), sent as `user` (authPriv); the
        user must act for the same customer, so no receiver learns of another customer's SLAs."""
        require_domain_manager(principal, "manage SNMP notification targets")
        if not _USER_NAME.match(name):
            raise InvalidValue(f"target name {name!r} must start with a letter and have at most 32 letters, "
                               f"digits, '-', '_' or '.'", field="target", value=name)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidValue(f"target address {address!r} is not an IP address", field="address",
                               value=address) from None
        if not 0 < port < 65536:
            raise InvalidValue(f"target port {port} is outside 1..65535", field="port", bound="1..65535", value=port)
        with self.service.transaction(principal) as tx:
            owner = self._customer(tx.session, customer)
            user_row = tx.session.get(SnmpUserRow, user)
            if user_row is None:
                raise NotFound(f"no SNMP user {user!r}", field="user", value=user)
            if user_row.customer_id != (owner.id if owner else None):
                raise Conflict(f"SNMP user {user!r} does not act for {customer or 'the domain manager'}",
                               field="user", value=user)
            if tx.session.get(SnmpTargetRow, name) is not None:
                raise Conflict(f"SNMP target {name!r} already exists", field="target", value=name)
            tx.session.add(SnmpTargetRow(name=name, customer_id=owner.id if owner else None, address=address,
                                         port=port, user=user, created_at=tx.now))
            tx.emit(TARGET_ADDED, f"snmp-target:{name}", customer=customer, address=address, port=port, user=user)
        return SnmpTarget(name, customer, address, port, user)

    def remove_target(self, principal: Principal, name: str) -> None:
        require_domain_manager(principal, "manage SNMP notification targets")
        with self.service.transaction(principal) as tx:
            if tx.session.get(SnmpTargetRow, name) is None:
                raise NotFound(f"no SNMP target {name!r}", field="target", value=name)
            tx.session.execute(delete(SnmpTargetRow).where(SnmpTargetRow.name == name))
            tx.emit(TARGET_REMOVED, f"snmp-target:{name}")

    def targets(self, principal: Principal | None = None) -> list[SnmpTarget]:
        if principal is not None:
            require_domain_manager(principal, "list SNMP notification targets")
        with self.service.database.read() as session:
            rows = session.execute(select(SnmpTargetRow, CustomerRow.name)
                                   .outerjoin(CustomerRow, SnmpTargetRow.customer_id == CustomerRow.id)
                                   .order_by(SnmpTargetRow.name))
            return [SnmpTarget(row.name, customer, row.address, row.port, row.user) for row, customer in rows]

    # ------------------------------------------------------------------ engine

    def start_engine(self, engine_id: bytes | None = None) -> tuple[bytes, int]:
        """The engine ID (made once, or the one given) and this start's snmpEngineBoots, raised by
        one and stored before the agent answers anything."""
        with self.service.database.write() as session:
            row = session.get(SnmpEngineRow, 1, with_for_update=True)
            if row is None:
                row = SnmpEngineRow(id=1, engine_id=(engine_id or ENGINE_ID_PREFIX + os.urandom(8)).hex(), boots=0)
                session.add(row)
            elif engine_id is not None and engine_id.hex() != row.engine_id:
                # A new engine ID starts a new boot count (RFC 3414 2.2.2).
                row.engine_id, row.boots = engine_id.hex(), 0
            row.boots = min(row.boots + 1, 2147483647)
            return bytes.fromhex(row.engine_id), row.boots

    def engine(self, principal: Principal) -> tuple[bytes, int] | None:
        """The stored engine ID and the boots of the newest start, if the agent ever started."""
        require_domain_manager(principal, "read the SNMP engine")
        with self.service.database.read() as session:
            row = session.get(SnmpEngineRow, 1)
            return (bytes.fromhex(row.engine_id), row.boots) if row else None

    @staticmethod
    def _customer(session: Session, name: str | None) -> CustomerRow | None:
        if name is None:
            return None
        row = session.scalars(select(CustomerRow).where(CustomerRow.name == name)).first()
        if row is None:
            raise NotFound(f"no customer {name!r}", field="customer", value=name)
        return row
