"""The checking function, check by check: each refusal names the field, the bound and the value."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from controller.domain.catalog import ClassBounds, load_catalog
from controller.domain.checks import (Demand, LinkLoad, PrefixRegistry, admit, check_sla_terms, check_sls_change,
                                      sla_reservation, sls_demand)
from controller.domain.errors import (CapacityExceeded, ClassNotAllowed, Conflict, InvalidValue, OutOfBounds,
                                      TooSoon)
from controller.domain.principal import DOMAIN_MANAGER, Principal, Role
from controller.domain.sla import CustomerKind, LifecycleState, check_transition
from tests.unit.builders import BRONZE, GOLD, M, SILVER, T0, business_terms, lab_topology, sla, sls

ACME = Principal(Role.CUSTOMER, "acme")
BUSINESS = load_catalog().offering("gsb-business")


# ----------------------------------------------------------------------------- SLA terms

def test_sla_class_maximum_may_not_exceed_access_speed() -> None:
    terms = business_terms(access_speed=6 * M)
    with pytest.raises(OutOfBounds) as refused:
        check_sla_terms(terms, BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert refused.value.field == "bounds.silver.max"
    assert (refused.value.bound, refused.value.value) == (6 * M, 8 * M)


def test_sla_bounds_must_stay_within_the_offering() -> None:
    terms = business_terms(gold=ClassBounds(min=M, max=11 * M))
    with pytest.raises(OutOfBounds) as refused:
        check_sla_terms(terms, BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert (refused.value.field, refused.value.bound, refused.value.value) == ("bounds.gold.max", 10 * M, 11 * M)


def test_access_speed_may_not_exceed_the_interface() -> None:
    terms = business_terms(access_speed=200 * M)
    with pytest.raises(OutOfBounds) as refused:
        check_sla_terms(terms, BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert (refused.value.field, refused.value.bound) == ("attachment.access_speed", 100 * M)


def test_customers_attach_only_to_free_access_interfaces() -> None:
    with pytest.raises(InvalidValue, match="access") as refused:
        check_sla_terms(business_terms(router="egress", interface="eth3"), BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert refused.value.field == "attachment.interface"
    with pytest.raises(InvalidValue):
        check_sla_terms(business_terms(router="edge1", interface="eth1"), BUSINESS, CustomerKind.CUSTOMER, lab_topology())


def test_offering_must_suit_the_kind_of_customer() -> None:
    with pytest.raises(InvalidValue) as refused:
        check_sla_terms(business_terms(), BUSINESS, CustomerKind.PEER, lab_topology())
    assert refused.value.field == "offering"


def test_customer_prefixes_must_be_networks() -> None:
    with pytest.raises(InvalidValue) as refused:
        check_sla_terms(business_terms(prefixes=("198.19.1.7/24",)), BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert refused.value.field == "attachment.prefixes"


def test_valid_until_must_follow_valid_from() -> None:
    terms = replace(business_terms(), valid_until=T0 - timedelta(days=1))
    with pytest.raises(OutOfBounds) as refused:
        check_sla_terms(terms, BUSINESS, CustomerKind.CUSTOMER, lab_topology())
    assert refused.value.field == "valid_until"


# ----------------------------------------------------------------------------- admission

def test_reservation_counts_gold_max_and_the_larger_guaranteed_max() -> None:
    bounds = business_terms().bounds
    assert sla_reservation(bounds) == Demand(gold=4 * M, gold_silver=8 * M)
    assert sla_reservation({BRONZE: bounds[BRONZE]}) == Demand()
    assert sls_demand(GOLD, 3 * M) == Demand(3 * M, 3 * M)
    assert sls_demand(SILVER, 3 * M) == Demand(0, 3 * M)
    assert sls_demand(BRONZE, 3 * M) == Demand()


def _load(gold: int = 0, gold_silver: int = 0) -> LinkLoad:
    return LinkLoad(lab_topology().link("edge1-core"), Demand(gold, gold_silver), Demand(gold, gold_silver))


def test_admission_refuses_gold_above_thirty_percent() -> None:
    with pytest.raises(CapacityExceeded) as refused:
        admit([_load(gold=10 * M, gold_silver=10 * M)], Demand(3 * M, 3 * M), measure="in_use")
    exc = refused.value
    assert (exc.link, exc.share, exc.bound, exc.value) == ("edge1-core", "gold", 12 * M, 13 * M)
    assert exc.field == "link[edge1-core].gold"


def test_admission_refuses_gold_plus_silver_above_eighty_percent() -> None:
    with pytest.raises(CapacityExceeded) as refused:
        admit([_load(gold_silver=30 * M)], Demand(0, 3 * M), measure="in_use")
    assert (refused.value.share, refused.value.bound, refused.value.value) == ("gold+silver", 32 * M, 33 * M)


def test_admission_allows_up_to_the_share_exactly() -> None:
    admit([_load(gold=10 * M, gold_silver=10 * M)], Demand(2 * M, 2 * M), measure="in_use")


def test_overbooking_factor_scales_reservations() -> None:
    with pytest.raises(CapacityExceeded):
        admit([_load(gold=12 * M, gold_silver=12 * M)], Demand(4 * M, 4 * M), measure="reserved")
    admit([_load(gold=12 * M, gold_silver=12 * M)], Demand(4 * M, 4 * M), measure="reserved", overbooking=Decimal("1.5"))


def test_decreases_always_pass_even_on_an_overfull_link() -> None:
    admit([_load(gold=20 * M, gold_silver=40 * M)], Demand(-M, -M), measure="in_use")


# ----------------------------------------------------------------------------- SLS change

def test_sls_class_must_be_allowed_by_the_sla() -> None:
    terms = business_terms()
    narrow = replace(terms, bounds={SILVER: terms.bounds[SILVER], BRONZE: terms.bounds[BRONZE]})
    with pytest.raises(ClassNotAllowed) as refused:
        check_sls_change(sla(narrow), sls(), None, GOLD, 2 * M, ACME, T0)
    assert (refused.value.field, refused.value.value) == ("sls.class", "gold")
    assert refused.value.bound == ["bronze", "silver"]


def test_customer_cannot_exceed_sla_gold_maximum() -> None:
    with pytest.raises(OutOfBounds) as refused:
        check_sls_change(sla(), sls(), None, GOLD, 5 * M, ACME, T0)
    assert (refused.value.field, refused.value.bound, refused.value.value) == ("sls.bandwidth", 4 * M, 5 * M)
    assert "gold maximum 4 Mbit/s" in refused.value.message


def test_customer_cannot_go_below_the_class_minimum() -> None:
    with pytest.raises(OutOfBounds) as refused:
        check_sls_change(sla(), sls(), None, SILVER, 500_000, ACME, T0)
    assert (refused.value.bound, refused.value.value) == (M, 500_000)


def test_change_too_soon_says_when_the_next_is_allowed() -> None:
    last = T0 - timedelta(minutes=2)
    with pytest.raises(TooSoon) as refused:
        check_sls_change(sla(), sls(), last, GOLD, 2 * M, ACME, T0)
    assert refused.value.next_allowed == last + timedelta(minutes=5)
    assert (refused.value.field, refused.value.bound, refused.value.value) == ("sls.changed_at", last + timedelta(minutes=5), T0)
    assert "12:03:00" in refused.value.message


def test_change_after_the_interval_costs_the_fee() -> None:
    fee = check_sls_change(sla(), sls(), T0 - timedelta(minutes=5), GOLD, 2 * M, ACME, T0)
    assert fee == Decimal("0.10")


def test_domain_manager_changes_are_free_and_not_rate_limited() -> None:
    assert check_sls_change(sla(), sls(), T0, GOLD, 2 * M, DOMAIN_MANAGER, T0) == Decimal("0.00")


def test_customer_cannot_change_sls_before_installation_or_after_deinstallation() -> None:
    with pytest.raises(Conflict) as refused:
        check_sls_change(sla(state=LifecycleState.NEGOTIATED), sls(), None, GOLD, 2 * M, ACME, T0)
    assert refused.value.field == "state"
    with pytest.raises(Conflict):
        check_sls_change(sla(state=LifecycleState.DEINSTALLED), sls(), None, GOLD, 2 * M, DOMAIN_MANAGER, T0)


def test_sls_change_outside_the_sla_validity_is_refused() -> None:
    expired = replace(business_terms(), valid_until=T0)
    with pytest.raises(OutOfBounds) as refused:
        check_sls_change(sla(expired), sls(), None, GOLD, 2 * M, ACME, T0)
    assert refused.value.field == "validity"


# ----------------------------------------------------------------------------- prefixes, life cycle

def test_overlapping_customer_prefixes_are_refused() -> None:
    registry = PrefixRegistry()
    registry.add("198.19.1.0/24", "acme-hq")
    registry.add("198.19.2.0/24", "globex")
    registry.add("2001:db8::/48", "acme-hq")
    for prefix in ("198.19.1.128/25", "198.19.0.0/16", "198.19.2.7/32"):
        with pytest.raises(Conflict) as refused:
            registry.add(prefix, "initech")
        assert refused.value.field == "attachment.prefixes"
    registry.add("198.19.3.0/24", "initech")
    with pytest.raises(Conflict, match="same SLA"):
        registry.add("198.19.1.0/25", "acme-hq")


def test_life_cycle_moves_forward_only_and_ends_at_deinstalled() -> None:
    check_transition(LifecycleState.OFFERED, LifecycleState.NEGOTIATED)
    check_transition(LifecycleState.OFFERED, LifecycleState.OPERATIONAL)
    check_transition(LifecycleState.IMPLEMENTING, LifecycleState.DEINSTALLED)
    with pytest.raises(Conflict):
        check_transition(LifecycleState.OPERATIONAL, LifecycleState.IMPLEMENTING)
    with pytest.raises(Conflict):
        check_transition(LifecycleState.DEINSTALLED, LifecycleState.OPERATIONAL)
