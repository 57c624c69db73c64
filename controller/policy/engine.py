"""The policy engine: which activities the active policies call for, and what meta-policies change.

This module owns the set of loaded policies and meta-policies with their active flags, the
matching of a happening against a policy's events and subject, and the decisions that follow. It
is pure: it calls no operation and stores nothing; the caller carries out the `Decision`s and
persists the set. The seed paper's Policy Factory Agent (create/delete/activate/deactivate) is
`load`/`remove`/`activate`/`deactivate`/`apply`; its Policy Enforcement Agent is `decide`.

Matching a happening (`Happening.context` maps entity kind -> name of the entities involved):

* a step naming an entity (`offering(gsb-economy)`) matches when `context[kind]` is that name, and
  not when the context has no entity of that kind;
* a step with no name (`customer`) only states the kind: any customer, or none involved;
* `domain` matches everything (one controller manages one domain).

A firing policy's constraint and arguments see the happening's `env` plus two names: `subject`
and `target`, each a mapping kind -> name of the resolved path (a named step's name, else the
context's). One policy's broken constraint or argument yields an `Error` for that policy and no
decisions from it; the other policies still decide.

Meta-policies (`changed`, then `apply`): a meta-policy fires on a change whose kind (added,
altered, deleted) and entity kind are its own, whose constraint holds (names: the env, then the
change's variables), and, with `ON POLICY p`, only when `variables["policy"] == p`. A change of a
policy is itself a change of entity kind `policy` with variables `{"policy": id}`: `Applied.change`
says which, so a caller can chain meta-policies by feeding it back to `changed`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from controller.policy.language import (
    ChangeKind,
    EntityPath,
    MetaPolicy,
    MetaVerb,
    Policy,
    PolicyEvalError,
    PolicySyntaxError,
    Statement,
    check_operations,
    evaluate,
    fill,
    instantiate,
)


@dataclass(frozen=True)
class Happening:
    """Something that happened in the service: an event type, the entities involved, and the names
    (event payload, facts such as `changes_today`, `usage`) constraints and arguments may use."""

    type: str
    context: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """An entity path resolved against a happening: each step's kind and name (None if unknown)."""

    kinds: tuple[str, ...]
    names: tuple[str | None, ...]

    def mapping(self) -> dict[str, str]:
        """kind -> name for the steps with a known name."""
        return {kind: name for kind, name in zip(self.kinds, self.names) if name is not None}

    def name_of(self, kind: str) -> str | None:
        return self.mapping().get(kind)

    def __str__(self) -> str:
        return ".".join(kind if name is None else f"{kind}({name})" for kind, name in zip(self.kinds, self.names))


@dataclass(frozen=True)
class Decision:
    """An activity a policy calls for: the operation, its evaluated arguments, and its target."""

    policy_id: str
    object: str
    operation: str
    args: dict[str, Any]
    target: Target


@dataclass(frozen=True)
class Error:
    """A policy or meta-policy that could not decide or be applied, and why."""

    policy_id: str
    message: str


@dataclass(frozen=True)
class MetaDecision:
    """An action a meta-policy calls for, with the policy id filled in (and, for create, the policy)."""

    meta_policy_id: str
    verb: MetaVerb
    policy_id: str
    policy: Policy | None = None


@dataclass(frozen=True)
class Applied:
    """The outcome of one meta decision. `changed` is false when it was already so (creating an
    identical policy, activating an active one); `change` is the policy change to feed back to
    `PolicyEngine.changed(change, "policy", {"policy": policy_id})` for chains, or None."""

    meta_policy_id: str
    verb: MetaVerb
    policy_id: str
    changed: bool

    @property
    def change(self) -> ChangeKind | None:
        if not self.changed:
            return None
        return {"create": "added", "delete": "deleted"}.get(self.verb, "altered")  # type: ignore[return-value]


@dataclass(frozen=True)
class Loaded:
    """A statement held by the engine, and whether it is active."""

    statement: Statement
    active: bool

    @property
    def id(self) -> str:
        return self.statement.id


class UnknownPolicyError(KeyError):
    """No policy or meta-policy has this id."""


def matches(path: EntityPath, context: Mapping[str, str]) -> bool:
    """Whether every named step of the path agrees with the happening's entities."""
    return all(step.kind == "domain" or step.name is None or context.get(step.kind) == step.name
               for step in path.steps)


def resolve(path: EntityPath, context: Mapping[str, str]) -> Target:
    """The path with each unnamed step's name taken from the context (None if not involved)."""
    return Target(tuple(step.kind for step in path.steps),
                  tuple(step.name if step.name is not None else context.get(step.kind) for step in path.steps))


class PolicyEngine:
    """Policies and meta-policies in load order, each active or not; decides, never acts.

    Args:
        operations: object -> operation names the caller can carry out (`{"charging":
            {"charge"}}`); a statement naming another is refused when loaded. None accepts any.
    """

    def __init__(self, operations: Mapping[str, Collection[str]] | None = None) -> None:
        self.operations = operations
        self._loaded: dict[str, Loaded] = {}

    # -- the set (the Policy Factory Agent's interface)

    def load(self, statements: Iterable[Statement], active: bool = True) -> None:
        """Add statements, replacing any with the same id in place (keeping its order).

        Raises:
            PolicySyntaxError: an activity names an unknown operation; nothing is loaded then.
        """
        batch = list(statements)
        for statement in batch:
            self._check(statement)
        for statement in batch:
            self._loaded[statement.id] = Loaded(statement, active)

    def remove(self, id: str) -> None:
        self._get(id)
        del self._loaded[id]

    def activate(self, id: str) -> None:
        self._loaded[id] = replace(self._get(id), active=True)

    def deactivate(self, id: str) -> None:
        self._loaded[id] = replace(self._get(id), active=False)

    def policies(self) -> list[Loaded]:
        """Everything loaded, policies and meta-policies, in load order."""
        return list(self._loaded.values())

    def get(self, id: str) -> Loaded | None:
        return self._loaded.get(id)

    def _get(self, id: str) -> Loaded:
        if id not in self._loaded:
            raise UnknownPolicyError(f"no policy or meta-policy {id!r}")
        return self._loaded[id]

    def _check(self, statement: Statement) -> None:
        if self.operations is not None:
            check_operations(statement, self.operations)

    # -- enforcement (the Policy Enforcement Agent)

    def decide(self, happening: Happening) -> list[Decision | Error]:
        """The activities every active policy reacting to this happening calls for, in load order."""
        result: list[Decision | Error] = []
        for entry in self._loaded.values():
            policy = entry.statement
            if not entry.active or not isinstance(policy, Policy):
                continue
            if happening.type in policy.events and matches(policy.subject, happening.context):
                result.extend(self._fire(policy, happening))
        return result

    def _fire(self, policy: Policy, happening: Happening) -> list[Decision | Error]:
        """One policy's decisions, all or nothing: a half-applied policy is worse than none."""
        subject = resolve(policy.subject, happening.context)
        target = resolve(policy.target, happening.context)
        env = {**happening.env, "subject": subject.mapping(), "target": target.mapping()}
        try:
            if not _holds(policy.constraint, env):
                return []
            return [Decision(policy.id, activity.object, activity.operation,
                             {name: evaluate(expr, env) for name, expr in activity.args}, target)
                    for activity in policy.activities]
        except PolicyEvalError as error:
            return [Error(policy.id, str(error.in_policy(policy.id)))]

    # -- meta-policies

    def changed(self, kind: ChangeKind, entity: str, variables: Mapping[str, str],
                env: Mapping[str, Any] | None = None) -> list[MetaDecision | Error]:
        """What the active meta-policies call for after an entity changed.

        Args:
            kind: added, altered or deleted.
            entity: the entity kind (`offering`, or `policy` for a policy change).
            variables: fill the `${name}` placeholders (`{"offering": "gsb-business"}`).
            env: further names the meta-policies' constraints may use.
        """
        result: list[MetaDecision | Error] = []
        scope = {**(env or {}), **variables}
        for entry in self._loaded.values():
            meta = entry.statement
            if not entry.active or not isinstance(meta, MetaPolicy):
                continue
            if meta.change != kind or meta.entity != entity:
                continue
            if meta.on_policy is not None and variables.get("policy") != meta.on_policy:
                continue
            result.extend(self._meta_fire(meta, variables, scope))
        return result

    def _meta_fire(self, meta: MetaPolicy, variables: Mapping[str, str],
                   scope: Mapping[str, Any]) -> list[MetaDecision | Error]:
        try:
            if not _holds(meta.constraint, scope):
                return []
            decisions = []
            for action in meta.actions:
                if action.verb == "create":
                    policy = instantiate(action, variables, source=f"<{meta.id}>")
                    decisions.append(MetaDecision(meta.id, "create", policy.id, policy))
                else:
                    decisions.append(MetaDecision(meta.id, action.verb, fill(action.policy_id, variables)))
            return decisions
        except PolicyEvalError as error:
            return [Error(meta.id, str(error.in_policy(meta.id)))]
        except PolicySyntaxError as error:
            return [Error(meta.id, f"meta-policy {meta.id}: created policy does not parse: {error}")]

    def apply(self, decisions: Iterable[MetaDecision | Error]) -> list[Applied | Error]:
        """Carry out meta decisions on this engine's own set, in order; Errors pass through.

        A create loads the policy active, replacing one with the same id only if its text
        differs; delete, activate and deactivate of an unknown id give an Error.
        """
        return [decision if isinstance(decision, Error) else self._apply(decision) for decision in decisions]

    def _apply(self, decision: MetaDecision) -> Applied | Error:
        existing = self._loaded.get(decision.policy_id)
        if decision.verb == "create":
            return self._create(decision, existing)
        if existing is None:
            return Error(decision.meta_policy_id,
                         f"meta-policy {decision.meta_policy_id}: cannot {decision.verb} policy "
                         f"{decision.policy_id!r}: there is none")
        if decision.verb == "delete":
            del self._loaded[decision.policy_id]
            return Applied(decision.meta_policy_id, "delete", decision.policy_id, True)
        active = decision.verb == "activate"
        self._loaded[decision.policy_id] = replace(existing, active=active)
        return Applied(decision.meta_policy_id, decision.verb, decision.policy_id, existing.active != active)

    def _create(self, decision: MetaDecision, existing: Loaded | None) -> Applied | Error:
        policy = decision.policy
        assert policy is not None, "a create decision carries its policy"
        if existing is not None and existing.statement.text == policy.text:
            return Applied(decision.meta_policy_id, "create", policy.id, False)
        if existing is not None and isinstance(existing.statement, MetaPolicy):
            return Error(decision.meta_policy_id, f"meta-policy {decision.meta_policy_id}: cannot create "
                                                  f"policy {policy.id!r}: a meta-policy has that id")
        try:
            self._check(policy)
        except PolicySyntaxError as error:
            return Error(decision.meta_policy_id, f"meta-policy {decision.meta_policy_id}: {error}")
        self._loaded[policy.id] = Loaded(policy, True)
        return Applied(decision.meta_policy_id, "create", policy.id, True)


def _holds(constraint: Any, env: Mapping[str, Any]) -> bool:
    """A constraint's truth; no constraint always holds, and anything but true/false is an error."""
    if constraint is None:
        return True
    value = evaluate(constraint, env)
    if not isinstance(value, bool):
        raise PolicyEvalError(f"the constraint {constraint} is not true or false but {value!r}")
    return value


__all__ = ["Applied", "Decision", "Error", "Happening", "Loaded", "MetaDecision", "PolicyEngine", "Target",
           "UnknownPolicyError", "matches", "resolve"]
