"""The SNMP agent's view (controller/northbound/snmp/view.py): GET, GETNEXT and SET checks per principal.

Every GETNEXT answer is compared with a reference computed independently of the module: the sorted
list of every instance the principal may see (the scalars, and for each visible SLA id every column
of csmSlaTable, csmSlsTable and csmConformanceTable and the three class rows of csmClassStatsTable).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pyasn1.type.base import Asn1Item
from pysnmp.proto import rfc1902, rfc1905

from controller.domain.catalog import ClassBounds, ServiceClassName
from controller.domain.conformance import Conformance
from controller.domain.errors import (
    CapacityExceeded,
    ClassNotAllowed,
    Conflict,
    InvalidValue,
    NotFound,
    OutOfBounds,
    TooSoon,
)
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import LifecycleState
from controller.northbound.snmp.fastpath import encode_value
from controller.northbound.snmp.view import (
    CONFORMANCE_ENTRY,
    CSM_MIB,
    CSM_SERVICE,
    OID,
    SLA_ENTRY,
    SLS_ENTRY,
    SNMP_ENGINE,
    SNMP_GROUP,
    STATS_ENTRY,
    SYSTEM,
    MibData,
    MibTree,
    Scalars,
    SetRefused,
    SlaEntry,
    SlsRequest,
    VarBind,
    apply_set,
    csm_tables,
    date_and_time,
    kbps,
    metric_set,
    parse_set,
)
from tests.unit.builders import BRONZE, GOLD, SILVER, T0, M, business_terms, sla, sls

ACME = Principal(Role.CUSTOMER, "acme")
GLOBEX = Principal(Role.CUSTOMER, "globex")
NOBODY = Principal(Role.CUSTOMER, "umbrella")  # a customer without SLAs
PRINCIPALS = [ACME, GLOBEX, NOBODY, DOMAIN_MANAGER]

# Non-contiguous SLA ids, interleaved between customers and inserted out of order.
OWNERS: dict[int, str] = {21: "acme", 3: "acme", 20: "globex", 7: "globex", 8: "acme"}
MISSING = 99  # no SLA has this id

# The stock scalar groups, numbered as SnmpAgent._build_tree numbers them.
SCALAR_GROUPS: dict[OID, tuple[int, ...]] = {
    SYSTEM: (1, 2, 3, 4, 5, 6, 7, 8),
    SNMP_GROUP: (1, 3, 4, 5, 6, 30, 31, 32),
    SNMP_ENGINE: (1, 2, 3, 4),
    CSM_SERVICE: (1, 2),
}
# Columns per the CSM-MIB (column 1 of csmSlaEntry and csmClassStatsEntry is the not-accessible index).
SLA_COLUMN_NUMBERS = range(2, 19)
SLS_COLUMN_NUMBERS = range(1, 6)
STATS_COLUMN_NUMBERS = range(2, 6)
CONFORMANCE_COLUMN_NUMBERS = range(1, 11)  # csmConformanceEntry AUGMENTS csmSlaEntry: no index column of its own
CLASS_NUMBERS = (1, 2, 3)

TERMS = business_terms()
IF_INDEX_1: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 1)  # IF-MIB ifIndex.1: served by no part of the tree


# ------------------------------------------------------------------------------------------ helpers

def entry(sla_id: int, customer: str, *, service_class: ServiceClassName = SILVER, bandwidth: int = 5 * M,
          next_change: datetime | None = None,
          usage: dict[ServiceClassName, tuple[int, int, int]] | None = None) -> SlaEntry:
    return SlaEntry(replace(sla(TERMS), id=sla_id, name=f"{customer}-{sla_id}", customer=customer),
                    replace(sls(service_class, bandwidth), sla_id=sla_id), next_change, usage or {})


MEASURED_AT = datetime(2026, 11, 14, 9, 30, 15, 250_000, tzinfo=timezone.utc)
MONTH = datetime(2026, 11, 1, tzinfo=timezone.utc)


def measured(sla_id: int, *, violations: tuple[str, ...] = (), **changes: Any) -> Conformance:
    """A measured SLA: Gold 2 Mbit/s, 1.5 Mbit/s achieved of 1.8 offered, 250 ppm lost, 99.95 % this month."""
    found = Conformance(sla_id, MEASURED_AT, 3.0, GOLD, 2 * M, 1_500_000, 1_800_000, 250, MONTH, Decimal("99.95"), 42,
                        violations)
    return replace(found, **changes)


def sample_data() -> MibData:
    # One SLA of each customer measured (7 violating), the others never measured.
    return MibData((entry(sla_id, customer, usage={GOLD: (sla_id * 100, sla_id * 10, sla_id)})
                    for sla_id, customer in OWNERS.items()),
                   {3: measured(3), 7: measured(7, violations=("loss",)), MISSING: measured(MISSING)})


def build_tree(data: MibData) -> MibTree:
    """The tree SnmpAgent._build_tree builds, with constant scalars instead of the engine's."""
    scalars = [Scalars(prefix, {number: (lambda n=number: rfc1902.Integer32(n)) for number in numbers})
               for prefix, numbers in SCALAR_GROUPS.items()]
    return MibTree([*scalars, *csm_tables(data)])


def reference(principal: Principal, owners: dict[int, str] = OWNERS) -> list[OID]:
    """Every instance the principal may see, sorted: computed without the module under test."""
    ids = [sla_id for sla_id, customer in owners.items() if principal.owns(customer)]
    oids = [prefix + (number, 0) for prefix, numbers in SCALAR_GROUPS.items() for number in numbers]
    oids += [SLA_ENTRY + (column, sla_id) for column in SLA_COLUMN_NUMBERS for sla_id in ids]
    oids += [SLS_ENTRY + (column, sla_id) for column in SLS_COLUMN_NUMBERS for sla_id in ids]
    oids += [STATS_ENTRY + (column, sla_id, number)
             for column in STATS_COLUMN_NUMBERS for sla_id in ids for number in CLASS_NUMBERS]
    oids += [CONFORMANCE_ENTRY + (column, sla_id) for column in CONFORMANCE_COLUMN_NUMBERS for sla_id in ids]
    return sorted(oids)


REFERENCES = {principal: reference(principal) for principal in PRINCIPALS}


def expected_next(principal: Principal, oid: OID) -> OID | None:
    """The first visible instance after `oid` (tuples order like OIDs), or None at the end of the MIB."""
    instances = REFERENCES[principal]
    position = bisect.bisect_right(instances, oid)
    return instances[position] if position < len(instances) else None


def next_oid(tree: MibTree, oid: OID, principal: Principal) -> OID | None:
    found, value = tree.next(oid, principal)
    if isinstance(value, rfc1905.EndOfMibView):
        assert found == oid, "endOfMibView is returned with the requested OID"
        return None
    return found


def walk(tree: MibTree, principal: Principal) -> list[VarBind]:
    found: list[VarBind] = []
    oid: OID = (1, 3, 6, 1)
    while len(found) < 10_000:
        oid, value = tree.next(oid, principal)
        if isinstance(value, rfc1905.EndOfMibView):
            return found
        found.append((oid, value))
    raise AssertionError("the walk does not end")


def same(actual: Asn1Item, expected: Asn1Item) -> bool:
    """Equal SNMP values: same type (so same tag) and same value."""
    return type(actual) is type(expected) and actual == expected


def table_cell(entry_oid: OID, column: int, *index: int) -> OID:
    return entry_oid + (column, *index)


def class_vb(sla_id: int, number: int) -> VarBind:
    return SLS_ENTRY + (1, sla_id), rfc1902.Integer32(number)


def bandwidth_vb(sla_id: int, kbit: int) -> VarBind:
    return SLS_ENTRY + (2, sla_id), rfc1902.Unsigned32(kbit)


def refusal(varbinds: list[VarBind], principal: Principal, data: MibData | None = None) -> SetRefused:
    data = data or sample_data()
    with pytest.raises(SetRefused) as caught:
        parse_set(varbinds, principal, data, build_tree(data))
    return caught.value


def date_octets(year: int, month: int, day: int, hour: int, minute: int, second: int, deci: int) -> bytes:
    return struct.pack(">HBBBBBB", year, month, day, hour, minute, second, deci) + b"+\x00\x00"


# ------------------------------------------------------------------------------------------ MibData

def test_mib_data_keeps_each_customers_ids_sorted_whatever_the_insertion_order() -> None:
    data = sample_data()
    assert data.visible_ids(ACME) == [3, 8, 21]
    assert data.visible_ids(GLOBEX) == [7, 20]
    assert data.visible_ids(NOBODY) == []
    assert data.visible_ids(DOMAIN_MANAGER) == [3, 7, 8, 20, 21]


def test_mib_data_visible_hides_another_customers_row_like_a_missing_one() -> None:
    data = sample_data()
    assert data.visible(ACME, 8) is not None
    assert data.visible(ACME, 7) is None
    assert data.visible(ACME, MISSING) is None
    assert data.visible(DOMAIN_MANAGER, 7) is not None


def test_tree_follows_put_remove_and_reset_of_its_data() -> None:
    data = sample_data()
    tree = build_tree(data)
    data.remove(8)
    data.put(entry(5, "acme"))
    data.put(entry(3, "acme", bandwidth=7 * M))  # an update keeps the row once
    owners = {sla_id: customer for sla_id, customer in OWNERS.items() if sla_id != 8} | {5: "acme"}
    assert [oid for oid, _ in walk(tree, ACME)] == reference(ACME, owners)
    assert same(tree.get(SLS_ENTRY + (2, 3), ACME), rfc1902.Unsigned32(7000))

    data.reset(MibData([entry(40, "globex")]))
    assert [oid for oid, _ in walk(tree, ACME)] == reference(ACME, {})
    assert [oid for oid, _ in walk(tree, DOMAIN_MANAGER)] == reference(DOMAIN_MANAGER, {40: "globex"})


# ------------------------------------------------------------------------------------------ GETNEXT

@pytest.mark.parametrize("principal", PRINCIPALS, ids=str)
def test_walk_visits_exactly_the_visible_instances_in_increasing_order(principal: Principal) -> None:
    oids = [oid for oid, _ in walk(build_tree(sample_data()), principal)]
    assert all(a < b for a, b in zip(oids, oids[1:])), "the walk is strictly increasing"
    assert oids == reference(principal)


def test_customer_walk_holds_no_row_of_another_customer() -> None:
    for oid, _ in walk(build_tree(sample_data()), ACME):
        if oid[:len(CSM_MIB)] == CSM_MIB and oid[:len(CSM_SERVICE)] != CSM_SERVICE:
            assert OWNERS[oid[len(SLA_ENTRY) + 1]] == "acme", oid


@pytest.mark.parametrize("principal", PRINCIPALS, ids=str)
def test_walk_values_are_those_get_returns(principal: Principal) -> None:
    tree = build_tree(sample_data())
    for oid, value in walk(tree, principal):
        assert same(tree.get(oid, principal), value), oid


@pytest.mark.parametrize(("start", "expected"), [
    ((0,), SYSTEM + (1, 0)),
    ((1, 3, 6, 1), SYSTEM + (1, 0)),
    (SYSTEM + (1, 0, 5), SYSTEM + (2, 0)),
    (IF_INDEX_1, SNMP_GROUP + (1, 0)),
    (CSM_SERVICE + (2, 0), SLA_ENTRY + (2, 3)),
    (CSM_MIB, CSM_SERVICE + (1, 0)),
    (SLA_ENTRY[:-1], SLA_ENTRY + (2, 3)),  # the bare table
    (SLA_ENTRY, SLA_ENTRY + (2, 3)),  # the bare entry
    (SLA_ENTRY + (0, 99), SLA_ENTRY + (2, 3)),  # column 0
    (SLA_ENTRY + (1, 21), SLA_ENTRY + (2, 3)),  # the not-accessible index column
    (SLA_ENTRY + (5,), SLA_ENTRY + (5, 3)),
    (SLA_ENTRY + (5, 3), SLA_ENTRY + (5, 8)),
    (SLA_ENTRY + (5, 7, 0), SLA_ENTRY + (5, 8)),  # globex's row, with extra sub-identifiers
    (SLA_ENTRY + (5, 8, 0), SLA_ENTRY + (5, 21)),
    (SLA_ENTRY + (5, 21, 0), SLA_ENTRY + (6, 3)),
    (SLA_ENTRY + (5, MISSING), SLA_ENTRY + (6, 3)),
    (SLA_ENTRY + (18, 21), SLS_ENTRY + (1, 3)),
    (SLA_ENTRY + (19,), SLS_ENTRY + (1, 3)),  # beyond the last column
    (SLS_ENTRY + (2, 8), SLS_ENTRY + (2, 21)),
    (SLS_ENTRY + (5, 21), STATS_ENTRY + (2, 3, 1)),
    (STATS_ENTRY + (2, 8), STATS_ENTRY + (2, 8, 1)),
    (STATS_ENTRY + (2, 8, 0), STATS_ENTRY + (2, 8, 1)),
    (STATS_ENTRY + (2, 8, 1, 5), STATS_ENTRY + (2, 8, 2)),
    (STATS_ENTRY + (2, 8, 3), STATS_ENTRY + (2, 21, 1)),
    (STATS_ENTRY + (2, 7, 9), STATS_ENTRY + (2, 8, 1)),
    (STATS_ENTRY + (2, 21, 3), STATS_ENTRY + (3, 3, 1)),
    (STATS_ENTRY + (5, 21, 3), CONFORMANCE_ENTRY + (1, 3)),
    (CONFORMANCE_ENTRY[:-1], CONFORMANCE_ENTRY + (1, 3)),  # the bare table
    (CONFORMANCE_ENTRY + (1,), CONFORMANCE_ENTRY + (1, 3)),
    (CONFORMANCE_ENTRY + (0, 99), CONFORMANCE_ENTRY + (1, 3)),  # column 0
    (CONFORMANCE_ENTRY + (9, 3), CONFORMANCE_ENTRY + (9, 8)),  # over globex's measured row 7
    (CONFORMANCE_ENTRY + (9, 7), CONFORMANCE_ENTRY + (9, 8)),
    (CONFORMANCE_ENTRY + (9, 21), CONFORMANCE_ENTRY + (10, 3)),
    (CONFORMANCE_ENTRY + (10, 21), SNMP_ENGINE + (1, 0)),
    (CONFORMANCE_ENTRY + (11,), SNMP_ENGINE + (1, 0)),  # beyond the last column
    (SNMP_ENGINE + (4, 0), None),
    ((2,), None),
], ids=lambda value: ".".join(map(str, value)) if isinstance(value, tuple) else str(value))
def test_getnext_for_a_customer_returns_its_next_instance(start: OID, expected: OID | None) -> None:
    assert next_oid(build_tree(sample_data()), start, ACME) == expected
    assert expected == expected_next(ACME, start), "the literal expectation agrees with the reference"


def test_getnext_for_a_customer_without_slas_skips_every_table() -> None:
    assert next_oid(build_tree(sample_data()), SLA_ENTRY, NOBODY) == SNMP_ENGINE + (1, 0)


def neighbours(oid: OID) -> set[OID]:
    """OIDs around an instance: itself, just below, just above, its parent and a child."""
    around = {oid, oid[:-1], oid + (0,), oid + (99,), oid[:-1] + (oid[-1] + 1,)}
    if oid[-1] > 0:
        around.add(oid[:-1] + (oid[-1] - 1,))
    return around


@pytest.mark.parametrize("principal", PRINCIPALS, ids=str)
def test_getnext_around_every_instance_matches_the_reference(principal: Principal) -> None:
    tree = build_tree(sample_data())
    starts = set().union(*(neighbours(oid) for oid in reference(DOMAIN_MANAGER)))
    for start in sorted(starts):
        assert next_oid(tree, start, principal) == expected_next(principal, start), start


ANCHORS: list[OID] = sorted({*reference(DOMAIN_MANAGER), *SCALAR_GROUPS, SLA_ENTRY, SLS_ENTRY, STATS_ENTRY,
                             CONFORMANCE_ENTRY, IF_INDEX_1, (1, 3, 6, 1)})


@st.composite
def oids(draw: st.DrawFn) -> OID:
    """A prefix of a served instance or table, followed by a few arbitrary sub-identifiers."""
    base = draw(st.sampled_from(ANCHORS))
    keep = draw(st.integers(min_value=1, max_value=len(base)))
    tail = draw(st.lists(st.integers(0, 25) | st.just(4294967295), max_size=4))
    return base[:keep] + tuple(tail)


TREE = build_tree(sample_data())  # the property test only reads it


@settings(max_examples=400, deadline=None)
@given(oid=oids(), principal=st.sampled_from(PRINCIPALS))
def test_getnext_from_any_oid_returns_the_next_visible_instance(oid: OID, principal: Principal) -> None:
    assert next_oid(TREE, oid, principal) == expected_next(principal, oid)


# ------------------------------------------------------------------------------------------ GET

def test_get_returns_the_customers_own_row() -> None:
    data = MibData([entry(3, "acme", service_class=GOLD, bandwidth=3 * M), entry(7, "globex")])
    tree = build_tree(data)
    assert same(tree.get(SLA_ENTRY + (2, 3), ACME), rfc1902.OctetString(b"acme-3"))
    assert same(tree.get(SLS_ENTRY + (1, 3), ACME), rfc1902.Integer32(1))
    assert same(tree.get(SLS_ENTRY + (2, 3), ACME), rfc1902.Unsigned32(3000))


@pytest.mark.parametrize("oid", [SLA_ENTRY + (2, 7), SLS_ENTRY + (2, 7), STATS_ENTRY + (2, 7, 1),
                                 CONFORMANCE_ENTRY + (9, 7), CONFORMANCE_ENTRY + (1, 20)], ids=str)
def test_get_of_another_customers_row_is_no_such_instance_like_a_missing_row(oid: OID) -> None:
    tree = build_tree(sample_data())
    missing = oid[:len(SLA_ENTRY) + 1] + (MISSING, *oid[len(SLA_ENTRY) + 2:])
    assert isinstance(tree.get(oid, ACME), rfc1905.NoSuchInstance)
    assert isinstance(tree.get(missing, ACME), rfc1905.NoSuchInstance)
    assert not isinstance(tree.get(oid, DOMAIN_MANAGER), (rfc1905.NoSuchInstance, rfc1905.NoSuchObject))


@pytest.mark.parametrize("oid", [
    SLA_ENTRY + (2,), SLA_ENTRY + (2, 3, 0), STATS_ENTRY + (2, 3), STATS_ENTRY + (2, 3, 4), STATS_ENTRY + (2, 3, 0),
    SYSTEM + (1, 1), CONFORMANCE_ENTRY + (1, 3, 0), CONFORMANCE_ENTRY + (1,),
], ids=str)
def test_get_of_a_malformed_index_is_no_such_instance(oid: OID) -> None:
    assert isinstance(build_tree(sample_data()).get(oid, ACME), rfc1905.NoSuchInstance)


@pytest.mark.parametrize("oid", [
    SLA_ENTRY + (19, 3), SLA_ENTRY + (1, 3), SLS_ENTRY + (6, 3), STATS_ENTRY + (1, 3, 1), SYSTEM + (9, 0),
    IF_INDEX_1, SLA_ENTRY, CSM_MIB + (1, 2, 2, 1, 3), CONFORMANCE_ENTRY + (11, 3), CONFORMANCE_ENTRY + (0, 3),
], ids=str)
def test_get_of_an_unknown_object_is_no_such_object(oid: OID) -> None:
    assert isinstance(build_tree(sample_data()).get(oid, ACME), rfc1905.NoSuchObject)


# ------------------------------------------------------------------------------------------ values

@pytest.mark.parametrize(("bps", "kbit"), [(0, 0), (999, 0), (1_999_999, 1999), (2_000_000, 2000),
                                           (4294967295 * 1000 + 999, 4294967295), (10**15, 4294967295)])
def test_kbps_rounds_down_and_caps_at_unsigned32_max(bps: int, kbit: int) -> None:
    assert same(kbps(bps), rfc1902.Unsigned32(kbit))


def test_sls_bandwidth_is_served_in_kbit_per_second_rounded_down() -> None:
    tree = build_tree(MibData([entry(3, "acme", bandwidth=1_999_999)]))
    assert same(tree.get(SLS_ENTRY + (2, 3), ACME), rfc1902.Unsigned32(1999))


def test_date_and_time_is_eleven_octets_in_utc() -> None:
    moment = datetime(2026, 11, 2, 13, 4, 5, 678_000, tzinfo=timezone(timedelta(hours=1)))
    value = date_and_time(moment)
    assert bytes(value) == date_octets(2026, 11, 2, 12, 4, 5, 6)
    assert len(value) == 11


def test_date_and_time_of_none_is_eight_zero_octets() -> None:
    assert bytes(date_and_time(None)) == b"\x00" * 8


SLA_VALUES: dict[int, Asn1Item] = {
    2: rfc1902.OctetString(b"acme-3"),
    3: rfc1902.OctetString(b"acme"),
    4: rfc1902.OctetString(b"gsb-business"),
    5: rfc1902.Unsigned32(20_000),  # access speed 20 Mbit/s
    6: rfc1902.Unsigned32(1000), 7: rfc1902.Unsigned32(4000),  # gold 1M..4M
    8: rfc1902.Unsigned32(1000), 9: rfc1902.Unsigned32(8000),  # silver 1M..8M
    10: rfc1902.Unsigned32(0), 11: rfc1902.Unsigned32(0),  # bronze not allowed
    12: rfc1902.Unsigned32(9990),  # 99.9 %
    13: rfc1902.Unsigned32(3600),  # 60 min
    14: rfc1902.Unsigned32(300),  # 5 min
    15: rfc1902.Unsigned32(10),  # 0.10
    16: rfc1902.OctetString(date_octets(2026, 11, 2, 12, 0, 0, 0)),  # T0
    17: rfc1902.OctetString(b"\x00" * 8),  # no end
    18: rfc1902.Integer32(4),  # installedTested
}


@pytest.mark.parametrize("column", sorted(SLA_VALUES))
def test_sla_columns_show_the_contract(column: int) -> None:
    terms = replace(TERMS, bounds={GOLD: ClassBounds(min=M, max=4 * M), SILVER: ClassBounds(min=M, max=8 * M)})
    contract = replace(sla(terms, LifecycleState.INSTALLED_TESTED), id=3, name="acme-3")
    tree = build_tree(MibData([SlaEntry(contract, replace(sls(), sla_id=3), None)]))
    assert same(tree.get(SLA_ENTRY + (column, 3), ACME), SLA_VALUES[column])


def test_sls_columns_show_version_and_last_change() -> None:
    tree = build_tree(MibData([entry(3, "acme", service_class=BRONZE)]))
    assert same(tree.get(SLS_ENTRY + (1, 3), ACME), rfc1902.Integer32(3))
    assert same(tree.get(SLS_ENTRY + (3, 3), ACME), rfc1902.Unsigned32(1))
    assert bytes(tree.get(SLS_ENTRY + (4, 3), ACME)) == date_octets(2026, 11, 2, 12, 0, 0, 0)


@pytest.mark.parametrize("offset", [timedelta(hours=-1), None], ids=["past", "none"])
def test_next_change_allowed_is_zero_when_a_change_is_allowed_now(offset: timedelta | None) -> None:
    moment = None if offset is None else datetime.now(timezone.utc) + offset
    tree = build_tree(MibData([entry(3, "acme", next_change=moment)]))
    assert bytes(tree.get(SLS_ENTRY + (5, 3), ACME)) == b"\x00" * 8


def test_next_change_allowed_shows_a_future_time() -> None:
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    tree = build_tree(MibData([entry(3, "acme", next_change=moment)]))
    expected = date_octets(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, 0)
    assert bytes(tree.get(SLS_ENTRY + (5, 3), ACME)) == expected


def test_stats_rows_count_per_class_and_zero_for_an_unused_class() -> None:
    data = MibData([entry(3, "acme", usage={SILVER: (1500, 12, 2)})])
    data.set_usage(3, GOLD, (700, 7, 0))
    data.set_usage(MISSING, GOLD, (1, 1, 1))  # ignored
    tree = build_tree(data)
    assert [int(tree.get(STATS_ENTRY + (column, 3, 2), ACME)) for column in (2, 3, 4)] == [1500, 12, 2]
    assert [int(tree.get(STATS_ENTRY + (column, 3, 1), ACME)) for column in (2, 3, 4)] == [700, 7, 0]
    assert [int(tree.get(STATS_ENTRY + (column, 3, 3), ACME)) for column in (2, 3, 4)] == [0, 0, 0]
    assert isinstance(tree.get(STATS_ENTRY + (2, 3, 1), ACME), rfc1902.Counter64)
    assert MISSING not in data.rows


# ------------------------------------------------------------------------------------------ conformance

def conformance_values(tree: MibTree, sla_id: int, principal: Principal = ACME) -> dict[int, Asn1Item]:
    return {column: tree.get(CONFORMANCE_ENTRY + (column, sla_id), principal) for column in CONFORMANCE_COLUMN_NUMBERS}


MEASURED_VALUES: dict[int, Asn1Item] = {
    1: rfc1902.OctetString(date_octets(2026, 11, 14, 9, 30, 15, 2)),  # csmConfMeasuredAt: DateAndTime, UTC
    2: rfc1902.Unsigned32(3),  # csmConfInterval: seconds
    3: rfc1902.Integer32(1),  # csmConfSlsClass: gold(1), though the SLS now is silver
    4: rfc1902.Unsigned32(2000),  # csmConfSlsBandwidth: kbit/s
    5: rfc1902.Gauge32(1999),  # csmConfThroughput: kbit/s, rounded down
    6: rfc1902.Gauge32(250),  # csmConfLoss: ppm
    7: rfc1902.Unsigned32(9995),  # csmConfAvailMonth: hundredths of a percent
    8: rfc1902.Unsigned32(42),  # csmConfLongestOutageMonth: seconds
    9: rfc1902.Integer32(3),  # csmConfState: violating(3)
    10: rfc1902.Bits(b"\x60"),  # csmConfViolations: loss(1) and availability(2)
}


@pytest.mark.parametrize("column", sorted(MEASURED_VALUES))
def test_conformance_columns_show_the_latest_measurement_in_the_mibs_units(column: int) -> None:
    found = measured(3, throughput_bps=1_999_999, violations=("loss", "availability"))
    tree = build_tree(MibData([entry(3, "acme", service_class=SILVER, bandwidth=5 * M)], {3: found}))
    assert same(tree.get(CONFORMANCE_ENTRY + (column, 3), ACME), MEASURED_VALUES[column])


NEVER_MEASURED_VALUES: dict[int, Asn1Item] = {
    1: rfc1902.OctetString(b"\x00" * 8),  # '0000000000000000'H: nothing measured yet
    2: rfc1902.Unsigned32(0),
    3: rfc1902.Integer32(3), 4: rfc1902.Unsigned32(7000),  # the SLS in effect now: bronze 7 Mbit/s
    5: rfc1902.Gauge32(0), 6: rfc1902.Gauge32(0), 7: rfc1902.Unsigned32(0), 8: rfc1902.Unsigned32(0),
    9: rfc1902.Integer32(1),  # unknown(1)
    10: rfc1902.Bits(b"\x00"),  # the empty set: one octet, no bit set
}


@pytest.mark.parametrize("column", sorted(NEVER_MEASURED_VALUES))
def test_a_never_measured_sla_has_a_row_in_state_unknown_with_zero_measurements(column: int) -> None:
    tree = build_tree(MibData([entry(3, "acme", service_class=BRONZE, bandwidth=7 * M)]))
    assert same(tree.get(CONFORMANCE_ENTRY + (column, 3), ACME), NEVER_MEASURED_VALUES[column])


def test_availability_counted_before_the_first_interval_is_shown_while_the_state_is_unknown() -> None:
    found = Conformance(3, None, None, None, None, None, None, None, MONTH, Decimal("100.00000"), 0, ())
    tree = build_tree(MibData([entry(3, "acme", service_class=GOLD, bandwidth=3 * M)], {3: found}))
    values = conformance_values(tree, 3)
    assert bytes(values[1]) == b"\x00" * 8 and int(values[2]) == 0
    assert (int(values[3]), int(values[4])) == (1, 3000)  # no SLS measured yet: the one in effect
    assert [int(values[column]) for column in (5, 6, 7, 8, 9)] == [0, 0, 10000, 0, 1]


@pytest.mark.parametrize(("found", "state"), [
    (None, 1),
    (measured(3, measured_at=None, interval_s=None, throughput_bps=None, loss_ppm=None), 1),
    (measured(3), 2),
    (measured(3, violations=("throughput",)), 3),
    (measured(3, measured_at=None, violations=("availability",)), 3),  # a breach of the month needs no interval
], ids=["no-row", "not-measured", "conforming", "violating", "availability-before-an-interval"])
def test_conformance_state_is_unknown_conforming_or_violating(found: Conformance | None, state: int) -> None:
    tree = build_tree(MibData([entry(3, "acme")], {3: found} if found else {}))
    assert same(tree.get(CONFORMANCE_ENTRY + (9, 3), ACME), rfc1902.Integer32(state))


@pytest.mark.parametrize(("metrics", "octet"), [
    ((), 0x00), (("throughput",), 0x80), (("loss",), 0x40), (("availability",), 0x20), (("outageDuration",), 0x10),
    (("delay",), 0x08), (("delayVariation",), 0x04), (("outageDuration", "loss"), 0x50),
    (("throughput", "loss", "availability", "outageDuration", "delay", "delayVariation"), 0xFC),
    (("loss", "no-such-metric"), 0x40),
], ids=lambda value: "+".join(value) if isinstance(value, tuple) else hex(value))
def test_violations_set_bit_n_for_the_csm_metric_numbered_n_plus_1(metrics: tuple[str, ...], octet: int) -> None:
    assert same(metric_set(metrics), rfc1902.Bits(bytes([octet])))
    tree = build_tree(MibData([entry(3, "acme")], {3: measured(3, violations=metrics)}))
    assert bytes(tree.get(CONFORMANCE_ENTRY + (10, 3), ACME)) == bytes([octet])


@pytest.mark.parametrize(("changes", "column", "expected"), [
    ({"loss_ppm": 2_000_000}, 6, 1_000_000),  # Gauge32 (0..1000000)
    ({"availability_percent": Decimal("100")}, 7, 10000),
    ({"availability_percent": Decimal("99.99999")}, 7, 9999),  # rounded down: never shown above the truth
    ({"availability_percent": Decimal("0")}, 7, 0),
    ({"throughput_bps": 10**16}, 5, 4294967295),
    ({"throughput_bps": 999}, 5, 0),
    ({"sls_bandwidth_bps": 1_999_999}, 4, 1999),
    ({"interval_s": 2.6}, 2, 3),
    ({"longest_outage_s": 10**11}, 8, 4294967295),
], ids=lambda value: str(value))
def test_conformance_values_stay_within_their_syntax(changes: dict[str, Any], column: int, expected: int) -> None:
    tree = build_tree(MibData([entry(3, "acme")], {3: measured(3, **changes)}))
    assert int(tree.get(CONFORMANCE_ENTRY + (column, 3), ACME)) == expected


def test_conformance_follows_set_conformance_and_reset_of_its_data() -> None:
    data = sample_data()
    tree = build_tree(data)
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 8), ACME)) == 1
    data.set_conformance({8: measured(8, violations=("loss",))})
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 8), ACME)) == 3
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 3), ACME)) == 1  # no longer in the data: not measured
    data.reset(MibData([entry(8, "acme")], {8: measured(8)}))
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 8), ACME)) == 2


def test_a_customer_walk_of_the_conformance_table_shows_its_own_rows_only() -> None:
    tree = build_tree(sample_data())
    rows = {oid[len(CONFORMANCE_ENTRY) + 1] for oid, _ in walk(tree, GLOBEX) if oid[:len(CONFORMANCE_ENTRY)]
            == CONFORMANCE_ENTRY}
    assert rows == {7, 20}
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 7), GLOBEX)) == 3  # measured, violating
    assert int(tree.get(CONFORMANCE_ENTRY + (9, 20), GLOBEX)) == 1  # never measured


@pytest.mark.parametrize("principal", [ACME, DOMAIN_MANAGER], ids=str)
def test_the_fast_path_encodes_every_conformance_value_as_pyasn1_does(principal: Principal) -> None:
    for oid, value in walk(build_tree(sample_data()), principal):
        if oid[:len(CONFORMANCE_ENTRY)] == CONFORMANCE_ENTRY:
            assert encode_value(value) == encoder.encode(value), oid


# ------------------------------------------------------------------------------------------ parse_set

PARSE_REFUSALS: list[tuple[str, Principal, list[VarBind], tuple[str, int]]] = [
    ("sla-name-of-own-row", ACME, [(SLA_ENTRY + (2, 3), rfc1902.OctetString(b"x"))], ("notWritable", 0)),
    ("sla-name-of-foreign-row", ACME, [(SLA_ENTRY + (2, 7), rfc1902.OctetString(b"x"))], ("notWritable", 0)),
    ("sls-version-after-a-valid-pair", ACME, [class_vb(3, 1), bandwidth_vb(3, 2000),
                                              (SLS_ENTRY + (3, 3), rfc1902.Unsigned32(2))], ("notWritable", 2)),
    ("sls-unknown-column", ACME, [(SLS_ENTRY + (9, 3), rfc1902.Integer32(1))], ("notWritable", 0)),
    ("sys-name", DOMAIN_MANAGER, [(SYSTEM + (5, 0), rfc1902.OctetString(b"x"))], ("notWritable", 0)),
    ("if-index-outside-the-tree", ACME, [(IF_INDEX_1, rfc1902.Integer32(1))], ("noAccess", 0)),
    ("if-index-outside-the-tree-dm", DOMAIN_MANAGER, [(IF_INDEX_1, rfc1902.Integer32(1))], ("noAccess", 0)),
    ("foreign-row", ACME, [class_vb(7, 1), bandwidth_vb(7, 2000)], ("noAccess", 0)),
    ("foreign-row-second", ACME, [class_vb(3, 1), bandwidth_vb(7, 2000)], ("noAccess", 1)),
    ("foreign-row-read-only-column", ACME, [(SLS_ENTRY + (3, 7), rfc1902.Unsigned32(2))], ("noAccess", 0)),
    ("missing-row", ACME, [class_vb(MISSING, 1), bandwidth_vb(MISSING, 2000)], ("noAccess", 0)),
    ("extra-sub-identifiers", ACME, [(SLS_ENTRY + (1, 3, 0), rfc1902.Integer32(1))], ("noAccess", 0)),
    ("no-index", ACME, [(SLS_ENTRY + (1,), rfc1902.Integer32(1))], ("noAccess", 0)),
    ("missing-row-dm", DOMAIN_MANAGER, [class_vb(MISSING, 1), bandwidth_vb(MISSING, 2000)], ("noCreation", 0)),
    ("missing-row-dm-second", DOMAIN_MANAGER, [class_vb(7, 1), bandwidth_vb(MISSING, 2000)], ("noCreation", 1)),
    ("class-as-unsigned", ACME, [(SLS_ENTRY + (1, 3), rfc1902.Unsigned32(1)), bandwidth_vb(3, 2000)],
     ("wrongType", 0)),
    ("bandwidth-as-integer", ACME, [class_vb(3, 1), (SLS_ENTRY + (2, 3), rfc1902.Integer32(2000))],
     ("wrongType", 1)),
    ("bandwidth-as-octets", ACME, [class_vb(3, 1), (SLS_ENTRY + (2, 3), rfc1902.OctetString(b"2000"))],
     ("wrongType", 1)),
    ("bandwidth-as-counter", ACME, [class_vb(3, 1), (SLS_ENTRY + (2, 3), rfc1902.Counter32(2000))],
     ("wrongType", 1)),
    ("class-0", ACME, [class_vb(3, 0), bandwidth_vb(3, 2000)], ("wrongValue", 0)),
    ("class-4", ACME, [bandwidth_vb(3, 2000), class_vb(3, 4)], ("wrongValue", 1)),
    ("class-negative", ACME, [class_vb(3, -1), bandwidth_vb(3, 2000)], ("wrongValue", 0)),
    ("class-only", ACME, [class_vb(3, 1)], ("inconsistentValue", 0)),
    ("bandwidth-only", ACME, [bandwidth_vb(3, 2000)], ("inconsistentValue", 0)),
    ("class-twice", ACME, [class_vb(3, 1), class_vb(3, 2), bandwidth_vb(3, 2000)], ("inconsistentValue", 1)),
    ("bandwidth-twice", ACME, [bandwidth_vb(3, 2000), class_vb(3, 1), bandwidth_vb(3, 2000)],
     ("inconsistentValue", 2)),
    ("two-rows", ACME, [class_vb(3, 1), bandwidth_vb(3, 2000), class_vb(8, 1), bandwidth_vb(8, 2000)],
     ("inconsistentValue", 2)),
    ("two-rows-crossed", ACME, [class_vb(3, 1), bandwidth_vb(8, 2000)], ("inconsistentValue", 1)),
    ("two-rows-dm", DOMAIN_MANAGER, [class_vb(7, 1), bandwidth_vb(7, 2000), bandwidth_vb(3, 2000)],
     ("inconsistentValue", 2)),
    ("empty", ACME, [], ("noAccess", 0)),
]


@pytest.mark.parametrize(("principal", "varbinds", "expected"), [case[1:] for case in PARSE_REFUSALS],
                         ids=[case[0] for case in PARSE_REFUSALS])
def test_parse_set_refuses_with_status_and_index(principal: Principal, varbinds: list[VarBind],
                                                 expected: tuple[str, int]) -> None:
    refused = refusal(varbinds, principal)
    assert (refused.status, refused.index) == expected, refused.reason


# RFC 3416 4.2.5: notWritable (step 2), wrongType (3) and wrongValue (6) come before noCreation (7).
@pytest.mark.parametrize(("varbinds", "expected"), [
    ([(SLS_ENTRY + (1, MISSING), rfc1902.OctetString(b"gold"))], ("wrongType", 0)),
    ([class_vb(MISSING, 0)], ("wrongValue", 0)),
    ([(SLS_ENTRY + (3, MISSING), rfc1902.Unsigned32(2))], ("notWritable", 0)),
], ids=["wrong-type", "wrong-value", "read-only-column"])
def test_parse_set_checks_a_missing_row_of_the_domain_manager_in_rfc_order(varbinds: list[VarBind],
                                                                           expected: tuple[str, int]) -> None:
    refused = refusal(varbinds, DOMAIN_MANAGER)
    assert (refused.status, refused.index) == expected


def test_parse_set_refuses_a_foreign_row_exactly_like_a_missing_one() -> None:
    foreign = refusal([class_vb(7, 1), bandwidth_vb(7, 2000)], ACME)
    missing = refusal([class_vb(MISSING, 1), bandwidth_vb(MISSING, 2000)], ACME)
    assert (foreign.status, foreign.index) == (missing.status, missing.index) == ("noAccess", 0)
    assert foreign.reason.replace("7", "") == missing.reason.replace(str(MISSING), "")


def test_parse_set_returns_the_pair_in_bits_per_second_with_the_varbind_indexes() -> None:
    data = sample_data()
    request = parse_set([bandwidth_vb(8, 2500), class_vb(8, 1)], ACME, data, build_tree(data))
    assert request == SlsRequest(8, GOLD, 2_500_000, class_index=1, bandwidth_index=0)


def test_parse_set_lets_the_domain_manager_set_any_customers_row() -> None:
    data = sample_data()
    request = parse_set([class_vb(7, 3), bandwidth_vb(7, 4294967295)], DOMAIN_MANAGER, data, build_tree(data))
    assert request == SlsRequest(7, BRONZE, 4294967295 * 1000, class_index=0, bandwidth_index=1)


def test_parse_set_accepts_gauge32_for_the_bandwidth_as_it_has_unsigned32s_tag() -> None:
    data = sample_data()
    varbinds = [class_vb(3, 2), (SLS_ENTRY + (2, 3), rfc1902.Gauge32(1000))]
    assert parse_set(varbinds, ACME, data, build_tree(data)) == SlsRequest(3, SILVER, 1_000_000, 0, 1)


def test_tree_holds_only_oids_under_a_served_part() -> None:
    tree = build_tree(sample_data())
    assert tree.holds(SYSTEM + (5, 0))
    assert tree.holds(SLA_ENTRY + (2, MISSING))
    assert tree.holds(CONFORMANCE_ENTRY + (1, 3))
    assert not tree.holds(IF_INDEX_1)
    assert not tree.holds(CSM_MIB)
    assert not tree.holds(SLA_ENTRY[:-1])


# ------------------------------------------------------------------------------------------ apply_set

class ScriptedWriter:
    """A service layer stand-in: records the call and raises the error it was given, if any."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[Principal, int, ServiceClassName, int, Channel]] = []

    def change_sls(self, principal: Principal, ref: int, service_class: ServiceClassName, bandwidth_bps: int,
                   channel: Channel) -> Any:
        self.calls.append((principal, ref, service_class, bandwidth_bps, channel))
        if self.error is not None:
            raise self.error
        return "changed"


REQUEST = SlsRequest(3, GOLD, 2_500_000, class_index=2, bandwidth_index=1)  # distinct indexes, neither 0


def test_apply_set_calls_the_service_layer_on_the_snmp_channel() -> None:
    writer = ScriptedWriter()
    assert apply_set(REQUEST, ACME, writer) == "changed"
    assert writer.calls == [(ACME, 3, GOLD, 2_500_000, Channel.SNMP)]


APPLY_REFUSALS: list[tuple[str, Exception, Principal, tuple[str, int]]] = [
    ("out-of-bounds", OutOfBounds("above the gold maximum", field="sls.bandwidth", bound=4 * M, value=5 * M),
     ACME, ("inconsistentValue", REQUEST.bandwidth_index)),
    ("class-not-allowed", ClassNotAllowed("no bronze in this SLA"), ACME, ("inconsistentValue", REQUEST.class_index)),
    ("too-soon", TooSoon("wait", next_allowed=T0, min_interval=timedelta(minutes=5), requested_at=T0),
     ACME, ("inconsistentValue", REQUEST.bandwidth_index)),
    ("capacity-exceeded", CapacityExceeded("link full", link="edge1-core", share="gold", bound=M, value=2 * M),
     ACME, ("inconsistentValue", REQUEST.bandwidth_index)),
    ("conflict", Conflict("SLA is deinstalled"), ACME, ("inconsistentValue", REQUEST.bandwidth_index)),
    ("invalid-value", InvalidValue("no such class"), ACME, ("wrongValue", REQUEST.class_index)),
    ("not-found-customer", NotFound("no SLA 3"), ACME, ("noAccess", REQUEST.class_index)),
    ("not-found-domain-manager", NotFound("no SLA 3"), DOMAIN_MANAGER, ("noCreation", REQUEST.class_index)),
    ("store-failed", RuntimeError("database is locked"), ACME, ("commitFailed", REQUEST.bandwidth_index)),
]


@pytest.mark.parametrize(("error", "principal", "expected"), [case[1:] for case in APPLY_REFUSALS],
                         ids=[case[0] for case in APPLY_REFUSALS])
def test_apply_set_maps_the_service_layers_refusal(error: Exception, principal: Principal,
                                                   expected: tuple[str, int]) -> None:
    with pytest.raises(SetRefused) as caught:
        apply_set(REQUEST, principal, ScriptedWriter(error))
    assert (caught.value.status, caught.value.index) == expected
    assert str(error) in caught.value.reason


def test_parsed_set_reaches_the_service_layer_in_bits_per_second() -> None:
    data = sample_data()
    writer = ScriptedWriter()
    request = parse_set([class_vb(20, 2), bandwidth_vb(20, 1999)], GLOBEX, data, build_tree(data))
    apply_set(request, GLOBEX, writer)
    assert writer.calls == [(GLOBEX, 20, SILVER, 1_999_000, Channel.SNMP)]
