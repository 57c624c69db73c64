"""NETCONF logins, administered by the domain manager: who may open an SSH session, acting for whom.

A login acts for one peer domain (or customer), or for the domain manager. Passwords are kept as
scrypt hashes (RFC 7914; parameters stored with each hash), public keys in OpenSSH format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from sqlalchemy import delete, select

from controller.domain.checks import require_domain_manager
from controller.domain.errors import Conflict, InvalidValue, NotFound
from controller.domain.principal import DOMAIN_MANAGER, Principal, Role
from controller.domain.sla import CustomerKind
from controller.service.layer import ServiceLayer
from controller.store.schema import CustomerRow, NetconfUserRow

MIN_PASSWORD = 12
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~50 ms and 16 MiB per check on this class of machine
USER_ADDED = "netconf.user-added"
USER_REMOVED = "netconf.user-removed"


@dataclass(frozen=True)
class NetconfUser:
    name: str
    customer: str | None
    customer_kind: CustomerKind | None
    has_password: bool
    public_keys: tuple[str, ...]

    @property
    def principal(self) -> Principal:
        if self.customer is None:
            return DOMAIN_MANAGER
        return Principal(Role.PEER if self.customer_kind == CustomerKind.PEER else Role.CUSTOMER, self.customer)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}${salt}${digest}".format(**_SCRYPT, salt=base64.b64encode(salt).decode(),
                                                        digest=base64.b64encode(digest).decode())


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(base64.b64decode(digest)))
    return hmac.compare_digest(got, base64.b64decode(digest))


class NetconfAccess:
    def __init__(self, service: ServiceLayer) -> None:
        self.service = service

    def add_user(self, principal: Principal, name: str, customer: str | None, password: str | None = None,
                 public_keys: tuple[str, ...] = ()) -> NetconfUser:
        require_domain_manager(principal, "manage NETCONF users")
        if not _NAME.match(name):
            raise InvalidValue(f"NETCONF user name {name!r} must start with a letter and have at most 64 letters, "
                               f"digits, '-', '_' or '.'", field="user", value=name)
        if password is None and not public_keys:
            raise InvalidValue("a NETCONF user needs a password or a public key", field="credentials")
        if password is not None and len(password) < MIN_PASSWORD:
            raise InvalidValue(f"the password must have at least {MIN_PASSWORD} characters", field="password",
                               bound=MIN_PASSWORD)
        keys = tuple(_openssh_key(key) for key in public_keys)
        stored = hash_password(password) if password is not None else None
        with self.service.transaction(principal) as tx:
            owner = None
            if customer is not None:
                owner = tx.session.scalars(select(CustomerRow).where(CustomerRow.name == customer)).first()
                if owner is None:
                    raise NotFound(f"no customer {customer!r}", field="customer", value=customer)
            if tx.session.get(NetconfUserRow, name) is not None:
                raise Conflict(f"NETCONF user {name!r} already exists", field="user", value=name)
            tx.session.add(NetconfUserRow(name=name, customer_id=owner.id if owner else None, password_hash=stored,
                                          public_keys=list(keys), created_at=tx.now))
            tx.emit(USER_ADDED, f"netconf-user:{name}", customer=customer, password=stored is not None,
                    public_keys=len(keys))
        return NetconfUser(name, customer, CustomerKind(owner.kind) if owner else None, stored is not None, keys)

    def remove_user(self, principal: Principal, name: str) -> None:
        require_domain_manager(principal, "manage NETCONF users")
        with self.service.transaction(principal) as tx:
            if tx.session.get(NetconfUserRow, name) is None:
                raise NotFound(f"no NETCONF user {name!r}", field="user", value=name)
            tx.session.execute(delete(NetconfUserRow).where(NetconfUserRow.name == name))
            tx.emit(USER_REMOVED, f"netconf-user:{name}")

    def users(self, principal: Principal) -> list[NetconfUser]:
        require_domain_manager(principal, "list NETCONF users")
        return [user for user, _ in self._rows()]

    def login(self, name: str) -> tuple[NetconfUser, str | None] | None:
        """A user and its password hash, for the SSH server only."""
        found = self._rows(name)
        return found[0] if found else None

    def _rows(self, name: str | None = None) -> list[tuple[NetconfUser, str | None]]:
        with self.service.database.read() as session:
            query = (select(NetconfUserRow, CustomerRow.name, CustomerRow.kind)
                     .outerjoin(CustomerRow, NetconfUserRow.customer_id == CustomerRow.id)
                     .order_by(NetconfUserRow.name))
            if name is not None:
                query = query.where(NetconfUserRow.name == name)
            return [(NetconfUser(row.name, customer, CustomerKind(kind) if kind else None,
                                 row.password_hash is not None, tuple(row.public_keys)), row.password_hash)
                    for row, customer, kind in session.execute(query)]


def _openssh_key(text: str) -> str:
    import asyncssh  # here, not at the top: every `csmm` command imports this module

    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidValue(f"not an SSH public key: {exc}", field="public_key") from None
    return key.export_public_key("openssh").decode().strip()
