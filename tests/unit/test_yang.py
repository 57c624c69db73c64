"""The CSM YANG modules (yang/): clean under `pyang --strict --lint`, config true only where a peer
may write (the SLA key, sls/class, sls/bandwidth), the three notifications with their leaves, and
the class, metric and state names in step with the CSM-MIB and the domain model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.domain.principal import Channel
from controller.domain.sla import CustomerKind, LifecycleState

ROOT = Path(__file__).resolve().parents[2]
YANG_DIR = ROOT / "yang"
MODULE_FILE = YANG_DIR / "csm-service.yang"
MIB_FILE = ROOT / "mib" / "CSM-MIB.txt"
README = YANG_DIR / "README.md"
PYANG = Path(sys.executable).with_name("pyang")
# pyang's wheel installs the IETF modules it ships (ietf-yang-types, ietf-inet-types, ...) here.
PYANG_MODULES = Path(sys.prefix) / "share" / "yang" / "modules"

DATA_KEYWORDS = {"container", "list", "leaf", "leaf-list", "choice", "case", "anydata", "anyxml"}
WRITABLE_LEAVES = {"/csm/sla/id", "/csm/sla/sls/class", "/csm/sla/sls/bandwidth"}
# Interior nodes are config true only because they hold the writable leaves.
WRITABLE_PARENTS = {"/csm", "/csm/sla", "/csm/sla/sls"}

SLA_REFERENCE = ["sla-id", "sla-name", "customer"]
NOTIFICATIONS = {
    "sla-violation": [*SLA_REFERENCE, "class", "metric", "measured", "bound"],
    "sla-cleared": [*SLA_REFERENCE, "class", "metric", "measured", "bound"],
    "sls-changed": [*SLA_REFERENCE, "class", "bandwidth", "version", "previous-class", "previous-bandwidth",
                    "changed-at", "changed-by", "channel", "fee"],
}


def require_pyang() -> None:
    if not PYANG.exists():
        pytest.fail(f"pyang is not installed next to {sys.executable} (expected {PYANG}); "
                    f"install it with `{Path(sys.executable).with_name('pip')} install pyang`")
    if not (PYANG_MODULES / "ietf" / "ietf-yang-types.yang").exists():
        pytest.fail(f"pyang's bundled IETF modules are missing from {PYANG_MODULES}; reinstall pyang")


def yang_modules() -> list[Path]:
    return sorted(YANG_DIR.glob("*.yang"))


def run_pyang(*args: str) -> subprocess.CompletedProcess[str]:
    require_pyang()
    return subprocess.run([str(PYANG), "-p", f"{YANG_DIR}:{PYANG_MODULES}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def module() -> Any:
    """The parsed and validated csm-service module (pyang's statements are untyped)."""
    require_pyang()
    try:
        from pyang import context, repository
    except ImportError as exc:
        pytest.fail(f"pyang is not importable from {sys.executable}: {exc}")
    ctx = context.Context(repository.FileRepository(f"{YANG_DIR}:{PYANG_MODULES}"))
    parsed = ctx.add_module(str(MODULE_FILE), MODULE_FILE.read_text())
    ctx.validate()
    assert parsed is not None, f"pyang could not parse {MODULE_FILE}"
    assert not ctx.errors, [(str(pos), tag, args) for pos, tag, args in ctx.errors]
    return parsed


def data_nodes(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    nodes = []
    for child in getattr(node, "i_children", []):
        if child.keyword in DATA_KEYWORDS:
            path = f"{prefix}/{child.arg}"
            nodes.append((path, child))
            nodes.extend(data_nodes(child, path))
    return nodes


def enum_values(type_stmt: Any) -> dict[str, int]:
    values = {}
    for number, enum in enumerate(type_stmt.search("enum")):
        value = enum.search_one("value")
        values[enum.arg] = int(value.arg) if value is not None else number
    return values


def typedef_enum(module: Any, name: str) -> dict[str, int]:
    typedef = module.search_one("typedef", name)
    assert typedef is not None, f"typedef {name} is missing"
    return enum_values(typedef.search_one("type"))


def leaf_enum(node: Any) -> dict[str, int]:
    type_stmt = node.search_one("type")
    assert type_stmt.arg == "enumeration", f"{node.arg} is not an inline enumeration"
    return enum_values(type_stmt)


def mib_values(type_name: str, syntax: str) -> dict[str, int]:
    """Named numbers of a TEXTUAL-CONVENTION (or an OBJECT-TYPE's SYNTAX) in CSM-MIB: name(n) pairs."""
    text = re.sub(r"--[^\n]*", "", MIB_FILE.read_text())
    match = re.search(rf"^{type_name}\s+(?:::=\s*TEXTUAL-CONVENTION|OBJECT-TYPE)\b.*?\bSYNTAX\s+{syntax}\s*\{{(.*?)\}}",
                      text, re.DOTALL | re.MULTILINE)
    assert match, f"{type_name} ({syntax}) not found in {MIB_FILE}"
    return {name: int(number) for name, number in re.findall(r"([a-z][A-Za-z0-9]*)\s*\(\s*(\d+)\s*\)", match.group(1))}


def kebab(name: str) -> str:
    """The YANG spelling of an SMI name: outageDuration -> outage-duration."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "-" + m.group(1).lower(), name)


def node_at(module: Any, path: str) -> Any:
    nodes = dict(data_nodes(module))
    assert path in nodes, f"{path} is missing"
    return nodes[path]


# ---------------------------------------------------------------------------------------------- lint


def test_there_is_a_module() -> None:
    assert MODULE_FILE in yang_modules()


@pytest.mark.parametrize("path", yang_modules(), ids=lambda p: p.name)
def test_pyang_strict_lint_is_clean(path: Path) -> None:
    result = run_pyang("--strict", "--lint", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_readme_tree_is_current() -> None:
    result = run_pyang("-f", "tree", str(MODULE_FILE))
    assert result.returncode == 0, result.stderr
    if result.stdout.strip() not in README.read_text():
        pytest.fail(f"{README} does not show the current tree: paste the output of "
                    f"`pyang -f tree {MODULE_FILE.relative_to(ROOT)}` into it again")


# ---------------------------------------------------------------------------------------------- structure


def test_only_the_key_and_the_sls_pair_are_config_true(module: Any) -> None:
    nodes = data_nodes(module)
    writable = {path for path, node in nodes if node.i_config is True}
    writable_leaves = {path for path, node in nodes if node.i_config is True and node.keyword in ("leaf", "leaf-list")}
    assert writable_leaves == WRITABLE_LEAVES
    assert writable - writable_leaves == WRITABLE_PARENTS


def test_sls_list_is_keyed_by_sla_id(module: Any) -> None:
    sla = node_at(module, "/csm/sla")
    assert sla.keyword == "list"
    assert sla.search_one("key").arg == "id"
    assert node_at(module, "/csm/sla/id").search_one("type").i_type_spec.name == "uint32"


def test_sls_types(module: Any) -> None:
    bandwidth = node_at(module, "/csm/sla/sls/bandwidth")
    assert bandwidth.search_one("type").i_type_spec.name == "uint64"
    assert bandwidth.search_one("type").i_typedef.search_one("units").arg == "bit/s"
    service_class = node_at(module, "/csm/sla/sls/class")
    assert service_class.search_one("type").i_type_spec.name == "identityref"
    for leaf in ("class", "bandwidth"):
        assert node_at(module, f"/csm/sla/sls/{leaf}").search_one("mandatory").arg == "true"


def test_sla_is_state_data(module: Any) -> None:
    for path in ("/csm/service", "/csm/sla/contract", "/csm/sla/statistics", "/csm/sla/conformance"):
        assert node_at(module, path).i_config is False, path
    for path in ("/csm/sla/contract/class-bounds/min", "/csm/sla/contract/class-bounds/max",
                 "/csm/sla/contract/tariff/monthly-fee", "/csm/sla/contract/tariff/class-tariff/included-hours",
                 "/csm/sla/contract/availability/objective-percent", "/csm/sla/contract/change-policy/min-interval",
                 "/csm/sla/statistics/class/octets", "/csm/sla/statistics/class/drops",
                 "/csm/sla/conformance/violations"):
        node_at(module, path)


def test_included_hours_may_be_unlimited(module: Any) -> None:
    union = node_at(module, "/csm/sla/contract/tariff/class-tariff/included-hours").search_one("type")
    assert union.arg == "union"
    members = union.search("type")
    assert [member.arg for member in members] == ["decimal64", "enumeration"]
    assert list(enum_values(members[1])) == ["unlimited"]


@pytest.mark.parametrize("name", sorted(NOTIFICATIONS))
def test_notifications(module: Any, name: str) -> None:
    notification = module.search_one("notification", name)
    assert notification is not None, f"notification {name} is missing"
    assert [child.arg for child in notification.i_children] == NOTIFICATIONS[name]
    sla_id = next(child for child in notification.i_children if child.arg == "sla-id")
    assert sla_id.search_one("type").arg == "leafref"
    assert sla_id.search_one("type").search_one("path").arg == "/csm:csm/csm:sla/csm:id"


def test_no_other_notifications(module: Any) -> None:
    assert {n.arg for n in module.search("notification")} == set(NOTIFICATIONS)


# ---------------------------------------------------------------------------------------------- in step with the MIB


def test_class_identities_match_the_mib(module: Any) -> None:
    mib = mib_values("CsmServiceClass", "INTEGER")
    assert mib == {"gold": 1, "silver": 2, "bronze": 3}
    derived = [i for i in module.search("identity") if i.search_one("base") is not None
               and i.search_one("base").arg == "service-class"]
    assert [identity.arg for identity in derived] == list(mib)
    for identity in derived:
        assert f"CsmServiceClass {identity.arg}({mib[identity.arg]})" in identity.search_one("reference").arg


def test_metric_matches_csm_metric(module: Any) -> None:
    mib = mib_values("CsmMetric", "INTEGER")
    assert len(mib) == 6
    assert typedef_enum(module, "metric") == {kebab(name): number for name, number in mib.items()}


def test_metric_set_matches_csm_metric_set(module: Any) -> None:
    mib = mib_values("CsmMetricSet", "BITS")
    bits = module.search_one("typedef", "metric-set").search_one("type").search("bit")
    assert {bit.arg: int(bit.search_one("position").arg) for bit in bits} == {kebab(n): p for n, p in mib.items()}


def test_lifecycle_state_matches_the_mib_and_the_domain(module: Any) -> None:
    states = typedef_enum(module, "lifecycle-state")
    assert states == {kebab(name): number for name, number in mib_values("CsmLifecycleState", "INTEGER").items()}
    assert list(states) == [state.value for state in LifecycleState]


def test_conformance_state_matches_the_mib(module: Any) -> None:
    assert leaf_enum(node_at(module, "/csm/sla/conformance/state")) == mib_values("csmConfState", "INTEGER")


def test_channel_and_customer_kind_match_the_domain(module: Any) -> None:
    assert list(typedef_enum(module, "channel")) == [channel.value for channel in Channel]
    kinds = leaf_enum(node_at(module, "/csm/sla/contract/customer-kind"))
    assert list(kinds) == [kind.value for kind in CustomerKind]


# ---------------------------------------------------------------------------------------------- served data

def test_a_get_serves_every_node_of_the_module_and_no_other(module: Any) -> None:
    """The tree the NETCONF server answers a <get> with, for an SLA whose customer may not change
    its SLS yet, with an end date and a measured conformance, and one with none of these, names
    only nodes of csm-service, and all of them."""
    from dataclasses import replace
    from decimal import Decimal

    from lxml import etree

    from controller.domain.catalog import load_catalog
    from controller.domain.conformance import Conformance
    from controller.northbound.netconf import rpc
    from tests.unit.builders import GOLD, T0, M, sla, sls

    bound = replace(sla(), id=5, terms=replace(sla().terms, valid_until=T0.replace(year=2027)))
    free = replace(sla(), id=7, name="acme-2")
    measured = Conformance(5, T0, 3.0, GOLD, 2 * M, 1_900_000, 1_950_000, 200_000, T0.replace(day=1),
                           Decimal("99.95"), 30, ("loss",))
    state = rpc.StateData(load_catalog(), T0, {5: T0}, {("acme-hq", "gold"): (1500, 1, 0)}, {5: measured})
    data = rpc.data_tree([(bound, replace(sls(GOLD, 2 * M), sla_id=5)), (free, replace(sls(), sla_id=7))],
                         config_only=False, state=state)

    def paths(element: etree._Element, prefix: str = "") -> set[str]:
        path = f"{prefix}/{etree.QName(element).localname}"
        assert etree.QName(element).namespace == "urn:csmm:yang:csm-service", path
        return {path}.union(*(paths(child, path) for child in element))

    served = paths(data)
    schema = {path for path, _ in data_nodes(module)}
    assert served <= schema, served - schema
    assert served == schema, schema - served
    entries = {e.findtext("{urn:csmm:yang:csm-service}id"): e for e in data.iter("{urn:csmm:yang:csm-service}sla")}
    allowed = "{urn:csmm:yang:csm-service}sls/{urn:csmm:yang:csm-service}next-change-allowed"
    assert entries["5"].find(allowed) is not None and entries["7"].find(allowed) is None
    gold = [c for c in entries["5"].iter("{urn:csmm:yang:csm-service}class")
            if c.findtext("{urn:csmm:yang:csm-service}octets") is not None
            and c.findtext("{urn:csmm:yang:csm-service}class") == "gold"]
    assert [(c.findtext("{urn:csmm:yang:csm-service}octets"), c.findtext("{urn:csmm:yang:csm-service}packets"))
            for c in gold] == [("1500", "1")]
    conformance = entries["5"].find("{urn:csmm:yang:csm-service}conformance")
    assert [(c.tag.split("}")[1], c.text) for c in conformance][-3:] == [
        ("longest-outage-this-month", "30"), ("state", "violating"), ("violations", "loss")]
    assert entries["7"].findtext("{urn:csmm:yang:csm-service}conformance/{urn:csmm:yang:csm-service}state") == "unknown"
