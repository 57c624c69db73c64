"""NETCONF access control (RFC 8341), generated from who owns which SLA.

NACM has no "$USER" variable, so one rule-list per peer domain names each of its SLAs by key:
its group (its logins) may read and update /csm:csm/csm:sla[csm:id='N'] of its own SLAs, and
nothing else of csm-service. Operators (the domain manager's logins) may do everything. The
rules are derived from the database at each check, so a new SLA or login needs no NACM edit, and
they are readable as /nacm by operators. The service layer checks ownership too; NACM is the
second, standard layer a peer engineer can read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
CSM_MODULE = "csm-service"
OPERATORS = "operators"
# Operations RFC 6241's module marks nacm:default-deny-all: refused unless a rule permits them.
DEFAULT_DENY_RPCS = frozenset({"kill-session", "delete-config"})
_STEP = re.compile(r"/(?:[\w.-]+:)?([\w.-]+)(?:\[(?:[\w.-]+:)?([\w.-]+)='([^']*)'\])?")


@dataclass(frozen=True)
class Rule:
    name: str
    module: str = "*"
    path: str | None = None
    rpc: str | None = None
    notification: str | None = None
    access: str = "*"          # "*" or space-separated create read update delete exec
    action: str = "permit"

    def matches(self, operation: str, module: str, node: Sequence[tuple[str, str | None]] | None,
                rpc: str | None, notification: str | None) -> bool:
        if self.module not in ("*", module):
            return False
        if self.access != "*" and operation not in self.access.split():
            return False
        if self.rpc is not None:
            return rpc is not None and self.rpc in ("*", rpc)
        if self.notification is not None:
            return notification is not None and self.notification in ("*", notification)
        if self.path is not None:
            return node is not None and _within(parse_path(self.path), node)
        return True


@dataclass(frozen=True)
class RuleList:
    name: str
    groups: tuple[str, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Nacm:
    groups: dict[str, tuple[str, ...]]    # group -> user names
    rule_lists: tuple[RuleList, ...]
    read_default: str = "permit"
    write_default: str = "deny"
    exec_default: str = "permit"
    _rules_by_user: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)

    def allowed(self, user: str, operation: str, module: str, *, node: Sequence[tuple[str, str | None]] | None = None,
                rpc: str | None = None, notification: str | None = None) -> bool:
        """RFC 8341 3.4: the first matching rule of the user's groups' rule-lists decides; else the
        defaults (and default-deny-all on the NACM data and the dangerous operations)."""
        for rule in self._rules_of(user):
            if rule.matches(operation, module, node, rpc, notification):
                return rule.action == "permit"
        if module == "ietf-netconf-acm" or (rpc is not None and rpc in DEFAULT_DENY_RPCS):
            return False
        default = self.exec_default if operation == "exec" else (
            self.read_default if operation == "read" else self.write_default)
        return default == "permit"


    def readable_slas(self, user: str, sla_ids: Iterable[int]) -> set[int]:
        """The SLAs among `sla_ids` whose /csm/sla entry `user` may read. Same answer as `allowed`
        for each, but when the user's first rule that could apply to csm-service data covers all of
        it (an operator's permit-all), that rule decides for every entry at once."""
        for rule in self._rules_of(user):
            if rule.module in ("*", CSM_MODULE) and rule.rpc is None and rule.notification is None:
                if rule.path is None and (rule.access == "*" or "read" in rule.access.split()):
                    return set(sla_ids) if rule.action == "permit" else set()
                break
        return {sla_id for sla_id in sla_ids if self.allowed(user, "read", CSM_MODULE, node=sla_node(sla_id))}

    def _rules_of(self, user: str) -> tuple[Rule, ...]:
        """The rules of the user's groups' rule-lists, in order (worked out once per user)."""
        rules = self._rules_by_user.get(user)
        if rules is None:
            mine = {group for group, users in self.groups.items() if user in users}
            rules = tuple(rule for rule_list in self.rule_lists
                          if "*" in rule_list.groups or mine & set(rule_list.groups) for rule in rule_list.rules)
            self._rules_by_user[user] = rules
        return rules


def sla_node(sla_id: int) -> list[tuple[str, str | None]]:
    return [("csm", None), ("sla", str(sla_id))]


@lru_cache(maxsize=65536)
def parse_path(path: str) -> tuple[tuple[str, str | None], ...]:
    """"/csm:csm/csm:sla[csm:id='5']" -> (("csm", None), ("sla", "5")) (one key per step at most)."""
    return tuple((match.group(1), match.group(3)) for match in _STEP.finditer(path))


def _within(rule: Sequence[tuple[str, str | None]], node: Sequence[tuple[str, str | None]]) -> bool:
    """Does the rule's path cover the node (the node is at or below it)?"""
    if len(rule) > len(node):
        return False
    return all(name == node_name and (key is None or key == node_key)
               for (name, key), (node_name, node_key) in zip(rule, node))


def generate(logins: Iterable[tuple[str, str | None]], slas: Iterable[tuple[int, str]]) -> Nacm:
    """NACM for `logins` ((user, customer or None)) over `slas` ((SLA id, customer))."""
    groups: dict[str, list[str]] = {OPERATORS: []}
    for user, customer in logins:
        groups.setdefault(OPERATORS if customer is None else f"peer-{customer}", []).append(user)
    owned: dict[str, list[int]] = {}
    for sla_id, customer in slas:
        owned.setdefault(customer, []).append(sla_id)
    rule_lists = [RuleList("operators", (OPERATORS,), (Rule("permit-all", "*", access="*"),))]
    for group in sorted(g for g in groups if g != OPERATORS):
        customer = group.removeprefix("peer-")
        rules = [Rule(f"sla-{sla_id}", CSM_MODULE, path=f"/csm:csm/csm:sla[csm:id='{sla_id}']", access="read update")
                 for sla_id in sorted(owned.get(customer, []))]
        rules += [Rule("own-sessions", "ietf-netconf", rpc="kill-session", access="exec"),  # own ones only, in code
                  Rule("no-other-slas", CSM_MODULE, path="/csm:csm/csm:sla", access="*", action="deny")]
        rule_lists.append(RuleList(group, (group,), tuple(rules)))
    return Nacm({g: tuple(users) for g, users in groups.items()}, tuple(rule_lists))


def to_xml(nacm: Nacm) -> etree._Element:
    """/nacm as ietf-netconf-acm data (read-only here: the rules follow the database)."""
    ns = f"{{{NACM}}}"
    root = etree.Element(ns + "nacm", nsmap={None: NACM})
    for name, value in (("enable-nacm", "true"), ("read-default", nacm.read_default),
                        ("write-default", nacm.write_default), ("exec-default", nacm.exec_default)):
        etree.SubElement(root, ns + name).text = value
    groups = etree.SubElement(root, ns + "groups")
    for name, users in sorted(nacm.groups.items()):
        group = etree.SubElement(groups, ns + "group")
        etree.SubElement(group, ns + "name").text = name
        for user in users:
            etree.SubElement(group, ns + "user-name").text = user
    for rule_list in nacm.rule_lists:
        listed = etree.SubElement(root, ns + "rule-list")
        etree.SubElement(listed, ns + "name").text = rule_list.name
        for group in rule_list.groups:
            etree.SubElement(listed, ns + "group").text = group
        for rule in rule_list.rules:
            entry = etree.SubElement(listed, ns + "rule")
            etree.SubElement(entry, ns + "name").text = rule.name
            etree.SubElement(entry, ns + "module-name").text = rule.module
            for leaf, value in (("rpc-name", rule.rpc), ("notification-name", rule.notification)):
                if value is not None:
                    etree.SubElement(entry, ns + leaf).text = value
            if rule.path is not None:
                path = etree.SubElement(entry, ns + "path", nsmap={"csm": "urn:csmm:yang:csm-service"})
                path.text = rule.path
            etree.SubElement(entry, ns + "access-operations").text = rule.access
            etree.SubElement(entry, ns + "action").text = rule.action
    return root
