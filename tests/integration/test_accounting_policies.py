"""The shipped accounting policies on real controller events: a fee for each SLS change beyond 3 a
day, a notification at 80 % of the included hours, and a meta-policy that gives a newly added
offering a charging policy (and takes it away with the offering). Effects show in invoices and
notifications; each event is handled once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from controller.accounting.policies import PolicyBook, PolicyRunner
from controller.accounting.service import Accounting
from controller.domain.catalog import DEFAULT_CATALOG, Catalog, ClassBounds, ServiceClassName
from controller.domain.errors import InvalidValue
from controller.domain.principal import DOMAIN_MANAGER, Principal, Role
from controller.domain.sla import Attachment, LifecycleState
from controller.service.layer import ServiceLayer, SlaSpec
from tests.conftest import DEMO_FILE
from tests.integration.snmp_support import free_tcp_port, wait_until
from tests.integration.test_accounting import ACME, INITECH, M, at, change
from tests.integration.test_cli import CSMM, run

EXAMPLES = Path(__file__).resolve().parents[2] / "controller" / "policy" / "examples"
GLOBEX = Principal(Role.CUSTOMER, "globex")
# The demo's guaranteed shares are all reserved: further SLAs on the lab topology are Bronze only.
BEST_EFFORT = {"bounds": {ServiceClassName.BRONZE: ClassBounds(min=M, max=5 * M)},
               "initial_class": ServiceClassName.BRONZE}


def add(accounting: Accounting, name: str) -> list[str]:
    return PolicyBook(accounting).add(DOMAIN_MANAGER, (EXAMPLES / name).read_text(), name)


def test_a_fee_is_charged_for_each_sls_change_beyond_3_a_day_once(billing) -> None:
    service, accounting, clock = billing
    assert add(accounting, "change-fee.pol") == ["change-fee-beyond-3-per-day"]
    for minute, bandwidth in enumerate([1, 2, 3, 2, 1], start=0):
        change(service, clock, at(3, 9, 10 * minute), ACME, "acme-hq", "gold", bandwidth * M)
    change(service, clock, at(3, 11), DOMAIN_MANAGER, "acme-hq", "silver", 5 * M)   # not the customer's
    change(service, clock, at(4, 9), ACME, "acme-hq", "gold", 1 * M)                # a new day
    runner = PolicyRunner(accounting)
    report = runner.run_once()
    assert (report.charges, report.errors) == (2, [])
    assert runner.run_once().charges == 0                       # every event is handled once
    clock.now = at(1, 1, month=12)
    charges = [line for line in accounting.compute(DOMAIN_MANAGER, "acme", "2026-11").lines
               if line.kind == "policy-charge"]
    assert [(line.description, line.amount) for line in charges] == [
        ("SLS change 5 beyond 3 on 2026-11-03", Decimal("0.50")),
        ("SLS change 6 beyond 3 on 2026-11-03", Decimal("0.50"))]
    assert all("policy change-fee-beyond-3-per-day, event" in line.sources[0] for line in charges)


def test_a_customer_is_told_once_when_80_percent_of_its_included_hours_are_used(billing) -> None:
    service, accounting, clock = billing
    add(accounting, "included-hours.pol")
    change(service, clock, at(5, 10), INITECH, "initech-office", "silver", 2 * M)    # 5 h of Silver included
    runner = PolicyRunner(accounting)
    clock.now = at(5, 13)
    runner.run_once()
    assert accounting.notifications(INITECH) == []                                  # 3 h: 60 %
    clock.now = at(5, 14)
    runner.run_once()
    [note] = accounting.notifications(INITECH)                                      # 4 h: 80 %
    clock.now = at(5, 15)
    assert runner.run_once().notifications == 0                                     # once a month
    assert accounting.notifications(INITECH) == [note]
    assert note.text == "You have used 80 % of the silver hours included this month"
    assert (note.customer, note.sla, note.policy) == ("initech", "initech-office", "included-hours-80-percent")
    # Globex, in Gold (10 h included) since October, was told on the first run; ACME's Silver is unlimited.
    assert [n.text for n in accounting.notifications(GLOBEX)] == [
        "You have used 1090 % of the gold hours included this month"]
    assert accounting.notifications(ACME) == []
    sent = [e for e in service.recent_events(DOMAIN_MANAGER, 50) if e.type == "notification.sent"]
    assert sorted(e.subject for e in sent) == ["customer:globex", "customer:initech", "customer:umbrella"]


def with_offering(catalog: Catalog, name: str | None) -> Catalog:
    offerings = dict(catalog.offerings)
    if name is not None:
        offerings[name] = catalog.offerings["gsb-business"].model_copy(update={"name": name, "title": "GSB premium"})
    return catalog.model_copy(update={"offerings": offerings})


def test_a_new_offering_gets_a_set_up_charging_policy_that_goes_with_the_offering(billing, catalog: Catalog) -> None:
    service, accounting, clock = billing
    assert add(accounting, "new-offering.pol") == ["setup-fee-for-new-offerings",
                                                   "retire-setup-fee-of-deleted-offerings"]
    # The domain manager adds gsb-premium to the catalog and restarts the controller.
    premium = ServiceLayer(service.database, with_offering(catalog, "gsb-premium"), clock=clock)
    runner = PolicyRunner(Accounting(premium))
    clock.now = at(6, 9)
    report = runner.run_once()
    assert report.policy_changes == ["create setup-fee-gsb-premium (by setup-fee-for-new-offerings)"]
    premium.create_sla(DOMAIN_MANAGER, SlaSpec(
        name="acme-branch", customer="acme", offering="gsb-premium", state=LifecycleState.OPERATIONAL,
        attachment=Attachment("edge2", "eth3", 10 * M, ("198.19.9.0/24",)), **BEST_EFFORT))
    service.create_sla(DOMAIN_MANAGER, SlaSpec(   # an SLA of another offering is not charged
        name="acme-lab", customer="acme", offering="gsb-business", state=LifecycleState.OFFERED,
        attachment=Attachment("edge2", "eth3", 10 * M, ("198.19.10.0/24",)), **BEST_EFFORT))
    assert runner.run_once().charges == 1
    clock.now = at(1, 1, month=12)
    [setup] = [line for line in Accounting(premium).compute(DOMAIN_MANAGER, "acme", "2026-11").lines
               if line.kind == "policy-charge"]
    assert (setup.sla, setup.description, setup.amount) == ("acme-branch", "Set-up of acme-branch on gsb-premium",
                                                            Decimal("25.00"))
    # The offering is withdrawn: the meta-policy deletes its charging policy.
    report = PolicyRunner(accounting).run_once()
    assert report.policy_changes == ["delete setup-fee-gsb-premium (by retire-setup-fee-of-deleted-offerings)"]
    assert "setup-fee-gsb-premium" not in [p.id for p in PolicyBook(accounting).list(DOMAIN_MANAGER)]


def test_a_policy_with_a_syntax_error_is_refused_with_line_column_and_nothing_is_stored(billing) -> None:
    _, accounting, _ = billing
    text = "POLICY ok FOR sla ON sla ON EVENT sls.changed DO notification.send(text: \"x\");\n" \
           "POLICY bad FOR sla ON sla ON EVENTS sls.changed DO notification.send(text: \"x\");\n"
    with pytest.raises(InvalidValue) as refused:
        PolicyBook(accounting).add(DOMAIN_MANAGER, text, "mine.pol")
    assert refused.value.message.startswith("mine.pol:2:30: expected EVENT after ON, found 'EVENTS'")
    assert PolicyBook(accounting).list(DOMAIN_MANAGER) == []
    with pytest.raises(InvalidValue, match="unknown operation|not an operation|operation"):
        PolicyBook(accounting).add(DOMAIN_MANAGER, "POLICY p FOR sla ON sla ON EVENT sls.changed "
                                                   "DO charging.refund(amount: \"1\");", "ops.pol")


# ----------------------------------------------------------------------------- with `csmm serve`

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """`csmm serve` on the demo, with a catalog where GSB business allows changes at any interval."""
    catalog = yaml.safe_load(DEFAULT_CATALOG.read_text())
    catalog["offerings"]["gsb-business"]["change_policy"]["min_interval"] = "0s"
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(catalog))
    db = f"sqlite:///{tmp_path}/serve.sqlite3"
    options = ["--catalog", str(catalog_file)]
    run(db, *options, "db", "upgrade")
    run(db, *options, "apply", str(DEMO_FILE))
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([CSMM, "--db", db, *options, "serve", "--no-agents", "--no-snmp", "--no-netconf",
                                "--http", f"127.0.0.1:{free_tcp_port()}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield db, options
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        log.close()


def test_the_running_controller_charges_the_fourth_change_of_the_day(served: tuple[str, list[str]]) -> None:
    db, options = served
    assert "stored change-fee-beyond-3-per-day" in run(db, *options, "policy", "add",
                                                       str(EXAMPLES / "change-fee.pol")).stdout
    for bandwidth in ("1M", "2M", "3M", "2M"):
        run(db, *options, "--as", "customer:acme", "sls", "set", "acme-hq", "--class", "gold", "--bandwidth", bandwidth)

    def charged() -> list[dict[str, str]]:
        statement = json.loads(run(db, *options, "--as", "customer:acme", "invoice", "preview", "acme",
                                   "--format", "json").stdout)
        return [line for line in statement["lines"] if line["kind"] == "policy-charge"]
    lines = wait_until("the running controller charges the change fee", charged, timeout=20)
    assert [line["amount"] for line in lines] == ["0.50"]  # type: ignore[union-attr]
    listed = run(db, *options, "policy", "list").stdout
    assert "change-fee-beyond-3-per-day" in listed and "active" in listed
