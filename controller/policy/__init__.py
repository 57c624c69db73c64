"""Accounting policies (issue 8): the policy language and the pure engine that applies it.

`language` owns the text form (grammar, parser, syntax tree, expression evaluation); `engine`
decides, for a happening in the service, which activities the active policies call for, and which
policies the meta-policies create, delete, activate or deactivate. Neither does I/O.
"""

from controller.policy.engine import (
    Applied,
    Decision,
    Error,
    Happening,
    Loaded,
    MetaDecision,
    PolicyEngine,
    Target,
    UnknownPolicyError,
    matches,
    resolve,
)
from controller.policy.language import (
    CHANGE_ENTITY_KINDS,
    ENTITY_KINDS,
    Activity,
    Binary,
    Const,
    EntityPath,
    EntityStep,
    Expr,
    ListOf,
    MetaAction,
    MetaPolicy,
    Name,
    Policy,
    PolicyEvalError,
    PolicySyntaxError,
    Position,
    Statement,
    Template,
    Unary,
    check_operations,
    evaluate,
    fill,
    instantiate,
    parse,
    parse_expression,
    parse_policy,
    render,
)

__all__ = [
    "CHANGE_ENTITY_KINDS", "ENTITY_KINDS", "Activity", "Applied", "Binary", "Const", "Decision",
    "EntityPath", "EntityStep", "Error", "Expr", "Happening", "ListOf", "Loaded", "MetaAction",
    "MetaDecision", "MetaPolicy", "Name", "Policy", "PolicyEngine", "PolicyEvalError",
    "PolicySyntaxError", "Position", "Statement", "Target", "Template", "Unary",
    "UnknownPolicyError", "check_operations", "evaluate", "fill", "instantiate", "matches", "parse",
    "parse_expression", "parse_policy", "render", "resolve",
]
