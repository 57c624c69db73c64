"""`csmm` bills the seed's examples: a month of SLS changes replayed with --now, invoices issued,
shown with the SLS changes behind each line, exported, verified and corrected."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_FILE
from tests.integration.test_cli import run


def at(db: str, when: str, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return run(db, "--now", when, *args, check=check)


@pytest.fixture
def billed_month(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path}/billing.sqlite3"
    run(db, "db", "upgrade")
    at(db, "2026-10-20T00:00:00Z", "apply", str(DEMO_FILE))
    for when, who, sla, service_class, bandwidth in [
            ("2026-11-03T08:00:00Z", "customer:acme", "acme-hq", "gold", "2M"),         # 14 h of Gold
            ("2026-11-03T22:00:00Z", "customer:acme", "acme-hq", "silver", "5M"),
            ("2026-11-05T10:00:00Z", "customer:initech", "initech-office", "silver", "2M"),   # 7 h of Silver
            ("2026-11-05T17:00:00Z", "customer:initech", "initech-office", "gold", "1M"),     # 3 h of Gold
            ("2026-11-05T20:00:00Z", "customer:initech", "initech-office", "bronze", "8M")]:
        at(db, when, "--as", who, "sls", "set", sla, "--class", service_class, "--bandwidth", bandwidth)
    return db


def numbers(db: str) -> dict[str, str]:
    listed = json.loads(run(db, "invoice", "list", "--month", "2026-11", "--json").stdout)
    return {i["customer"]: i["number"] for i in listed if i["kind"] == "invoice"}


def test_csmm_issues_the_seed_examples_invoices_naming_the_sls_changes_behind_each_line(billed_month: str) -> None:
    db = billed_month
    refused = at(db, "2026-11-30T23:00:00Z", "invoice", "issue", "--month", "2026-11", check=False)
    assert refused.returncode == 3 and "has not ended" in refused.stderr
    out = at(db, "2026-12-01T01:00:00Z", "invoice", "issue", "--month", "2026-11").stdout
    assert "issued 5 invoice(s) for 2026-11" in out and "INV-2026-11-000001  acme" in out
    issued = numbers(db)
    acme = run(db, "invoice", "show", issued["acme"]).stdout
    assert "Gold: 4 h beyond the included hours at 2.00/h" in acme and "8.00" in acme
    assert "acme-hq v2: gold 2 Mbit/s from 2026-11-03T08:00:00Z until 2026-11-03T22:00:00Z, set by customer:acme " \
           "via cli" in acme
    assert "total USD" in acme and "158.20" in acme
    initech = json.loads(run(db, "invoice", "show", issued["initech"], "--format", "json").stdout)
    beyond = {line["key"]: line["amount"] for line in initech["lines"] if line["kind"] == "additional-hours"}
    assert beyond == {"initech-office/hours/silver/1": "2.00", "initech-office/hours/gold/1": "15.00"}
    assert initech["total"] == "57.75"     # 40.00 + 2 x 1.00 + 3 x 5.00 + three changes at 0.25


def test_a_customer_sees_its_own_invoice_and_not_another_ones(billed_month: str) -> None:
    db = billed_month
    at(db, "2026-12-01T01:00:00Z", "invoice", "issue", "--month", "2026-11")
    issued = numbers(db)
    mine = json.loads(run(db, "--as", "customer:acme", "invoice", "list", "--json").stdout)
    assert [i["customer"] for i in mine] == ["acme"]
    other = run(db, "--as", "customer:acme", "invoice", "show", issued["globex"], check=False)
    assert other.returncode == 3 and "does not exist" in other.stderr
    assert run(db, "--as", "customer:acme", "invoice", "issue", "--month", "2026-11", check=False).returncode == 3


def test_exports_verification_and_a_late_correction_from_the_command_line(billed_month: str, tmp_path: Path) -> None:
    db = billed_month
    at(db, "2026-12-01T01:00:00Z", "invoice", "issue", "--month", "2026-11")
    issued = numbers(db)
    exported = tmp_path / "november.csv"
    run(db, "invoice", "export", "--month", "2026-11", "--format", "csv", "-o", str(exported))
    totals = {r["customer"]: r["amount"] for r in csv.DictReader(io.StringIO(exported.read_text()))
              if r["line_kind"] == "total"}
    assert totals["acme"] == "158.20" and totals["initech"] == "57.75"
    page = run(db, "invoice", "show", issued["acme"], "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>") and "158.20" in page
    assert run(db, "invoice", "verify", issued["acme"]).returncode == 0
    # Usage that another meter reports late, for a day in November: counted on a debit note? No:
    # volume is information in the GSB tariffs, so the invoice still verifies and nothing is due.
    records = tmp_path / "late.json"
    records.write_text(json.dumps([{"slaName": "acme-hq", "ipDiffServCodePoint": 46, "source": "probe-1",
                                    "flowStartMilliseconds": 1793952000000, "flowEndMilliseconds": 1793955600000,
                                    "octetDeltaCount": 123456, "packetDeltaCount": 100}]))
    assert "1 added" in at(db, "2026-12-02T00:00:00Z", "usage", "import", str(records)).stdout
    assert "0 added, 1 already counted" in at(db, "2026-12-02T00:00:01Z", "usage", "import", str(records)).stdout
    check = at(db, "2026-12-02T00:00:02Z", "invoice", "verify", issued["acme"])
    assert "recomputed as of its issue time: identical" in check.stdout
    note = at(db, "2026-12-02T00:00:03Z", "invoice", "correct", issued["acme"]).stdout
    assert "nothing to correct" in note


def test_usage_report_and_revenue_summary_as_json(billed_month: str) -> None:
    db = billed_month
    at(db, "2026-12-01T01:00:00Z", "invoice", "issue", "--month", "2026-11")
    usage = json.loads(at(db, "2026-12-01T02:00:00Z", "--as", "customer:initech", "report", "usage", "initech",
                          "--month", "2026-11", "--json").stdout)
    hours = {u["class"]: u["hours"] for u in usage["usage"]}
    assert (hours["silver"], hours["gold"]) == ("7.000000000", "3.000000000")
    summary = json.loads(at(db, "2026-12-01T02:00:00Z", "report", "summary", "--month", "2026-11", "--json").stdout)
    # Economy: initech 57.75, and umbrella in Silver all month: 40.00 + (720 - 5) h x 1.00.
    assert summary["invoices"] == 5 and summary["revenue_by_offering"]["gsb-economy"] == "812.75"


def test_a_replayed_change_dated_before_the_sls_in_effect_is_refused(billed_month: str) -> None:
    refused = at(billed_month, "2026-11-04T00:00:00Z", "--as", "customer:initech", "sls", "set", "initech-office",
                 "--class", "gold", "--bandwidth", "1M", check=False)
    assert refused.returncode == 3 and "time cannot run backwards" in refused.stderr
    served = at(billed_month, "2026-11-04T00:00:00Z", "serve", "--no-agents", check=False)
    assert served.returncode == 2 and "runs on the real clock" in served.stderr


def test_invoices_computed_by_forked_workers_equal_the_ones_computed_in_process(billed_month: str,
                                                                                tmp_path: Path) -> None:
    # A copy of the month, invoiced once in-process and once by workers (the threshold lowered
    # so that the five demo customers are split between them), in fresh processes as `csmm` is.
    copy = tmp_path / "copy.sqlite3"
    source = Path(billed_month.removeprefix("sqlite:///"))
    copy.write_bytes(source.read_bytes())
    script = """
import sys
from datetime import datetime, timezone
from controller.accounting import parallel
from controller.accounting.service import Accounting
from controller.domain.catalog import load_catalog
from controller.domain.principal import DOMAIN_MANAGER
from controller.service.layer import ServiceLayer
from controller.store.database import Database
import os
parallel.PARALLEL_FROM = int(sys.argv[2])
original = parallel._issue
def issue(task):
    print(f"chunk in process {os.getpid()}", file=sys.stderr)
    return original(task)
parallel._issue = issue
at = datetime(2026, 12, 1, 1, tzinfo=timezone.utc)
service = ServiceLayer(Database(sys.argv[1]), load_catalog(), clock=lambda: at)
issued = Accounting(service).issue_month(DOMAIN_MANAGER, "2026-11")
print(len(issued), os.getpid())
"""
    runs = [subprocess.run([sys.executable, "-c", script, url, threshold], capture_output=True, text=True, check=True)
            for url, threshold in ((billed_month, "1000"), (f"sqlite:///{copy}", "2"))]
    assert [run.stdout.split()[0] for run in runs] == ["5", "5"]
    assert "chunk in process" not in runs[0].stderr
    workers_seen = {line.split()[-1] for line in runs[1].stderr.splitlines() if line.startswith("chunk in process")}
    assert workers_seen and runs[1].stdout.split()[1] not in workers_seen   # forked workers did it
    def listed(url: str) -> dict[str, str]:
        return {i["number"]: i["total"] for i in json.loads(run(url, "invoice", "list", "--json").stdout)}
    in_process, workers = listed(billed_month), listed(f"sqlite:///{copy}")
    assert in_process == workers and len(workers) == 5
    for number in workers:
        a = json.loads(run(billed_month, "invoice", "show", number, "--format", "json").stdout)
        b = json.loads(run(f"sqlite:///{copy}", "invoice", "show", number, "--format", "json").stdout)
        assert a == b
