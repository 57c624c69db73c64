"""Bearer tokens of the REST API: who a request acts for.

A token is 32 random bytes (URL-safe text), shown once when made; only its SHA-256 is stored, so a
copy of the database does not give anyone access. Looking a token up is one indexed read by hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.domain.checks import require_domain_manager
from controller.domain.errors import Conflict, InvalidValue, NotFound
from controller.domain.principal import DOMAIN_MANAGER, Principal, Role
from controller.domain.sla import CustomerKind
from controller.service.layer import ServiceLayer, utc_now
from controller.store.schema import ApiTokenRow, CustomerRow

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ApiToken:
    name: str
    customer: str | None     # None: the domain manager's


def owner_id(session: Session, customer: str | None) -> int | None:
    """The id of the customer a credential acts for (None: the domain manager's credential)."""
    if customer is None:
        return None
    found = session.scalar(select(CustomerRow.id).where(CustomerRow.name == customer))
    if found is None:
        raise NotFound(f"customer {customer!r} does not exist", field="customer", value=customer)
    return found


def owner_principal(customer_id: int | None, customer: str | None, kind: str | None) -> Principal:
    """Who a credential (token or web login) acts for, from its customer_id joined to customers."""
    if customer_id is None:
        return DOMAIN_MANAGER
    if customer is None:
        raise LookupError(f"credential of customer id {customer_id}, which does not exist")
    return Principal(Role.PEER if kind == CustomerKind.PEER.value else Role.CUSTOMER, customer)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokens:
    def __init__(self, service: ServiceLayer) -> None:
        self.service = service

    def add(self, principal: Principal, name: str, customer: str | None) -> str:
        """Make a token acting for `customer` (None: the domain manager); returns it, once."""
        require_domain_manager(principal, "manage API tokens")
        if not _NAME.match(name):
            raise InvalidValue(f"token name {name!r} must start with a letter and have at most 64 letters, digits, "
                               "'-', '_' or '.'", field="name", value=name)
        token = secrets.token_urlsafe(32)
        with self.service.database.write() as session:
            if session.get(ApiTokenRow, name) is not None:
                raise Conflict(f"API token {name!r} already exists", field="name", value=name)
            customer_id = owner_id(session, customer)
            session.add(ApiTokenRow(name=name, customer_id=customer_id, token_hash=_digest(token),
                                    created_at=utc_now()))
        return token

    def remove(self, principal: Principal, name: str) -> None:
        require_domain_manager(principal, "manage API tokens")
        with self.service.database.write() as session:
            row = session.get(ApiTokenRow, name)
            if row is None:
                raise NotFound(f"API token {name!r} does not exist", field="name", value=name)
            session.delete(row)

    def list(self, principal: Principal) -> list[ApiToken]:
        require_domain_manager(principal, "list API tokens")
        query = (select(ApiTokenRow.name, CustomerRow.name)
                 .outerjoin(CustomerRow, CustomerRow.id == ApiTokenRow.customer_id).order_by(ApiTokenRow.name))
        with self.service.database.read() as session:
            return [ApiToken(name, customer) for name, customer in session.execute(query)]

    def principal(self, token: str) -> Principal | None:
        """Who a token acts for; None for an unknown token."""
        query = (select(ApiTokenRow.customer_id, CustomerRow.name, CustomerRow.kind)
                 .outerjoin(CustomerRow, CustomerRow.id == ApiTokenRow.customer_id)
                 .where(ApiTokenRow.token_hash == _digest(token)))
        with self.service.database.read() as session:
            found = session.execute(query).first()
        if found is None:
            return None
        return owner_principal(*found)
