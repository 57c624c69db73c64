"""The accounting policy language: its grammar, parser, syntax tree and expression evaluator.

This module owns the text form of accounting policies and meta-policies (the seed paper's section
5.2, "POLICY id FOR subject ON target ON EVENT events DO activities CONSTRAINT constraints"), the
frozen values a parsed statement becomes, and the safe evaluation of constraints and activity
arguments. It does no I/O and knows nothing of the service: which operations exist is a registry
the caller passes in, and which happenings a policy reacts to is the engine's business
(controller.policy.engine).

Concrete syntax
---------------
A file holds any number of statements, each ended by ``;``. ``#`` starts a comment to the end of
the line. Statement keywords are upper case (``POLICY FOR ON EVENT DO CONSTRAINT META-POLICY
CHANGES``); the words of meta-policies and expressions are lower case (``newly added existing
altered deleted create delete activate deactivate and or not in true false``). Keywords are
reserved: they cannot be used as identifiers or names::

    # A fee for each SLS change beyond 3 per day
    POLICY change-fee-beyond-3-per-day
      FOR customer
      ON customer.invoice
      ON EVENT sls.changed
      DO charging.charge(amount: "0.50", text: "SLS change {event.version} beyond 3 on {event.day}")
      CONSTRAINT event.principal_kind == "customer" and changes_today > 3;

    META-POLICY charge-new-offerings
      ON CHANGES newly added offering
      DO create POLICY monthly-charge-${offering}
           FOR offering(${offering}).sla ON customer.invoice ON EVENT month.closed
           DO billing.invoice();

* id (policy, meta-policy, event type, entity name): ``[A-Za-z_][A-Za-z0-9_.-]*``.
* subject / target: an entity path ``kind[(name)](.kind[(name)])*``; kinds are
  ``class customer domain invoice offering report sla usage``; a name is an id or a "string".
* ``ON EVENT e1, e2``: dotted event types (``sls.changed``, ``billing.ended``); any is accepted.
* ``DO``: activities ``object.operation(arg: expr, ...)`` separated by ``,``; arguments are named.
  A string literal given directly as an argument is a template: ``{dotted.name}`` is replaced by
  the name's value when the policy fires (``{{`` and ``}}`` stand for braces).
* ``CONSTRAINT`` (optional): an expression. Literals: integers and decimals (``decimal.Decimal``,
  never float), "strings" (escapes ``\\" \\\\ \\n \\t``), ``true``/``false``, list literals
  ``["a", "b"]``; dotted names (``event.version``); ``* /`` over ``+ -`` over comparisons
  ``== != < <= > >= in`` and ``not in`` (which do not chain: ``a < b < c`` is an error) over
  ``not`` over ``and`` over ``or``; parentheses. Evaluation is strict: ``and or not`` take
  booleans, comparisons two numbers or two strings, and a missing name is an error.

Meta-policies::

    META-POLICY id [ON POLICY policy-id]
      ON CHANGES (newly added | existing altered | existing deleted) entity-kind
      DO action (, action)* [CONSTRAINT expr];

with action one of ``create POLICY <policy body>``, ``create POLICY { <policy body> }``,
``delete POLICY [id]``, ``activate POLICY [id]``, ``deactivate POLICY [id]``. The entity kind may
also be ``policy``. A policy body is a POLICY statement without ``POLICY`` and without ``;``.
A created policy written without braces runs to the statement's ``;``, so it must be the last
action, and a ``CONSTRAINT`` after it is the created policy's own (it reads as part of the policy
text). To give the meta-policy itself a constraint after a created policy, brace the policy:
``create POLICY { id FOR ... DO ... } CONSTRAINT expr;``. A verb action without an id acts on
the ``ON POLICY`` id.

Inside a meta-policy's actions, ids, entity names and strings may hold ``${name}`` placeholders,
filled from the change's variables when the meta-policy fires (``instantiate``); a placeholder
anywhere else is a syntax error. Filled values must be id-like (``[A-Za-z0-9_.-]+``), so a value
cannot change the shape of the created policy.

Errors point at the offending token, or just past the last token when the input ends early.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, DecimalException, DivisionByZero, InvalidOperation, Overflow
from typing import Any, Literal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser

ENTITY_KINDS = ("class", "customer", "domain", "invoice", "offering", "report", "sla", "usage")
# What a meta-policy may watch: the entities, and policies themselves (for chains).
CHANGE_ENTITY_KINDS = tuple(sorted(ENTITY_KINDS + ("policy",)))

ChangeKind = Literal["added", "altered", "deleted"]
MetaVerb = Literal["create", "delete", "activate", "deactivate"]


# ---------------------------------------------------------------------------------------------
# Errors


class PolicySyntaxError(Exception):
    """A statement that cannot be accepted, with where it went wrong and what would have fit."""

    def __init__(self, message: str, *, source: str, line: int, column: int,
                 expected: tuple[str, ...] = (), found: str = "") -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found


class PolicyEvalError(Exception):
    """A constraint, argument or template that cannot be evaluated: a missing name, a type clash."""

    def __init__(self, message: str, *, name: str | None = None, policy_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.policy_id = policy_id

    def __str__(self) -> str:
        return f"policy {self.policy_id}: {self.message}" if self.policy_id else self.message

    def in_policy(self, policy_id: str) -> PolicyEvalError:
        """The same error, naming the policy it happened in (kept if already set)."""
        return PolicyEvalError(self.message, name=self.name, policy_id=self.policy_id or policy_id)


# ---------------------------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True)
class Position:
    """Where a statement or activity starts in its source (1-based line and column)."""

    source: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


@dataclass(frozen=True)
class EntityStep:
    """One step of an entity path: a kind, optionally naming one entity (`offering(gsb-economy)`)."""

    kind: str
    name: str | None = None

    def __str__(self) -> str:
        if self.name is None:
            return self.kind
        name = self.name if _ID_VALUE.fullmatch(self.name) else _quote(self.name)
        return f"{self.kind}({name})"


@dataclass(frozen=True)
class EntityPath:
    """A subject or target: `offering(gsb-economy).sla`."""

    steps: tuple[EntityStep, ...]

    def __str__(self) -> str:
        return ".".join(str(step) for step in self.steps)


@dataclass(frozen=True)
class Const:
    """A literal: Decimal, str or bool."""

    value: Decimal | str | bool

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return _quote(self.value)
        return str(self.value)


@dataclass(frozen=True)
class Name:
    """A dotted name looked up in the evaluation environment: `event.version`."""

    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Template:
    """A string argument whose `{dotted.name}` parts are filled in when evaluated."""

    text: str

    def __str__(self) -> str:
        return _quote(self.text)


@dataclass(frozen=True)
class ListOf:
    """A list literal, the right-hand side of `in`."""

    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(item) for item in self.items) + "]"


@dataclass(frozen=True)
class Unary:
    """`not x` or `-x`."""

    op: Literal["not", "-"]
    operand: Expr

    def __str__(self) -> str:
        return f"(not {self.operand})" if self.op == "not" else f"(-{self.operand})"


@dataclass(frozen=True)
class Binary:
    """An arithmetic, comparison or boolean operation."""

    op: str  # one of + - * / == != < <= > >= in, "not in", and, or
    left: Expr
    right: Expr

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


Expr = Const | Name | Template | ListOf | Unary | Binary


@dataclass(frozen=True)
class Activity:
    """A management activity: an operation on an object with named arguments, kept as data."""

    object: str
    operation: str
    args: tuple[tuple[str, Expr], ...]
    position: Position | None = dataclasses.field(default=None, compare=False)

    def __str__(self) -> str:
        args = ", ".join(f"{name}: {expr}" for name, expr in self.args)
        return f"{self.object}.{self.operation}({args})"


@dataclass(frozen=True)
class Policy:
    """An accounting policy; `text` is its exact source, so a store can keep what the user wrote."""

    id: str
    subject: EntityPath
    target: EntityPath
    events: tuple[str, ...]
    activities: tuple[Activity, ...]
    constraint: Expr | None
    text: str
    position: Position | None = dataclasses.field(default=None, compare=False)


@dataclass(frozen=True)
class MetaAction:
    """What a meta-policy does to a policy. For `create`, `template` is the created policy's
    source (`POLICY id FOR ...`, no `;`) with its placeholders, and `body` that source parsed,
    placeholders unfilled, so its activities can be checked when the meta-policy is loaded."""

    verb: MetaVerb
    policy_id: str
    template: str | None = None
    body: Policy | None = None


@dataclass(frozen=True)
class MetaPolicy:
    """A meta-policy: on a change of an entity, create, delete, activate or deactivate policies."""

    id: str
    on_policy: str | None
    change: ChangeKind
    entity: str
    actions: tuple[MetaAction, ...]
    constraint: Expr | None
    text: str
    position: Position | None = dataclasses.field(default=None, compare=False)


Statement = Policy | MetaPolicy


# ---------------------------------------------------------------------------------------------
# Grammar

# Terminal name -> the word a user types. Lark filters `_`-named terminals out of the tree.
_KEYWORDS = {
    "_POLICY": "POLICY", "_META_POLICY": "META-POLICY", "_FOR": "FOR", "_ON": "ON", "_EVENT": "EVENT",
    "_DO": "DO", "_CONSTRAINT": "CONSTRAINT", "_CHANGES": "CHANGES",
    "_NEWLY": "newly", "_ADDED": "added", "_EXISTING": "existing", "_ALTERED": "altered",
    "_DELETED": "deleted", "_CREATE": "create", "_DELETE": "delete", "_ACTIVATE": "activate",
    "_DEACTIVATE": "deactivate",
    "_AND": "and", "_OR": "or", "_NOT": "not", "_IN": "in", "_TRUE": "true", "_FALSE": "false",
}
_WORD_END = r"(?![A-Za-z0-9_$\-])"  # a keyword is a whole word: EVENTS is not EVENT + S
_RESERVED = "|".join(re.escape(word) for word in sorted(_KEYWORDS.values(), key=len, reverse=True))
_PLACEHOLDER = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"

_GRAMMAR = r"""
start: _statement*
expression: expr

_statement: policy | meta_policy
policy: _POLICY policy_body ";"
policy_body: ID _FOR path _ON path _ON _EVENT events _DO activities constraint?
constraint: _CONSTRAINT expr
path: step ("." step)*
step: NAME ("(" (ID | STRING) ")")?
events: ID ("," ID)*
activities: activity ("," activity)*
activity: NAME "." NAME "(" (arg ("," arg)*)? ")"
arg: NAME ":" expr

meta_policy: _META_POLICY ID on_policy? _ON _CHANGES change NAME _DO meta_actions ";"
on_policy: _ON _POLICY ID
change: _NEWLY _ADDED -> added
      | _EXISTING _ALTERED -> altered
      | _EXISTING _DELETED -> deleted
// An unbraced created policy runs to the `;`: only the last action may be one.
meta_actions: (_closed_action ",")* (_closed_action constraint? | create_open)
_closed_action: create_braced | delete | activate | deactivate
create_open: _CREATE _POLICY policy_body
create_braced: _CREATE _POLICY "{" policy_body "}"
delete: _DELETE _POLICY ID?
activate: _ACTIVATE _POLICY ID?
deactivate: _DEACTIVATE _POLICY ID?

?expr: or_test
?or_test: and_test | or_test _OR and_test -> or_
?and_test: not_test | and_test _AND not_test -> and_
?not_test: comparison | _NOT not_test -> not_
?comparison: sum
    | sum COMP_OP sum -> compare
    | sum _IN sum -> in_
    | sum _NOT _IN sum -> not_in
?sum: product | sum "+" product -> add | sum "-" product -> sub
?product: unary | product "*" unary -> mul | product "/" unary -> div
?unary: atom | "-" unary -> neg
?atom: NUMBER -> number
    | STRING -> string
    | _TRUE -> true
    | _FALSE -> false
    | dotted
    | "[" (expr ("," expr)*)? "]" -> list
    | "(" expr ")"
dotted: NAME ("." NAME)*

COMP_OP: /==|!=|<=|>=|<|>/
NUMBER: /[0-9]+(?:\.[0-9]+)?/
STRING: /"(?:[^"\\\n]|\\.)*"/
COMMENT: /#[^\n]*/
WS: /[ \t\r\n\f]+/
%ignore COMMENT
%ignore WS
"""
_GRAMMAR += "".join(f"{name}.2: /{re.escape(word)}{_WORD_END}/\n" for name, word in _KEYWORDS.items())
# Ids and names never swallow a keyword: in a state expecting a name, `delete` or `ON` is then
# reported as the keyword it is, not misread as a name.
_GRAMMAR += (
    rf"ID: /(?!(?:{_RESERVED})(?![A-Za-z0-9_$.\-]))(?:[A-Za-z_]|{_PLACEHOLDER})(?:[A-Za-z0-9_.\-]|{_PLACEHOLDER})*/"
    "\n"
    rf"NAME: /(?!(?:{_RESERVED})(?![A-Za-z0-9_]))[A-Za-z_][A-Za-z0-9_]*/"
    "\n"
)

_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True,
               start=["start", "expression"])

_ID_VALUE = re.compile(rf"(?:[A-Za-z_]|{_PLACEHOLDER})(?:[A-Za-z0-9_.\-]|{_PLACEHOLDER})*")
_FILL_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


# ---------------------------------------------------------------------------------------------
# Parsing


def parse(text: str, source: str = "<policy>",
          operations: Mapping[str, Collection[str]] | None = None) -> list[Statement]:
    """Parse a file of policies and meta-policies, in file order.

    Args:
        text: the statements.
        source: the file name used in error messages.
        operations: object -> operation names; when given, an activity naming anything else is
            refused here, at load, rather than when the policy fires.

    Raises:
        PolicySyntaxError: a syntax error, an unknown entity kind, a duplicate id, a placeholder
            outside a meta-policy's actions, an unknown operation.
    """
    tree = _parse_tree(text, source, "start")
    statements = _Builder(text, source).statements(tree)
    if operations is not None:
        for statement in statements:
            check_operations(statement, operations)
    return statements


def parse_policy(text: str, source: str = "<policy>",
                 operations: Mapping[str, Collection[str]] | None = None) -> Policy:
    """Parse text holding exactly one POLICY statement."""
    statements = parse(text, source, operations)
    if len(statements) == 1 and isinstance(statements[0], Policy):
        return statements[0]
    if not statements:
        found, where = "end of input", Position(source, 1, 1)
    else:
        extra = statements[0] if isinstance(statements[0], MetaPolicy) else statements[1]
        found = "META-POLICY" if isinstance(extra, MetaPolicy) else "a second POLICY"
        where = extra.position or Position(source, 1, 1)
    raise PolicySyntaxError(f"expected exactly one POLICY statement, found {found}", source=source,
                            line=where.line, column=where.column, expected=("'POLICY'",), found=found)


def parse_expression(text: str, source: str = "<expression>") -> Expr:
    """Parse a lone expression (a constraint without `CONSTRAINT`)."""
    tree = _parse_tree(text, source, "expression")
    return _Builder(text, source).expr(tree.children[0])


def check_operations(statement: Statement, operations: Mapping[str, Collection[str]]) -> None:
    """Refuse a statement whose activities (or created policies' activities) name an operation
    the registry does not hold, at the activity's position."""
    for activity in _activities(statement):
        if activity.operation in operations.get(activity.object, ()):
            continue
        known = tuple(f"{obj}.{op}" for obj in sorted(operations) for op in sorted(operations[obj]))
        where = activity.position or Position("<policy>", 1, 1)
        raise PolicySyntaxError(
            f"unknown operation {activity.object}.{activity.operation}; known: {', '.join(known)}",
            source=where.source, line=where.line, column=where.column, expected=known,
            found=f"{activity.object}.{activity.operation}")


def instantiate(action: MetaAction, variables: Mapping[str, str], source: str = "<meta-policy>") -> Policy:
    """The policy a `create` action makes: its template with every `${name}` filled, parsed.

    Raises:
        PolicyEvalError: a placeholder with no variable, or a value that is not id-like.
        PolicySyntaxError: the filled template does not parse (e.g. a value starting with a digit
            where an id must start with a letter).
    """
    if action.verb != "create" or action.template is None:
        raise ValueError(f"only a create action has a policy to instantiate, not {action.verb}")
    return parse_policy(fill(action.template, variables) + ";", source)


def fill(text: str, variables: Mapping[str, str]) -> str:
    """Replace every `${name}` in text by its variable, which must exist and be id-like."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables)) or "no variables"
            raise PolicyEvalError(f"placeholder ${{{name}}} has no value (the change provides {known})", name=name)
        filled = str(variables[name])
        if not _FILL_VALUE.fullmatch(filled):
            raise PolicyEvalError(f"placeholder ${{{name}}}: value {filled!r} is not id-like "
                                  "(letters, digits, _ . -)", name=name)
        return filled
    return _PLACEHOLDER_RE.sub(value, text)


def _activities(statement: Statement) -> Iterator[Activity]:
    if isinstance(statement, Policy):
        yield from statement.activities
        return
    for action in statement.actions:
        if action.body is not None:
            yield from action.body.activities


def _parse_tree(text: str, source: str, start: str) -> Tree:
    """Run the LALR parser token by token, so an error knows the token before it."""
    parser = _PARSER.parse_interactive(text, start=start)
    before: Token | None = None
    last: Token | None = None
    try:
        for token in parser.iter_parse():
            before, last = last, token
        return parser.feed_eof(last)
    except UnexpectedToken as error:
        previous = before if error.token is last else last
        raise _syntax_error(error, text, source, previous, _accepted(parser)) from None
    except UnexpectedInput as error:
        raise _syntax_error(error, text, source, last, _accepted(parser)) from None


def _accepted(parser: InteractiveParser) -> set[str]:
    """The terminals that could really come next. The LALR table's own set is wider: states shared
    by several contexts (a constraint ends with ';' in a policy, '}' in a braced one) merge their
    followers, and an error listing ')' where no '(' is open misleads."""
    try:
        return set(parser.accepts())
    except UnexpectedInput:
        return set()


# ---------------------------------------------------------------------------------------------
# Error messages

_TOKEN_NAMES = {
    "ID": "an identifier", "NAME": "a name", "NUMBER": "a number", "STRING": "a string",
    "COMP_OP": "a comparison", "$END": "end of input",
}
_BINARY_OPERATORS = {"'+'", "'*'", "'/'", "a comparison", "'and'", "'or'"}
_OPERATORS = _BINARY_OPERATORS | {"'-'", "'in'", "'not'"}
_OPERAND_STARTS = {"'('", "'-'", "'['", "'false'", "'not'", "'true'", "a name", "a number", "a string"}


def _display(terminal: str) -> str:
    """What a user would type for a lark terminal: `'EVENT'`, `','`, `an identifier`."""
    if terminal in _KEYWORDS:
        return f"'{_KEYWORDS[terminal]}'"
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    try:
        pattern = _PARSER.get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _expected(terminals: Collection[str]) -> tuple[str, ...]:
    """Readable expected set; a run of operators or of expression starts is folded into one word."""
    shown = {_display(t) for t in terminals if t not in ("WS", "COMMENT")}
    if len(shown & _BINARY_OPERATORS) >= 2:
        shown = (shown - _OPERATORS) | {"an operator"}
    if {"a name", "a number", "a string"} <= shown:
        shown = (shown - _OPERAND_STARTS) | {"an expression"}
    return tuple(sorted(shown))


def _bare(shown: str) -> str:
    """`'EVENT'` -> `EVENT` (keywords read better unquoted in a sentence); punctuation stays quoted."""
    return shown[1:-1] if len(shown) > 3 and shown[0] == "'" and shown[1:-1].replace("-", "").isalpha() else shown


def _after(previous: Token | None) -> str:
    if previous is None:
        return ""
    if previous.type in _KEYWORDS:
        return f" after {_KEYWORDS[previous.type]}"
    text = str(previous)
    return f" after {_short(text)!r}" if previous.type != "STRING" else f" after {_short(text)}"


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _syntax_error(error: UnexpectedInput, text: str, source: str, previous: Token | None,
                  accepted: set[str]) -> PolicySyntaxError:
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(error, text, source, previous, _expected(accepted or error.allowed))
    terminals = error.expected if isinstance(error, (UnexpectedToken, UnexpectedEOF)) else ()
    expected = _expected(accepted or terminals)
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        found = str(error.token)
        return _unexpected(expected, found, repr(_short(found)), source, error.line, error.column, previous)
    line, column = (previous.end_line, previous.end_column) if previous is not None else (1, 1)
    return _unexpected(expected, "end of input", "end of input", source, line, column, previous)


def _unexpected(expected: tuple[str, ...], found: str, found_shown: str, source: str,
                line: int, column: int, previous: Token | None) -> PolicySyntaxError:
    if len(expected) == 1:
        message = f"expected {_bare(expected[0])}{_after(previous)}, found {found_shown}"
    else:
        message = f"expected one of {', '.join(expected)}{_after(previous)}; found {found_shown}"
    if found in ("create", "delete", "activate", "deactivate") and "'}'" not in expected:
        message += ("; a created policy written without braces runs to the ';' and must be the last "
                    "action: write create POLICY { ... }")
    if found == "=":
        message += "; write == to compare"
    return PolicySyntaxError(message, source=source, line=line, column=column, expected=expected, found=found)


def _bad_character(error: UnexpectedCharacters, text: str, source: str, previous: Token | None,
                   expected: tuple[str, ...]) -> PolicySyntaxError:
    rest = text[error.pos_in_stream:].split("\n", 1)[0]
    if rest.startswith('"'):
        return PolicySyntaxError(f"unclosed string: expected a closing '\"' on the same line, found {_short(rest)}",
                                 source=source, line=error.line, column=error.column,
                                 expected=("'\"'",), found=rest)
    return _unexpected(expected, error.char, repr(error.char), source, error.line, error.column, previous)


# ---------------------------------------------------------------------------------------------
# Tree -> syntax tree values


class _Builder:
    """Turns lark's tree into the frozen values above, checking what the grammar cannot."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.placeholders_allowed = False  # true only inside a meta-policy's actions

    def error(self, message: str, token: Token | Tree, *, expected: tuple[str, ...] = (),
              found: str = "", offset: int = 0) -> PolicySyntaxError:
        line, column = (token.line, token.column) if isinstance(token, Token) else (token.meta.line, token.meta.column)
        return PolicySyntaxError(message, source=self.source, line=line, column=column + offset,
                                 expected=expected, found=found)

    def position(self, node: Token | Tree) -> Position:
        if isinstance(node, Token):
            return Position(self.source, node.line, node.column)
        return Position(self.source, node.meta.line, node.meta.column)

    def source_of(self, tree: Tree) -> str:
        return self.text[tree.meta.start_pos:tree.meta.end_pos]

    def statements(self, tree: Tree) -> list[Statement]:
        result: list[Statement] = []
        seen: dict[str, Token] = {}
        for node in tree.children:
            statement: Statement = self.policy(node) if node.data == "policy" else self.meta_policy(node)
            id_token = node.children[0].children[0] if node.data == "policy" else node.children[0]
            if statement.id in seen:
                first = seen[statement.id]
                raise self.error(f"duplicate id {statement.id!r} (first defined at line {first.line})",
                                 id_token, expected=("a new id",), found=statement.id)
            seen[statement.id] = id_token
            result.append(statement)
        return result

    # -- policies

    def policy(self, tree: Tree) -> Policy:
        return self.policy_body(tree.children[0], self.source_of(tree), self.position(tree))

    def policy_body(self, body: Tree, text: str, position: Position) -> Policy:
        id_token, subject, target, events, activities, *rest = body.children
        return Policy(
            id=self.identifier(id_token),
            subject=self.path(subject),
            target=self.path(target),
            events=tuple(self.identifier(event) for event in events.children),
            activities=tuple(self.activity(activity) for activity in activities.children),
            constraint=self.expr(rest[0].children[0]) if rest else None,
            text=text,
            position=position,
        )

    def identifier(self, token: Token) -> str:
        self.check_placeholders(token)
        return str(token)

    def path(self, tree: Tree, kinds: tuple[str, ...] = ENTITY_KINDS) -> EntityPath:
        return EntityPath(tuple(self.step(step, kinds) for step in tree.children))

    def step(self, tree: Tree, kinds: tuple[str, ...]) -> EntityStep:
        kind = self.kind(tree.children[0], kinds)
        if len(tree.children) == 1:
            return EntityStep(kind)
        name = tree.children[1]
        return EntityStep(kind, self.string(name) if name.type == "STRING" else self.identifier(name))

    def kind(self, token: Token, kinds: tuple[str, ...]) -> str:
        if str(token) not in kinds:
            raise self.error(f"unknown entity kind {str(token)!r}; known kinds: {', '.join(kinds)}", token,
                             expected=tuple(f"'{k}'" for k in kinds), found=str(token))
        return str(token)

    def activity(self, tree: Tree) -> Activity:
        obj, operation, *args = tree.children
        named: list[tuple[str, Expr]] = []
        for arg in args:
            name, value = arg.children
            if any(str(name) == seen for seen, _ in named):
                raise self.error(f"argument {str(name)!r} given twice", name, found=str(name))
            named.append((str(name), self.argument(value)))
        return Activity(str(obj), str(operation), tuple(named), self.position(tree))

    def argument(self, node: Tree | Token) -> Expr:
        """A string literal given as an argument is a template; anything else an expression."""
        if isinstance(node, Tree) and node.data == "string":
            token = node.children[0]
            problem = template_problem(token[1:-1])
            if problem is not None:
                offset, message = problem
                raise self.error(message, token, offset=offset + 1, found=str(token))
            return Template(self.string(token))
        return self.expr(node)

    # -- meta-policies

    def meta_policy(self, tree: Tree) -> MetaPolicy:
        id_token, *middle, change, entity, actions = tree.children
        on_policy = self.identifier(middle[0].children[0]) if middle else None
        built: list[MetaAction] = []
        constraint: Expr | None = None
        for node in actions.children:
            if node.data == "constraint":
                constraint = self.expr(node.children[0])
                continue
            self.placeholders_allowed = True
            try:
                built.append(self.meta_action(node, on_policy))
            finally:
                self.placeholders_allowed = False
        return MetaPolicy(
            id=self.identifier(id_token),
            on_policy=on_policy,
            change=str(change.data),  # type: ignore[arg-type]
            entity=self.kind(entity, CHANGE_ENTITY_KINDS),
            actions=tuple(built),
            constraint=constraint,
            text=self.source_of(tree),
            position=self.position(tree),
        )

    def meta_action(self, node: Tree, on_policy: str | None) -> MetaAction:
        if node.data in ("create_open", "create_braced"):
            body = node.children[0]
            template = "POLICY " + self.source_of(body)
            created = self.policy_body(body, template, self.position(body))
            return MetaAction("create", created.id, template, created)
        verb = str(node.data)
        if node.children:
            return MetaAction(verb, self.identifier(node.children[0]))  # type: ignore[arg-type]
        if on_policy is None:
            raise self.error(f"{verb} POLICY needs a policy id (or the meta-policy's ON POLICY)", node,
                             expected=("an identifier",), found="nothing")
        return MetaAction(verb, on_policy)  # type: ignore[arg-type]

    # -- placeholders and strings

    def check_placeholders(self, token: Token) -> None:
        if self.placeholders_allowed:
            return
        match = _PLACEHOLDER_RE.search(str(token))
        if match:
            raise self.error(f"placeholder {match.group(0)} is only allowed in a META-POLICY's actions", token,
                             offset=match.start(), found=match.group(0))

    def string(self, token: Token) -> str:
        self.check_placeholders(token)
        raw = str(token)[1:-1]
        out: list[str] = []
        index = 0
        while index < len(raw):
            char = raw[index]
            if char == "\\":
                escaped = raw[index + 1]
                if escaped not in _ESCAPES:
                    raise self.error(f"unknown escape \\{escaped} in a string (known: \\\" \\\\ \\n \\t)", token,
                                     offset=index + 1, found="\\" + escaped)
                out.append(_ESCAPES[escaped])
                index += 2
            else:
                out.append(char)
                index += 1
        return "".join(out)

    # -- expressions

    def expr(self, node: Tree) -> Expr:
        kind = str(node.data)
        if kind in _BINARY_RULES:
            left, *middle, right = node.children
            op = str(middle[0]) if kind == "compare" else _BINARY_RULES[kind]
            return Binary(op, self.expr(left), self.expr(right))
        if kind == "not_":
            return Unary("not", self.expr(node.children[0]))
        if kind == "neg":
            return Unary("-", self.expr(node.children[0]))
        if kind == "number":
            return Const(Decimal(str(node.children[0])))
        if kind == "string":
            return Const(self.string(node.children[0]))
        if kind in ("true", "false"):
            return Const(kind == "true")
        if kind == "list":
            return ListOf(tuple(self.expr(item) for item in node.children))
        if kind == "dotted":
            return Name(tuple(str(part) for part in node.children))
        raise AssertionError(f"unhandled expression node {kind}")


_BINARY_RULES = {"or_": "or", "and_": "and", "compare": "", "in_": "in", "not_in": "not in",
                 "add": "+", "sub": "-", "mul": "*", "div": "/"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# ---------------------------------------------------------------------------------------------
# Evaluation

# Decimal arithmetic in its own context, so nothing a caller does to the thread's context matters.
_DECIMAL = Context(prec=34, traps=[DivisionByZero, InvalidOperation, Overflow])
_ARITHMETIC = {"+": _DECIMAL.add, "-": _DECIMAL.subtract, "*": _DECIMAL.multiply, "/": _DECIMAL.divide}
_ORDERING = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
             ">=": lambda a, b: a >= b}
_INTERPOLATION = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The value of an expression in an environment of names; never Python's eval.

    Numbers are Decimal (ints and floats from env are converted), `and`/`or`/`not` need booleans
    and short-circuit, comparisons need two numbers or two strings.

    Raises:
        PolicyEvalError: a missing name, a value of the wrong type, a division by zero.
    """
    match expr:
        case Const(value):
            return value
        case Name(path):
            return _lookup(path, env)
        case Template(text):
            return render(text, env)
        case ListOf(items):
            return [evaluate(item, env) for item in items]
        case Unary("not", operand):
            return not _boolean(evaluate(operand, env), "not")
        case Unary("-", operand):
            return _DECIMAL.minus(_number(evaluate(operand, env), "-"))
        case Binary(op, left, right):
            return _binary(op, left, right, env)
    raise TypeError(f"not an expression: {expr!r}")


def _binary(op: str, left: Expr, right: Expr, env: Mapping[str, Any]) -> Any:
    if op in ("and", "or"):
        first = _boolean(evaluate(left, env), op)
        if first == (op == "or"):  # `true or ...`, `false and ...`: the right side is not needed
            return first
        return _boolean(evaluate(right, env), op)
    a, b = evaluate(left, env), evaluate(right, env)
    if op in ("in", "not in"):
        return _contains(b, a, op) == (op == "in")
    if op in ("==", "!="):
        _same_kind(a, b, op)
        return (a == b) == (op == "==")
    if op in _ORDERING:
        if not (_kind(a) == _kind(b) and _kind(a) in ("number", "string")):
            raise PolicyEvalError(f"cannot compare {_kind(a)} {_show(a)} {op} {_kind(b)} {_show(b)}")
        return _ORDERING[op](a, b)
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    try:
        return _ARITHMETIC[op](_number(a, op), _number(b, op))
    except DecimalException as error:
        raise PolicyEvalError(f"{_show(a)} {op} {_show(b)}: {type(error).__name__}") from None


def _lookup(path: tuple[str, ...], env: Mapping[str, Any]) -> Any:
    dotted = ".".join(path)
    if path[0] not in env:
        raise PolicyEvalError(f"unknown name {dotted!r}", name=dotted)
    value = env[path[0]]
    for depth, part in enumerate(path[1:], start=1):
        value = _field(value, part, ".".join(path[:depth]), dotted)
    if value is None:
        raise PolicyEvalError(f"name {dotted!r} has no value", name=dotted)
    return _normalise(value, dotted)


def _field(value: Any, part: str, owner: str, dotted: str) -> Any:
    """One step of a dotted name: a mapping's key or a dataclass's field, nothing else."""
    if isinstance(value, Mapping) and part in value:
        return value[part]
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and \
            part in {f.name for f in dataclasses.fields(value)}:
        return getattr(value, part)
    raise PolicyEvalError(f"unknown name {dotted!r} ({owner!r} has no {part!r})", name=dotted)


def _normalise(value: Any, dotted: str) -> Any:
    """Numbers from the environment become Decimal, so arithmetic never mixes in floats."""
    if isinstance(value, (bool, Decimal)):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyEvalError(f"name {dotted!r} is {value}, not a number", name=dotted)
        return Decimal(repr(value))
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (Decimal, int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "list"
    return type(value).__name__


def _show(value: Any) -> str:
    return _quote(value) if isinstance(value, str) else _text(value)


def _same_kind(a: Any, b: Any, op: str) -> None:
    # "3" == 3 is almost always a mistake in the data or the policy; say so rather than be false.
    if _kind(a) != _kind(b):
        raise PolicyEvalError(f"cannot compare {_kind(a)} {_show(a)} {op} {_kind(b)} {_show(b)}")


def _boolean(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyEvalError(f"'{op}' needs true or false, got {_kind(value)} {_show(value)}")
    return value


def _number(value: Any, op: str) -> Decimal:
    if _kind(value) != "number":
        raise PolicyEvalError(f"'{op}' needs numbers, got {_kind(value)} {_show(value)}")
    return value if isinstance(value, Decimal) else Decimal(value)


def _contains(container: Any, item: Any, op: str) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise PolicyEvalError(f"'{op}' a string needs a string, got {_kind(item)} {_show(item)}")
        return item in container
    if isinstance(container, (list, tuple, set, frozenset, Mapping)):
        return item in container
    raise PolicyEvalError(f"'{op}' needs a list or a string on its right, got {_kind(container)}")


def template_problem(text: str) -> tuple[int, str] | None:
    """Where a `{...}` template is malformed (offset, message), or None when it is fine."""
    for match in _INTERPOLATION.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if token in ("{", "}"):
            return match.start(), f"lone {token!r} in a template; write {token * 2!r} for a brace"
        if not _DOTTED.fullmatch(match.group(1).strip()):
            return match.start(), f"{token!r} is not a dotted name to fill in"
    return None


def render(template: str, env: Mapping[str, Any]) -> str:
    """Fill every `{dotted.name}` of a template from env; `{{` and `}}` stand for braces.

    Raises:
        PolicyEvalError: a missing name, or a malformed template.
    """
    problem = template_problem(template)
    if problem is not None:
        raise PolicyEvalError(problem[1])

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return _text(_lookup(tuple(match.group(1).strip().split(".")), env))
    return _INTERPOLATION.sub(value, template)


def _text(value: Any) -> str:
    """A value as a policy author expects to read it: 0.50 not 5E-1, true not True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)
