"""What the SNMP agent serves, per principal: the CSM-MIB's tables and a few allow-listed stock groups.

The agent never hands a request to pysnmp's stock MIB tree (PITFALLS.md: it serves pysnmp's own
USM secrets, and its VACM leaks rows on GETNEXT). Every GET, GETNEXT and SET is answered here,
from an in-memory copy of the SLAs, SLSs, counters and conformance (`MibData`), and every lookup
goes through the rows *this principal* may see: a customer's walk visits only its own rows, so it
costs the same with 10 or 10,000 customers, and another customer's row is exactly as absent as a
row that does not exist.

SETs are translated into one `ServiceLayer.change_sls` call: the same checks as every other
interface, all or nothing, with the RFC 3416 error status and the index of the varbind at fault.
"""

from __future__ import annotations

import bisect
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from pyasn1.type.base import Asn1Item
from pysnmp.proto import rfc1902, rfc1905

from controller.domain.catalog import ServiceClassName
from controller.domain.conformance import Conformance
from controller.domain.errors import ClassNotAllowed, CsmmError, InvalidValue, NotFound
from controller.domain.principal import Channel, Principal
from controller.domain.sla import LifecycleState, Sla
from controller.domain.sls import Sls

log = logging.getLogger(__name__)

OID = tuple[int, ...]
VarBind = tuple[OID, Any]

# --------------------------------------------------------------------------------------------- OIDs

CSM_MIB: OID = (1, 3, 6, 1, 4, 1, 32473)
CSM_SERVICE: OID = CSM_MIB + (1, 1)
SLA_ENTRY: OID = CSM_MIB + (1, 2, 1)
SLS_ENTRY: OID = CSM_MIB + (1, 3, 1)
STATS_ENTRY: OID = CSM_MIB + (1, 4, 1)
CONFORMANCE_ENTRY: OID = CSM_MIB + (1, 5, 1)
NOTIFICATIONS: OID = CSM_MIB + (0,)
SLA_VIOLATION: OID = NOTIFICATIONS + (1,)
SLA_CLEARED: OID = NOTIFICATIONS + (2,)
SLS_CHANGED: OID = NOTIFICATIONS + (3,)
NOTIFY_OBJECTS: OID = CSM_MIB + (1, 6)  # csmNotifyClass .1, csmNotifyMetric .2, Measured .3, Bound .4
METRIC_NUMBERS = {"throughput": 1, "loss": 2, "availability": 3, "outageDuration": 4, "delay": 5,
                  "delayVariation": 6}
SLS_CLASS, SLS_BANDWIDTH = 1, 2  # the two writable columns of csmSlsEntry
SLA_NAME, SLA_CUSTOMER = 2, 3

SYSTEM: OID = (1, 3, 6, 1, 2, 1, 1)
SNMP_GROUP: OID = (1, 3, 6, 1, 2, 1, 11)
SNMP_ENGINE: OID = (1, 3, 6, 1, 6, 3, 10, 2, 1)

CLASS_NUMBERS = {ServiceClassName.GOLD: 1, ServiceClassName.SILVER: 2, ServiceClassName.BRONZE: 3}
CLASS_BY_NUMBER = {number: name for name, number in CLASS_NUMBERS.items()}
STATE_NUMBERS = {LifecycleState.OFFERED: 1, LifecycleState.NEGOTIATED: 2, LifecycleState.IMPLEMENTING: 3,
                 LifecycleState.INSTALLED_TESTED: 4, LifecycleState.OPERATIONAL: 5, LifecycleState.DEINSTALLED: 6}

CONFORMANCE_STATES = {"unknown": 1, "conforming": 2, "violating": 3}  # csmConfState

UNSIGNED32_MAX = 4294967295
LOSS_PPM_MAX = 1_000_000       # csmConfLoss is Gauge32 (0..1000000)
HUNDREDTHS_MAX = 10_000        # CsmHundredthsOfPercent is 0..10000
NO_TIME = rfc1902.OctetString(b"\x00" * 8)  # DateAndTime '0000000000000000'H: "none" in CSM-MIB

_INTEGER_TAG = rfc1902.Integer32.tagSet
_UNSIGNED_TAG = rfc1902.Unsigned32.tagSet


# --------------------------------------------------------------------------------------------- data

@dataclass(frozen=True)
class SlaEntry:
    """One SLA as the MIB shows it: the contract, the SLS in effect and the counters per class."""

    sla: Sla
    sls: Sls
    next_change: datetime | None
    usage: dict[ServiceClassName, tuple[int, int, int]] = field(default_factory=dict)  # octets, packets, drops


class MibData:
    """The SLAs the agent serves, kept current by the agent from the service layer's events.

    Rows are looked up by SLA id; each customer's SLA ids are kept sorted, so a customer's
    GETNEXT is a binary search in its own (short) list. `conformance` holds the feedback part's
    latest conformance per SLA id, replaced as a whole when it is re-read; it is kept apart from
    the rows because it changes every few seconds and may be read before its SLA's row is."""

    def __init__(self, entries: Iterable[SlaEntry] = (), conformance: dict[int, Conformance] | None = None) -> None:
        self.rows: dict[int, SlaEntry] = {}
        self._by_customer: dict[str, list[int]] = {}
        self._all: list[int] = []
        self.conformance: dict[int, Conformance] = dict(conformance or {})
        for entry in entries:
            self.put(entry)

    def put(self, entry: SlaEntry) -> None:
        sla_id = entry.sla.id
        if sla_id not in self.rows:
            bisect.insort(self._all, sla_id)
            bisect.insort(self._by_customer.setdefault(entry.sla.customer, []), sla_id)
        self.rows[sla_id] = entry

    def reset(self, other: "MibData") -> None:
        """Take over another copy's rows in place (the tables keep their reference to this one)."""
        self.rows, self._by_customer, self._all = other.rows, other._by_customer, other._all
        self.conformance = other.conformance

    def set_conformance(self, conformance: dict[int, Conformance]) -> None:
        """Take over the latest conformance of every measured SLA (SLA id -> Conformance)."""
        self.conformance = conformance

    def remove(self, sla_id: int) -> None:
        entry = self.rows.pop(sla_id, None)
        if entry is not None:
            self._all.remove(sla_id)
            self._by_customer[entry.sla.customer].remove(sla_id)

    def set_usage(self, sla_id: int, service_class: ServiceClassName, counts: tuple[int, int, int]) -> None:
        entry = self.rows.get(sla_id)
        if entry is not None:
            self.rows[sla_id] = replace(entry, usage={**entry.usage, service_class: counts})

    def visible_ids(self, principal: Principal) -> list[int]:
        """The SLA ids this principal may see, sorted."""
        if principal.is_domain_manager:
            return self._all
        return self._by_customer.get(principal.customer or "", [])

    def visible(self, principal: Principal, sla_id: int) -> SlaEntry | None:
        entry = self.rows.get(sla_id)
        if entry is None or not principal.owns(entry.sla.customer):
            return None
        return entry


# --------------------------------------------------------------------------------------------- encoding

def date_and_time(moment: datetime | None) -> rfc1902.OctetString:
    """SNMPv2-TC DateAndTime in UTC (11 octets, direction '+', offset 0), or all zeros for None."""
    if moment is None:
        return NO_TIME
    t = moment.astimezone(timezone.utc)
    return rfc1902.OctetString(struct.pack(">HBBBBBBcBB", t.year, t.month, t.day, t.hour, t.minute, t.second,
                                           t.microsecond // 100000, b"+", 0, 0))


def _future(moment: datetime | None) -> datetime | None:
    return moment if moment is not None and moment > datetime.now(timezone.utc) else None


def kbps(bps: int) -> rfc1902.Unsigned32:
    """CsmBandwidth: kbit/s, rounded down, capped at the type's maximum."""
    return rfc1902.Unsigned32(min(bps // 1000, UNSIGNED32_MAX))


def text(value: str) -> rfc1902.OctetString:
    return rfc1902.OctetString(value.encode())


def _bound(entry: SlaEntry, service_class: ServiceClassName, which: str) -> rfc1902.Unsigned32:
    bounds = entry.sla.terms.bounds.get(service_class)
    return kbps(getattr(bounds, which) if bounds else 0)


def _hundredths(percent: Any) -> rfc1902.Unsigned32:
    return rfc1902.Unsigned32(int(percent * 100))


def _cents(amount: Any) -> rfc1902.Unsigned32:
    return rfc1902.Unsigned32(min(int(amount * 100), UNSIGNED32_MAX))


Getter = Callable[[SlaEntry], Asn1Item]

SLA_COLUMNS: dict[int, Getter] = {
    SLA_NAME: lambda e: text(e.sla.name),
    SLA_CUSTOMER: lambda e: text(e.sla.customer),
    4: lambda e: text(e.sla.terms.offering),
    5: lambda e: kbps(e.sla.terms.attachment.access_speed_bps),
    6: lambda e: _bound(e, ServiceClassName.GOLD, "min"),
    7: lambda e: _bound(e, ServiceClassName.GOLD, "max"),
    8: lambda e: _bound(e, ServiceClassName.SILVER, "min"),
    9: lambda e: _bound(e, ServiceClassName.SILVER, "max"),
    10: lambda e: _bound(e, ServiceClassName.BRONZE, "min"),
    11: lambda e: _bound(e, ServiceClassName.BRONZE, "max"),
    12: lambda e: _hundredths(e.sla.terms.availability.objective_percent),
    13: lambda e: rfc1902.Unsigned32(e.sla.terms.availability.max_outage_s),
    14: lambda e: rfc1902.Unsigned32(e.sla.terms.change_policy.min_interval_s),
    15: lambda e: _cents(e.sla.terms.change_policy.fee_per_change),
    16: lambda e: date_and_time(e.sla.terms.valid_from),
    17: lambda e: date_and_time(e.sla.terms.valid_until),
    18: lambda e: rfc1902.Integer32(STATE_NUMBERS[e.sla.state]),
}

SLS_COLUMNS: dict[int, Getter] = {
    SLS_CLASS: lambda e: rfc1902.Integer32(CLASS_NUMBERS[e.sls.service_class]),
    SLS_BANDWIDTH: lambda e: kbps(e.sls.bandwidth_bps),
    3: lambda e: rfc1902.Unsigned32(e.sls.version),
    4: lambda e: date_and_time(e.sls.changed_at),
    5: lambda e: date_and_time(_future(e.next_change)),
}


def _hundredths_of_percent(percent: Any) -> rfc1902.Unsigned32:
    """CsmHundredthsOfPercent, rounded down and kept within 0..10000."""
    return rfc1902.Unsigned32(min(max(int(percent * 100), 0), HUNDREDTHS_MAX))


def _unsigned(value: float | None) -> rfc1902.Unsigned32:
    return rfc1902.Unsigned32(min(max(round(value or 0), 0), UNSIGNED32_MAX))


def metric_set(metrics: Iterable[str]) -> rfc1902.Bits:
    """CsmMetricSet: bit n (counted from the high-order bit of the first octet) for the CsmMetric
    numbered n + 1. Six named bits make one octet, whatever is set (RFC 3417 section 8)."""
    octet = 0
    for name in metrics:
        number = METRIC_NUMBERS.get(name)
        if number is not None:
            octet |= 0x80 >> (number - 1)
    return rfc1902.Bits(bytes([octet]))


ConformanceGetter = Callable[[SlaEntry, Conformance | None], Asn1Item]

# csmConformanceEntry AUGMENTS csmSlaEntry: every SLA has a row. Before its first measurement
# (no Conformance, or a field not measured yet) the MIB says: state unknown(1), measured values
# zero, csmConfMeasuredAt all zeros. The SLS columns, an enumeration without a zero, then show
# the SLS in effect now: the one the first measurement will be held against.
CONFORMANCE_COLUMNS: dict[int, ConformanceGetter] = {
    1: lambda e, c: date_and_time(c.measured_at if c else None),
    2: lambda e, c: _unsigned(c.interval_s if c else None),
    3: lambda e, c: rfc1902.Integer32(CLASS_NUMBERS[c.sls_class if c and c.sls_class else e.sls.service_class]),
    4: lambda e, c: kbps(c.sls_bandwidth_bps if c and c.sls_bandwidth_bps is not None else e.sls.bandwidth_bps),
    5: lambda e, c: rfc1902.Gauge32(min((c.throughput_bps or 0) // 1000, UNSIGNED32_MAX) if c else 0),
    6: lambda e, c: rfc1902.Gauge32(min(max(c.loss_ppm or 0, 0), LOSS_PPM_MAX) if c else 0),
    7: lambda e, c: _hundredths_of_percent(c.availability_percent if c else 0),
    8: lambda e, c: _unsigned(c.longest_outage_s if c else None),
    9: lambda e, c: rfc1902.Integer32(CONFORMANCE_STATES[c.state if c else "unknown"]),
    10: lambda e, c: metric_set(c.violations if c else ()),
}

StatsGetter = Callable[[SlaEntry, ServiceClassName], Asn1Item]
STATS_COLUMNS: dict[int, StatsGetter] = {
    2: lambda e, c: rfc1902.Counter64(e.usage.get(c, (0, 0, 0))[0]),
    3: lambda e, c: rfc1902.Counter64(e.usage.get(c, (0, 0, 0))[1]),
    4: lambda e, c: rfc1902.Counter64(e.usage.get(c, (0, 0, 0))[2]),
    # Counters are cumulative since the SLA began and kept across restarts: no discontinuity.
    5: lambda e, c: rfc1902.TimeTicks(0),
}


# --------------------------------------------------------------------------------------------- the tree

class Subtree(Protocol):
    """A part of the served tree. `prefix` orders the parts; `get` and `next` see only what
    `principal` may see."""

    prefix: OID

    def get(self, oid: OID, principal: Principal) -> Asn1Item: ...

    def next(self, oid: OID, principal: Principal) -> VarBind | None: ...


class Scalars:
    """A group of scalars (instance `.0`), each read by a function: system, snmp, snmpEngine, csmService."""

    def __init__(self, prefix: OID, values: dict[int, Callable[[], Asn1Item]]) -> None:
        self.prefix = prefix
        self._oids = sorted(prefix + (number, 0) for number in values)
        self._values = {prefix + (number, 0): read for number, read in values.items()}

    def get(self, oid: OID, principal: Principal) -> Asn1Item:
        read = self._values.get(oid)
        if read is not None:
            return read()
        return rfc1905.noSuchInstance if oid[:-1] in {o[:-1] for o in self._oids} else rfc1905.noSuchObject

    def next(self, oid: OID, principal: Principal) -> VarBind | None:
        position = bisect.bisect_right(self._oids, oid)
        if position == len(self._oids):
            return None
        found = self._oids[position]
        return found, self._values[found]()


class SlaTable:
    """A table indexed by csmSlaIndex (csmSlaTable and the tables that AUGMENT it)."""

    def __init__(self, entry: OID, columns: dict[int, Getter], data: MibData) -> None:
        self.prefix = entry
        self.columns = sorted(columns)
        self._read = columns
        self._data = data

    def get(self, oid: OID, principal: Principal) -> Asn1Item:
        column, index = oid[len(self.prefix)], oid[len(self.prefix) + 1:]
        if column not in self._read:
            return rfc1905.noSuchObject
        entry = self._data.visible(principal, index[0]) if len(index) == 1 else None
        return rfc1905.noSuchInstance if entry is None else self._read[column](entry)

    def next(self, oid: OID, principal: Principal) -> VarBind | None:
        ids = self._data.visible_ids(principal)
        if not ids:
            return None
        column, after = _position(oid, self.prefix)
        for number in self.columns:
            if number < column:
                continue
            position = _first_after(ids, after) if number == column else 0
            if position < len(ids):
                sla_id = ids[position]
                entry = self._data.rows[sla_id]
                return self.prefix + (number, sla_id), self._read[number](entry)
        return None


class StatsTable:
    """csmClassStatsTable: indexed by csmSlaIndex and the class; three rows per SLA."""

    def __init__(self, data: MibData) -> None:
        self.prefix = STATS_ENTRY
        self.columns = sorted(STATS_COLUMNS)
        self._data = data

    def get(self, oid: OID, principal: Principal) -> Asn1Item:
        column, index = oid[len(self.prefix)], oid[len(self.prefix) + 1:]
        if column not in STATS_COLUMNS:
            return rfc1905.noSuchObject
        entry = self._data.visible(principal, index[0]) if len(index) == 2 else None
        if entry is None or index[1] not in CLASS_BY_NUMBER:
            return rfc1905.noSuchInstance
        return STATS_COLUMNS[column](entry, CLASS_BY_NUMBER[index[1]])

    def next(self, oid: OID, principal: Principal) -> VarBind | None:
        ids = self._data.visible_ids(principal)
        if not ids:
            return None
        column, after = _position(oid, self.prefix)
        for number in self.columns:
            if number < column:
                continue
            found = _next_stats_index(ids, after) if number == column else (ids[0], 1)
            if found is not None:
                entry = self._data.rows[found[0]]
                return self.prefix + (number, *found), STATS_COLUMNS[number](entry, CLASS_BY_NUMBER[found[1]])
        return None


def conformance_table(data: MibData) -> SlaTable:
    """csmConformanceTable: indexed like csmSlaTable (it AUGMENTS csmSlaEntry), so it has the same
    rows, visible to the same principals; the values come from `data.conformance`."""
    columns: dict[int, Getter] = {
        number: (lambda e, read=read: read(e, data.conformance.get(e.sla.id)))
        for number, read in CONFORMANCE_COLUMNS.items()}
    return SlaTable(CONFORMANCE_ENTRY, columns, data)


def csm_tables(data: MibData) -> list[Subtree]:
    """The CSM-MIB's four tables, all answered from `data`."""
    return [SlaTable(SLA_ENTRY, SLA_COLUMNS, data), SlaTable(SLS_ENTRY, SLS_COLUMNS, data), StatsTable(data),
            conformance_table(data)]


def _position(oid: OID, entry: OID) -> tuple[int, OID]:
    """Where a GETNEXT starts within a table entry: (column, index after which to look).
    An OID before the entry starts before the first column; column 0 means "before all columns"."""
    if oid[:len(entry)] < entry or len(oid) <= len(entry):
        return 0, ()
    return oid[len(entry)], oid[len(entry) + 1:]


def _first_after(ids: Sequence[int], after: OID) -> int:
    """Position in sorted `ids` of the first single-component index greater than `after`."""
    # Row k follows `after` only if k > after[0]: row 7 is neither after (7,) nor after (7, 0, ...).
    return bisect.bisect_right(ids, after[0]) if after else 0


def _next_stats_index(ids: Sequence[int], after: OID) -> tuple[int, int] | None:
    """The first (sla id, class number) index greater than `after`."""
    if not after:
        return ids[0], 1
    position = bisect.bisect_left(ids, after[0])
    if position < len(ids) and ids[position] == after[0]:
        if len(after) == 1:
            return after[0], 1
        following = [n for n in CLASS_BY_NUMBER if (n,) > tuple(after[1:])]
        if following:
            return after[0], following[0]
        position += 1
    return (ids[position], 1) if position < len(ids) else None


class MibTree:
    """The whole served tree, in OID order: its parts never overlap."""

    def __init__(self, parts: Sequence[Subtree]) -> None:
        self.parts = sorted(parts, key=lambda part: part.prefix)

    def get(self, oid: OID, principal: Principal) -> Asn1Item:
        for part in self.parts:
            if oid[:len(part.prefix)] == part.prefix and len(oid) > len(part.prefix):
                return part.get(oid, principal)
        return rfc1905.noSuchObject

    def next(self, oid: OID, principal: Principal) -> VarBind:
        for part in self.parts:
            if oid[:len(part.prefix)] > part.prefix:
                continue  # this part lies wholly before the OID
            found = part.next(oid, principal)
            if found is not None:
                return found
        return oid, rfc1905.endOfMibView

    def holds(self, oid: OID) -> bool:
        """Is the OID inside a served part (the rest of the OID space is outside every view)?"""
        return any(oid[:len(part.prefix)] == part.prefix for part in self.parts)


# --------------------------------------------------------------------------------------------- SET

class SetRefused(Exception):
    """An SNMP SET refused: the RFC 3416 error status and the 0-based index of the varbind at fault."""

    def __init__(self, status: str, index: int, reason: str) -> None:
        super().__init__(f"{status} at varbind {index + 1}: {reason}")
        self.status = status
        self.index = index
        self.reason = reason


class SlsWriter(Protocol):
    def change_sls(self, principal: Principal, ref: int, service_class: ServiceClassName, bandwidth_bps: int,
                   channel: Channel) -> Any: ...


@dataclass(frozen=True)
class SlsRequest:
    """A checked SET: one SLA's new class and bandwidth, and where each came from in the PDU."""

    sla_id: int
    service_class: ServiceClassName
    bandwidth_bps: int
    class_index: int
    bandwidth_index: int


def parse_set(varbinds: Sequence[VarBind], principal: Principal, data: MibData, tree: MibTree) -> SlsRequest:
    """Check every varbind of a SET in order (RFC 3416 4.2.5) and return the one SLS change it asks
    for, or raise SetRefused. Nothing is changed here."""
    wanted: dict[int, tuple[int, Any]] = {}  # column -> (varbind index, value)
    row: int | None = None
    for index, (oid, value) in enumerate(varbinds):
        column, sla_id = _sls_cell(oid)
        if column is None:
            if tree.holds(oid):
                raise SetRefused("notWritable", index, f"{_dotted(oid)} is read-only")
            raise SetRefused("noAccess", index, f"{_dotted(oid)} is outside the view")
        exists = sla_id is not None and data.visible(principal, sla_id) is not None
        if not exists and not principal.is_domain_manager:
            # A customer's view holds its own rows only: another's row is outside it, like a missing one.
            raise SetRefused("noAccess", index, f"no SLS row {_dotted(oid[len(SLS_ENTRY) + 1:])} in view")
        if column not in (SLS_CLASS, SLS_BANDWIDTH):
            raise SetRefused("notWritable", index, f"csmSlsEntry column {column} is read-only")
        expected = _INTEGER_TAG if column == SLS_CLASS else _UNSIGNED_TAG
        if value.tagSet != expected:
            raise SetRefused("wrongType", index, f"csmSls{'Class' if column == SLS_CLASS else 'Bandwidth'} "
                                                 f"needs {'INTEGER' if column == SLS_CLASS else 'Unsigned32'}")
        if column == SLS_CLASS and int(value) not in CLASS_BY_NUMBER:
            raise SetRefused("wrongValue", index, f"csmSlsClass {int(value)} is not gold(1), silver(2) or bronze(3)")
        if not exists:  # RFC 3416 4.2.5 step 7, after the checks of the column and the value
            raise SetRefused("noCreation", index, f"no SLS row {_dotted(oid[len(SLS_ENTRY) + 1:])}; rows are "
                                                  f"created with their SLA")
        if row is not None and sla_id != row:
            raise SetRefused("inconsistentValue", index, "one SET changes the SLS of one SLA")
        if column in wanted:
            raise SetRefused("inconsistentValue", index, "the same object appears twice")
        row = sla_id
        wanted[column] = (index, value)
    if not wanted or row is None:
        raise SetRefused("noAccess", 0, "nothing to set")
    if len(wanted) == 1:
        (index, _), = wanted.values()
        raise SetRefused("inconsistentValue", index, "csmSlsClass and csmSlsBandwidth are written together")
    class_index, class_value = wanted[SLS_CLASS]
    bandwidth_index, bandwidth_value = wanted[SLS_BANDWIDTH]
    return SlsRequest(row, CLASS_BY_NUMBER[int(class_value)], int(bandwidth_value) * 1000, class_index, bandwidth_index)


def apply_set(request: SlsRequest, principal: Principal, service: SlsWriter) -> Any:
    """Apply a checked SET through the service layer; map a refusal to its SNMP error."""
    try:
        return service.change_sls(principal, request.sla_id, request.service_class, request.bandwidth_bps,
                                  Channel.SNMP)
    except NotFound as exc:  # the row vanished since the check
        raise SetRefused("noCreation" if principal.is_domain_manager else "noAccess", request.class_index,
                         exc.message) from None
    except ClassNotAllowed as exc:
        raise SetRefused("inconsistentValue", request.class_index, exc.message) from None
    except InvalidValue as exc:
        raise SetRefused("wrongValue", request.class_index, exc.message) from None
    except CsmmError as exc:  # bounds, change too soon, link share, SLA state or validity
        raise SetRefused("inconsistentValue", request.bandwidth_index, exc.message) from None
    except Exception as exc:  # the store failed: nothing was committed
        log.exception("SNMP SET of SLA %s could not be stored", request.sla_id)
        raise SetRefused("commitFailed", request.bandwidth_index, str(exc)) from None


def _sls_cell(oid: OID) -> tuple[int | None, int | None]:
    """(column, SLA id) of an OID in csmSlsEntry; (None, None) elsewhere; SLA id None if the
    index is not one sub-identifier."""
    if oid[:len(SLS_ENTRY)] != SLS_ENTRY or len(oid) <= len(SLS_ENTRY):
        return None, None
    index = oid[len(SLS_ENTRY) + 1:]
    return oid[len(SLS_ENTRY)], index[0] if len(index) == 1 else None


def _dotted(oid: OID) -> str:
    return ".".join(map(str, oid))
