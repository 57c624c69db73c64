"""Typed refusals of the checking function and the service layer.

Every adapter maps these to its protocol's own error (SNMP error-status, NETCONF rpc-error,
HTTP status); each carries what a user needs to fix the input: the field, the bound and the value.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class CsmmError(Exception):
    """Base of every refusal. `code` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, bound: Any = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.bound = bound
        self.value = value
        self.subject: object = None  # in a batch, what the refusal concerns (an SLA id or name)

    def within(self, context: str) -> "CsmmError":
        """Prefix the message with where it happened ("SLA acme-1: ..."), for batch operations."""
        self.message = f"{context}: {self.message}"
        self.args = (self.message,)
        return self

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        for key in ("field", "bound", "value"):
            item = getattr(self, key)
            if item is not None:
                body[key] = item.isoformat() if isinstance(item, datetime) else item
        return body


class InvalidValue(CsmmError):
    """A value is malformed or names something that does not exist in the catalog or topology."""

    code = "invalid-value"


class OutOfBounds(CsmmError):
    """A value lies outside a bound set by the SLA, the offering or the access link."""

    code = "out-of-bounds"


class ClassNotAllowed(CsmmError):
    """The SLA does not allow the requested service class."""

    code = "class-not-allowed"


class TooSoon(CsmmError):
    """An SLS change came before the SLA's minimum interval between changes had passed."""

    code = "too-soon"

    def __init__(self, message: str, *, next_allowed: datetime, min_interval: timedelta, requested_at: datetime) -> None:
        # field: when the change was asked for; bound: the earliest time allowed; value: the time asked.
        super().__init__(message, field="sls.changed_at", bound=next_allowed, value=requested_at)
        self.next_allowed = next_allowed
        self.min_interval = min_interval


class CapacityExceeded(CsmmError):
    """Admission control: a link's class share would be exceeded."""

    code = "capacity-exceeded"

    def __init__(self, message: str, *, link: str, share: str, bound: int, value: int) -> None:
        super().__init__(message, field=f"link[{link}].{share}", bound=bound, value=value)
        self.link = link
        self.share = share


class NotFound(CsmmError):
    """The object does not exist, or is not visible to the principal (the two look the same)."""

    code = "not-found"


class Forbidden(CsmmError):
    """The principal's role may not perform this operation at all."""

    code = "forbidden"


class Conflict(CsmmError):
    """The request contradicts the current state (version mismatch, lifecycle, duplicate)."""

    code = "conflict"
