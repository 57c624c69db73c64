"""The agent's nftables driver without a kernel: rendering, element diffs, and parsing a listing
the real kernel produced, checked against a fake nftables table (the FAUCET way) that refuses
what nft 1.0.6 refuses and lists back the way it does."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.driver.nft import (
    TABLE,
    NftError,
    NftState,
    device_name,
    element_commands,
    full_commands,
    parse_table,
    safe_name,
)
from agent.plan import NftPlan

EDGE = NftPlan(remarks={"198.19.1.0/24": 34, "198.19.2.0/24": 46, "198.19.3.7/32": 46}, default_dscp=0)
CORE = NftPlan(prefix_leaf={"198.19.1.0/24": 10, "198.19.2.0/24": 11}, dscp_leaf={46: 3, 34: 2})
PLANS = {"edge0": EDGE, "eth0.100": CORE}

# `nft -j list table ip csmm` (through libnftables with numeric output, as Nft.read() asks for it)
# after full_commands(PLANS), captured from the kernel of this project's lab machine; the 64 DSCP
# chains and their rules, alike but for the number, are spliced in as the kernel listed them.
_LISTED = [json.loads(line) for line in """\
{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}
{"table": {"family": "ip", "name": "csmm", "handle": 2}}
{"map": {"family": "ip", "name": "remark32_edge0", "table": "csmm", "type": "ipv4_addr", "handle": 129, \
"map": "verdict", "elem": [["198.19.3.7", {"goto": {"target": "dscp_46"}}]]}}
{"map": {"family": "ip", "name": "remark24_edge0", "table": "csmm", "type": "ipv4_addr", "handle": 130, \
"map": "verdict", "elem": [["198.19.1.0", {"goto": {"target": "dscp_34"}}], ["198.19.2.0", \
{"goto": {"target": "dscp_46"}}]]}}
{"map": {"family": "ip", "name": "leaf_dscp_edge0", "table": "csmm", "type": "dscp", "handle": 131, \
"map": "classid"}}
{"map": {"family": "ip", "name": "leaf_dscp_eth0_2e100", "table": "csmm", "type": "dscp", "handle": 132, \
"map": "classid", "elem": [[34, "1:2"], [46, "1:3"]]}}
{"map": {"family": "ip", "name": "leaf_prefix24_eth0_2e100", "table": "csmm", "type": "ipv4_addr", "handle": 133, \
"map": "classid", "elem": [["198.19.1.0", "1:a"], ["198.19.2.0", "1:b"]]}}
{"chain": {"family": "ip", "table": "csmm", "name": "ingress", "handle": 134, "type": "filter", \
"hook": "prerouting", "prio": -150, "policy": "accept"}}
{"chain": {"family": "ip", "table": "csmm", "name": "egress", "handle": 135, "type": "filter", \
"hook": "postrouting", "prio": -150, "policy": "accept"}}
{"rule": {"family": "ip", "table": "csmm", "chain": "ingress", "handle": 136, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "iifname"}}, "right": "edge0"}}, {"vmap": {"key": {"payload": {"protocol": "ip", \
"field": "saddr"}}, "data": "@remark32_edge0"}}]}}
{"rule": {"family": "ip", "table": "csmm", "chain": "ingress", "handle": 137, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "iifname"}}, "right": "edge0"}}, {"vmap": {"key": {"&": [{"payload": {"protocol": "ip", \
"field": "saddr"}}, "255.255.255.0"]}, "data": "@remark24_edge0"}}]}}
{"rule": {"family": "ip", "table": "csmm", "chain": "ingress", "handle": 138, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "iifname"}}, "right": "edge0"}}, {"mangle": {"key": {"payload": {"protocol": "ip", \
"field": "dscp"}}, "value": 0}}]}}
{"rule": {"family": "ip", "table": "csmm", "chain": "egress", "handle": 139, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "oifname"}}, "right": "edge0"}}, {"mangle": {"key": {"meta": {"key": "priority"}}, \
"value": {"map": {"key": {">>": [{"&": [{"payload": {"base": "nh", "offset": 8, "len": 8}}, 252]}, 2]}, \
"data": "@leaf_dscp_edge0"}}}}]}}
{"rule": {"family": "ip", "table": "csmm", "chain": "egress", "handle": 140, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "oifname"}}, "right": "eth0.100"}}, {"mangle": {"key": {"meta": {"key": "priority"}}, \
"value": {"map": {"key": {">>": [{"&": [{"payload": {"base": "nh", "offset": 8, "len": 8}}, 252]}, 2]}, \
"data": "@leaf_dscp_eth0_2e100"}}}}]}}
{"rule": {"family": "ip", "table": "csmm", "chain": "egress", "handle": 141, "expr": [{"match": {"op": "==", \
"left": {"meta": {"key": "oifname"}}, "right": "eth0.100"}}, {"mangle": {"key": {"meta": {"key": "priority"}}, \
"value": {"map": {"key": {"&": [{"payload": {"protocol": "ip", "field": "saddr"}}, "255.255.255.0"]}, \
"data": "@leaf_prefix24_eth0_2e100"}}}}]}}
""".splitlines()]
KERNEL_LISTING = [
    *_LISTED[:7],
    *({"chain": {"family": "ip", "table": "csmm", "name": f"dscp_{n}", "handle": 2 * n + 1}} for n in range(64)),
    *_LISTED[7:9],
    *({"rule": {"family": "ip", "table": "csmm", "chain": f"dscp_{n}", "handle": 2 * n + 2,
                "expr": [{"mangle": {"key": {"payload": {"protocol": "ip", "field": "dscp"}}, "value": n}}]}}
      for n in range(64)),
    *_LISTED[9:],
]

_DSCP_KEY = {"payload": {"protocol": "ip", "field": "dscp"}}
_DSCP_AS_LISTED = {">>": [{"&": [{"payload": {"base": "nh", "offset": 8, "len": 8}}, 252]}, 2]}
_SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
_SADDR_24 = {"&": [_SADDR, "255.255.255.0"]}


class FakeNftError(Exception):
    pass


class FakeNft:
    """Table ip csmm as the kernel holds it. A transaction applies whole or not at all; refuses
    what nft refuses (a key re-added with another value, deleting what is not there, overlapping
    intervals, a goto to a missing chain, a rule naming a missing map); lists like nft 1.0.6."""

    def __init__(self) -> None:
        self.table: dict[str, Any] | None = None
        self._handle = 0

    def run(self, commands: list[dict[str, Any]]) -> None:
        saved = copy.deepcopy((self.table, self._handle))
        try:
            for command in commands:
                (op, obj), = command.items()
                (kind, body), = obj.items()
                getattr(self, f"_{op}_{kind}")(body)
        except BaseException:
            self.table, self._handle = saved
            raise

    def _next(self) -> int:
        self._handle += 1
        return self._handle

    def _t(self, body: dict[str, Any]) -> dict[str, Any]:
        assert (body["family"], body["table"]) == ("ip", TABLE)
        if self.table is None:
            raise FakeNftError("No such file or directory (table)")
        return self.table

    def _add_table(self, body: dict[str, Any]) -> None:
        if self.table is None:
            self.table = {"handle": self._next(), "chains": {}, "maps": {}}

    def _delete_table(self, body: dict[str, Any]) -> None:
        if self.table is None:
            raise FakeNftError("No such file or directory (delete table)")
        self.table = None

    def _add_chain(self, body: dict[str, Any]) -> None:
        chains = self._t(body)["chains"]
        if body["name"] not in chains:
            hook = {k: body[k] for k in ("type", "hook", "prio", "policy") if k in body}
            chains[body["name"]] = {"handle": self._next(), "hook": hook, "rules": []}

    def _add_map(self, body: dict[str, Any]) -> None:
        maps = self._t(body)["maps"]
        if body["name"] not in maps:
            maps[body["name"]] = {"handle": self._next(), "type": body["type"], "map": body["map"],
                                  "flags": body.get("flags", []), "elem": {}}

    def _map(self, body: dict[str, Any]) -> dict[str, Any]:
        maps = self._t(body)["maps"]
        if body["name"] not in maps:
            raise FakeNftError(f"No such file or directory (map {body['name']})")
        return maps[body["name"]]

    @staticmethod
    def _key(key: Any) -> Any:
        if isinstance(key, dict):
            return ipaddress.IPv4Network(f"{key['prefix']['addr']}/{key['prefix']['len']}")
        if isinstance(key, str):
            return ipaddress.IPv4Network(key)
        return key

    def _add_element(self, body: dict[str, Any]) -> None:
        target = self._map(body)
        for key, value in body["elem"]:
            key = self._key(key)
            if target["map"] == "verdict" and value["goto"]["target"] not in self.table["chains"]:  # type: ignore[index]
                raise FakeNftError("No such file or directory (goto target)")
            if target["map"] == "classid":
                major, minor = value.split(":")
                value = f"{int(major, 16):x}:{int(minor, 16):x}"
            if key in target["elem"]:
                if target["elem"][key] != value:
                    raise FakeNftError("Could not process rule: File exists")
                continue
            if "interval" in target["flags"] and any(key.overlaps(other) for other in target["elem"]):
                raise FakeNftError("conflicting intervals specified")
            target["elem"][key] = value

    def _delete_element(self, body: dict[str, Any]) -> None:
        target = self._map(body)
        for key in body["elem"]:
            if self._key(key) not in target["elem"]:
                raise FakeNftError("Could not process rule: No such file or directory (element)")
            del target["elem"][self._key(key)]

    def _add_rule(self, body: dict[str, Any]) -> None:
        table = self._t(body)
        if body["chain"] not in table["chains"]:
            raise FakeNftError("No such file or directory (chain)")
        for name in _map_references(body["expr"]):
            self._map({**body, "name": name})
        table["chains"][body["chain"]]["rules"].append({"handle": self._next(), "expr": copy.deepcopy(body["expr"])})

    def listing(self) -> list[dict[str, Any]] | None:
        """What `nft -j -n list table ip csmm` prints, as a list (None: no table)."""
        if self.table is None:
            return None
        base = {"family": "ip", "table": TABLE}
        out: list[dict[str, Any]] = [{"table": {"family": "ip", "name": TABLE, "handle": self.table["handle"]}}]
        for name, m in self.table["maps"].items():
            body = {"family": "ip", "name": name, "table": TABLE, "type": m["type"], "handle": m["handle"], "map": m["map"]}
            if m["flags"]:
                body["flags"] = m["flags"]
            if m["elem"]:
                body["elem"] = [[_listed_key(k), v] for k, v in sorted(m["elem"].items())]
            out.append({"map": body})
        for name, c in self.table["chains"].items():
            out.append({"chain": {**base, "name": name, "handle": c["handle"], **c["hook"]}})
        for name, c in self.table["chains"].items():
            for rule in c["rules"]:
                out.append({"rule": {**base, "chain": name, "handle": rule["handle"], "expr": _listed(rule["expr"])}})
        return out


def _map_references(expr: Any) -> list[str]:
    if isinstance(expr, dict):
        found = [v[1:] for k, v in expr.items() if k == "data" and isinstance(v, str) and v.startswith("@")]
        return found + [n for v in expr.values() for n in _map_references(v)]
    if isinstance(expr, list):
        return [n for v in expr for n in _map_references(v)]
    return []


def _listed_key(key: Any) -> Any:
    if isinstance(key, ipaddress.IPv4Network):
        if key.prefixlen == 32:
            return str(key.network_address)
        return {"prefix": {"addr": str(key.network_address), "len": key.prefixlen}}
    return key


def _listed(expr: Any) -> Any:
    """nft 1.0.6 lists `ip dscp` as a map key in its raw payload form."""
    if isinstance(expr, dict):
        if "map" in expr and expr["map"].get("key") == _DSCP_KEY:
            return {"map": {**expr["map"], "key": _DSCP_AS_LISTED}}
        return {k: _listed(v) for k, v in expr.items()}
    if isinstance(expr, list):
        return [_listed(v) for v in expr]
    return expr


def _applied(plans: dict[str, NftPlan]) -> FakeNft:
    fake = FakeNft()
    fake.run(full_commands(plans))
    return fake


def _changed(plans: dict[str, NftPlan], **devices: NftPlan) -> dict[str, NftPlan]:
    new = copy.deepcopy(plans)
    new.update(devices)
    return new


# --- rendering ---------------------------------------------------------------------------------

def test_a_small_plan_renders_to_one_replacing_transaction_with_maps_chains_and_rules() -> None:
    commands = full_commands({"edge0": EDGE})
    table = {"table": {"family": "ip", "name": "csmm"}}
    assert commands[:3] == [{"add": table}, {"delete": table}, {"add": table}]
    added = [c["add"] for c in commands[3:]]
    chains = {a["chain"]["name"]: a["chain"] for a in added if "chain" in a}
    assert set(chains) == {f"dscp_{n}" for n in range(64)} | {"ingress", "egress"}
    hooks = {name: tuple(chains[name].get(k) for k in ("type", "hook", "prio", "policy")) for name in chains}
    assert hooks["ingress"] == ("filter", "prerouting", -150, "accept")
    assert hooks["egress"] == ("filter", "postrouting", -150, "accept")
    assert hooks["dscp_46"] == (None, None, None, None)       # reached only by goto from the vmap
    maps = {a["map"]["name"]: (a["map"]["type"], a["map"]["map"], a["map"].get("flags")) for a in added if "map" in a}
    # plain hash maps, one per prefix length in use (longest first), and no prefix leaves here
    assert maps == {"remark32_edge0": ("ipv4_addr", "verdict", None),
                    "remark24_edge0": ("ipv4_addr", "verdict", None),
                    "leaf_dscp_edge0": ("dscp", "classid", None)}
    elements = {a["element"]["name"]: a["element"]["elem"] for a in added if "element" in a}
    assert elements == {"remark32_edge0": [["198.19.3.7", {"goto": {"target": "dscp_46"}}]],
                        "remark24_edge0": [["198.19.1.0", {"goto": {"target": "dscp_34"}}],
                                           ["198.19.2.0", {"goto": {"target": "dscp_46"}}]]}
    rules = [(a["rule"]["chain"], a["rule"]["expr"]) for a in added if "rule" in a]
    iif = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "edge0"}}
    oif = {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "edge0"}}
    priority = {"meta": {"key": "priority"}}
    assert [r for r in rules if r[0] in ("ingress", "egress")] == [
        ("ingress", [iif, {"vmap": {"key": _SADDR, "data": "@remark32_edge0"}}]),     # a /32 unmasked
        ("ingress", [iif, {"vmap": {"key": _SADDR_24, "data": "@remark24_edge0"}}]),
        ("ingress", [iif, {"mangle": {"key": _DSCP_KEY, "value": 0}}]),
        ("egress", [oif, {"mangle": {"key": priority, "value": {"map": {"key": _DSCP_KEY, "data": "@leaf_dscp_edge0"}}}}]),
    ]
    assert ("dscp_34", [{"mangle": {"key": _DSCP_KEY, "value": 34}}]) in rules
    # chains and maps before the elements that name them (goto dscp_N), elements before hooked rules
    kinds = [next(iter(a)) if "rule" not in a or a["rule"]["chain"].startswith("dscp_") else "hooked rule" for a in added]
    assert max(i for i, k in enumerate(kinds) if k in ("chain", "map")) < kinds.index("element")
    assert kinds.index("element") < kinds.index("hooked rule")


def test_leaf_classids_are_the_htb_major_and_the_minor_in_hex() -> None:
    commands = full_commands({"eth0.100": CORE})
    elements = {c["add"]["element"]["name"]: c["add"]["element"]["elem"] for c in commands if "element" in c.get("add", {})}
    assert elements["leaf_dscp_eth0_2e100"] == [[34, "1:2"], [46, "1:3"]]
    assert elements["leaf_prefix24_eth0_2e100"] == [["198.19.1.0", "1:a"], ["198.19.2.0", "1:b"]]
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    assert rules[-1]["expr"][1] == {"mangle": {"key": {"meta": {"key": "priority"}}, "value": {"map": {
        "key": _SADDR_24, "data": "@leaf_prefix24_eth0_2e100"}}}}


def test_a_device_without_a_default_dscp_or_remarks_gets_no_ingress_rule() -> None:
    rules = [c["add"]["rule"] for c in full_commands({"eth0.100": CORE}) if "rule" in c.get("add", {})]
    assert [r for r in rules if r["chain"] == "ingress"] == []


def test_no_plans_only_remove_our_table_whether_or_not_it_is_there() -> None:
    table = {"table": {"family": "ip", "name": "csmm"}}
    assert full_commands({}) == full_commands({"eth1": NftPlan()}) == [{"add": table}, {"delete": table}]
    fake = FakeNft()
    fake.run(full_commands({}))          # no table: no error
    fake.run(full_commands(PLANS))
    fake.run(full_commands({}))
    assert fake.table is None


def test_device_names_become_safe_map_names_that_decode_back() -> None:
    for device in ("eth0", "eth0.100", "veth_a", "wan-1", "br@x", "ünï"):
        safe = safe_name(device)
        assert all(c.isascii() and (c.isalnum() or c == "_") for c in safe)
        assert device_name(safe) == device
    assert safe_name("eth0.100") == "eth0_2e100" and safe_name("veth_a") == "veth_5fa"
    assert safe_name("a_2e") != safe_name("a.")       # the escape character itself is escaped


@pytest.mark.parametrize("device", ["", "eth*", "a b", "a/b", "x:1", "sixteen-chars-xx"])
def test_device_names_nft_would_misread_are_refused(device: str) -> None:
    with pytest.raises(NftError, match="device name"):
        full_commands({device: EDGE})


def test_overlapping_prefixes_are_refused_naming_both() -> None:
    overlapping = NftPlan(prefix_leaf={"198.19.0.0/16": 1, "198.19.7.0/24": 2, "198.18.0.0/24": 3})
    with pytest.raises(NftError, match=r"198\.19\.0\.0/16 and 198\.19\.7\.0/24 overlap"):
        full_commands({"core0": overlapping})


@pytest.mark.parametrize("prefix", ["198.19.1.1/24", "198.19.1.0/33", "2001:db8::/32", "customer-a"])
def test_prefixes_that_are_not_ipv4_networks_are_refused(prefix: str) -> None:
    with pytest.raises(NftError, match="not an IPv4 prefix"):
        full_commands({"edge0": NftPlan(remarks={prefix: 46}, default_dscp=0)})


def test_a_prefix_matching_every_source_is_refused_pointing_at_the_default() -> None:
    with pytest.raises(NftError, match="0.0.0.0/0.*default DSCP"):
        full_commands({"edge0": NftPlan(remarks={"0.0.0.0/0": 46})})


def test_dscp_and_minor_out_of_range_are_refused() -> None:
    with pytest.raises(NftError, match="DSCP 64"):
        full_commands({"edge0": NftPlan(default_dscp=64)})
    with pytest.raises(NftError, match="minor 0 "):
        full_commands({"core0": NftPlan(dscp_leaf={46: 0})})


# --- element diffs -----------------------------------------------------------------------------

def test_unchanged_plans_need_no_commands_even_when_spelled_differently() -> None:
    assert element_commands(PLANS, copy.deepcopy(PLANS)) == []
    respelled = _changed(PLANS, edge0=NftPlan(remarks={"198.19.1.0/24": 34, "198.19.2.0/24": 46, "198.19.3.7": 46},
                                              default_dscp=0))
    assert element_commands(PLANS, respelled) == []


def test_added_removed_and_changed_elements_are_deletes_then_adds_in_one_list() -> None:
    new = _changed(PLANS, **{"eth0.100": NftPlan(
        prefix_leaf={"198.19.1.0/24": 12, "198.19.9.0/24": 11},   # 1.0 changed, 2.0 removed, 9.0 added
        dscp_leaf={46: 3, 0: 1})})                                   # 34 removed, 0 added
    commands = element_commands(PLANS, new)
    assert commands == [
        {"delete": {"element": {"family": "ip", "table": "csmm", "name": "leaf_dscp_eth0_2e100", "elem": [34]}}},
        {"delete": {"element": {"family": "ip", "table": "csmm", "name": "leaf_prefix24_eth0_2e100",
                                "elem": ["198.19.1.0", "198.19.2.0"]}}},
        {"add": {"element": {"family": "ip", "table": "csmm", "name": "leaf_dscp_eth0_2e100", "elem": [[0, "1:1"]]}}},
        {"add": {"element": {"family": "ip", "table": "csmm", "name": "leaf_prefix24_eth0_2e100",
                             "elem": [["198.19.1.0", "1:c"], ["198.19.9.0", "1:b"]]}}},
    ]
    fake = _applied(PLANS)
    fake.run(commands)
    assert parse_table(fake.listing()) == NftState(new, True)


def test_a_class_move_switches_remark_and_leaf_in_the_same_transaction() -> None:
    old = {"edge0": NftPlan(remarks={"198.19.1.0/24": 34, "198.19.2.0/24": 46}, default_dscp=0,
                            prefix_leaf={"198.19.1.0/24": 2, "198.19.2.0/24": 3})}
    new = {"edge0": NftPlan(remarks={"198.19.1.0/24": 46, "198.19.2.0/24": 46}, default_dscp=0,
                            prefix_leaf={"198.19.1.0/24": 3, "198.19.2.0/24": 3})}
    commands = element_commands(old, new)
    assert commands is not None
    assert {(op, c[op]["element"]["name"]) for c in commands for op in c} == {
        ("delete", "remark24_edge0"), ("delete", "leaf_prefix24_edge0"),
        ("add", "remark24_edge0"), ("add", "leaf_prefix24_edge0")}
    fake = _applied(old)
    with pytest.raises(FakeNftError, match="File exists"):   # why a change is never a bare add
        fake.run([c for c in commands if "add" in c])
    fake.run(commands)
    assert parse_table(fake.listing()) == NftState(new, True)


@pytest.mark.parametrize("change", [
    pytest.param({"edge1": NftPlan(default_dscp=0)}, id="device added"),
    pytest.param({"eth0.100": NftPlan()}, id="device removed (empty plan)"),
    pytest.param({"edge0": NftPlan(remarks=EDGE.remarks, default_dscp=34)}, id="default changed"),
    pytest.param({"edge0": NftPlan(remarks=EDGE.remarks)}, id="default removed"),
    pytest.param({"edge0": NftPlan(remarks={**EDGE.remarks, "198.19.8.0/29": 46}, default_dscp=0)},
                 id="new prefix length"),
    pytest.param({"edge0": NftPlan(remarks={"198.19.1.0/24": 34, "198.19.2.0/24": 46}, default_dscp=0)},
                 id="last prefix of a length gone"),
    pytest.param({"edge0": NftPlan(default_dscp=0)}, id="all remarks gone, the default stays"),
])
def test_a_structure_change_needs_a_full_replace(change: dict[str, NftPlan]) -> None:
    new = {d: p for d, p in _changed(PLANS, **change).items() if not p.is_empty()}
    assert element_commands(PLANS, new) is None
    fake = _applied(PLANS)
    fake.run(full_commands(new))
    assert parse_table(fake.listing()) == NftState(new, True)


@pytest.mark.parametrize("remarks", [
    pytest.param({**EDGE.remarks, "198.19.1.0/24": 10}, id="first customer of a DSCP"),
    pytest.param({**EDGE.remarks, "198.19.1.0/24": 46}, id="last customer of a DSCP"),
    pytest.param({**EDGE.remarks, "198.19.4.0/24": 46}, id="a customer added, length in use"),
    pytest.param({"198.19.1.0/24": 34, "198.19.3.7/32": 46}, id="a customer removed, length still in use"),
])
def test_a_class_gaining_or_losing_its_last_customer_is_only_elements(remarks: dict[str, int]) -> None:
    new = _changed(PLANS, edge0=NftPlan(remarks=remarks, default_dscp=0))
    commands = element_commands(PLANS, new)
    assert commands is not None and all(next(iter(c.values())).keys() == {"element"} for c in commands)
    fake = _applied(PLANS)
    fake.run(commands)
    assert parse_table(fake.listing()) == NftState(new, True)


def test_a_prefix_moving_to_another_dscp_is_one_delete_and_one_add() -> None:
    new = _changed(PLANS, edge0=NftPlan(remarks={**EDGE.remarks, "198.19.1.0/24": 0}, default_dscp=0))
    assert element_commands(PLANS, new) == [
        {"delete": {"element": {"family": "ip", "table": "csmm", "name": "remark24_edge0", "elem": ["198.19.1.0"]}}},
        {"add": {"element": {"family": "ip", "table": "csmm", "name": "remark24_edge0",
                             "elem": [["198.19.1.0", {"goto": {"target": "dscp_0"}}]]}}}]


# --- parsing -----------------------------------------------------------------------------------

def test_the_kernel_listing_parses_back_to_the_plans_intact() -> None:
    assert parse_table(KERNEL_LISTING) == NftState(PLANS, True)


def test_the_fake_table_lists_what_the_kernel_listed() -> None:
    def strip(items: list[dict[str, Any]]) -> list[Any]:
        return sorted(json.dumps({k: {f: v for f, v in b.items() if f != "handle"} for k, b in o.items()}, sort_keys=True)
                      for o in items if "metainfo" not in o)
    assert strip(_applied(PLANS).listing() or []) == strip(KERNEL_LISTING)


def test_a_listing_with_symbolic_dscp_names_parses_the_same() -> None:
    names = {0: "cs0", 34: "af41", 46: "ef"}
    listing = copy.deepcopy(KERNEL_LISTING)
    for obj in listing:
        if obj.get("map", {}).get("type") == "dscp":
            obj["map"]["elem"] = [[names[k], v] for k, v in obj["map"].get("elem", [])]
        for expr in obj.get("rule", {}).get("expr", []):
            if "mangle" in expr and isinstance(expr["mangle"]["value"], int) and expr["mangle"]["value"] in names:
                expr["mangle"]["value"] = names[expr["mangle"]["value"]]
    assert parse_table(listing) == NftState(PLANS, True)


def test_no_table_reads_as_no_plans_and_intact() -> None:
    assert parse_table(None) == NftState({}, True)


def _without(listing: list[dict[str, Any]], chain: str, index: int) -> list[dict[str, Any]]:
    rules = [o for o in listing if o.get("rule", {}).get("chain") == chain]
    return [o for o in listing if o is not rules[index]]


@pytest.mark.parametrize(("chain", "index"), [("egress", 1), ("egress", 2), ("ingress", 0), ("ingress", 1),
                                              ("dscp_34", 0)])
def test_a_rule_deleted_by_hand_leaves_the_table_not_intact(chain: str, index: int) -> None:
    assert parse_table(_without(KERNEL_LISTING, chain, index)).intact is False


def test_the_default_rule_deleted_by_hand_reads_as_no_default_which_only_a_full_replace_restores() -> None:
    state = parse_table(_without(KERNEL_LISTING, "ingress", 2))
    assert state.plans["edge0"] == NftPlan(remarks=EDGE.remarks) and state.intact   # consistent, but not PLANS
    assert element_commands(state.plans, PLANS) is None


def test_things_we_never_create_leave_the_table_not_intact() -> None:
    extra_chain = [*KERNEL_LISTING, {"chain": {"family": "ip", "table": "csmm", "name": "mine", "handle": 99}}]
    extra_set = [*KERNEL_LISTING, {"set": {"family": "ip", "table": "csmm", "name": "s", "type": "ipv4_addr", "handle": 98}}]
    changed_hook = copy.deepcopy(KERNEL_LISTING)
    next(o for o in changed_hook if o.get("chain", {}).get("name") == "egress")["chain"]["prio"] = 0
    changed_remark = copy.deepcopy(KERNEL_LISTING)
    next(o for o in changed_remark if o.get("rule", {}).get("chain") == "dscp_34")["rule"]["expr"][0]["mangle"]["value"] = 10
    foreign_goto = copy.deepcopy(KERNEL_LISTING)
    foreign_goto[2]["map"]["elem"][0][1] = {"goto": {"target": "ingress"}}
    range_element = copy.deepcopy(KERNEL_LISTING)
    range_element[2]["map"]["elem"].append([{"range": ["198.19.9.1", "198.19.9.7"]}, {"goto": {"target": "dscp_0"}}])
    host_bits = copy.deepcopy(KERNEL_LISTING)   # in a /24 map the masked lookup never finds .5
    host_bits[3]["map"]["elem"].append(["198.19.9.5", {"goto": {"target": "dscp_0"}}])
    empty_length_map = copy.deepcopy(KERNEL_LISTING)
    empty_length_map.insert(3, {"map": {"family": "ip", "name": "remark29_edge0", "table": "csmm", "type": "ipv4_addr",
                                        "handle": 99, "map": "verdict"}})
    for listing in (extra_chain, extra_set, changed_hook, changed_remark, foreign_goto, range_element, host_bits,
                    empty_length_map):
        assert parse_table(listing).intact is False
    assert parse_table(extra_chain).plans == PLANS   # the plans are still read as far as they go


def test_an_emptied_device_is_omitted_from_the_plans_and_rebuilt() -> None:
    listing = copy.deepcopy(KERNEL_LISTING)
    for obj in listing:
        if obj.get("map", {}).get("name", "").endswith("eth0_2e100"):
            obj["map"].pop("elem", None)
    state = parse_table(listing)
    assert state.plans == {"edge0": EDGE} and state.intact is False


# --- any plans, any change: the fake table ends up holding the new plans -------------------------

_PREFIXES = [f"198.19.{i}.0/24" for i in range(6)] + ["198.19.1.0/25", "198.18.9.1/32", "198.18.9.0/29"]
_DEVICES = ["edge0", "eth0.100", "core_1"]


@st.composite
def _plans(draw: st.DrawFn) -> dict[str, NftPlan]:
    plans = {}
    for device in draw(st.lists(st.sampled_from(_DEVICES), unique=True)):
        def disjoint(values: st.SearchStrategy[int]) -> dict[str, int]:
            chosen: dict[str, int] = {}
            for prefix in draw(st.lists(st.sampled_from(_PREFIXES), unique=True)):
                net = ipaddress.IPv4Network(prefix)
                if not any(net.overlaps(ipaddress.IPv4Network(p)) for p in chosen):
                    chosen[prefix] = draw(values)
            return chosen
        plan = NftPlan(remarks=disjoint(st.sampled_from([0, 10, 34, 46])),
                       default_dscp=draw(st.sampled_from([None, 0, 46])),
                       prefix_leaf=disjoint(st.integers(1, 40)),
                       dscp_leaf=draw(st.dictionaries(st.sampled_from([0, 10, 34, 46]), st.integers(1, 40))))
        plans[device] = plan
    return plans


@settings(max_examples=300, deadline=None)
@given(_plans(), _plans())
def test_any_change_leaves_the_fake_table_holding_exactly_the_new_plans(old: dict[str, NftPlan],
                                                                         new: dict[str, NftPlan]) -> None:
    fake = _applied(old)
    assert parse_table(fake.listing()) == NftState({d: p for d, p in old.items() if not p.is_empty()}, True)
    commands = element_commands(old, new)
    want = {d: p for d, p in new.items() if not p.is_empty()}
    if commands is None:   # only when the devices, their defaults or their prefix lengths differ
        have = {d: p for d, p in old.items() if not p.is_empty()}
        assert _shape(have) != _shape(want)
        commands = full_commands(new)
    fake.run(commands)
    state = parse_table(fake.listing())
    assert state == NftState(want, True)



def _shape(plans: dict[str, NftPlan]) -> dict[str, Any]:
    def lengths(table: dict[str, int]) -> set[int]:
        return {ipaddress.IPv4Network(p).prefixlen for p in table}
    return {d: (p.default_dscp, lengths(p.remarks), lengths(p.prefix_leaf)) for d, p in plans.items()}
