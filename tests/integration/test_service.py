"""The service layer decides who may do what, refuses bad changes without side effects, and
records every accepted SLS change in the append-only history."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from controller.domain.catalog import ClassBounds, ServiceClassName
from controller.domain.errors import (CapacityExceeded, ClassNotAllowed, Conflict, Forbidden, InvalidValue, NotFound,
                                      OutOfBounds, TooSoon)
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.service.events import Event
from controller.service.layer import ServiceLayer, SlaSpec
from tests.conftest import Clock

M = 1_000_000
ACME = Principal(Role.CUSTOMER, "acme")
GLOBEX = Principal(Role.CUSTOMER, "globex")
PEER = Principal(Role.PEER, "as64500")
GOLD, SILVER, BRONZE = ServiceClassName.GOLD, ServiceClassName.SILVER, ServiceClassName.BRONZE


def snapshot(service: ServiceLayer) -> tuple:
    """Everything an SLS change may touch: SLSs, histories, link loads, events."""
    sls = [(s.name, v) for s, v in service.list_sls(DOMAIN_MANAGER)]
    history = [service.sls_history(DOMAIN_MANAGER, s.name) for s in service.list_slas(DOMAIN_MANAGER)]
    return sls, history, service.link_loads(DOMAIN_MANAGER), len(service.recent_events(DOMAIN_MANAGER, 10_000))


# ----------------------------------------------------------------------------- isolation

def test_customer_sees_only_its_own_customer_sla_and_sls(demo: ServiceLayer) -> None:
    assert [c.name for c in demo.list_customers(ACME)] == ["acme"]
    assert [s.name for s in demo.list_slas(ACME)] == ["acme-hq"]
    assert [s.name for s, _ in demo.list_sls(ACME)] == ["acme-hq"]
    assert demo.list_slas(ACME, customer="globex") == []


def test_the_light_listings_show_each_principal_what_list_sls_shows(demo: ServiceLayer) -> None:
    impostor = Principal(Role.CUSTOMER, "as64500")
    for principal in (DOMAIN_MANAGER, ACME, GLOBEX, PEER, impostor):
        full = demo.list_sls(principal)
        assert demo.sls_settings(principal) == [(sls.sla_id, sls.service_class, sls.bandwidth_bps) for _, sls in full]
        assert demo.sla_owners(principal) == {sla.id: sla.customer for sla, _ in full}
    assert len(demo.sls_settings(DOMAIN_MANAGER)) == len(demo.list_slas(DOMAIN_MANAGER)) > 1


@pytest.mark.parametrize("read", [
    lambda s, p: s.get_sla(p, "globex-main"),
    lambda s, p: s.get_sls(p, "globex-main"),
    lambda s, p: s.sls_history(p, "globex-main"),
    lambda s, p: s.next_change_allowed(p, "globex-main"),
    lambda s, p: s.state_history(p, "globex-main"),
    lambda s, p: s.get_customer(p, "globex"),
])
def test_customer_cannot_read_another_customers_objects(demo: ServiceLayer, read) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        read(demo, ACME)


def test_another_customers_sla_looks_exactly_like_a_missing_one(demo: ServiceLayer) -> None:
    globex_id = demo.get_sla(DOMAIN_MANAGER, "globex-main").id
    with pytest.raises(NotFound) as theirs:
        demo.get_sla(ACME, globex_id)
    with pytest.raises(NotFound) as missing:
        demo.get_sla(ACME, 99_999)
    assert type(theirs.value) is type(missing.value) and theirs.value.field == missing.value.field


def test_customer_cannot_change_another_customers_sls(demo: ServiceLayer) -> None:
    before = snapshot(demo)
    with pytest.raises(NotFound):
        demo.change_sls(ACME, "globex-main", "silver", 2 * M, Channel.CLI)
    assert snapshot(demo) == before


def test_customer_principal_cannot_reach_a_peer_domain_of_the_same_name_space(demo: ServiceLayer) -> None:
    assert [s.name for s in demo.list_slas(PEER)] == ["as64500-transit"]
    impostor = Principal(Role.CUSTOMER, "as64500")
    assert demo.list_slas(impostor) == [] and demo.list_sls(impostor) == [] and demo.list_customers(impostor) == []
    with pytest.raises(NotFound):
        demo.get_customer(impostor, "as64500")
    with pytest.raises(NotFound):
        demo.get_sla(impostor, "as64500-transit")
    with pytest.raises(NotFound):
        demo.get_sla(PEER, "acme-hq")


@pytest.mark.parametrize("action", [
    lambda s, p: s.add_customer(p, "mallory", CustomerKind.CUSTOMER),
    lambda s, p: s.set_sla_state(p, "acme-hq", LifecycleState.DEINSTALLED),
    lambda s, p: s.topology(p),
    lambda s, p: s.link_loads(p),
    lambda s, p: s.recent_events(p),
    lambda s, p: s.audit(p),
])
def test_customers_may_not_manage_slas_or_see_the_network(demo: ServiceLayer, action) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Forbidden):
        action(demo, ACME)


def test_customer_cannot_create_or_modify_an_sla(demo: ServiceLayer) -> None:
    sla = demo.get_sla(DOMAIN_MANAGER, "acme-hq")
    spec = SlaSpec(name="acme-hq", customer="acme", offering="gsb-business", attachment=sla.terms.attachment)
    with pytest.raises(Forbidden):
        demo.modify_sla(ACME, "acme-hq", spec)
    with pytest.raises(Forbidden):
        demo.create_sla(ACME, replace(spec, name="acme-2"))


# ----------------------------------------------------------------------------- SLS changes

def test_customer_changes_its_sls_and_the_history_records_it(demo: ServiceLayer, clock: Clock) -> None:
    result = demo.change_sls(ACME, "acme-hq", "gold", 3 * M, Channel.WEB)
    assert result.changed and result.fee == Decimal("0.10")
    assert (result.sls.service_class, result.sls.bandwidth_bps, result.sls.version) == (GOLD, 3 * M, 2)
    last = demo.sls_history(ACME, "acme-hq")[-1]
    assert (last.version, last.service_class, last.principal, last.channel, last.fee) == (
        2, GOLD, "customer:acme", Channel.WEB, Decimal("0.10"))
    assert last.effective_from == clock.now


@pytest.mark.parametrize("service_class, bandwidth, error, field", [
    ("gold", 4 * M, OutOfBounds, "sls.bandwidth"),
    ("silver", 500_000, OutOfBounds, "sls.bandwidth"),
    ("platinum", 1 * M, Exception, "sls.class"),
])
def test_refused_sls_change_changes_nothing(demo: ServiceLayer, service_class: str, bandwidth: int,
                                            error: type, field: str) -> None:
    before = snapshot(demo)
    with pytest.raises(error) as refused:
        demo.change_sls(ACME, "acme-hq", service_class, bandwidth, Channel.CLI)
    assert refused.value.field == field
    assert snapshot(demo) == before


def test_change_too_soon_is_refused_and_says_when(demo: ServiceLayer, clock: Clock) -> None:
    demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.CLI)
    first = clock.now
    clock.advance(minutes=4)
    before = snapshot(demo)
    with pytest.raises(TooSoon) as refused:
        demo.change_sls(ACME, "acme-hq", "silver", 2 * M, Channel.CLI)
    assert refused.value.next_allowed == first + timedelta(minutes=5)
    assert demo.next_change_allowed(ACME, "acme-hq") == first + timedelta(minutes=5)
    assert snapshot(demo) == before
    clock.advance(minutes=1)
    assert demo.change_sls(ACME, "acme-hq", "silver", 2 * M, Channel.CLI).changed
    assert demo.next_change_allowed(ACME, "acme-hq") == clock.now + timedelta(minutes=5)


def test_change_over_a_link_share_is_refused_naming_link_bound_and_value(demo: ServiceLayer, clock: Clock) -> None:
    # Overbook on purpose: SLA reservations may exceed the share (factor 3), SLSs in effect may not.
    overbooked = ServiceLayer(demo.database, demo.catalog, overbooking=Decimal(3), clock=clock)
    attachment = Attachment("edge1", "eth2", 20 * M, ("198.19.9.0/24",))
    for name in ("big1", "big2"):
        overbooked.add_customer(DOMAIN_MANAGER, name, CustomerKind.CUSTOMER)
    big = {GOLD: ClassBounds(min=M, max=10 * M), SILVER: ClassBounds(min=M, max=20 * M)}
    for index, name in enumerate(("big1", "big2")):
        overbooked.create_sla(DOMAIN_MANAGER, SlaSpec(
            name=name, customer=name, offering="gsb-business", bounds=big, state=LifecycleState.OPERATIONAL,
            attachment=replace(attachment, prefixes=(f"198.19.{20 + index}.0/24",)),
            initial_class=SILVER, initial_bandwidth_bps=M))
    big1 = Principal(Role.CUSTOMER, "big1")
    overbooked.change_sls(big1, "big1", "gold", 10 * M, Channel.CLI)  # edge1-core gold: 2 (globex) + 10 = 12 = limit
    before = snapshot(overbooked)
    with pytest.raises(CapacityExceeded) as refused:
        overbooked.change_sls(Principal(Role.CUSTOMER, "big2"), "big2", "gold", 1 * M, Channel.CLI)
    assert (refused.value.link, refused.value.share, refused.value.bound, refused.value.value) == (
        "core-egress", "gold", 12 * M, 13 * M)
    assert snapshot(overbooked) == before


def test_same_sls_again_is_accepted_without_a_new_version_or_fee(demo: ServiceLayer) -> None:
    result = demo.change_sls(ACME, "acme-hq", "silver", 5 * M, Channel.CLI)
    assert not result.changed and result.fee == 0 and result.sls.version == 1
    assert len(demo.sls_history(ACME, "acme-hq")) == 1


def test_expected_version_prevents_lost_updates(demo: ServiceLayer) -> None:
    demo.change_sls(DOMAIN_MANAGER, "acme-hq", "gold", 2 * M, Channel.CLI, expected_version=1)
    with pytest.raises(Conflict) as refused:
        demo.change_sls(DOMAIN_MANAGER, "acme-hq", "gold", 3 * M, Channel.CLI, expected_version=1)
    assert (refused.value.field, refused.value.bound, refused.value.value) == ("sls.version", 2, 1)


def test_a_batch_change_keeps_what_it_leaves_out(demo: ServiceLayer) -> None:
    """None keeps the class or bandwidth in effect, read in the change's own transaction (a NETCONF
    merge of one leaf)."""
    [changed] = demo.change_sls_batch(ACME, [("acme-hq", None, 6 * M)], Channel.NETCONF)
    assert (changed.sls.service_class, changed.sls.bandwidth_bps, changed.sls.version) == (SILVER, 6 * M, 2)
    with pytest.raises(OutOfBounds):  # the kept 6 Mbit/s is judged against gold's bounds
        demo.change_sls_batch(DOMAIN_MANAGER, [("acme-hq", "gold", None)], Channel.NETCONF)
    demo.change_sls_batch(DOMAIN_MANAGER, [("acme-hq", None, 2 * M)], Channel.NETCONF)
    [changed] = demo.change_sls_batch(DOMAIN_MANAGER, [("acme-hq", "gold", None)], Channel.NETCONF)
    assert (changed.sls.service_class, changed.sls.bandwidth_bps) == (GOLD, 2 * M)
    assert [(h.service_class, h.bandwidth_bps) for h in demo.sls_history(ACME, "acme-hq")][1:] == [
        (SILVER, 6 * M), (SILVER, 2 * M), (GOLD, 2 * M)]
    [same] = demo.change_sls_batch(DOMAIN_MANAGER, [("acme-hq", None, None)], Channel.NETCONF)
    assert not same.changed and same.sls.version == 4


def test_peer_domain_changes_its_own_sls(demo: ServiceLayer) -> None:
    result = demo.change_sls(PEER, "as64500-transit", "gold", 2 * M, Channel.NETCONF)
    assert result.sls.channel == Channel.NETCONF and result.fee == Decimal("0.00")


def test_sls_changes_update_link_loads_and_deinstallation_releases_them(demo: ServiceLayer) -> None:
    def core_egress():  # type: ignore[no-untyped-def]
        return next(l for l in demo.link_loads(DOMAIN_MANAGER) if l.link.name == "core-egress")
    before = core_egress()
    demo.change_sls(ACME, "acme-hq", "gold", 3 * M, Channel.CLI)  # silver 5M -> gold 3M
    after = core_egress()
    assert after.in_use.gold - before.in_use.gold == 3 * M
    assert after.in_use.gold_silver - before.in_use.gold_silver == -2 * M
    demo.set_sla_state(DOMAIN_MANAGER, "acme-hq", LifecycleState.DEINSTALLED, "contract ended")
    gone = core_egress()
    assert gone.in_use.gold == after.in_use.gold - 3 * M
    assert gone.reserved.gold == after.reserved.gold - 3 * M
    with pytest.raises(Conflict):
        demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.CLI)
    assert demo.audit(DOMAIN_MANAGER) == []


# ----------------------------------------------------------------------------- SLAs

def _spec(name: str = "acme-2", **changes) -> SlaSpec:  # type: ignore[no-untyped-def]
    base = SlaSpec(name=name, customer="acme", offering="gsb-business",
                   attachment=Attachment("edge1", "eth2", 20 * M, ("198.19.50.0/24",)),
                   bounds={GOLD: ClassBounds(min=M, max=2 * M), SILVER: ClassBounds(min=M, max=4 * M)},
                   state=LifecycleState.OPERATIONAL)
    return replace(base, **changes)


def test_domain_manager_creates_an_sla_with_the_offering_defaults(demo: ServiceLayer, clock: Clock) -> None:
    demo = ServiceLayer(demo.database, demo.catalog, overbooking=Decimal(3), clock=clock)  # room for 10M of gold
    sla = demo.create_sla(DOMAIN_MANAGER, _spec(bounds=None))
    assert sla.terms.bounds[GOLD] == ClassBounds(min=M, max=10 * M)
    assert sla.terms.bounds[BRONZE].max == 20 * M  # the offering's 50M, capped at the access speed
    assert sla.terms.change_policy == demo.catalog.offering("gsb-business").change_policy
    sls = demo.get_sls(ACME, "acme-2")
    assert (sls.service_class, sls.bandwidth_bps) == (SILVER, 20 * M)  # default class at its maximum
    assert [s.name for s in demo.list_slas(ACME)] == ["acme-hq", "acme-2"]


def test_sla_admission_refuses_reservations_above_a_link_share(demo: ServiceLayer) -> None:
    before = snapshot(demo)
    with pytest.raises(CapacityExceeded) as refused:
        demo.create_sla(DOMAIN_MANAGER, _spec(bounds={GOLD: ClassBounds(min=M, max=10 * M), SILVER: ClassBounds(min=M, max=4 * M)}))
    assert refused.value.share == "gold" and refused.value.bound == 12 * M
    assert snapshot(demo) == before
    assert [s.name for s in demo.list_slas(DOMAIN_MANAGER, "acme")] == ["acme-hq"]


def test_sla_with_overlapping_prefixes_is_refused(demo: ServiceLayer) -> None:
    with pytest.raises(Conflict) as refused:
        demo.create_sla(DOMAIN_MANAGER, _spec(attachment=Attachment("edge1", "eth2", 20 * M, ("198.19.1.128/25",))))
    assert refused.value.bound == "acme-hq"


def test_sla_for_a_missing_customer_or_offering_is_refused(demo: ServiceLayer) -> None:
    with pytest.raises(NotFound):
        demo.create_sla(DOMAIN_MANAGER, _spec(customer="nobody"))
    with pytest.raises(NotFound):
        demo.create_sla(DOMAIN_MANAGER, _spec(offering="gsb-gold-plated"))
    with pytest.raises(ClassNotAllowed):
        demo.create_sla(DOMAIN_MANAGER, _spec(offering="gsb-economy", bounds={GOLD: ClassBounds(min=M, max=2 * M)},
                                              initial_class=SILVER))


def test_modifying_an_sla_below_the_sls_in_effect_is_refused(demo: ServiceLayer) -> None:
    sla = demo.get_sla(DOMAIN_MANAGER, "acme-hq")  # SLS: silver 5M
    tighter = SlaSpec(name="acme-hq", customer="acme", offering="gsb-business", attachment=sla.terms.attachment,
                      bounds={**sla.terms.bounds, SILVER: ClassBounds(min=M, max=4 * M)}, state=sla.state)
    with pytest.raises(Conflict) as refused:
        demo.modify_sla(DOMAIN_MANAGER, "acme-hq", tighter)
    assert refused.value.field == "bounds.silver"
    assert demo.get_sla(DOMAIN_MANAGER, "acme-hq") == sla


def test_modifying_an_sla_keeps_its_tariff_and_records_an_event(demo: ServiceLayer) -> None:
    sla = demo.get_sla(DOMAIN_MANAGER, "acme-hq")
    wider = SlaSpec(name="acme-hq", customer="acme", offering="gsb-business",
                    attachment=replace(sla.terms.attachment, prefixes=("198.19.1.0/24", "198.19.11.0/24")),
                    bounds=sla.terms.bounds, state=sla.state)
    changed = demo.modify_sla(DOMAIN_MANAGER, "acme-hq", wider)
    assert changed.terms.attachment.prefixes == ("198.19.1.0/24", "198.19.11.0/24")
    assert changed.terms.tariff == sla.terms.tariff
    event = demo.recent_events(DOMAIN_MANAGER, 1)[0]
    assert (event.type, event.subject, event.payload["fields"]) == ("sla.changed", "sla:acme-hq", ["prefixes"])


def test_life_cycle_changes_are_recorded(demo: ServiceLayer) -> None:
    demo.add_customer(DOMAIN_MANAGER, "hooli", CustomerKind.CUSTOMER)
    demo.create_sla(DOMAIN_MANAGER, _spec(name="hooli-1", customer="hooli", state=LifecycleState.OFFERED))
    for state in (LifecycleState.NEGOTIATED, LifecycleState.IMPLEMENTING, LifecycleState.INSTALLED_TESTED,
                  LifecycleState.OPERATIONAL):
        demo.set_sla_state(DOMAIN_MANAGER, "hooli-1", state)
    with pytest.raises(Conflict):
        demo.set_sla_state(DOMAIN_MANAGER, "hooli-1", LifecycleState.NEGOTIATED)
    steps = [(before, after) for _, before, after, _, _ in demo.state_history(DOMAIN_MANAGER, "hooli-1")]
    assert steps == [(None, "offered"), ("offered", "negotiated"), ("negotiated", "implementing"),
                     ("implementing", "installed-tested"), ("installed-tested", "operational")]


def test_events_are_published_after_commit_and_stored(demo: ServiceLayer) -> None:
    seen: list[Event] = []
    demo.bus.subscribe("sls.", seen.append)
    demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.SNMP)
    with pytest.raises(OutOfBounds):
        demo.change_sls(ACME, "acme-hq", "gold", 9 * M, Channel.SNMP)
    assert [(e.type, e.subject, e.payload["version"]) for e in seen] == [("sls.changed", "sla:acme-hq", 2)]
    stored = demo.recent_events(DOMAIN_MANAGER, 1)[0]
    assert (stored.type, stored.principal, stored.payload["channel"]) == ("sls.changed", "customer:acme", "snmp")


def test_a_failing_subscriber_does_not_undo_the_change(demo: ServiceLayer) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("subscriber bug")
    demo.bus.subscribe("", broken)
    assert demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.CLI).changed
    assert demo.get_sls(ACME, "acme-hq").service_class == GOLD


def test_audit_finds_nothing_wrong_after_the_demo(demo: ServiceLayer) -> None:
    assert demo.audit(DOMAIN_MANAGER) == []


# ----------------------------------------------------------------------------- regressions (review)

def test_asking_again_for_the_sls_in_effect_is_accepted_even_within_the_interval(demo: ServiceLayer, clock: Clock) -> None:
    demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.REST)
    clock.advance(seconds=10)
    retry = demo.change_sls(ACME, "acme-hq", "gold", 2 * M, Channel.REST)  # the answer was lost; the client retries
    assert not retry.changed and retry.sls.version == 2


def test_sla_creation_records_the_channel_it_came_through(demo: ServiceLayer) -> None:
    demo.create_sla(DOMAIN_MANAGER, _spec(), Channel.REST)
    assert demo.sls_history(DOMAIN_MANAGER, "acme-2")[0].channel == Channel.REST


def test_modify_sla_cannot_rename_or_reach_another_sla(demo: ServiceLayer) -> None:
    sla = demo.get_sla(DOMAIN_MANAGER, "acme-hq")
    spec = SlaSpec(name="globex-main", customer="acme", offering="gsb-business", attachment=sla.terms.attachment,
                   bounds=sla.terms.bounds, state=sla.state)
    with pytest.raises(Conflict) as refused:
        demo.modify_sla(DOMAIN_MANAGER, "acme-hq", spec)
    assert (refused.value.field, refused.value.bound, refused.value.value) == ("name", "acme-hq", "globex-main")


def test_names_must_start_with_a_letter(demo: ServiceLayer) -> None:
    with pytest.raises(InvalidValue) as refused:
        demo.add_customer(DOMAIN_MANAGER, "42", CustomerKind.CUSTOMER)
    assert refused.value.field == "customer.name"
    with pytest.raises(InvalidValue):
        demo.create_sla(DOMAIN_MANAGER, _spec(name="7"))
