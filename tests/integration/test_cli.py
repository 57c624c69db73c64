"""The `csmm` command as an operator and a customer use it (real subprocesses, real database)."""

from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO_FILE

CSMM = str(Path(sys.executable).with_name("csmm"))


def run(db: str, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CSMM, "--db", db, *args], capture_output=True, text=True, timeout=120, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"csmm {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.sqlite3"


@pytest.fixture
def demo_db(db: str) -> str:
    run(db, "db", "upgrade")
    run(db, "apply", str(DEMO_FILE))
    return db


def test_help_explains_the_commands() -> None:
    out = subprocess.run([CSMM, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("apply", "serve", "sla", "sls", "db", "customers", "topology", "catalog"):
        assert command in out
    sls_help = subprocess.run([CSMM, "sls", "set", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--bandwidth" in sls_help and "--class" in sls_help and "--expect-version" in sls_help


def test_an_unmigrated_database_is_refused_with_the_fix(db: str) -> None:
    result = run(db, "sla", "list", check=False)
    assert result.returncode == 3
    assert "run `csmm db upgrade`" in result.stderr


def test_apply_twice_says_the_second_run_changes_nothing(db: str) -> None:
    assert "schema empty -> 0008" in run(db, "db", "upgrade").stdout
    first = run(db, "apply", str(DEMO_FILE)).stdout
    assert "customers: 5 added" in first and "SLAs: 5 created" in first
    assert run(db, "apply", str(DEMO_FILE)).stdout.strip() == "no changes: the database already matches the file"
    assert run(db, "apply", "--dry-run", str(DEMO_FILE)).stdout.startswith("dry run: no changes")


def test_customer_changes_its_sls_from_the_command_line(demo_db: str) -> None:
    out = run(demo_db, "--as", "customer:acme", "sls", "set", "acme-hq", "--class", "gold", "--bandwidth", "2M").stdout
    assert out.strip() == "SLS now gold 2 Mbit/s (version 2); fee 0.10"
    listing = json.loads(run(demo_db, "--as", "customer:acme", "sls", "list", "--json").stdout)
    assert [(row["sla"], row["class"], row["bandwidth_bps"]) for row in listing] == [("acme-hq", "gold", 2_000_000)]
    history = run(demo_db, "sls", "history", "acme-hq").stdout.splitlines()
    assert len(history) == 2 and "by customer:acme via cli" in history[1]


def test_refusals_name_field_bound_and_value_and_exit_3(demo_db: str) -> None:
    over = run(demo_db, "--as", "customer:acme", "sls", "set", "acme-hq", "--class", "gold", "--bandwidth", "9M", check=False)
    assert over.returncode == 3
    assert "exceeds the SLA's gold maximum 3 Mbit/s" in over.stderr
    assert "field: sls.bandwidth" in over.stderr and "bound: 3000000" in over.stderr and "value: 9000000" in over.stderr

    run(demo_db, "--as", "customer:acme", "sls", "set", "acme-hq", "--class", "gold", "--bandwidth", "1M")
    soon = run(demo_db, "--as", "customer:acme", "sls", "set", "acme-hq", "--class", "silver", "--bandwidth", "1M", check=False)
    assert soon.returncode == 3 and "next change is allowed at" in soon.stderr
    assert "field: sls.changed_at" in soon.stderr and "bound: " in soon.stderr and "value: " in soon.stderr

    theirs = run(demo_db, "--as", "customer:acme", "sls", "set", "globex-main", "--class", "gold", "--bandwidth", "1M", check=False)
    assert theirs.returncode == 3 and "no SLA 'globex-main'" in theirs.stderr

    bad = run(demo_db, "sls", "set", "acme-hq", "--class", "gold", "--bandwidth", "lots", check=False)
    assert bad.returncode == 2 and "bandwidth must be a number" in bad.stderr


def test_operator_commands_refuse_a_customer_principal(demo_db: str) -> None:
    for args in (["db", "upgrade"], ["serve"]):
        result = run(demo_db, "--as", "customer:acme", *args, check=False)
        assert result.returncode == 2 and "runs as the domain manager" in result.stderr


def test_customer_lists_only_its_own(demo_db: str) -> None:
    assert run(demo_db, "--as", "customer:globex", "customers", "list").stdout.split()[0] == "globex"
    assert len(run(demo_db, "--as", "customer:globex", "sla", "list").stdout.splitlines()) == 2  # header + 1
    denied = run(demo_db, "--as", "customer:globex", "topology", check=False)
    assert denied.returncode == 3 and "only the domain manager" in denied.stderr


def test_operator_views_and_audit(demo_db: str) -> None:
    assert "core-egress" in run(demo_db, "topology").stdout
    shown = run(demo_db, "sla", "show", "initech-office").stdout
    assert "gsb-economy" in shown and "edge2:eth2" in shown and "path toward egress: core-egress, edge2-core, internet" in shown
    assert run(demo_db, "db", "audit").stdout.strip() == "audit: 0 problem(s)"
    assert "GSB economy" in run(demo_db, "catalog", "show").stdout
    assert "sla.created" in run(demo_db, "events", "--limit", "3").stdout
    run(demo_db, "sla", "state", "umbrella-lab", "deinstalled", "--note", "moved away")
    assert "operational       -> deinstalled" in run(demo_db, "sla", "lifecycle", "umbrella-lab").stdout


def test_an_invalid_file_changes_nothing(db: str, tmp_path: Path) -> None:
    run(db, "db", "upgrade")
    data = yaml.safe_load(DEMO_FILE.read_text())
    data["customers"][0]["slas"][0]["access_speed"] = "fast"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = run(db, "apply", str(bad), check=False)
    assert result.returncode == 3 and "customers.0.slas.0.access_speed" in result.stderr
    assert run(db, "sla", "list").stdout.count("\n") == 1  # only the header


def test_large_apply_shows_a_progress_bar(db: str, tmp_path: Path) -> None:
    data = yaml.safe_load(DEMO_FILE.read_text())
    template = data["customers"][0]["slas"][0]
    data["customers"] = [{"name": f"bulk{i}", "slas": [{**template, "name": f"bulk{i}-sla", "bounds": None,
                                                        "access_speed": "1M", "prefixes": [f"198.18.{10 + i // 256}.{i % 256}/32"],
                                                        "sls": {"class": "bronze", "bandwidth": "1M"}}]}
                         for i in range(300)]
    for entry in data["customers"]:
        entry["slas"][0].pop("bounds")
        entry["slas"][0]["offering"] = "gsb-economy"
        entry["slas"][0]["bounds"] = {"bronze": {"min": "1M", "max": "1M"}}
    path = tmp_path / "bulk.yaml"
    path.write_text(yaml.safe_dump(data))
    run(db, "db", "upgrade")
    result = run(db, "apply", str(path))
    assert "applying SLAs: 100/300 (33 %" in result.stderr and "applying SLAs: 300/300 (100 %" in result.stderr
    assert "SLAs: 300 created" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_runs_the_controller_until_sigterm(db: str, tmp_path: Path) -> None:
    run(db, "db", "upgrade")
    pki = tmp_path / "pki"
    assert "created CA" in run(db, "ca", "init", str(pki)).stdout
    assert "issued" in run(db, "ca", "issue", str(pki), "controller", "--role", "controller").stdout
    refused = subprocess.run([CSMM, "--db", db, "serve"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--agents-tls DIR (mTLS) or --agents-insecure-lab" in refused.stderr
    port, agents_port = _free_port(), _free_port()
    process = subprocess.Popen([CSMM, "--db", db, "serve", "--http", f"127.0.0.1:{port}", "--apply", str(DEMO_FILE),
                                "--agents", f"127.0.0.1:{agents_port}", "--agents-tls", str(pki), "--no-snmp", "--no-netconf"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    health = json.load(response)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "controller did not answer /healthz"
                time.sleep(0.2)
        assert health["status"] == "ok" and "gsb-business" in health["offerings"]
        assert "slas" not in health and "acme" not in json.dumps(health)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            assert "csmm_agent_connected" in response.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "applied" in output and "stopping" in output
    assert f"agents: listening on 127.0.0.1:{agents_port} (mTLS" in output
    assert os.path.exists(db.removeprefix("sqlite:///"))


def test_domain_manager_creates_and_changes_an_sla(demo_db: str) -> None:
    run(demo_db, "customers", "add", "hooli", "--display-name", "Hooli")
    out = run(demo_db, "sla", "create", "hooli-1", "--customer", "hooli", "--offering", "gsb-economy", "--router", "edge2",
              "--interface", "eth3", "--access-speed", "10M", "--prefix", "198.19.40.0/24",
              "--bounds", "silver=1M:4M", "--bounds", "bronze=1M:10M", "--state", "operational").stdout
    assert out.startswith("created SLA hooli-1") and "operational" in out
    assert run(demo_db, "sls", "show", "hooli-1", "--json").stdout.count('"bronze"') == 1
    assert run(demo_db, "sla", "set", "hooli-1", "--bounds", "silver=1M:5M", "--bounds", "bronze=1M:10M").stdout.strip() \
        == "SLA hooli-1 changed"
    assert "silver  1 Mbit/s..5 Mbit/s" in run(demo_db, "sla", "show", "hooli-1").stdout
    over = run(demo_db, "sla", "set", "hooli-1", "--bounds", "silver=1M:20M", check=False)
    assert over.returncode == 3 and "bounds.silver.max" in over.stderr and "offering's maximum 10 Mbit/s" in over.stderr
    bad = run(demo_db, "sla", "set", "hooli-1", "--bounds", "gold=lots", check=False)
    assert bad.returncode == 2 and "CLASS=MIN:MAX" in bad.stderr
    denied = run(demo_db, "--as", "customer:hooli", "sla", "set", "hooli-1", "--bounds", "silver=1M:2M", check=False)
    assert denied.returncode == 3 and "only the domain manager" in denied.stderr


def test_a_customer_added_with_snmp_access_gets_its_user(demo_db: str) -> None:
    added = run(demo_db, "customers", "add", "hooli", "--snmp").stdout
    assert "added SNMP user hooli for hooli (SHA-256, AES, authPriv)" in added
    secrets = re.findall(r"^  (auth|priv): (\S+)$", added, flags=re.M)
    assert [kind for kind, _ in secrets] == ["auth", "priv"] and all(len(p) >= 20 for _, p in secrets)
    listed = run(demo_db, "snmp", "users").stdout
    assert re.search(r"^hooli\s+hooli\s+SHA-256\s+AES$", listed, flags=re.M)
    assert all(p not in listed for _, p in secrets)  # shown once, never again


def test_snmp_users_are_the_domain_managers_and_checked(demo_db: str) -> None:
    refused = run(demo_db, "--as", "customer:acme", "snmp", "users", check=False)
    assert refused.returncode == 3 and "only the domain manager may list SNMP users" in refused.stderr
    short = subprocess.run([CSMM, "--db", demo_db, "snmp", "user", "add", "x1", "--customer", "acme",
                            "--passphrases-from-stdin"], input="short\nalso-short\n", capture_output=True, text=True)
    assert short.returncode == 3
    assert "the auth passphrase must have at least 8 characters" in short.stderr and "bound: 8" in short.stderr
    unknown = run(demo_db, "snmp", "user", "add", "x2", "--customer", "nobody", check=False)
    assert unknown.returncode == 3 and "no customer 'nobody'" in unknown.stderr
    assert "x1" not in run(demo_db, "snmp", "users").stdout  # nothing half-made


def test_conformance_shows_measured_against_agreed_to_each_customer(demo_db: str) -> None:
    """What the feedback part recorded, as `csmm conformance` prints it (a customer its own only)."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from controller.config import Settings, open_service
    from controller.domain.catalog import ServiceClassName
    from controller.domain.conformance import Conformance
    from controller.domain.principal import DOMAIN_MANAGER
    from controller.store.records import FeedbackRecord

    service = open_service(Settings(demo_db))
    try:
        globex = service.get_sla(DOMAIN_MANAGER, "globex-main").id
        at = datetime(2026, 12, 3, 7, 0, tzinfo=timezone.utc)
        measured = Conformance(globex, at, 3.0, ServiceClassName.GOLD, 2_000_000, 1_500_000, 1_500_000, 250_000,
                               at.replace(day=1, hour=0), Decimal("99.99000"), 12, ("loss",))
        service.record_feedback(DOMAIN_MANAGER, [FeedbackRecord(measured, at.replace(day=1, hour=0), 12.0, 12.0)],
                                [(globex, "sla.violation", {"customer": "globex", "service_class": "gold",
                                                            "metric": "loss", "measured": 250_000, "bound": 100})])
    finally:
        service.database.dispose()
    table = run(demo_db, "conformance").stdout
    line = next(line for line in table.splitlines() if line.startswith("globex-main"))
    assert "violating" in line and "250000 (100)" in line and "99.990 % (99.9 %)" in line and line.endswith("loss")
    assert re.search(r"^acme-hq\s+unknown", table, re.MULTILINE)
    mine = json.loads(run(demo_db, "--as", "customer:globex", "conformance", "--json").stdout)
    assert [row["sla"] for row in mine] == ["globex-main"]
    assert mine[0]["measured"]["loss_ppm"] == 250_000 and mine[0]["loss_bound_ppm"] == 100
    assert json.loads(run(demo_db, "--as", "customer:acme", "conformance", "--json").stdout)[0]["measured"] is None
    events = run(demo_db, "events").stdout
    assert "sla.violation" in events and "sla:globex-main" in events
