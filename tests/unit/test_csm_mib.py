"""The CSM-MIB: lint-clean under smilint, compiled by pysmi, loaded by pysnmp 7 with the OIDs,
access and structure the SNMP agent relies on, and in step with the domain model."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyasn1.type.error import ValueConstraintError
from pysnmp.entity.engine import SnmpEngine
from pysnmp.smi.builder import MibBuilder

from controller.domain.catalog import ServiceClassName
from controller.domain.sla import LifecycleState
from controller.northbound.snmp.mibs import CSM_MIB, MIB_SOURCE_DIR, MibCompileError, compile_mibs, load_mibs

CSM_MIB_FILE = MIB_SOURCE_DIR / f"{CSM_MIB}.txt"
ROOT_OID = (1, 3, 6, 1, 4, 1, 32473)  # the documentation enterprise number (RFC 5612)

SLA_COLUMNS = ("csmSlaName", "csmSlaCustomer", "csmSlaOffering", "csmSlaAccessSpeed",
               "csmSlaGoldMin", "csmSlaGoldMax", "csmSlaSilverMin", "csmSlaSilverMax",
               "csmSlaBronzeMin", "csmSlaBronzeMax", "csmSlaAvailObjective", "csmSlaMaxOutage",
               "csmSlaChangeMinInterval", "csmSlaChangeFee", "csmSlaValidFrom", "csmSlaValidUntil", "csmSlaState")
SLS_READ_ONLY = ("csmSlsVersion", "csmSlsLastChange", "csmSlsNextChangeAllowed")
STATS_COLUMNS = ("csmClassStatsOctets", "csmClassStatsPackets", "csmClassStatsDrops", "csmClassStatsDiscontTime")
CONFORMANCE_COLUMNS = ("csmConfMeasuredAt", "csmConfInterval", "csmConfSlsClass", "csmConfSlsBandwidth",
                       "csmConfThroughput", "csmConfLoss", "csmConfAvailMonth", "csmConfLongestOutageMonth",
                       "csmConfState", "csmConfViolations")
NOTIFY_OBJECTS = ("csmNotifyClass", "csmNotifyMetric", "csmNotifyMeasured", "csmNotifyBound")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_mibs(cache_dir=tmp_path_factory.mktemp("mib-cache"))


@pytest.fixture(scope="module")
def mib(compiled: Path) -> MibBuilder:
    builder = MibBuilder()
    builder.loadTexts = True  # UNITS and DESCRIPTION clauses are loaded only on request
    return load_mibs(builder, cache_dir=compiled.parent)


def symbol(mib: MibBuilder, name: str):  # noqa: ANN201 - pysnmp's MIB node classes are untyped
    (node,) = mib.import_symbols(CSM_MIB, name)
    return node


def imported_modules(text: str) -> set[str]:
    imports = re.search(r"\bIMPORTS\b(.*?);", re.sub(r"--[^\n]*", "", text), re.S)
    return set(re.findall(r"\bFROM\s+([A-Za-z][A-Za-z0-9-]*)", imports.group(1))) if imports else set()


# ---------------------------------------------------------------------------------------------- source


@pytest.mark.skipif(shutil.which("smilint") is None,
                    reason="smilint not installed (Debian package smitools; scripts/setup.sh installs it)")
def test_smilint_level_6_reports_nothing() -> None:
    # SMIPATH without a leading or trailing ':' replaces libsmi's path: only the shipped modules are used.
    # No HOME: no ~/.smirc either. The check is the acceptance criterion: no output at all.
    result = subprocess.run([shutil.which("smilint") or "smilint", "-l", "6", str(CSM_MIB_FILE)],
                            capture_output=True, text=True, env={"SMIPATH": str(MIB_SOURCE_DIR)}, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("snmptranslate") is None,
                    reason="net-snmp's snmptranslate not installed (Debian package snmp; scripts/setup.sh installs it)")
def test_net_snmp_tools_resolve_csm_mib_names_from_the_shipped_modules_alone() -> None:
    # -M replaces net-snmp's MIB path, so its tools (snmpwalk, snmpset, snmptrapd) read mib/ and nothing else.
    result = subprocess.run(["snmptranslate", "-M", str(MIB_SOURCE_DIR), "-m", CSM_MIB, "-On",
                             "CSM-MIB::csmSlsClass", "CSM-MIB::csmSlaViolation"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [".1.3.6.1.4.1.32473.1.3.1.1", ".1.3.6.1.4.1.32473.0.1"]
    complaints = [line for line in result.stderr.splitlines() if not line.startswith("Created directory")]
    assert complaints == []


def test_mib_dir_ships_exactly_the_modules_csm_mib_imports_transitively() -> None:
    needed, todo = set(), [CSM_MIB]
    while todo:
        name = todo.pop()
        path = MIB_SOURCE_DIR / f"{name}.txt"
        assert path.is_file(), f"{name} is imported but mib/{name}.txt is missing"
        for module in imported_modules(path.read_text()) - needed:
            needed.add(module)
            todo.append(module)
    shipped = {path.stem for path in MIB_SOURCE_DIR.glob("*.txt")}
    assert shipped == needed | {CSM_MIB}


def test_module_is_rooted_under_the_documentation_enterprise_number_and_says_a_pen_replaces_it() -> None:
    text = CSM_MIB_FILE.read_text()
    assert re.search(r"::=\s*\{\s*enterprises\s+32473\s*\}", text)
    assert "Private Enterprise Number" in text


# ---------------------------------------------------------------------------------------------- compile


def test_pysmi_generates_only_csm_mib_and_leaves_base_modules_to_pysnmp(compiled: Path) -> None:
    assert sorted(path.name for path in compiled.glob("*.py")) == ["CSM-MIB.py"]


def test_compiled_output_is_reused_until_the_mib_text_changes(tmp_path: Path, compiled: Path) -> None:
    assert compile_mibs(cache_dir=compiled.parent) == compiled
    sources = tmp_path / "mib"
    shutil.copytree(MIB_SOURCE_DIR, sources)
    assert compile_mibs(sources, cache_dir=compiled.parent).name == compiled.name  # same texts, same key
    edited = sources / CSM_MIB_FILE.name
    edited.write_text(edited.read_text().replace('"Initial version."', '"Initial version, edited."'))
    assert compile_mibs(sources, cache_dir=compiled.parent) != compiled


def test_a_broken_mib_is_refused_with_the_module_named(tmp_path: Path) -> None:
    sources = tmp_path / "mib"
    shutil.copytree(MIB_SOURCE_DIR, sources)
    broken = sources / CSM_MIB_FILE.name
    broken.write_text(broken.read_text().replace("csmSlsClass OBJECT-TYPE", "csmSlsClass OBJECT-TYP", 1))
    with pytest.raises(MibCompileError) as refused:
        compile_mibs(sources, cache_dir=tmp_path / "cache")
    assert refused.value.module == CSM_MIB
    assert not list((tmp_path / "cache").glob("pysnmp-*"))  # nothing half-built left to be reused


def test_an_snmp_engine_loads_the_compiled_mib_into_its_own_builder(compiled: Path) -> None:
    builder = SnmpEngine().get_mib_builder()
    load_mibs(builder, cache_dir=compiled.parent)
    (sls_class,) = builder.import_symbols(CSM_MIB, "csmSlsClass")
    assert sls_class.getName() == ROOT_OID + (1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------- OIDs


@pytest.mark.parametrize(("name", "arcs"), [
    ("csmMIB", ()),
    ("csmSlaViolation", (0, 1)),
    ("csmSlaCleared", (0, 2)),
    ("csmSlsChanged", (0, 3)),
    ("csmServiceName", (1, 1, 1)),
    ("csmSlaTable", (1, 2)),
    ("csmSlaName", (1, 2, 1, 2)),
    ("csmSlaState", (1, 2, 1, 18)),
    ("csmSlsTable", (1, 3)),
    ("csmSlsClass", (1, 3, 1, 1)),
    ("csmSlsBandwidth", (1, 3, 1, 2)),
    ("csmSlsVersion", (1, 3, 1, 3)),
    ("csmClassStatsOctets", (1, 4, 1, 2)),
    ("csmClassStatsDiscontTime", (1, 4, 1, 5)),
    ("csmConfAvailMonth", (1, 5, 1, 7)),
    ("csmNotifyBound", (1, 6, 4)),
    ("csmFullCompliance", (2, 1, 1)),
    ("csmNotificationGroup", (2, 2, 6)),
])
def test_names_resolve_to_their_oids(mib: MibBuilder, name: str, arcs: tuple[int, ...]) -> None:
    assert symbol(mib, name).getName() == ROOT_OID + arcs


# ---------------------------------------------------------------------------------------------- access


def test_customer_writes_sls_class_and_bandwidth_only(mib: MibBuilder) -> None:
    assert symbol(mib, "csmSlsClass").getMaxAccess() == "read-write"
    assert symbol(mib, "csmSlsBandwidth").getMaxAccess() == "read-write"
    for name in SLS_READ_ONLY:
        assert symbol(mib, name).getMaxAccess() == "read-only", name


@pytest.mark.parametrize("name", SLA_COLUMNS + STATS_COLUMNS + CONFORMANCE_COLUMNS
                         + ("csmServiceName", "csmServiceCurrency"))
def test_sla_counters_and_conformance_are_read_only(mib: MibBuilder, name: str) -> None:
    assert symbol(mib, name).getMaxAccess() == "read-only"


def test_notification_only_objects_are_accessible_for_notify(mib: MibBuilder) -> None:
    for name in NOTIFY_OBJECTS:
        assert symbol(mib, name).getMaxAccess() == "accessible-for-notify", name


def test_index_objects_are_not_accessible(mib: MibBuilder) -> None:
    for name in ("csmSlaIndex", "csmClassStatsClass"):
        assert symbol(mib, name).getMaxAccess() == "not-accessible", name


# ---------------------------------------------------------------------------------------------- structure


def test_sls_and_conformance_rows_share_the_sla_index(mib: MibBuilder) -> None:
    sla_index = ((0, CSM_MIB, "csmSlaIndex"),)
    assert symbol(mib, "csmSlaEntry").getIndexNames() == sla_index
    assert symbol(mib, "csmSlsEntry").getIndexNames() == sla_index
    assert symbol(mib, "csmConformanceEntry").getIndexNames() == sla_index
    assert symbol(mib, "csmClassStatsEntry").getIndexNames() == sla_index + ((0, CSM_MIB, "csmClassStatsClass"),)


def test_sla_index_starts_at_one_and_fills_unsigned32(mib: MibBuilder) -> None:
    syntax = symbol(mib, "csmSlaIndex").getSyntax()
    assert (int(syntax.clone(1)), int(syntax.clone(4294967295))) == (1, 4294967295)
    with pytest.raises(ValueConstraintError):
        syntax.clone(0)


def test_bandwidths_are_kbit_per_second_and_reach_past_4_gbit(mib: MibBuilder) -> None:
    for name in ("csmSlaAccessSpeed", "csmSlaGoldMax", "csmSlsBandwidth", "csmConfThroughput"):
        node = symbol(mib, name)
        assert node.getUnits() == "kilobits per second", name
        assert int(node.getSyntax().clone(100_000_000)) == 100_000_000  # a 100 Gbit/s access link


def test_counters_are_64_bit(mib: MibBuilder) -> None:
    for name in ("csmClassStatsOctets", "csmClassStatsPackets", "csmClassStatsDrops"):
        assert type(symbol(mib, name).getSyntax()).__name__ == "Counter64", name


@pytest.mark.parametrize(("name", "objects"), [
    ("csmSlaViolation", ("csmSlaCustomer", "csmSlaName") + NOTIFY_OBJECTS),
    ("csmSlaCleared", ("csmSlaCustomer", "csmSlaName") + NOTIFY_OBJECTS),
    ("csmSlsChanged", ("csmSlaCustomer", "csmSlaName", "csmSlsClass", "csmSlsBandwidth", "csmSlsVersion")),
])
def test_notifications_carry_their_varbinds(mib: MibBuilder, name: str, objects: tuple[str, ...]) -> None:
    assert symbol(mib, name).getObjects() == tuple((CSM_MIB, item) for item in objects)


# ---------------------------------------------------------------------------------------------- domain


def test_service_class_enumeration_matches_the_domain(mib: MibBuilder) -> None:
    named = dict(symbol(mib, "csmSlsClass").getSyntax().namedValues.items())
    assert named == {"gold": 1, "silver": 2, "bronze": 3}
    assert set(named) == {name.value for name in ServiceClassName}


def test_life_cycle_enumeration_matches_the_domain_in_order(mib: MibBuilder) -> None:
    named = dict(symbol(mib, "csmSlaState").getSyntax().namedValues.items())
    camel = [re.sub(r"-(\w)", lambda match: match.group(1).upper(), state.value) for state in LifecycleState]
    assert sorted(named, key=named.__getitem__) == camel
    assert sorted(named.values()) == list(range(1, len(LifecycleState) + 1))
