"""The policy engine: which policies a happening fires, what they decide, and what meta-policies change."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from controller.policy.engine import (
    Applied,
    Decision,
    Error,
    Happening,
    MetaDecision,
    PolicyEngine,
    Target,
    UnknownPolicyError,
)
from controller.policy.language import EntityPath, EntityStep, PolicySyntaxError, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "controller" / "policy" / "examples"
OPERATIONS = {"charging": {"charge"}, "notification": {"send"}, "billing": {"invoice"},
              "reporting": {"include", "exclude"}}
# The registry the controller loads policies with (controller.accounting.policies.OPERATIONS):
# every engine that loads a shipped example uses it.
CONTROLLER_OPERATIONS = {"charging": {"charge"}, "notification": {"send"}}


def engine(*texts: str, operations: dict[str, set[str]] = OPERATIONS) -> PolicyEngine:
    built = PolicyEngine(operations)
    for text in texts:
        built.load(parse(text, "test.pol"))
    return built


def controller_engine(*texts: str) -> PolicyEngine:
    return engine(*texts, operations=CONTROLLER_OPERATIONS)


def shipped(name: str) -> str:
    return (EXAMPLES / name).read_text()


def invoice_policy(id: str, subject: str, constraint: str = "") -> str:
    return (f"POLICY {id} FOR {subject} ON customer.invoice ON EVENT month.closed DO billing.invoice()"
            + (f" CONSTRAINT {constraint}" if constraint else "") + ";")


MONTH_CLOSED = Happening("month.closed", {"customer": "acme", "sla": "acme-hq", "offering": "gsb-business"})
SLA_CREATED = Happening("sla.created", {"customer": "acme", "sla": "premium-1", "offering": "gsb-premium"},
                        {"event": {"sla": "premium-1"}})


def fired(decisions: list[Decision | Error]) -> list[str]:
    return [d.policy_id for d in decisions if isinstance(d, Decision)]


# --- matching a happening


def test_a_named_subject_matches_only_its_own_entity() -> None:
    policies = engine(invoice_policy("business", "offering(gsb-business).sla"),
                      invoice_policy("economy", "offering(gsb-economy).sla"))
    assert fired(policies.decide(MONTH_CLOSED)) == ["business"]


def test_an_unnamed_step_states_only_the_kind() -> None:
    policies = engine(invoice_policy("any-customer", "customer"), invoice_policy("any-sla", "customer.sla"))
    assert fired(policies.decide(MONTH_CLOSED)) == ["any-customer", "any-sla"]


def test_domain_matches_every_happening() -> None:
    policies = engine(invoice_policy("everyone", "domain"))
    assert fired(policies.decide(Happening("month.closed"))) == ["everyone"]


def test_a_named_step_of_a_kind_not_involved_does_not_match() -> None:
    policies = engine(invoice_policy("gold-class", "class(gold)"), invoice_policy("any-class", "class"))
    assert fired(policies.decide(MONTH_CLOSED)) == ["any-class"]


def test_a_policy_reacts_only_to_its_events() -> None:
    policies = engine(invoice_policy("monthly", "customer"))
    assert policies.decide(Happening("sls.changed", {"customer": "acme"})) == []


def test_a_decision_targets_the_entities_of_the_happening() -> None:
    [decision] = engine(invoice_policy("monthly", "customer")).decide(MONTH_CLOSED)
    assert decision == Decision("monthly", "billing", "invoice", {}, Target(("customer", "invoice"), ("acme", None)))
    assert str(decision.target) == "customer(acme).invoice"


# --- constraints and arguments


def change(changes_today: int, principal_kind: str = "customer") -> Happening:
    return Happening("sls.changed", {"customer": "acme", "sla": "acme-hq"},
                     {"event": {"version": 7, "day": "2024-05-02", "principal_kind": principal_kind},
                      "changes_today": changes_today})


def test_the_change_fee_charges_the_fourth_change_of_a_day_and_not_the_third() -> None:
    policies = controller_engine(shipped("change-fee.pol"))
    assert policies.decide(change(3)) == []
    [decision] = policies.decide(change(4))
    assert isinstance(decision, Decision)
    assert (decision.object, decision.operation) == ("charging", "charge")
    assert decision.args == {"amount": "0.50", "text": "SLS change 7 beyond 3 on 2024-05-02"}
    assert str(decision.target) == "customer(acme).invoice"


def test_the_change_fee_spares_changes_made_by_the_domain_manager() -> None:
    assert controller_engine(shipped("change-fee.pol")).decide(change(9, principal_kind="domain-manager")) == []


def test_included_hours_notify_at_80_percent_once() -> None:
    policies = controller_engine(shipped("included-hours.pol"))

    def metering(percent: str, notified: bool) -> Happening:
        usage = {"percent_of_included": Decimal(percent), "service_class": "gold", "notified_80": notified}
        return Happening("metering.ended", {"customer": "acme", "sla": "acme-hq"}, {"usage": usage})

    assert policies.decide(metering("79.9", False)) == []
    [decision] = policies.decide(metering("80.0", False))
    assert isinstance(decision, Decision)
    assert decision.args == {"text": "You have used 80.0 % of the gold hours included this month"}
    assert policies.decide(metering("95", True)) == []


def test_constraints_see_the_resolved_subject_and_target() -> None:
    policies = engine(invoice_policy("acme-only", "customer",
                                     'target.customer == "acme" and subject.customer == "acme"'))
    assert fired(policies.decide(MONTH_CLOSED)) == ["acme-only"]
    assert policies.decide(Happening("month.closed", {"customer": "globex"})) == []


def test_a_broken_constraint_is_an_error_and_the_other_policies_still_decide() -> None:
    policies = engine(invoice_policy("broken", "customer", "usage.hours > 10"),
                      invoice_policy("fine", "customer", "1 < 2"),
                      invoice_policy("not-boolean", "customer", "1 + 2"))
    broken, decision, not_boolean = policies.decide(MONTH_CLOSED)
    assert broken == Error("broken", "policy broken: unknown name 'usage.hours'")
    assert isinstance(decision, Decision) and decision.policy_id == "fine"
    assert isinstance(not_boolean, Error) and "not true or false" in not_boolean.message


def test_a_failing_argument_gives_an_error_and_none_of_that_policys_activities() -> None:
    policies = engine("POLICY p FOR customer ON customer ON EVENT a "
                      'DO billing.invoice(), notification.send(text: "{missing}");')
    [outcome] = policies.decide(Happening("a", {"customer": "acme"}))
    assert outcome == Error("p", "policy p: unknown name 'missing'")


def test_deactivating_a_policy_stops_its_decisions_until_activated() -> None:
    policies = engine(invoice_policy("monthly", "customer"))
    policies.deactivate("monthly")
    assert policies.decide(MONTH_CLOSED) == []
    assert [(entry.id, entry.active) for entry in policies.policies()] == [("monthly", False)]
    policies.activate("monthly")
    assert fired(policies.decide(MONTH_CLOSED)) == ["monthly"]


def test_policies_loaded_inactive_do_not_decide() -> None:
    policies = PolicyEngine(OPERATIONS)
    policies.load(parse(invoice_policy("monthly", "customer")), active=False)
    assert policies.decide(MONTH_CLOSED) == []


def test_decisions_follow_load_order_and_a_reload_keeps_the_place() -> None:
    policies = engine(invoice_policy("b", "customer"), invoice_policy("a", "customer"))
    policies.load(parse(invoice_policy("b", "customer", "true")))
    assert fired(policies.decide(MONTH_CLOSED)) == ["b", "a"]


def test_loading_an_unknown_operation_is_refused_and_loads_nothing() -> None:
    policies = PolicyEngine(OPERATIONS)
    statements = parse(invoice_policy("ok", "customer") + "\n"
                       "POLICY refund FOR customer ON customer ON EVENT a DO charging.refund(amount: 1);", "p.pol")
    with pytest.raises(PolicySyntaxError, match=r"^p.pol:2:54: unknown operation charging.refund"):
        policies.load(statements)
    assert policies.policies() == []


def test_loading_a_meta_policy_checks_the_operations_of_the_policy_it_creates() -> None:
    statements = parse("META-POLICY m ON CHANGES newly added offering\n"
                       "  DO create POLICY x-${offering} FOR sla ON customer ON EVENT a DO billing.refund();", "m.pol")
    with pytest.raises(PolicySyntaxError, match=r"^m.pol:2:68: unknown operation billing.refund"):
        PolicyEngine(OPERATIONS).load(statements)


def test_removing_or_activating_an_unknown_id_is_refused() -> None:
    policies = engine()
    for act in (policies.remove, policies.activate, policies.deactivate):
        with pytest.raises(UnknownPolicyError):
            act("nothing")


# --- meta-policies


def test_an_added_offering_gets_a_charging_policy_that_then_decides() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    assert fired(policies.decide(SLA_CREATED)) == []

    decisions = policies.changed("added", "offering", {"offering": "gsb-premium"})
    [create] = decisions
    assert isinstance(create, MetaDecision)
    assert (create.meta_policy_id, create.verb, create.policy_id) == (
        "setup-fee-for-new-offerings", "create", "setup-fee-gsb-premium")
    assert create.policy is not None and str(create.policy.subject) == "offering(gsb-premium).sla"
    assert policies.apply(decisions) == [Applied("setup-fee-for-new-offerings", "create", "setup-fee-gsb-premium",
                                                 True)]

    [decision] = policies.decide(SLA_CREATED)
    assert isinstance(decision, Decision)
    assert (decision.policy_id, decision.object, decision.operation) == (
        "setup-fee-gsb-premium", "charging", "charge")
    assert decision.args == {"amount": "25.00", "text": "Set-up of premium-1 on gsb-premium"}
    assert str(decision.target) == "customer(acme).invoice"
    economy_sla = Happening("sla.created", {"customer": "acme", "sla": "economy-1", "offering": "gsb-economy"},
                            {"event": {"sla": "economy-1"}})
    assert policies.decide(economy_sla) == []


def test_a_deleted_offering_loses_its_charging_policy() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    policies.apply(policies.changed("added", "offering", {"offering": "gsb-premium"}))

    deletion = policies.changed("deleted", "offering", {"offering": "gsb-premium"})
    assert deletion == [MetaDecision("retire-setup-fee-of-deleted-offerings", "delete", "setup-fee-gsb-premium")]
    [applied] = policies.apply(deletion)
    assert isinstance(applied, Applied) and applied.change == "deleted"
    assert policies.get("setup-fee-gsb-premium") is None
    assert policies.decide(SLA_CREATED) == []


def test_creating_the_same_policy_again_changes_nothing() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    policies.apply(policies.changed("added", "offering", {"offering": "gsb-premium"}))
    policies.deactivate("setup-fee-gsb-premium")
    [again] = policies.apply(policies.changed("added", "offering", {"offering": "gsb-premium"}))
    assert again == Applied("setup-fee-for-new-offerings", "create", "setup-fee-gsb-premium", False)
    assert again.change is None
    assert policies.get("setup-fee-gsb-premium").active is False  # type: ignore[union-attr]


def test_creating_a_policy_with_different_text_replaces_it() -> None:
    policies = controller_engine("POLICY setup-fee-gsb-premium FOR customer ON customer.invoice ON EVENT sla.created "
                                 'DO charging.charge(amount: "25.00");', shipped("new-offering.pol"))
    [applied] = policies.apply(policies.changed("added", "offering", {"offering": "gsb-premium"}))
    assert isinstance(applied, Applied) and applied.changed
    assert str(policies.get("setup-fee-gsb-premium").statement.subject) == (  # type: ignore[union-attr]
        "offering(gsb-premium).sla")


def test_meta_actions_on_an_unknown_policy_are_errors_not_exceptions() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    [outcome] = policies.apply(policies.changed("deleted", "offering", {"offering": "never-added"}))
    assert isinstance(outcome, Error)
    assert outcome.policy_id == "retire-setup-fee-of-deleted-offerings"
    assert "setup-fee-never-added" in outcome.message


def test_a_meta_policy_fires_only_on_its_change_and_when_its_constraint_holds() -> None:
    policies = engine("META-POLICY m ON CHANGES newly added offering "
                      "DO create POLICY { fee-${offering} FOR offering(${offering}) ON customer ON EVENT a "
                      "DO billing.invoice() } CONSTRAINT offering != \"gsb-free\" and catalog_size < 10;")
    assert policies.changed("altered", "offering", {"offering": "gsb-gold"}) == []
    assert policies.changed("added", "customer", {"offering": "gsb-gold"}) == []
    assert policies.changed("added", "offering", {"offering": "gsb-free"}, {"catalog_size": 3}) == []
    [create] = policies.changed("added", "offering", {"offering": "gsb-gold"}, {"catalog_size": 3})
    assert isinstance(create, MetaDecision) and create.policy_id == "fee-gsb-gold"


def test_a_placeholder_the_change_does_not_fill_is_an_error_entry() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    [outcome] = policies.changed("added", "offering", {"name": "gsb-gold"})
    assert isinstance(outcome, Error)
    assert outcome.policy_id == "setup-fee-for-new-offerings"
    assert "${offering} has no value" in outcome.message


def test_a_deactivated_meta_policy_does_not_fire() -> None:
    policies = controller_engine(shipped("new-offering.pol"))
    policies.deactivate("setup-fee-for-new-offerings")
    assert policies.changed("added", "offering", {"offering": "gsb-premium"}) == []


def test_meta_policies_chain_through_policy_changes() -> None:
    # Once a set-up fee exists for gsb-premium, the included-hours notice is switched off;
    # ON POLICY names the policy whose change counts.
    policies = controller_engine(shipped("new-offering.pol"), shipped("included-hours.pol"),
                                 "META-POLICY quiet-when-invoiced ON POLICY setup-fee-gsb-premium "
                                 "ON CHANGES newly added policy DO deactivate POLICY included-hours-80-percent;")
    applied = policies.apply(policies.changed("added", "offering", {"offering": "gsb-economy"}))
    follow_up = [policies.changed(a.change, "policy", {"policy": a.policy_id})
                 for a in applied if isinstance(a, Applied) and a.change]
    assert follow_up == [[]]  # another policy's creation: ON POLICY filters it out
    assert policies.get("included-hours-80-percent").active  # type: ignore[union-attr]

    applied = policies.apply(policies.changed("added", "offering", {"offering": "gsb-premium"}))
    [created] = applied
    assert isinstance(created, Applied) and created.change == "added"
    chained = policies.apply(policies.changed(created.change, "policy", {"policy": created.policy_id}))
    assert chained == [Applied("quiet-when-invoiced", "deactivate", "included-hours-80-percent", True)]
    assert not policies.get("included-hours-80-percent").active  # type: ignore[union-attr]


def test_an_on_policy_action_without_id_acts_on_that_policy() -> None:
    policies = engine(invoice_policy("fee", "customer"),
                      "META-POLICY pause ON POLICY fee ON CHANGES existing altered policy DO deactivate POLICY;")
    [applied] = policies.apply(policies.changed("altered", "policy", {"policy": "fee"}))
    assert applied == Applied("pause", "deactivate", "fee", True)
    assert policies.decide(MONTH_CLOSED) == []


def test_entity_paths_resolve_named_and_unnamed_steps() -> None:
    from controller.policy.engine import matches, resolve

    path = EntityPath((EntityStep("offering", "gsb-business"), EntityStep("sla")))
    assert matches(path, MONTH_CLOSED.context)
    assert resolve(path, MONTH_CLOSED.context) == Target(("offering", "sla"), ("gsb-business", "acme-hq"))
    assert not matches(path, {"customer": "acme"})
