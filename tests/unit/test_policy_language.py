"""The accounting policy language: what parses into what, where errors point, how expressions evaluate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy.language import (
    Binary,
    Const,
    EntityPath,
    EntityStep,
    MetaPolicy,
    Name,
    Policy,
    PolicyEvalError,
    PolicySyntaxError,
    Template,
    evaluate,
    instantiate,
    parse,
    parse_expression,
    parse_policy,
    render,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "controller" / "policy" / "examples"
OPERATIONS = {"charging": {"charge"}, "notification": {"send"}, "billing": {"invoice"},
              "reporting": {"include", "exclude"}}
# The registry the controller loads policies with (controller.accounting.policies.OPERATIONS):
# the shipped examples must parse against it.
CONTROLLER_OPERATIONS = {"charging": {"charge"}, "notification": {"send"}}
SETUP_FEE_CHARGE = 'charging.charge(amount: "25.00", text: "Set-up of {event.sla} on {subject.offering}")'


def example(name: str) -> list[Policy | MetaPolicy]:
    path = EXAMPLES / name
    return parse(path.read_text(), path.name, CONTROLLER_OPERATIONS)


def policy(body: str = "", *, constraint: str = "changes_today > 3") -> str:
    return ("POLICY p FOR customer ON customer.invoice ON EVENT sls.changed "
            f"DO charging.charge(amount: \"0.50\"{body}) CONSTRAINT {constraint};")


# --- the shipped examples


def test_change_fee_example_charges_each_change_beyond_three_per_day() -> None:
    [fee] = example("change-fee.pol")
    assert isinstance(fee, Policy)
    assert fee.id == "change-fee-beyond-3-per-day"
    assert str(fee.subject) == "customer"
    assert str(fee.target) == "customer.invoice"
    assert fee.events == ("sls.changed",)
    [charge] = fee.activities
    assert (charge.object, charge.operation) == ("charging", "charge")
    assert dict(charge.args) == {
        "amount": Template("0.50"),
        "text": Template("SLS change {event.version} beyond 3 on {event.day}"),
    }
    assert fee.constraint == Binary("and", Binary("==", Name(("event", "principal_kind")), Const("customer")),
                                    Binary(">", Name(("changes_today",)), Const(Decimal(3))))


def test_included_hours_example_notifies_for_any_offering() -> None:
    [hours] = example("included-hours.pol")
    assert isinstance(hours, Policy)
    assert hours.id == "included-hours-80-percent"
    assert hours.subject == EntityPath((EntityStep("sla"),))
    assert str(hours.target) == "customer"
    assert hours.events == ("metering.ended",)
    notify = ('notification.send(text: "You have used {usage.percent_of_included} % of the '
              '{usage.service_class} hours included this month")')
    assert [str(a) for a in hours.activities] == [notify]
    assert str(hours.constraint) == "((usage.percent_of_included >= 80) and (not usage.notified_80))"


def test_new_offering_example_creates_a_setup_fee_and_retires_it() -> None:
    create, retire = example("new-offering.pol")
    assert isinstance(create, MetaPolicy) and isinstance(retire, MetaPolicy)
    assert (create.id, create.change, create.entity, create.on_policy) == ("setup-fee-for-new-offerings", "added",
                                                                           "offering", None)
    [action] = create.actions
    assert (action.verb, action.policy_id) == ("create", "setup-fee-${offering}")
    assert action.template is not None and action.template.startswith("POLICY setup-fee-${offering}\n")
    assert action.template.endswith(f"DO {SETUP_FEE_CHARGE}")
    assert (retire.id, retire.change, retire.entity) == ("retire-setup-fee-of-deleted-offerings", "deleted",
                                                         "offering")
    assert [(a.verb, a.policy_id) for a in retire.actions] == [("delete", "setup-fee-${offering}")]


def test_statement_text_is_its_exact_source() -> None:
    text = "# a comment\n" + policy() + "\n\n# trailing\n"
    [statement] = parse(text)
    assert statement.text == policy()
    assert statement.position is not None and (statement.position.line, statement.position.column) == (2, 1)


def test_entity_paths_give_back_their_source_form() -> None:
    text = ('POLICY p FOR offering(gsb-economy).sla ON customer("acme corp").invoice '
            'ON EVENT sla.violation, billing.ended DO billing.invoice();')
    statement = parse_policy(text)
    assert statement.subject == EntityPath((EntityStep("offering", "gsb-economy"), EntityStep("sla")))
    assert str(statement.subject) == "offering(gsb-economy).sla"
    assert str(statement.target) == 'customer("acme corp").invoice'
    assert statement.events == ("sla.violation", "billing.ended")
    assert statement.constraint is None


def test_instantiating_a_created_policy_fills_its_placeholders() -> None:
    [create, _] = example("new-offering.pol")
    assert isinstance(create, MetaPolicy)
    made = instantiate(create.actions[0], {"offering": "gsb-premium"})
    assert made.id == "setup-fee-gsb-premium"
    assert str(made.subject) == "offering(gsb-premium).sla"
    assert made.events == ("sla.created",)
    assert "${" not in made.text
    assert made.text.endswith(f"DO {SETUP_FEE_CHARGE};")
    assert [str(a) for a in made.activities] == [SETUP_FEE_CHARGE]
    [charge] = made.activities
    assert dict(charge.args) == {"amount": Template("25.00"),
                                 "text": Template("Set-up of {event.sla} on {subject.offering}")}


def test_instantiate_names_a_placeholder_the_change_does_not_provide() -> None:
    [create, _] = example("new-offering.pol")
    assert isinstance(create, MetaPolicy)
    with pytest.raises(PolicyEvalError, match=r"\$\{offering\} has no value .*customer") as caught:
        instantiate(create.actions[0], {"customer": "acme"})
    assert caught.value.name == "offering"


def test_instantiate_refuses_a_value_that_would_change_the_policy_shape() -> None:
    [create, _] = example("new-offering.pol")
    assert isinstance(create, MetaPolicy)
    with pytest.raises(PolicyEvalError, match="not id-like"):
        instantiate(create.actions[0], {"offering": 'x) ON EVENT y DO charging.charge(amount: "9")'})


def test_a_braced_created_policy_keeps_its_constraint_and_the_meta_policy_its_own() -> None:
    [meta] = parse('META-POLICY m ON CHANGES newly added offering '
                   'DO create POLICY { fee-${offering} FOR offering(${offering}) ON customer ON EVENT sls.changed '
                   'DO charging.charge(amount: "1", text: "${offering}") CONSTRAINT changes_today > 3 } '
                   'CONSTRAINT offering != "gsb-free";')
    assert isinstance(meta, MetaPolicy)
    assert str(meta.constraint) == '(offering != "gsb-free")'
    made = instantiate(meta.actions[0], {"offering": "gsb-gold"})
    assert str(made.constraint) == "(changes_today > 3)"
    assert dict(made.activities[0].args)["text"] == Template("gsb-gold")


def test_a_constraint_after_an_unbraced_created_policy_is_the_created_policys() -> None:
    [meta] = parse("META-POLICY m ON CHANGES newly added offering "
                   "DO create POLICY x-${offering} FOR sla ON customer ON EVENT a DO billing.invoice() "
                   "CONSTRAINT usage.hours > 1;")
    assert isinstance(meta, MetaPolicy)
    assert meta.constraint is None
    assert str(instantiate(meta.actions[0], {"offering": "o"}).constraint) == "(usage.hours > 1)"


def test_a_verb_without_an_id_acts_on_the_on_policy_id() -> None:
    [meta] = parse("META-POLICY m ON POLICY fee ON CHANGES existing altered customer "
                   "DO deactivate POLICY, activate POLICY other;")
    assert isinstance(meta, MetaPolicy)
    assert [(a.verb, a.policy_id) for a in meta.actions] == [("deactivate", "fee"), ("activate", "other")]


def test_keywords_and_names_are_case_sensitive_words() -> None:
    # `EVENTS` is an id, not EVENT + S; `notice` is a name, not `not` + ice.
    assert evaluate(parse_expression("notice and not nothing"), {"notice": True, "nothing": False}) is True
    with pytest.raises(PolicySyntaxError):
        parse("policy p FOR customer ON customer ON EVENT a DO billing.invoice();")


# --- syntax errors: where they point and what they expect


@dataclass(frozen=True)
class Mistake:
    text: str
    line: int
    column: int
    expected: tuple[str, ...]
    message: str


MISTAKES = {
    "missing semicolon": Mistake(
        policy()[:-1] + "\n", 1, 127, ("';'",), "expected ';' after '3', found end of input"),
    "missing semicolon before the next statement": Mistake(
        policy()[:-1] + "\n" + policy().replace("POLICY p", "POLICY q"), 2, 1, ("';'", "an operator"),
        "found 'POLICY'"),
    "EVENTS instead of EVENT": Mistake(
        "# fees\nPOLICY p FOR customer\nON report ON EVENTS sls.changed DO billing.invoice();", 3, 14,
        ("'EVENT'",), "expected EVENT after ON, found 'EVENTS'"),
    "unknown entity kind": Mistake(
        "POLICY p FOR customer ON customer.bill ON EVENT a DO billing.invoice();", 1, 35,
        ("'class'", "'customer'", "'domain'", "'invoice'", "'offering'", "'report'", "'sla'", "'usage'"),
        "unknown entity kind 'bill'; known kinds: class, customer, domain, invoice"),
    "unclosed string": Mistake(
        'POLICY p FOR customer ON customer ON EVENT a\n  DO charging.charge(amount: "0.50);', 2, 30,
        ("'\"'",), "unclosed string: expected a closing '\"' on the same line"),
    "placeholder outside a meta-policy": Mistake(
        "POLICY fee-${offering} FOR sla ON customer ON EVENT a DO billing.invoice();", 1, 12, (),
        "placeholder ${offering} is only allowed in a META-POLICY's actions"),
    "placeholder in a string outside a meta-policy": Mistake(
        policy(', text: "for ${offering}"'), 1, 110, (), "placeholder ${offering}"),
    "duplicate id": Mistake(
        policy() + "\n" + policy().replace("POLICY p", "POLICY  p"), 2, 9, ("a new id",),
        "duplicate id 'p' (first defined at line 1)"),
    "bad expression": Mistake(
        policy(constraint="a > "), 1, 114, ("an expression",), "expected an expression after '>', found ';'"),
    "misspelt DO": Mistake(
        "POLICY p FOR customer ON customer ON EVENT a.b DOO billing.invoice();", 1, 48, ("','", "'DO'"),
        "expected one of ',', 'DO' after 'a.b'; found 'DOO'"),
    "single = in a comparison": Mistake(
        policy(constraint="a = 1"), 1, 112, ("'.'", "';'", "an operator"), "write == to compare"),
    "unbraced created policy before another action": Mistake(
        "META-POLICY m ON CHANGES newly added offering\n"
        "  DO create POLICY x FOR sla ON customer ON EVENT a DO billing.invoice(), delete POLICY y;", 2, 75,
        ("a name",), "must be the last action: write create POLICY { ... }"),
    "delete without an id or ON POLICY": Mistake(
        "META-POLICY m ON CHANGES newly added offering DO delete POLICY;", 1, 50, ("an identifier",),
        "delete POLICY needs a policy id"),
    "keyword where a name belongs": Mistake(
        "POLICY p FOR ON customer ON EVENT a DO billing.invoice();", 1, 14, ("a name",),
        "expected a name after FOR, found 'ON'"),
    "lone brace in a template": Mistake(
        policy(', text: "total {amount"'), 1, 112, (), "lone '{' in a template"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_syntax_error_points_at_the_mistake_and_says_what_fits(name: str) -> None:
    mistake = MISTAKES[name]
    with pytest.raises(PolicySyntaxError) as caught:
        parse(mistake.text, "policies.pol")
    error = caught.value
    assert (error.line, error.column) == (mistake.line, mistake.column), str(error)
    assert error.expected == mistake.expected
    assert mistake.message in str(error)
    assert str(error).startswith(f"policies.pol:{mistake.line}:{mistake.column}: ")


def test_syntax_error_message_reads_like_the_users_input() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        parse(MISTAKES["EVENTS instead of EVENT"].text, "policies.pol")
    assert str(caught.value) == "policies.pol:3:14: expected EVENT after ON, found 'EVENTS'"
    assert (caught.value.found, caught.value.source) == ("EVENTS", "policies.pol")


def test_unknown_operation_is_refused_at_the_activity_when_a_registry_is_given() -> None:
    text = "POLICY p FOR customer ON customer ON EVENT a\n  DO billing.invoice(), charging.refund(amount: 1);"
    parse(text)  # without a registry any operation is data
    with pytest.raises(PolicySyntaxError, match=r"^x.pol:2:25: unknown operation charging.refund") as caught:
        parse(text, "x.pol", OPERATIONS)
    assert "charging.charge" in caught.value.expected


def test_parse_policy_wants_exactly_one_policy() -> None:
    with pytest.raises(PolicySyntaxError, match="exactly one POLICY"):
        parse_policy(policy() + policy().replace("POLICY p", "POLICY q"))
    with pytest.raises(PolicySyntaxError, match="exactly one POLICY"):
        parse_policy("")


# --- expressions


def value(text: str, **env: object) -> object:
    return evaluate(parse_expression(text), env)


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("7 / 2", Decimal("3.5")),
    ("-2 * -3", 6),
    ("1 + 1 == 2 and not 3 < 2", True),
    ("false and true or true", True),
    ("false and (true or true)", False),
    ('"abc" < "abd"', True),
    ('"gold" in ["gold", "silver"]', True),
    ('"bronze" not in ["gold", "silver"]', True),
    ('"old" in "gold"', True),
])
def test_expression_precedence_and_operators(text: str, expected: object) -> None:
    assert value(text) == expected


def test_decimal_arithmetic_is_exact() -> None:
    assert value("0.1 + 0.2 == 0.3") is True
    assert value("0.1 + 0.2") == Decimal("0.3")
    assert isinstance(value("price * 3", price=0.1), Decimal)  # floats from the environment too
    assert value("price * 3", price=0.1) == Decimal("0.3")


def test_names_reach_into_mappings_and_dataclasses() -> None:
    @dataclass(frozen=True)
    class Usage:
        percent_of_included: int

    assert value("usage.percent_of_included >= 80 and event.kind == \"x\"",
                 usage=Usage(81), event={"kind": "x"}) is True


def test_a_missing_name_is_an_evaluation_error_naming_it() -> None:
    with pytest.raises(PolicyEvalError, match="unknown name 'event.version'") as caught:
        value("event.version > 1", event={"day": "2024-05-01"})
    assert caught.value.name == "event.version"
    assert "policy fee: " in str(caught.value.in_policy("fee"))


@pytest.mark.parametrize("text, message", [
    ('1 < "2"', "cannot compare number 1 < string"),
    ('1 == "1"', "cannot compare number"),
    ("1 and true", "'and' needs true or false"),
    ('"a" - "b"', "'-' needs numbers"),
    ("1 / 0", "DivisionByZero"),
    ("x.__class__", "unknown name 'x.__class__'"),
])
def test_type_errors_are_evaluation_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyEvalError, match=message):
        value(text, x="s")


def test_and_or_do_not_evaluate_what_they_do_not_need() -> None:
    assert value("false and missing > 1") is False
    assert value("true or missing > 1") is True


def test_render_fills_dotted_names_and_keeps_doubled_braces() -> None:
    env = {"event": {"version": 4, "day": "2024-05-01"}, "amount": Decimal("0.50"), "flag": True}
    assert render("change {event.version} on {event.day}: {amount} {{EUR}} {flag}", env) == \
        "change 4 on 2024-05-01: 0.50 {EUR} true"
    with pytest.raises(PolicyEvalError, match="unknown name 'event.missing'"):
        render("{event.missing}", env)


small_numbers = st.integers(min_value=0, max_value=30).map(str)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(" ".join)
    negated = children.map(lambda text: "-" + text)
    return st.tuples(st.one_of(binary, negated), st.booleans()).map(
        lambda pair: f"({pair[0]})" if pair[1] else pair[0])


arithmetic = st.recursive(small_numbers, _combine, max_leaves=8)
expressions = st.one_of(
    arithmetic,
    st.tuples(arithmetic, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), arithmetic).map(" ".join),
)


@settings(max_examples=150, deadline=None)
@given(expressions)
def test_integer_expressions_evaluate_as_python_does(text: str) -> None:
    assert evaluate(parse_expression(text), {}) == eval(text, {"__builtins__": {}}, {})


def test_comparisons_do_not_chain() -> None:
    with pytest.raises(PolicySyntaxError, match="found '<'") as caught:
        parse_expression("1 < 2 < 3")
    assert (caught.value.line, caught.value.column) == (1, 7)
