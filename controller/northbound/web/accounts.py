"""People's logins to the web portal: Argon2id passwords, sessions, and login rate limiting.

* Passwords are hashed with Argon2id (RFC 9106; argon2-cffi's defaults: 64 MiB, 3 passes), with
  the parameters stored in each hash, so raising them later rehashes at the next login.
* A session is a random 32-byte token in a cookie; only its SHA-256 is stored, with a CSRF token
  for the session's forms, an idle expiry (30 minutes) and an absolute one (12 hours).
* Failed logins are counted per (login name, client address): after 5 within 15 minutes that pair
  is refused until the oldest of them is 15 minutes old, whatever the password. Unknown names are
  hashed against a dummy hash, so a name's existence does not show in the answer or its timing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from controller.domain.checks import require_domain_manager
from controller.domain.errors import Conflict, InvalidValue, NotFound
from controller.domain.principal import Principal
from controller.northbound.web.tokens import owner_id, owner_principal
from controller.service.layer import ServiceLayer, utc_now
from controller.store.schema import CustomerRow, WebSessionRow, WebUserRow

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
FAILURES_ALLOWED = 5
FAILURE_WINDOW_S = 15 * 60.0
MAX_TRACKED = 100_000          # (name, address) pairs with recent failures kept in memory
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash that no password matches, verified for unknown names; made at the first login, not
    at import (an Argon2 hash takes ~0.25 s, and every `csmm` command imports this module)."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class WebUser:
    name: str
    customer: str | None     # None: the domain manager


@dataclass(frozen=True)
class WebSession:
    user: str
    principal: Principal
    csrf_token: str
    expires_at: datetime


class LoginThrottled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class LoginThrottle:
    """Failed logins per (name, address) in a sliding window, in the controller's memory (a
    restart forgets them; the Argon2 cost still bounds guessing to a few per second per core)."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S) -> None:
        self.allowed, self.window_s = allowed, window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, name: str, address: str) -> None:
        """Raise LoginThrottled while the pair has used up its failures."""
        with self._lock:
            failures = self._recent(name, address)
            if len(failures) >= self.allowed:
                raise LoginThrottled(max(1, int(failures[0] + self.window_s - time.monotonic()) + 1))

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            if len(self._failures) >= MAX_TRACKED:
                self._forget_expired()
            while len(self._failures) >= MAX_TRACKED:     # still full: the pair failing longest ago goes
                del self._failures[next(iter(self._failures))]
            self._failures.setdefault(_key(name, address), deque()).append(time.monotonic())

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop(_key(name, address), None)

    def _recent(self, name: str, address: str) -> deque[float]:
        failures = self._failures.get(_key(name, address), deque())
        while failures and failures[0] <= time.monotonic() - self.window_s:
            failures.popleft()
        return failures

    def _forget_expired(self) -> None:
        """Drop pairs with no failure in the window, so names sprayed at the form cannot grow
        the table without bound."""
        cutoff = time.monotonic() - self.window_s
        for key in [k for k, failures in self._failures.items() if not failures or failures[-1] <= cutoff]:
            del self._failures[key]


def _key(name: str, address: str) -> tuple[str, str]:
    """A login name is at most 64 characters: a longer one is counted by its first 65, so a
    sprayed name costs the table no more than a real one."""
    return name[:65].lower(), address


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebAccounts:
    def __init__(self, service: ServiceLayer, throttle: LoginThrottle | None = None) -> None:
        self.service = service
        self.throttle = throttle or LoginThrottle()

    # ------------------------------------------------------------------ logins (domain manager)

    def add(self, principal: Principal, name: str, password: str, customer: str | None) -> None:
        require_domain_manager(principal, "manage web logins")
        if not _NAME.match(name):
            raise InvalidValue(f"login name {name!r} must start with a letter and have at most 64 letters, digits, "
                               "'-', '_', '.' or '@'", field="name", value=name)
        if len(password) < MIN_PASSWORD:
            raise InvalidValue(f"the password must have at least {MIN_PASSWORD} characters", field="password",
                               bound=MIN_PASSWORD, value=len(password))
        password_hash = _hasher.hash(password)
        with self.service.database.write() as session:
            if session.get(WebUserRow, name) is not None:
                raise Conflict(f"web login {name!r} already exists", field="name", value=name)
            customer_id = owner_id(session, customer)
            session.add(WebUserRow(name=name, customer_id=customer_id, password_hash=password_hash,
                                   created_at=utc_now()))

    def remove(self, principal: Principal, name: str) -> None:
        """Remove a login and end its sessions at once."""
        require_domain_manager(principal, "manage web logins")
        with self.service.database.write() as session:
            row = session.get(WebUserRow, name)
            if row is None:
                raise NotFound(f"web login {name!r} does not exist", field="name", value=name)
            session.execute(delete(WebSessionRow).where(WebSessionRow.user == name))
            session.delete(row)

    def list(self, principal: Principal) -> list[WebUser]:
        require_domain_manager(principal, "list web logins")
        query = (select(WebUserRow.name, CustomerRow.name)
                 .outerjoin(CustomerRow, CustomerRow.id == WebUserRow.customer_id).order_by(WebUserRow.name))
        with self.service.database.read() as session:
            return [WebUser(name, customer) for name, customer in session.execute(query)]

    # ------------------------------------------------------------------ logging in and out

    def log_in(self, name: str, password: str, address: str) -> str | None:
        """A new session's cookie token, or None for a wrong name or password.
        Raises LoginThrottled while this name and address have failed too often."""
        self.throttle.check(name, address)
        with self.service.database.read() as session:
            row = session.get(WebUserRow, name)
            stored = row.password_hash if row is not None else _dummy_hash()
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            row = None
        if row is None:
            self.throttle.failed(name, address)
            return None
        self.throttle.succeeded(name, address)
        token, now = secrets.token_urlsafe(32), utc_now()
        with self.service.database.write() as session:
            if _hasher.check_needs_rehash(stored):
                session.get(WebUserRow, name).password_hash = _hasher.hash(password)  # type: ignore[union-attr]
            session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            session.add(WebSessionRow(token_hash=_digest(token), user=name, csrf_token=secrets.token_urlsafe(32),
                                      created_at=now, last_seen_at=now, expires_at=now + LIFETIME))
        return token

    def session(self, token: str) -> WebSession | None:
        """The live session of a cookie token (sliding its idle expiry), or None."""
        query = (select(WebSessionRow, WebUserRow.customer_id, CustomerRow.name, CustomerRow.kind)
                 .join(WebUserRow, WebUserRow.name == WebSessionRow.user)
                 .outerjoin(CustomerRow, CustomerRow.id == WebUserRow.customer_id)
                 .where(WebSessionRow.token_hash == _digest(token)))
        now = utc_now()
        with self.service.database.read() as session:
            found = session.execute(query).first()
        if found is None:
            return None
        row, customer_id, customer, kind = found
        if now >= row.expires_at or now >= row.last_seen_at + IDLE:
            self.log_out(token)
            return None
        if now - row.last_seen_at > timedelta(minutes=1):   # one write a minute per session, not one per page
            with self.service.database.write() as session:
                live = session.get(WebSessionRow, row.token_hash)
                if live is not None:
                    live.last_seen_at = now
        return WebSession(row.user, owner_principal(customer_id, customer, kind), row.csrf_token, row.expires_at)

    def log_out(self, token: str) -> None:
        with self.service.database.write() as session:
            session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == _digest(token)))
