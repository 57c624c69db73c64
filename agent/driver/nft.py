"""Classification and DSCP remarking in nftables: one table `ip csmm`, driven by libnftables JSON.

Per device the agent wants an `NftPlan`; all devices share one table, rendered as::

    table ip csmm {
      chain dscp_0 { ip dscp set 0 } ... chain dscp_63 { ip dscp set 63 }   # all 64, always
      map remark_<dev>      { type ipv4_addr : verdict; flags interval; }  # prefix : goto dscp_N
      map leaf_dscp_<dev>   { type dscp : classid; }                       # 46 : 1:3
      map leaf_prefix_<dev> { type ipv4_addr : classid; flags interval; }  # prefix : 1:a
      chain ingress { type filter hook prerouting priority mangle (-150); policy accept;
        iifname "<dev>" ip saddr vmap @remark_<dev>   # goto: a known prefix never reaches the next rule
        iifname "<dev>" ip dscp set <default_dscp> }  # only where the plan has a default
      chain egress { type filter hook postrouting priority mangle (-150); policy accept;
        oifname "<dev>" meta priority set ip dscp map @leaf_dscp_<dev>
        oifname "<dev>" meta priority set ip saddr map @leaf_prefix_<dev> }  # later rule wins
    }

Why this shape (each point tried on nftables 1.0.6 and this kernel):

* `ip dscp set ip saddr map @m` is refused by nft, hence a vmap that jumps (`goto`) to one tiny
  chain per DSCP value. A failed map lookup ends the rule, so a source not in the vmap falls to the
  default rule, and a packet without a leaf entry keeps its priority.
* HTB reads skb->priority (major:minor) before its filters; the forwarding path sets priority
  from the TOS byte (0..7, never major 1), so an unmatched packet goes to HTB's default class.
* Every device gets all three maps and the vmap rule, even when they are empty, and the table
  always has a chain for each of the 64 DSCP values (unhooked, reached only by `goto`; nothing per
  packet), so that the first customer on a device, or the first or last customer of a class
  (GSB: moving the only Gold customer back to Silver), is an element change and not a rebuild of
  the whole table. The structure is therefore just the devices and each one's `default_dscp`.
* An element's value cannot be replaced by `add` ("File exists"): a changed key is a delete and
  an add in the same transaction, which the kernel accepts.
* Prefixes in one interval map must not overlap ("conflicting intervals specified"); this is
  checked before rendering so the error names them.
* nft lists the rule `meta priority set ip dscp map @m` back as `(@nh,8,8 & 0xfc) >> 2 map @m`
  (a listing quirk, the bytecode is the same); the comparison with what we render knows that.
* Map names are built from device names (letters and digits kept, every other byte `_xx`), which
  decodes back, so any Linux device name is safe in a map name.

libnftables opens its netlink socket once, in `nft_ctx_new()` (measured: the socket appears at
context creation; a context made in one namespace keeps acting there, whatever namespace the
thread is in later; nftables removed its only socket re-open in 0.9.9). So the context must be
created inside the namespace; `Nft` also enters the namespace around each call (~20 us), so that a
later library that opens sockets lazily cannot touch the wrong namespace's ruleset.

Costs measured at 10,000 prefixes in each of two interval maps (2 shared cores): a full replace
~0.35-0.45 s, `read()` ~0.25-0.35 s (the listing itself ~0.16 s), a class move (4 element
commands) ~0.1 s. The move is slow because libnftables 1.0.6 re-dumps every interval set of every
table into its cache before any element change (overlap checks; our own last commit invalidated
the cache), so an element transaction costs about a listing of all interval elements; with 1,000
prefixes it is ~4 ms. (Measured alternative: one concatenated `iifname . ip saddr` map is not
dumped, ~13 ms per move, but its bulk load took 2.6 s and pipapo lookups grow with the set.)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
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

_REMARK = "remark_"
_LEAF_DSCP = "leaf_dscp_"
_LEAF_PREFIX = "leaf_prefix_"
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
    if not device or len(device.encode()) > 15 or any(c in device for c in "/:*\\\"") or any(c.isspace() for c in device):
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
    # nft refuses overlapping intervals in one map without saying which: say it here.
    spans = sorted((net, -bits, text) for text, net, bits in map(_prefix, table))
    end = -1
    last = ""
    for net, negbits, text in spans:
        if net <= end:
            raise NftError(f"{device}: {what} prefixes {last} and {text} overlap "
                           "(an nftables interval map needs them disjoint)")
        if net + (1 << (32 + negbits)) - 1 > end:
            end, last = net + (1 << (32 + negbits)) - 1, text


def _structure(plans: dict[str, NftPlan]) -> tuple[tuple[str, int | None], ...]:
    """What element changes cannot reach: which devices, and each one's default rule."""
    return tuple((d, p.default_dscp) for d, p in sorted(plans.items()))


def _addr(prefix: str) -> Any:
    """A canonical prefix as nft's JSON writes it: a /32 is a bare address."""
    addr, _, bits = prefix.partition("/")
    return addr if bits == "32" else {"prefix": {"addr": addr, "len": int(bits)}}


def _obj(kind: str, **fields: Any) -> dict[str, Any]:
    return {kind: {"family": FAMILY, "table": TABLE, **fields}}


def _elements(name: str, elem: list[Any]) -> dict[str, Any]:
    return _obj("element", name=name, elem=elem)


def _remark_elem(prefix: str, dscp: int) -> list[Any]:
    return [_addr(prefix), {"goto": {"target": f"{_DSCP_CHAIN}{dscp}"}}]


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
    for device in plans:
        safe = safe_name(device)
        objects.append(_obj("map", name=_REMARK + safe, type="ipv4_addr", map="verdict", flags=["interval"]))
        objects.append(_obj("map", name=_LEAF_DSCP + safe, type="dscp", map="classid"))
        objects.append(_obj("map", name=_LEAF_PREFIX + safe, type="ipv4_addr", map="classid", flags=["interval"]))
    for chain, hook in ((INGRESS, "prerouting"), (EGRESS, "postrouting")):
        objects.append(_obj("chain", name=chain, type="filter", hook=hook, prio=PRIORITY_MANGLE, policy="accept"))
    for device, plan in plans.items():
        safe = safe_name(device)
        objects.append(_obj("rule", chain=INGRESS, expr=[
            _match("iifname", device), {"vmap": {"key": _SADDR, "data": f"@{_REMARK}{safe}"}}]))
        if plan.default_dscp is not None:
            objects.append(_obj("rule", chain=INGRESS, expr=[
                _match("iifname", device), {"mangle": {"key": _DSCP, "value": plan.default_dscp}}]))
    for device in plans:
        safe = safe_name(device)
        objects.append(_obj("rule", chain=EGRESS, expr=[_match("oifname", device), _set_priority(_DSCP, _LEAF_DSCP + safe)]))
        objects.append(_obj("rule", chain=EGRESS, expr=[_match("oifname", device), _set_priority(_SADDR, _LEAF_PREFIX + safe)]))
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
        safe = safe_name(device)
        for name, elem in ((_REMARK + safe, [_remark_elem(p, d) for p, d in sorted(plan.remarks.items())]),
                           (_LEAF_DSCP + safe, [[d, classid(m)] for d, m in sorted(plan.dscp_leaf.items())]),
                           (_LEAF_PREFIX + safe, [[_addr(p), classid(m)] for p, m in sorted(plan.prefix_leaf.items())])):
            if elem:
                commands.append({"add": _elements(name, elem)})
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
        safe = safe_name(device)
        for name, before, after, render in (
                (_REMARK + safe, old[device].remarks, new[device].remarks, _remark_elem),
                (_LEAF_DSCP + safe, old[device].dscp_leaf, new[device].dscp_leaf, lambda d, m: [d, classid(m)]),
                (_LEAF_PREFIX + safe, old[device].prefix_leaf, new[device].prefix_leaf,
                 lambda p, m: [_addr(p), classid(m)])):
            gone = sorted(k for k in before if before[k] != after.get(k))
            come = sorted(k for k in after if after[k] != before.get(k))
            if gone:
                keys = [_addr(k) if isinstance(k, str) else k for k in gone]
                deletes.append({"delete": _elements(name, keys)})
            if come:
                adds.append({"add": _elements(name, [render(k, after[k]) for k in come])})
    return deletes + adds


# --- parsing (pure) ----------------------------------------------------------------------------

def _prefix_of(key: Any) -> str:
    # the kernel hands back network addresses already: no need to check host bits here
    if isinstance(key, str):
        return key if "/" in key else f"{key}/32"
    if isinstance(key, dict) and "prefix" in key:
        return f"{key['prefix']['addr']}/{key['prefix']['len']}"
    raise ValueError(f"not a prefix: {key!r}")   # e.g. a range someone added by hand


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
            try:
                if name.startswith(_REMARK):
                    remarks = plans.setdefault(device_name(name[len(_REMARK):]), NftPlan()).remarks
                    for key, value in elems:
                        chain = value["goto"]["target"]
                        if not chain.startswith(_DSCP_CHAIN):
                            raise ValueError(chain)
                        remarks[_prefix_of(key)] = int(chain[len(_DSCP_CHAIN):])
                elif name.startswith(_LEAF_DSCP):
                    dscp_leaf = plans.setdefault(device_name(name[len(_LEAF_DSCP):]), NftPlan()).dscp_leaf
                    for key, value in elems:
                        dscp_leaf[_dscp_of(key)] = _minor_of(value)
                elif name.startswith(_LEAF_PREFIX):
                    prefix_leaf = plans.setdefault(device_name(name[len(_LEAF_PREFIX):]), NftPlan()).prefix_leaf
                    for key, value in elems:
                        prefix_leaf[_prefix_of(key)] = _minor_of(value)
            except (ValueError, KeyError, TypeError, AttributeError):
                sound = False   # an element we never write: the skeleton check alone would miss it
        elif "rule" in obj and obj["rule"].get("chain") == INGRESS:
            expr = obj["rule"].get("expr", [])
            if (len(expr) == 2 and "match" in expr[0] and "mangle" in expr[1]
                    and expr[0]["match"].get("left") == {"meta": {"key": "iifname"}}
                    and expr[1]["mangle"].get("key") == _DSCP):
                try:
                    plans.setdefault(expr[0]["match"]["right"], NftPlan()).default_dscp = _dscp_of(expr[1]["mangle"]["value"])
                except (ValueError, TypeError):
                    sound = False
    plans = {d: p for d, p in sorted(plans.items()) if not p.is_empty()}
    try:
        expected = _skeleton_objects(plans)   # needs devices, defaults and DSCP values only
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
    Calls on one instance are serialized by a lock."""

    def __init__(self, netns: str | None = None) -> None:
        if netns is not None and not os.path.exists(f"/run/netns/{netns}"):
            raise NftError(f"no network namespace {netns!r} (ip netns add creates one)")
        self.netns = netns
        self._lock = threading.Lock()
        self._ctx: Any = None
        module = _load_library_module()
        if module is not None:
            with entered(netns):       # the context's netlink socket is opened here, in netns
                try:
                    self._ctx = module.Nftables()
                except OSError:        # libnftables.so.1 missing: fall back to the command
                    self._ctx = None
            if self._ctx is not None:
                for flag in ("json", "numeric_proto", "numeric_prio", "numeric_symbol"):
                    getattr(self._ctx, f"set_{flag}_output")(True)
        if self._ctx is None and shutil.which("nft") is None:
            raise NftError("neither libnftables (python3-nftables, libnftables1) nor the nft command is installed")

    @property
    def backend(self) -> str:
        return "libnftables" if self._ctx is not None else "nft"

    def _call(self, payload: dict[str, Any]) -> tuple[bool, bytes, str]:
        data = json.dumps(payload).encode()
        if self._ctx is not None:
            with self._lock, entered(self.netns):
                rc, out, err = self._ctx.cmd(data)
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
        ok, out, err = self._call(_LIST)
        if not ok:   # most likely no such table; anything else is an error worth reporting
            ok_tables, tables, _ = self._call(_LIST_TABLES)
            if ok_tables and not any(o.get("table", {}).get("name") == TABLE for o in _items(tables)):
                return parse_table(None)
            raise NftError(err.strip() or "nft could not list table ip csmm")
        return parse_table(_items(out))


def _items(output: bytes) -> list[dict[str, Any]]:
    try:
        return json.loads(output)["nftables"] if output.strip() else []
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError(f"nft printed no JSON listing: {output[:200]!r}") from exc
