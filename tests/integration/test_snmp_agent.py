"""The SNMP agent as managers meet it: net-snmp's snmpget/snmpgetnext/snmpbulkwalk/snmpset and
snmptrapd, and pysnmp's hlapi, against a real `csmm serve` on 127.0.0.1.

One controller serves the module; tests that change SLSs use the domain manager (not rate
limited) or say which customer change they spend. The test network (snmp_support.thin_link_provisioning)
has a thin edge1-core link so admission control can refuse, and umbrella-lab has no Gold.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    set_cmd,
    usmAesCfb128Protocol,
    usmHMAC384SHA512AuthProtocol,
)
from pysnmp.proto import rfc1902

from controller.domain.catalog import ServiceClassName
from controller.domain.conformance import Conformance
from controller.domain.principal import DOMAIN_MANAGER
from controller.domain.sls import SlsHistoryEntry
from controller.service.events import SLA_CLEARED, SLA_VIOLATION
from controller.store.records import FeedbackRecord
from tests.integration.snmp_support import ACME, GLOBEX, NOC, PEER, SnmpController, TrapReceiver, User, wait_until

CSM = "1.3.6.1.4.1.32473"
SLA_ENTRY = f"{CSM}.1.2.1"
SLS_ENTRY = f"{CSM}.1.3.1"
CONFORMANCE_ENTRY = f"{CSM}.1.5.1"
NO_SUCH_SLA = 4242


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpController]:
    controller = SnmpController(tmp_path_factory.mktemp("snmp"))
    controller.prepare()
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture(scope="module")
def sla_ids(agent: SnmpController) -> dict[str, int]:
    service = agent.service()
    try:
        return {sla.name: sla.id for sla in service.list_slas(DOMAIN_MANAGER)}
    finally:
        service.database.dispose()


def indexes(output: str, column_oid: str) -> set[int]:
    """The row indexes of one column in numeric (-On) tool output."""
    return {int(m) for m in re.findall(rf"^\.{re.escape(column_oid)}\.(\d+) =", output, flags=re.M)}


def sls(agent: SnmpController, sla: str) -> dict[str, Any]:
    """The SLS in effect, as the store has it."""
    service = agent.service()
    try:
        now = service.get_sls(DOMAIN_MANAGER, sla)
    finally:
        service.database.dispose()
    return {"class": now.service_class.value, "bandwidth_bps": now.bandwidth_bps, "version": now.version,
            "changed_by": now.changed_by, "channel": now.channel.value}


def last_history_entry(agent: SnmpController, sla: str) -> SlsHistoryEntry:
    service = agent.service()
    try:
        return service.sls_history(DOMAIN_MANAGER, sla)[-1]
    finally:
        service.database.dispose()


# ------------------------------------------------------------------------------------------ reads and isolation

def test_a_customer_walk_returns_its_own_rows_only(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    for tool in ("snmpwalk", "snmpbulkwalk"):
        out = agent.snmp(tool, ACME, "-On", CSM, check=True).stdout
        assert indexes(out, f"{SLA_ENTRY}.2") == {sla_ids["acme-hq"]}, out
        assert indexes(out, f"{SLS_ENTRY}.1") == {sla_ids["acme-hq"]}
        assert "globex" not in out and "initech" not in out
    named = agent.snmp("snmpwalk", ACME, "CSM-MIB::csmSlaName", check=True).stdout
    assert named.strip() == f'CSM-MIB::csmSlaName.{sla_ids["acme-hq"]} = STRING: acme-hq'  # DISPLAY-HINT 255t


def test_the_domain_manager_walks_every_row(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    out = agent.snmp("snmpbulkwalk", NOC, "-On", "-Cr25", CSM, check=True).stdout
    assert indexes(out, f"{SLA_ENTRY}.2") == set(sla_ids.values())
    stats = re.findall(rf"^\.{CSM}\.1\.4\.1\.2\.(\d+)\.(\d+) =", out, flags=re.M)  # octets per SLA and class
    assert sorted(stats) == sorted((str(i), str(c)) for i in sla_ids.values() for c in (1, 2, 3))


def test_a_peer_domain_sees_its_own_sla(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    out = agent.snmp("snmpbulkwalk", PEER, "-On", f"{SLA_ENTRY}.2", check=True).stdout
    assert indexes(out, f"{SLA_ENTRY}.2") == {sla_ids["as64500-transit"]}


def test_another_customers_row_looks_exactly_like_a_missing_one(agent: SnmpController,
                                                                 sla_ids: dict[str, int]) -> None:
    globex_row = agent.snmp("snmpget", ACME, "-On", f"{SLS_ENTRY}.1.{sla_ids['globex-main']}").stdout
    missing_row = agent.snmp("snmpget", ACME, "-On", f"{SLS_ENTRY}.1.{NO_SUCH_SLA}").stdout
    assert "No Such Instance" in globex_row and "No Such Instance" in missing_row
    same_index = (globex_row.replace(f".1.{sla_ids['globex-main']} =", ".1.N =")
                  == missing_row.replace(f".1.{NO_SUCH_SLA} =", ".1.N ="))
    assert same_index, (globex_row, missing_row)


def test_getnext_and_getbulk_step_over_other_customers_rows(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    # From just before globex's row, GETNEXT by acme must not land on it (VACM-style leaks do).
    before_globex = f"{SLS_ENTRY}.1.{sla_ids['globex-main'] - 1}"
    nxt = agent.snmp("snmpgetnext", ACME, "-On", before_globex, check=True).stdout
    assert f".{SLS_ENTRY}.1.{sla_ids['globex-main']} " not in nxt
    assert nxt.startswith(f".{SLS_ENTRY}.2.{sla_ids['acme-hq']} ")  # acme's next object: its bandwidth
    bulk = agent.snmp("snmpbulkget", GLOBEX, "-On", "-Cn0", "-Cr60", SLA_ENTRY, check=True).stdout
    rows = {int(m) for m in re.findall(rf"^\.{CSM}\.1\.\d\.1\.\d+\.(\d+) =", bulk, flags=re.M)}
    assert rows == {sla_ids["globex-main"]}, bulk


def record_conformance(agent: SnmpController, *found: Conformance) -> None:
    """Store conformance as the feedback part does (no crossings: no events, no traps)."""
    service = agent.service()
    try:
        month = datetime(2026, 11, 1, tzinfo=timezone.utc)
        service.record_feedback(DOMAIN_MANAGER, [FeedbackRecord(c, month, 0.0, float(c.longest_outage_s))
                                                 for c in found], [])
    finally:
        service.database.dispose()


def conformance_rows(output: str) -> dict[int, dict[str, str]]:
    """SLA id -> {column name: value as net-snmp shows it} of a walk of csmConformanceTable."""
    rows: dict[int, dict[str, str]] = {}
    for column, index, value in re.findall(r"^CSM-MIB::csmConf(\w+)\.(\d+) = (.*)$", output, flags=re.M):
        rows.setdefault(int(index), {})[column] = value.strip()
    return rows


def test_the_conformance_table_shows_each_customer_its_own_slas_conformance(agent: SnmpController,
                                                                            sla_ids: dict[str, int]) -> None:
    acme, globex = sla_ids["acme-hq"], sla_ids["globex-main"]
    month = datetime(2026, 11, 1, tzinfo=timezone.utc)
    record_conformance(
        agent,
        Conformance(acme, datetime(2026, 11, 14, 9, 30, 15, 250_000, tzinfo=timezone.utc), 3.0,
                    ServiceClassName.GOLD, 2_000_000, 1_999_999, 2_100_000, 25_000, month, Decimal("99.95"), 42,
                    ("loss", "availability")),
        Conformance(globex, datetime(2026, 11, 14, 9, 30, 16, tzinfo=timezone.utc), 3.0, ServiceClassName.SILVER,
                    4_000_000, 900_000, 900_000, 0, month, Decimal("100"), 0, ()))
    # The agent re-reads conformance every second (SnmpSettings.usage_interval_s).
    wait_until("the agent to serve the conformance", lambda: "violating(3)" in agent.snmp(
        "snmpget", NOC, f"CSM-MIB::csmConfState.{acme}").stdout, timeout=10)

    for tool in ("snmpwalk", "snmpbulkwalk"):
        walked = agent.snmp(tool, ACME, "CSM-MIB::csmConformanceTable", check=True).stdout
        assert conformance_rows(walked) == {acme: {
            "MeasuredAt": "STRING: 2026-11-14,9:30:15.2,+0:0",
            "Interval": "Gauge32: 3 seconds",
            "SlsClass": "INTEGER: gold(1)",
            "SlsBandwidth": "Gauge32: 2000 kilobits per second",
            "Throughput": "Gauge32: 1999 kilobits per second",
            "Loss": "Gauge32: 25000 parts per million",
            "AvailMonth": "Gauge32: 99.95 hundredths of a percent",
            "LongestOutageMonth": "Gauge32: 42 seconds",
            "State": "INTEGER: violating(3)",
            "Violations": "BITS: 60 loss(1) availability(2)",
        }}, walked
    # GET and GETNEXT by acme do not reach globex's row either.
    foreign = agent.snmp("snmpget", ACME, "-On", f"{CONFORMANCE_ENTRY}.9.{globex}").stdout
    assert "No Such Instance" in foreign, foreign
    after = agent.snmp("snmpgetnext", ACME, "-On", f"{CONFORMANCE_ENTRY}.9.{globex - 1}", check=True).stdout
    assert not after.startswith(f".{CONFORMANCE_ENTRY}.9.{globex} "), after

    rows = conformance_rows(agent.snmp("snmpbulkwalk", NOC, "CSM-MIB::csmConformanceTable", check=True).stdout)
    assert set(rows) == set(sla_ids.values())  # AUGMENTS csmSlaEntry: a row for every SLA
    assert rows[acme]["State"] == "INTEGER: violating(3)"
    assert rows[globex] == {
        "MeasuredAt": "STRING: 2026-11-14,9:30:16.0,+0:0", "Interval": "Gauge32: 3 seconds",
        "SlsClass": "INTEGER: silver(2)", "SlsBandwidth": "Gauge32: 4000 kilobits per second",
        "Throughput": "Gauge32: 900 kilobits per second", "Loss": "Gauge32: 0 parts per million",
        "AvailMonth": "Gauge32: 100.00 hundredths of a percent", "LongestOutageMonth": "Gauge32: 0 seconds",
        "State": "INTEGER: conforming(2)", "Violations": "BITS: 00",
    }
    never = rows[sla_ids["initech-office"]]  # never measured: unknown, zeros, the SLS in effect now
    assert never["MeasuredAt"] == "STRING: 0-0-0,0:0:0.0"
    assert never["State"] == "INTEGER: unknown(1)" and never["Violations"] == "BITS: 00"
    assert [never[c] for c in ("Throughput", "Loss", "AvailMonth")] == [
        "Gauge32: 0 kilobits per second", "Gauge32: 0 parts per million",
        "Gauge32: .00 hundredths of a percent"]  # net-snmp shows 0 with DISPLAY-HINT "d-2" as ".00"


def test_only_allow_listed_stock_groups_are_served(agent: SnmpController) -> None:
    out = agent.snmp("snmpwalk", NOC, "-On", "1.3.6.1", check=True).stdout
    served = {line.split(" =")[0] for line in out.splitlines() if line.startswith(".")}
    prefixes = (".1.3.6.1.2.1.1.", ".1.3.6.1.2.1.11.", ".1.3.6.1.6.3.10.2.1.", f".{CSM}.")
    assert served and all(oid.startswith(prefixes) for oid in served), sorted(served)[:20]
    # pysnmp's own USM table (with its secrets) and the IETF USM/VACM tables are not reachable.
    for subtree in ("1.3.6.1.4.1.20408", "1.3.6.1.6.3.15", "1.3.6.1.6.3.16"):
        walked = agent.snmp("snmpwalk", NOC, "-On", subtree).stdout
        assert "No Such Object" in walked or "No more variables" in walked or not walked.strip(), walked


def test_authnopriv_v2c_and_a_wrong_passphrase_get_nothing(agent: SnmpController) -> None:
    no_priv = agent.snmp("snmpget", ACME, f"{CSM}.1.1.1.0", level="authNoPriv")
    # USM itself reports a user with privacy asking without it (RFC 3414 3.2 step 5).
    assert no_priv.returncode != 0 and "Unsupported security level" in no_priv.stderr
    v2c = ["snmpget", "-v2c", "-c", "public", "-t", "1", "-r", "0", f"127.0.0.1:{agent.port}", f"{CSM}.1.1.1.0"]
    result = subprocess.run(v2c, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Timeout" in result.stderr
    wrong = User(ACME.name, ACME.customer, ACME.auth, "not the passphrase", ACME.priv_passphrase)
    denied = agent.snmp("snmpget", wrong, f"{CSM}.1.1.1.0")
    assert denied.returncode != 0 and "Authentication failure" in denied.stderr


# ------------------------------------------------------------------------------------------ SET

def test_a_customer_changes_its_sls_then_waits_and_receivers_learn_of_it(
        agent: SnmpController, sla_ids: dict[str, int], tmp_path: Path) -> None:
    acme_traps, globex_traps, noc_traps = (TrapReceiver(tmp_path / n, u) for n, u in
                                           (("acme", ACME), ("globex", GLOBEX), ("noc", NOC)))
    log_from = len(agent.log.read_text())
    for receiver, customer in ((acme_traps, "acme"), (globex_traps, "globex"), (noc_traps, None)):
        receiver.start()
        owner = ["--customer", customer] if customer else []
        agent.csmm("snmp", "target", "add", f"t-{receiver.user.name}", "--address", "127.0.0.1", "--port",
                   str(receiver.port), "--user", receiver.user.name, *owner)
    try:
        acme = sla_ids["acme-hq"]
        before = sls(agent, "acme-hq")["version"]
        wait_until("the agent to load the targets",
                   lambda: "3 notification targets" in agent.log.read_text()[log_from:])
        done = agent.snmp("snmpset", ACME, f"CSM-MIB::csmSlsClass.{acme}", "i", "2",
                          f"CSM-MIB::csmSlsBandwidth.{acme}", "u", "4500")
        assert done.returncode == 0, done.stderr
        assert f"csmSlsBandwidth.{acme} = Gauge32: 4500" in done.stdout
        now = sls(agent, "acme-hq")
        assert (now["class"], now["bandwidth_bps"], now["version"]) == ("silver", 4_500_000, before + 1)
        last = last_history_entry(agent, "acme-hq")
        assert (last.channel, last.principal, last.bandwidth_bps) == ("snmp", "customer:acme", 4_500_000)

        trap = wait_until("acme's trap", lambda: "csmSlsChanged" in acme_traps.text() and acme_traps.text())
        assert f"csmSlsBandwidth.{acme} = Gauge32: 4500" in str(trap) and "acme-hq" in str(trap)
        wait_until("the operator's trap", lambda: "csmSlsChanged" in noc_traps.text())
        assert "csmSlsChanged" not in globex_traps.text()  # another customer's receiver learns nothing

        # The SLA allows one customer change per 5 minutes: the next one is refused, nothing changes.
        again = agent.snmp("snmpset", ACME, f"CSM-MIB::csmSlsClass.{acme}", "i", "3",
                           f"CSM-MIB::csmSlsBandwidth.{acme}", "u", "3000")
        assert "inconsistentValue" in again.stderr and f"Failed object: CSM-MIB::csmSlsBandwidth.{acme}" in again.stderr
        assert sls(agent, "acme-hq")["version"] == before + 1
        allowed = agent.snmp("snmpget", ACME, f"CSM-MIB::csmSlsNextChangeAllowed.{acme}", check=True).stdout
        assert "0-0-0" not in allowed
    finally:
        for receiver in (acme_traps, globex_traps, noc_traps):
            agent.csmm("snmp", "target", "remove", f"t-{receiver.user.name}", check=False)
            receiver.stop()


def test_a_customer_cannot_set_another_customers_sls(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    globex = sla_ids["globex-main"]
    before = sls(agent, "globex-main")
    result = agent.snmp("snmpset", ACME, f"CSM-MIB::csmSlsClass.{globex}", "i", "3",
                        f"CSM-MIB::csmSlsBandwidth.{globex}", "u", "1000")
    assert "noAccess" in result.stderr and f"Failed object: CSM-MIB::csmSlsClass.{globex}" in result.stderr
    assert sls(agent, "globex-main") == before


def test_out_of_bounds_names_the_bandwidth_and_changes_nothing(agent: SnmpController,
                                                                sla_ids: dict[str, int]) -> None:
    globex = sla_ids["globex-main"]
    before = sls(agent, "globex-main")
    result = agent.snmp("snmpset", GLOBEX, f"CSM-MIB::csmSlsClass.{globex}", "i", "1",
                        f"CSM-MIB::csmSlsBandwidth.{globex}", "u", "9000")  # gold max is 3 Mbit/s
    assert "inconsistentValue" in result.stderr and f"csmSlsBandwidth.{globex}" in result.stderr
    assert sls(agent, "globex-main") == before
    assert "exceeds the SLA's gold maximum 3 Mbit/s" in agent.log.read_text()  # the reason is logged


async def _hlapi_sets(port: int, user: User, requests: list[list[tuple[str, Any]]]) -> list[tuple[str, int]]:
    """SET requests through pysnmp's hlapi, one engine for all: [(error status, 1-based error index)]."""
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=3, retries=0)
        auth = UsmUserData(user.name, authKey=user.auth_passphrase, privKey=user.priv_passphrase,
                           authProtocol=usmHMAC384SHA512AuthProtocol, privProtocol=usmAesCfb128Protocol)
        answers = []
        for varbinds in requests:
            indication, status, index, _ = await set_cmd(engine, auth, target, ContextData(),
                                                         *(ObjectType(ObjectIdentity(o), v) for o, v in varbinds))
            assert indication is None, indication
            answers.append(((status.prettyPrint() if status else "noError"), int(index)))
        return answers
    finally:
        engine.close_dispatcher()


def hlapi_set(agent: SnmpController, *requests: list[tuple[str, Any]]) -> list[tuple[str, int]]:
    """SETs by the domain manager through pysnmp's hlapi."""
    return asyncio.run(_hlapi_sets(agent.port, NOC, list(requests)))


def _class(sla_id: int, value: Any) -> tuple[str, Any]:
    return f"{SLS_ENTRY}.1.{sla_id}", value


def _bandwidth(sla_id: int, value: Any) -> tuple[str, Any]:
    return f"{SLS_ENTRY}.2.{sla_id}", value


def test_every_set_error_status_with_its_index(agent: SnmpController, sla_ids: dict[str, int]) -> None:
    acme, globex, umbrella = sla_ids["acme-hq"], sla_ids["globex-main"], sla_ids["umbrella-lab"]
    cases: list[tuple[str, list[tuple[str, Any]], tuple[str, int]]] = [
        ("class as Unsigned32", [_class(acme, rfc1902.Unsigned32(1)), _bandwidth(acme, rfc1902.Unsigned32(1000))],
         ("wrongType", 1)),
        ("bandwidth as OCTET STRING", [_class(acme, rfc1902.Integer32(2)), _bandwidth(acme, rfc1902.OctetString("1M"))],
         ("wrongType", 2)),
        ("class 4", [_class(acme, rfc1902.Integer32(4)), _bandwidth(acme, rfc1902.Unsigned32(1000))],
         ("wrongValue", 1)),
        ("read-only column", [(f"{SLA_ENTRY}.2.{acme}", rfc1902.OctetString("x"))], ("notWritable", 1)),
        ("SLS version", [_class(acme, rfc1902.Integer32(2)), (f"{SLS_ENTRY}.3.{acme}", rfc1902.Unsigned32(9))],
         ("notWritable", 2)),
        ("row that does not exist", [_class(NO_SUCH_SLA, rfc1902.Integer32(2)),
                                     _bandwidth(NO_SUCH_SLA, rfc1902.Unsigned32(1000))], ("noCreation", 1)),
        ("bandwidth alone", [_bandwidth(acme, rfc1902.Unsigned32(2000))], ("inconsistentValue", 1)),
        ("class twice", [_class(acme, rfc1902.Integer32(2)), _class(acme, rfc1902.Integer32(2)),
                         _bandwidth(acme, rfc1902.Unsigned32(2000))], ("inconsistentValue", 2)),
        ("two rows", [_class(acme, rfc1902.Integer32(2)), _bandwidth(acme, rfc1902.Unsigned32(2000)),
                      _class(globex, rfc1902.Integer32(2))], ("inconsistentValue", 3)),
        ("below the minimum", [_bandwidth(acme, rfc1902.Unsigned32(10)), _class(acme, rfc1902.Integer32(3))],
         ("inconsistentValue", 1)),
        ("class not in the SLA",
         [_class(umbrella, rfc1902.Integer32(1)), _bandwidth(umbrella, rfc1902.Unsigned32(1000))],
         ("inconsistentValue", 1)),
        # globex holds 2 Mbit/s of Gold on edge1-core, whose Gold share is 3 Mbit/s.
        ("link share", [_class(acme, rfc1902.Integer32(1)), _bandwidth(acme, rfc1902.Unsigned32(3000))],
         ("inconsistentValue", 2)),
    ]
    before = {name: sls(agent, name) for name in ("acme-hq", "globex-main", "umbrella-lab")}
    answers = hlapi_set(agent, *(varbinds for _, varbinds, _ in cases))
    assert dict(zip((label for label, _, _ in cases), answers)) == {label: expected for label, _, expected in cases}
    assert {name: sls(agent, name) for name in before} == before  # no refusal changed anything
    log = agent.log.read_text()
    assert "link[edge1-core]" in log or "edge1-core" in log  # the admission refusal names the link


def test_the_domain_manager_sets_any_sls_and_a_repeat_is_not_a_change(agent: SnmpController,
                                                                       sla_ids: dict[str, int]) -> None:
    initech = sla_ids["initech-office"]
    before = sls(agent, "initech-office")
    pair = [_class(initech, rfc1902.Integer32(3)), _bandwidth(initech, rfc1902.Unsigned32(4000))]
    assert hlapi_set(agent, pair, pair) == [("noError", 0), ("noError", 0)]
    after = sls(agent, "initech-office")
    assert (after["class"], after["bandwidth_bps"], after["changed_by"]) == ("bronze", 4_000_000, "domain-manager")
    assert after["version"] == before["version"] + 1  # the same pair again is not a new version


# ------------------------------------------------------------------------------------------ users and secrets

async def _hlapi_get(port: int, user: User, oid: str) -> str:
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=0)
        auth = UsmUserData(user.name, authKey=user.auth_passphrase, privKey=user.priv_passphrase,
                           authProtocol=usmHMAC384SHA512AuthProtocol, privProtocol=usmAesCfb128Protocol)
        indication, status, _, varbinds = await get_cmd(engine, auth, target, ContextData(),
                                                        ObjectType(ObjectIdentity(oid)))
        return str(indication) if indication else varbinds[0][1].prettyPrint()
    finally:
        engine.close_dispatcher()


def test_a_user_added_or_removed_while_running_takes_effect(agent: SnmpController) -> None:
    late = User("late-nms", None, "SHA-512", "late-auth-passphrase", "late-priv-passphrase")
    agent.csmm("snmp", "user", "add", late.name, "--auth", "SHA-512", "--passphrases-from-stdin",
               stdin=f"{late.auth_passphrase}\n{late.priv_passphrase}\n")
    wait_until("the new user to be served",
               lambda: asyncio.run(_hlapi_get(agent.port, late, f"{CSM}.1.1.1.0")) == "GSB", timeout=10)
    agent.csmm("snmp", "user", "remove", late.name)
    wait_until("the removed user to be refused",
               lambda: "GSB" != asyncio.run(_hlapi_get(agent.port, late, f"{CSM}.1.1.1.0")), timeout=10)


def test_passphrases_are_never_stored_logged_or_listed(agent: SnmpController) -> None:
    listed = agent.csmm("snmp", "users", "--json").stdout
    database = Path(agent.url.removeprefix("sqlite:///")).read_bytes()
    log = agent.log.read_text()
    for user in (ACME, GLOBEX, PEER, NOC):
        for secret in (user.auth_passphrase, user.priv_passphrase):
            assert secret not in listed and secret not in log
            assert secret.encode() not in database
    assert {u["name"] for u in json.loads(listed)} >= {ACME.name, NOC.name}
    assert set(json.loads(listed)[0]) == {"name", "customer", "auth", "priv"}


def test_engine_boots_grow_across_restarts(tmp_path: Path) -> None:
    controller = SnmpController(tmp_path)
    controller.prepare()
    boots = []
    for _ in range(2):
        controller.start()
        try:
            out = controller.snmp("snmpget", NOC, "-Oqv", "1.3.6.1.6.3.10.2.1.2.0", mib=False, check=True).stdout
            engine_id = controller.snmp("snmpget", NOC, "-Oqv", "1.3.6.1.6.3.10.2.1.1.0", mib=False, check=True).stdout
            boots.append(int(out))
        finally:
            controller.stop()
    assert boots[1] == boots[0] + 1
    assert "stopped: 2 reads answered on the fast path" in controller.log.read_text()  # not pysnmp's layer
    assert engine_id.replace(" ", "").replace('"', "").strip().lower() == "80007ed905c5a0000000000001"
    assert f"engine ID 0x80007ed905c5a0000000000001, boots {boots[1]}" in controller.csmm("snmp", "engine").stdout


def test_a_port_in_use_fails_the_start_with_a_clear_error(tmp_path: Path) -> None:
    controller = SnmpController(tmp_path)
    controller.prepare()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", controller.port))
        result = controller.csmm("serve", "--no-agents", "--no-netconf", "--http", "127.0.0.1:0", "--snmp",
                                 f"127.0.0.1:{controller.port}", check=False)
    assert result.returncode != 0
    expected = f"SNMP agent cannot listen on udp 127.0.0.1:{controller.port}: Address already in use"
    assert expected in result.stderr


def test_the_fast_path_answers_exactly_as_pysnmp_does(agent: SnmpController, tmp_path: Path) -> None:
    """Reads answered by fastpath.py and by pysnmp's message layer (--snmp-no-fast-path) are the
    same, varbind for varbind, on the same data."""
    slow = SnmpController(tmp_path, fast_path=False)
    slow.url = agent.url  # the same database (SQLite, read-only here)
    slow.start()
    try:
        requests = [("snmpbulkwalk", ACME, "-On", "-Cr7", CSM), ("snmpwalk", GLOBEX, "-On", "1.3.6.1.4.1"),
                    ("snmpbulkwalk", NOC, "-On", "-Cr50", CSM),
                    ("snmpget", NOC, "-On", f"{SLA_ENTRY}.2.1", f"{SLA_ENTRY}.9.2", f"{SLA_ENTRY}.99.1",
                     f"{CSM}.1.4.1.2.3.2"),
                    ("snmpgetnext", ACME, "-On", f"{SLS_ENTRY}.1", f"{CSM}.1.4", "1.3.6.1.2.1.1.9"),
                    ("snmpbulkget", PEER, "-On", "-Cn1", "-Cr5", "1.3.6.1.2.1.1.4", CSM, f"{CSM}.1.4.1.3")]
        for tool, user, *args in requests:
            fast = agent.snmp(tool, user, *args, check=True).stdout
            pysnmp = slow.snmp(tool, user, *args, check=True).stdout
            assert _without_clocks(fast) == _without_clocks(pysnmp), (tool, user.name, args)
    finally:
        slow.stop()
    assert "stopped: 0 reads answered on the fast path" in slow.log.read_text()


def _without_clocks(output: str) -> str:
    """Tool output without the values that move by themselves (uptimes, engine time, packet counts)."""
    moving = (".1.3.6.1.2.1.1.3.0", ".1.3.6.1.6.3.10.2.1", ".1.3.6.1.2.1.11.1.0")
    return "\n".join(line for line in output.splitlines() if not line.startswith(moving))


def test_violation_and_clear_events_become_traps_for_that_customer_only(
        agent: SnmpController, sla_ids: dict[str, int], tmp_path: Path) -> None:
    """Feedback (issue 7) stores sla.violation / sla.cleared events; the agent turns each into one
    csmSlaViolation / csmSlaCleared trap, here from another process's event, as the log brings it."""
    acme_traps, globex_traps = TrapReceiver(tmp_path / "acme", ACME), TrapReceiver(tmp_path / "globex", GLOBEX)
    log_from = len(agent.log.read_text())
    for receiver, customer in ((acme_traps, "acme"), (globex_traps, "globex")):
        receiver.start()
        agent.csmm("snmp", "target", "add", f"v-{customer}", "--address", "127.0.0.1", "--port", str(receiver.port),
                   "--user", receiver.user.name, "--customer", customer)
    service = agent.service()
    try:
        wait_until("the targets", lambda: "2 notification targets" in agent.log.read_text()[log_from:])
        acme = sla_ids["acme-hq"]
        for event_type in (SLA_VIOLATION, SLA_CLEARED):
            with service.transaction(DOMAIN_MANAGER) as tx:
                tx.emit(event_type, "sla:acme-hq", sla_id=acme, customer="acme", service_class="gold", metric="loss",
                        measured=25000 if event_type == SLA_VIOLATION else 400, bound=1000)
        traps = str(wait_until("both traps", lambda: "csmSlaCleared" in acme_traps.text() and acme_traps.text()))
        violation, cleared = traps.index("csmSlaViolation"), traps.index("csmSlaCleared")
        assert violation < cleared and traps.count("csmSlaViolation") == 1
        assert f'csmSlaName.{acme} = STRING: acme-hq' in traps
        assert "csmNotifyClass.0 = INTEGER: gold(1)" in traps and "csmNotifyMetric.0 = INTEGER: loss(2)" in traps
        assert "csmNotifyMeasured.0 = Gauge32: 25000" in traps[violation:cleared]
        assert "csmNotifyMeasured.0 = Gauge32: 400" in traps[cleared:]
        assert "csmNotifyBound.0 = Gauge32: 1000" in traps
        assert "csmSla" not in globex_traps.text()
    finally:
        service.database.dispose()
        for receiver, customer in ((acme_traps, "acme"), (globex_traps, "globex")):
            agent.csmm("snmp", "target", "remove", f"v-{customer}", check=False)
            receiver.stop()
