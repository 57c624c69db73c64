"""Classification and DSCP remarking in nftables: one table `ip csmm`, driven by libnftables JSON.

Per device the agent wants an `NftPlan`; all devices share one table, rendered as::

    table ip csmm {
      chain dscp_0 { ip dscp set 0 } ... chain dscp_63 { ip dscp set 63 }   # all 64, always
      map remark<L>_<dev>      { type ipv4_addr : verdict; }  # network : goto dscp_N, per length L
      map leaf_dscp_<dev>      { type dscp : classid; }       # 46 : 1:3
      map leaf_prefix<L>_<dev> { type ipv4_addr : classid; }  # network : 1:a, per length L
      chain ingress { type filter hook prerouting priority mangle (-150); policy accept;
        iifname "<dev>" ip saddr & <mask L> vmap @remark<L>_<dev>   # per L in use, longest first;
                                                                    # goto: a hit ends the chain
        iifname "<dev>" ip dscp set <default_dscp> }  # only where the plan has a default
      chain egress { type filter hook postrouting priority mangle (-150); policy accept;
        oifname "<dev>" meta priority set ip dscp map @leaf_dscp_<dev>
        oifname "<dev>" meta priority set ip saddr & <mask L> map @leaf_prefix<L>_<dev> }  # per L
    }

Why this shape (each point tried on nftables 1.0.6 and this kernel):

* `ip dscp set ip saddr map @m` is refused by nft, hence a vmap that jumps (`goto`) to one tiny
  chain per DSCP value. A failed map lookup ends the rule, so a source not in the vmap falls to the
  default rule, and a packet without a leaf entry keeps its priority.
* HTB reads skb->priority (major:minor) before its filters; the forwarding path sets priority
  from the TOS byte (0..7, never major 1), so an unmatched packet goes to HTB's default class.
* Prefixes live in plain hash maps, one per prefix length in use on a device, looked up with the
  source address masked to that length; not in one `flags interval` map. libnftables 1.0.6 dumps
  every interval set of the ruleset into its cache before any element change (overlap checks), so
  with 10,000 customers a class move's transaction cost ~215 ms with interval maps and costs
  1.4-2.5 ms with hash maps (measured here). Customers use a handful of lengths, so a packet
  meets one or two lookups per device; a /32 is looked up unmasked.
* The table always has a chain for each of the 64 DSCP values (unhooked, reached only by `goto`;
  nothing per packet) and every device its `leaf_dscp` map and rule, so that the first or last
  customer of a class (GSB: moving the only Gold customer back to Silver) is an element change,
  not a rebuild of the whole table. The structure is the devices, each one's `default_dscp`, and
  the prefix lengths in use: a customer with a length new to its device (or the last one of a
  length leaving) rebuilds the table, in one transaction that packets see whole.
* An element's value cannot be replaced by `add` ("File exists"): a changed key is a delete and
  an add in the same transaction, which the kernel accepts.
* Prefixes of one device must not overlap (a source belongs to one customer); this is checked
  before rendering and the error names both.
* nft lists the rule `meta priority set ip dscp map @m` back as `(@nh,8,8 & 0xfc) >> 2 map @m`
  (a listing quirk, the bytecode is the same); the comparison with what we render knows that.
* Map names are built from device names (letters and digits kept, every other byte `_xx`), which
  decodes back, so any Linux device name is safe in a map name.

libnftables opens its netlink socket once, in `nft_ctx_new()` (measured: the socket appears at
context creation; a context made in one namespace keeps acting there, whatever namespace the
thread is in later; nftables removed its only socket re-open in 0.9.9). So the context must be
created inside the namespace; `Nft` also enters the namespace around each call (~20 us), so that a
later library that opens sockets lazily cannot touch the wrong namespace's ruleset.

Costs measured at 10,000 prefixes (2 shared cores, `bench/agent_build.py`): a full replace
~0.35-0.4 s; `read()` ~0.26 s; a class move (4 element commands in one transaction) 1.4-2.5 ms,
of which ~0.8 ms for a classid map alone and the rest for the verdict map: its `goto` targets
make libnftables load chains and rules into its cache first (without our hooked rules the same
move costs ~0.8 ms). The interval-map design this replaced took ~215 ms per move. (Also measured
and set aside: one concatenated `iifname . ip saddr` map, ~13 ms per move, a 2.6 s bulk load,
pipapo lookups that grow with the set.)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agent.driver.netns import entered
from agent.plan import HTB_MAJOR, NftPlan

TABLE = "csmm"
FAMILY = "ip"
INGRESS = "ingress"
EGRESS = "egress"
PRIORITY_MANGLE = -150
DEBIAN_MODULE = "/usr/lib/python3/dist-packages/nftables/nftables.py"

_REMARK = "remark"            # + <length>_<device>
_LEAF_DSCP = "leaf_dscp_"     # + <device>
_LEAF_PREFIX = "leaf_prefix"  # + <length>_<device>
_BY_LENGTH = re.compile(r"(remark|leaf_prefix)([0-9]+)_(.+)")
_DSCP_CHAIN = "dscp_"
_DSCP = {"payload": {"protocol": "ip", "field": "dscp"}}
_SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
_PRIORITY = {"meta": {"key": "priority"}}
# How nft 1.0.6 lists `ip dscp` when it is a map key (see the module docstring).
_DSCP_AS_LISTED = {">>": [{"&": [{"payload": {"base": "nh", "offset": 8, "len": 8}}, 0xFC]}, 2]}
# nft's DSCP names, for listings made without numeric output.
_DSCP_NAMES = {"cs0": 0, "cs1": 8, "af11": 10, "af12": 12, "af13": 14, "cs2": 16, "af21": 18, "af22": 20,
               "af23": 22, "cs3": 24, "af31": 26, "af32": 28, "af33": 30, "cs4": 32, "af41": 34, "af42": 36,
               "af43": 38, "cs5": 40, "va": 44, "ef": 46, "cs6": 48, "cs7": 56, "le": 1}


class NftError(RuntimeError):
    """nft refused a transaction or a listing, or a plan cannot be rendered; the text says why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class NftState:
    """What the kernel has: the plans rebuilt from the map elements and default rules, and whether
    the table's chains, rules and maps are exactly what `full_commands(plans)` creates."""

    plans: dict[str, NftPlan] = field(default_factory=dict)
    intact: bool = True


# --- names -------------------------------------------------------------------------------------

def safe_name(device: str) -> str:
    """`device` as a map-name suffix: ASCII letters and digits kept, every other byte `_xx`."""
    if (not device or len(device.encode()) > 15 or any(c in device for c in "/:*\\\"")
            or any(c.isspace() for c in device)):
        # '*' would make `iifname` a wildcard match, the rest are not valid Linux device names
        raise NftError(f"device name {device!r} cannot be matched by name")
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"_{b:02x}" for b in c.encode()) for c in device)


def device_name(safe: str) -> str:
    """The inverse of `safe_name`; ValueError when `safe` is not one of its results."""
    out = bytearray()
    i = 0
    while i < len(safe):
        if safe[i] == "_":
            pair = safe[i + 1:i + 3]
            if len(pair) != 2:
                raise ValueError(f"not an encoded device name: {safe!r}")
            out.append(int(pair, 16))
            i += 3
        elif safe[i].isascii() and safe[i].isalnum():
            out += safe[i].encode()
            i += 1
        else:
            raise ValueError(f"not an encoded device name: {safe!r}")
    return out.decode()


def prefix_map(kind: str, length: int, device: str) -> str:
    """The name of `device`'s map of /`length` networks; `kind` is _REMARK or _LEAF_PREFIX."""
    return f"{kind}{length}_{safe_name(device)}"


def classid(minor: int) -> str:
    return f"{HTB_MAJOR:x}:{minor:x}"


# --- rendering (pure) --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 16)   # the same prefixes come back on every reconcile
def _prefix(text: str) -> tuple[str, int, int]:
    """`a.b.c.d/len` (or a bare address: /32) as (canonical text, network as int, length)."""
    addr, _, length = text.partition("/")
    try:
        packed = socket.inet_pton(socket.AF_INET, addr)
        bits = int(length) if length else 32
    except (OSError, ValueError):
        raise NftError(f"prefix {text!r} is not an IPv4 prefix") from None
    network = int.from_bytes(packed, "big")
    if not 0 <= bits <= 32 or network & ((1 << (32 - bits)) - 1):
        raise NftError(f"prefix {text!r} is not an IPv4 prefix (host bits set or bad length)")
    if bits == 0:   # every source: that is what a device's default DSCP is for
        raise NftError(f"prefix {text!r} matches every source; use the device's default DSCP")
    return f"{socket.inet_ntoa(packed)}/{bits}", network, bits


def _canonical(plans: dict[str, NftPlan], *, check: bool = True) -> dict[str, NftPlan]:
    """Non-empty plans only (as `read()` reports them), prefixes as `a.b.c.d/len`; with `check`,
    values in range and no overlapping prefixes in one map."""
    out = {}
    for device in sorted(plans):
        plan = plans[device]
        if plan.is_empty():
            continue
        safe_name(device)
        remarks = {_prefix(p)[0]: int(d) for p, d in plan.remarks.items()}
        prefix_leaf = {_prefix(p)[0]: int(m) for p, m in plan.prefix_leaf.items()}
        dscp_leaf = {int(d): int(m) for d, m in plan.dscp_leaf.items()}
        if check:
            for what, table in (("remarks", remarks), ("prefix_leaf", prefix_leaf)):
                _check_disjoint(device, what, table)
            defaults = [plan.default_dscp] if plan.default_dscp is not None else []
            for value in [*remarks.values(), *dscp_leaf, *defaults]:
                if not 0 <= value < 64:
                    raise NftError(f"{device}: DSCP {value} is outside 0..63")
            for minor in [*prefix_leaf.values(), *dscp_leaf.values()]:
                if not 0 < minor < 0x10000:
                    raise NftError(f"{device}: HTB minor {minor} is outside 1..ffff")
        out[device] = NftPlan(remarks=remarks, default_dscp=plan.default_dscp, prefix_leaf=prefix_leaf,
                              dscp_leaf=dscp_leaf)
    return out


def _check_disjoint(device: str, what: str, table: dict[str, int]) -> None:
    # A source must belong to one customer: with overlaps, which map wins would depend on rule order.
    spans = sorted((net, -bits, text) for text, net, bits in map(_prefix, table))
    end = -1
    last = ""
    for net, negbits, text in spans:
        if net <= end:
            raise NftError(f"{device}: {what} prefixes {last} and {text} overlap "
                           "(a source address must belong to one customer)")
        if net + (1 << (32 + negbits)) - 1 > end:
            end, last = net + (1 << (32 + negbits)) - 1, text


def _lengths(table: dict[str, int]) -> tuple[int, ...]:
    """The prefix lengths in use in a canonical table, longest first (the order of their rules)."""
    return tuple(sorted({_prefix(p)[2] for p in table}, reverse=True))


def _by_length(table: dict[str, int]) -> dict[int, dict[str, int]]:
    """A canonical table split per prefix length: length -> {network address: value}."""
    out: dict[int, dict[str, int]] = {}
    for prefix, value in table.items():
        addr, _, bits = prefix.partition("/")
        out.setdefault(int(bits), {})[addr] = value
    return out


def _structure(plans: dict[str, NftPlan]) -> tuple[Any, ...]:
    """What element changes cannot reach: which devices, each one's default rule, and the prefix
    lengths it has maps for."""
    return tuple((d, p.default_dscp, _lengths(p.remarks), _lengths(p.prefix_leaf)) for d, p in sorted(plans.items()))


@functools.lru_cache(maxsize=33)
def _source(length: int) -> dict[str, Any]:
    """The lookup key for a map of /length networks: the source address, masked (a /32 as is)."""
    if length == 32:
        return _SADDR
    return {"&": [_SADDR, socket.inet_ntoa(((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF).to_bytes(4, "big"))]}


def _obj(kind: str, **fields: Any) -> dict[str, Any]:
    return {kind: {"family": FAMILY, "table": TABLE, **fields}}


def _elements(name: str, elem: list[Any]) -> dict[str, Any]:
    return _obj("element", name=name, elem=elem)


def _remark_elem(addr: str, dscp: int) -> list[Any]:
    return [addr, {"goto": {"target": f"{_DSCP_CHAIN}{dscp}"}}]


def _leaf_elem(key: Any, minor: int) -> list[Any]:
    return [key, classid(minor)]


def _device_maps(device: str, plan: NftPlan) -> list[tuple[str, dict[Any, int], Any]]:
    """`device`'s maps for a canonical plan: (name, {key: value}, element renderer), in creation
    order; prefix maps keyed by network address, one per length."""
    maps: list[tuple[str, dict[Any, int], Any]] = []
    remarks, leaves = _by_length(plan.remarks), _by_length(plan.prefix_leaf)
    maps += [(prefix_map(_REMARK, n, device), remarks[n], _remark_elem) for n in _lengths(plan.remarks)]
    maps.append((_LEAF_DSCP + safe_name(device), dict(plan.dscp_leaf), _leaf_elem))
    maps += [(prefix_map(_LEAF_PREFIX, n, device), leaves[n], _leaf_elem) for n in _lengths(plan.prefix_leaf)]
    return maps


def _match(key: str, device: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": device}}


def _set_priority(key: dict[str, Any], name: str) -> dict[str, Any]:
    return {"mangle": {"key": _PRIORITY, "value": {"map": {"key": key, "data": f"@{name}"}}}}


def _skeleton_objects(plans: dict[str, NftPlan]) -> list[dict[str, Any]]:
    """Chains, maps and rules (no elements) of the table for canonical `plans`, in creation order."""
    objects = []
    for dscp in range(64):
        objects.append(_obj("chain", name=f"{_DSCP_CHAIN}{dscp}"))
        objects.append(_obj("rule", chain=f"{_DSCP_CHAIN}{dscp}", expr=[{"mangle": {"key": _DSCP, "value": dscp}}]))
    for device, plan in plans.items():
        for n in _lengths(plan.remarks):
            objects.append(_obj("map", name=prefix_map(_REMARK, n, device), type="ipv4_addr", map="verdict"))
        objects.append(_obj("map", name=_LEAF_DSCP + safe_name(device), type="dscp", map="classid"))
        for n in _lengths(plan.prefix_leaf):
            objects.append(_obj("map", name=prefix_map(_LEAF_PREFIX, n, device), type="ipv4_addr", map="classid"))
    for chain, hook in ((INGRESS, "prerouting"), (EGRESS, "postrouting")):
        objects.append(_obj("chain", name=chain, type="filter", hook=hook, prio=PRIORITY_MANGLE, policy="accept"))
    for device, plan in plans.items():
        for n in _lengths(plan.remarks):
            lookup = {"vmap": {"key": _source(n), "data": "@" + prefix_map(_REMARK, n, device)}}
            objects.append(_obj("rule", chain=INGRESS, expr=[_match("iifname", device), lookup]))
        if plan.default_dscp is not None:
            objects.append(_obj("rule", chain=INGRESS, expr=[
                _match("iifname", device), {"mangle": {"key": _DSCP, "value": plan.default_dscp}}]))
    for device, plan in plans.items():
        objects.append(_obj("rule", chain=EGRESS, expr=[
            _match("oifname", device), _set_priority(_DSCP, _LEAF_DSCP + safe_name(device))]))
        for n in _lengths(plan.prefix_leaf):
            objects.append(_obj("rule", chain=EGRESS, expr=[
                _match("oifname", device), _set_priority(_source(n), prefix_map(_LEAF_PREFIX, n, device))]))
    return objects


def full_commands(plans: dict[str, NftPlan]) -> list[dict[str, Any]]:
    """One transaction that replaces table ip csmm by exactly `plans` (add, delete, add: the
    delete never fails, and packets see the old table or the new one, never none). Empty plans
    remove our table if there is one."""
    plans = _canonical(plans)
    table = {"table": {"family": FAMILY, "name": TABLE}}
    commands: list[dict[str, Any]] = [{"add": table}, {"delete": table}]
    if not plans:
        return commands
    commands.append({"add": table})
    skeleton = _skeleton_objects(plans)
    # chains and maps first (vmap elements name the dscp chains), then elements, then rules
    commands += [{"add": o} for o in skeleton if "rule" not in o or o["rule"]["chain"].startswith(_DSCP_CHAIN)]
    for device, plan in plans.items():
        for name, table, render in _device_maps(device, plan):
            if table:
                commands.append({"add": _elements(name, [render(k, v) for k, v in sorted(table.items(), key=_order)])})
    commands += [{"add": o} for o in skeleton if "rule" in o and not o["rule"]["chain"].startswith(_DSCP_CHAIN)]
    return commands


def element_commands(old: dict[str, NftPlan], new: dict[str, NftPlan]) -> list[dict[str, Any]] | None:
    """The element deletes and adds that turn a table holding `old` into one holding `new`, for
    one transaction (a class move switches remark and leaf together); [] when nothing differs.
    None when the structure differs (the devices, a default DSCP): rebuild in full."""
    old, new = _canonical(old, check=False), _canonical(new)
    if _structure(old) != _structure(new):
        return None
    deletes: list[dict[str, Any]] = []
    adds: list[dict[str, Any]] = []
    for device in new:
        # same structure: the same maps, in the same order, on both sides
        pairs = zip(_device_maps(device, old[device]), _device_maps(device, new[device]))
        for (name, before, _), (_, after, render) in pairs:
            gone = sorted((k for k in before if before[k] != after.get(k)), key=_key_order)
            come = sorted((k for k in after if after[k] != before.get(k)), key=_key_order)
            if gone:
                deletes.append({"delete": _elements(name, gone)})
            if come:
                adds.append({"add": _elements(name, [render(k, after[k]) for k in come])})
    return deletes + adds


def _key_order(key: Any) -> Any:
    """Addresses in numeric order (DSCP keys are ints already), so output is deterministic and readable."""
    return socket.inet_aton(key) if isinstance(key, str) else key


def _order(item: tuple[Any, int]) -> Any:
    return _key_order(item[0])


# --- parsing (pure) ----------------------------------------------------------------------------

def _prefix_of(key: Any, length: int) -> str:
    """The prefix an element of a /length map stands for; ValueError for anything we never write
    (a range, a host address with bits below the mask, which the masked lookup never finds)."""
    if not isinstance(key, str) or not 1 <= length <= 32:
        raise ValueError(f"not a /{length} network: {key!r}")
    try:
        canonical, _, _ = _prefix(f"{key}/{length}")
    except NftError as exc:
        raise ValueError(str(exc)) from None
    return canonical


def _dscp_of(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value in _DSCP_NAMES:
        return _DSCP_NAMES[value]
    return int(value, 0)


def _minor_of(value: Any) -> int:
    major, minor = str(value).split(":")
    if int(major, 16) != HTB_MAJOR:
        raise ValueError(f"classid {value} is not under {HTB_MAJOR}:")
    return int(minor, 16)


def _normal_expr(expr: Any) -> Any:
    """An expression as listed, in the form we render (the dscp-as-map-key quirk, DSCP names)."""
    if expr == _DSCP_AS_LISTED:
        return _DSCP
    if isinstance(expr, list):
        return [_normal_expr(e) for e in expr]
    if isinstance(expr, dict):
        if "mangle" in expr and expr["mangle"].get("key") == _DSCP and isinstance(expr["mangle"].get("value"), str):
            return {"mangle": {"key": _DSCP, "value": _dscp_of(expr["mangle"]["value"])}}
        return {k: _normal_expr(v) for k, v in expr.items()}
    return expr


def _skeleton(objects: list[dict[str, Any]]) -> tuple[Any, ...]:
    """What must match between the kernel and a rendering: chains with their hooks, maps with
    their types, rules in order; not handles, not elements."""
    chains, maps, rules, other = {}, {}, {}, []
    for obj in objects:
        (kind, body), = obj.items()
        if kind in ("metainfo", "table", "element"):
            continue
        if kind == "chain":
            chains[body["name"]] = tuple(body.get(k) for k in ("type", "hook", "prio", "policy"))
        elif kind == "map":
            maps[body["name"]] = (body.get("type"), body.get("map"), tuple(sorted(body.get("flags", []))))
        elif kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(_normal_expr(body.get("expr")), sort_keys=True))
        else:   # sets, counters, flowtables... nothing we create
            other.append((kind, body.get("name")))
    return chains, maps, rules, sorted(other)


def parse_table(listing: list[dict[str, Any]] | None) -> NftState:
    """The state in the "nftables" array of `nft -j list table ip csmm` (None: no such table)."""
    if listing is None:
        return NftState({}, True)
    sound = True
    plans: dict[str, NftPlan] = {}
    for obj in listing:
        if "map" in obj:
            name, elems = obj["map"]["name"], obj["map"].get("elem", [])
            by_length = _BY_LENGTH.fullmatch(name)
            try:
                if name.startswith(_LEAF_DSCP):
                    dscp_leaf = plans.setdefault(device_name(name[len(_LEAF_DSCP):]), NftPlan()).dscp_leaf
                    for key, value in elems:
                        dscp_leaf[_dscp_of(key)] = _minor_of(value)
                elif by_length and by_length[1] == _REMARK:
                    length = int(by_length[2])
                    remarks = plans.setdefault(device_name(by_length[3]), NftPlan()).remarks
                    for key, value in elems:
                        chain = value["goto"]["target"]
                        if not chain.startswith(_DSCP_CHAIN):
                            raise ValueError(chain)
                        remarks[_prefix_of(key, length)] = int(chain[len(_DSCP_CHAIN):])
                elif by_length:
                    length = int(by_length[2])
                    prefix_leaf = plans.setdefault(device_name(by_length[3]), NftPlan()).prefix_leaf
                    for key, value in elems:
                        prefix_leaf[_prefix_of(key, length)] = _minor_of(value)
            except (ValueError, KeyError, TypeError, AttributeError):
                sound = False   # an element we never write: the skeleton check alone would miss it
        elif "rule" in obj and obj["rule"].get("chain") == INGRESS:
            expr = obj["rule"].get("expr", [])
            if (len(expr) == 2 and "match" in expr[0] and "mangle" in expr[1]
                    and expr[0]["match"].get("left") == {"meta": {"key": "iifname"}}
                    and expr[1]["mangle"].get("key") == _DSCP):
                try:
                    default = _dscp_of(expr[1]["mangle"]["value"])
                    plans.setdefault(expr[0]["match"]["right"], NftPlan()).default_dscp = default
                except (ValueError, TypeError):
                    sound = False
    plans = {d: p for d, p in sorted(plans.items()) if not p.is_empty()}
    try:
        expected = _skeleton_objects(plans)   # needs devices, defaults and prefix lengths only
    except NftError:
        return NftState(plans, False)
    intact = sound and _skeleton(listing) == _skeleton(expected)
    return NftState(plans, intact)


# --- the kernel --------------------------------------------------------------------------------

def _load_library_module() -> ModuleType | None:
    """Debian's python3-nftables: importable when on the path, else loaded from its file."""
    try:
        import nftables  # type: ignore[import-not-found]
        if hasattr(nftables, "Nftables"):
            return nftables
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location("nftables", DEBIAN_MODULE)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (OSError, ImportError):
        return None
    return module


_LIST = {"nftables": [{"list": {"table": {"family": FAMILY, "name": TABLE}}}]}
_LIST_TABLES = {"nftables": [{"list": {"tables": {"family": FAMILY}}}]}


class Nft:
    """nftables in namespace `netns` (None: the caller's): libnftables in-process where Debian's
    module and library are there, else `nft -j -n -f -` as a subprocess (through `ip netns exec`).
    Calls on one instance are serialized by a lock.

    Listings and transactions use two libnftables contexts: a listing leaves every element in its
    context's cache, and the next transaction on that context then cost ~20 ms at 10,000 prefixes
    instead of ~1-2 ms (measured), which would put a reconcile's read in front of every class move."""

    def __init__(self, netns: str | None = None) -> None:
        if netns is not None and not os.path.exists(f"/run/netns/{netns}"):
            raise NftError(f"no network namespace {netns!r} (ip netns add creates one)")
        self.netns = netns
        self._lock = threading.Lock()
        self._ctx: Any = None       # transactions
        self._reader: Any = None    # listings
        module = _load_library_module()
        if module is not None:
            self._ctx = _context(module, netns)
            self._reader = _context(module, netns) if self._ctx is not None else None
        if self._ctx is None and shutil.which("nft") is None:
            raise NftError("neither libnftables (python3-nftables, libnftables1) nor the nft command is installed")

    @property
    def backend(self) -> str:
        return "libnftables" if self._ctx is not None else "nft"

    def _call(self, payload: dict[str, Any], *, listing: bool = False) -> tuple[bool, bytes, str]:
        data = json.dumps(payload).encode()
        context = self._reader if listing else self._ctx
        if context is not None:
            with self._lock, entered(self.netns):
                rc, out, err = context.cmd(data)
            return rc == 0, out, err.decode(errors="replace")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        done = subprocess.run([*prefix, "nft", "-j", "-n", "-f", "-"], input=data, capture_output=True,
                              check=False)
        return done.returncode == 0, done.stdout, done.stderr.decode(errors="replace")

    def run(self, commands: list[dict[str, Any]]) -> None:
        """Apply `commands` as one transaction (all or nothing); NftError with nft's text if refused."""
        if not commands:
            return
        ok, _, err = self._call({"nftables": commands})
        if not ok:
            raise NftError(err.strip() or "nft refused the transaction")

    def read(self) -> NftState:
        """The plans the kernel holds now, and whether our table is intact."""
        ok, out, err = self._call(_LIST, listing=True)
        if not ok:   # most likely no such table; anything else is an error worth reporting
            ok_tables, tables, _ = self._call(_LIST_TABLES, listing=True)
            if ok_tables and not any(o.get("table", {}).get("name") == TABLE for o in _items(tables)):
                return parse_table(None)
            raise NftError(err.strip() or "nft could not list table ip csmm")
        return parse_table(_items(out))


def _context(module: ModuleType, netns: str | None) -> Any:
    """A libnftables context acting in `netns`, with JSON and numeric output; None when the
    library itself (libnftables.so.1) is missing."""
    with entered(netns):       # the context's netlink socket is opened here, in netns
        try:
            context = module.Nftables()
        except OSError:
            return None
    for flag in ("json", "numeric_proto", "numeric_prio", "numeric_symbol"):
        getattr(context, f"set_{flag}_output")(True)
    return context


def _items(output: bytes) -> list[dict[str, Any]]:
    try:
        return json.loads(output)["nftables"] if output.strip() else []
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError(f"nft printed no JSON listing: {output[:200]!r}") from exc
