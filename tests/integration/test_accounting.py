"""Accounting on a real database: the seed's tariff examples computed exactly, months split at
every change and at month ends, invoices issued, verified and corrected by notes, usage records
counted once, and each customer seeing only its own bills."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.exc import DBAPIError

from controller.accounting.invoice import CREDIT_NOTE, to_csv, to_document, to_html
from controller.domain.errors import Conflict, Forbidden, NotFound
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import LifecycleState
from controller.service.layer import ServiceLayer
from controller.store.schema import InvoiceRow, PenaltyCreditRow
from tests.conftest import Clock

UTC = timezone.utc
M = 1_000_000
ACME = Principal(Role.CUSTOMER, "acme")
INITECH = Principal(Role.CUSTOMER, "initech")


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def change(service: ServiceLayer, clock: Clock, when: datetime, who: Principal, sla: str, service_class: str,
           bandwidth: int) -> None:
    clock.now = when
    service.change_sls(who, sla, service_class, bandwidth, Channel.WEB)


def seed_month(service: ServiceLayer, clock: Clock) -> None:
    # ACME (GSB business): 14 h of Gold on 3 November.
    change(service, clock, at(3, 8), ACME, "acme-hq", "gold", 2 * M)
    change(service, clock, at(3, 22), ACME, "acme-hq", "silver", 5 * M)
    # Initech (GSB economy): 7 h of Silver, then 3 h of Gold, on 5 November.
    change(service, clock, at(5, 10), INITECH, "initech-office", "silver", 2 * M)
    change(service, clock, at(5, 17), INITECH, "initech-office", "gold", 1 * M)
    change(service, clock, at(5, 20), INITECH, "initech-office", "bronze", 8 * M)


def lines(invoice, kind: str) -> list:  # type: ignore[no-untyped-def]
    return [line for line in invoice.lines if line.kind == kind]


# ----------------------------------------------------------------------------- the seed's examples

def test_a_business_customer_with_14_hours_of_gold_pays_4_hours_at_2_dollars_beyond_its_fee(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    clock.now = at(1, 2, month=12)
    invoice = accounting.compute(DOMAIN_MANAGER, "acme", "2026-11")
    [fee] = lines(invoice, "monthly-fee")
    assert fee.amount == Decimal("150.00")
    [beyond] = lines(invoice, "additional-hours")
    assert (beyond.quantity, beyond.unit_price, beyond.amount) == (Decimal(4), Decimal("2.00"), Decimal("8.00"))
    included = [line for line in lines(invoice, "included-hours") if "Gold" in line.description]
    assert included[0].quantity == Decimal(10)
    # The class's first line names the SLS changes behind the Gold hours.
    assert included[0].sources == ("acme-hq v2",)
    assert accounting.version_notes(ACME, invoice)["acme-hq v2"] == (
        "gold 2 Mbit/s from 2026-11-03T08:00:00Z until 2026-11-03T22:00:00Z, set by customer:acme via web")
    [fees] = lines(invoice, "change-fee")
    assert (fees.quantity, fees.unit_price, fees.amount) == (Decimal(2), Decimal("0.10"), Decimal("0.20"))
    assert fees.sources == ("acme-hq v2", "acme-hq v3")
    assert invoice.total == Decimal("158.20")


def test_an_economy_customer_with_7_hours_of_silver_and_3_of_gold_pays_2_at_1_and_3_at_5_dollars(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    clock.now = at(1, 2, month=12)
    invoice = accounting.compute(DOMAIN_MANAGER, "initech", "2026-11")
    beyond = {line.key.split("/")[2]: line for line in lines(invoice, "additional-hours")}
    assert (beyond["silver"].quantity, beyond["silver"].amount) == (Decimal(2), Decimal("2.00"))
    assert (beyond["gold"].quantity, beyond["gold"].amount) == (Decimal(3), Decimal("15.00"))
    assert sum(line.amount for line in lines(invoice, "change-fee")) == Decimal("0.75")
    assert invoice.total == Decimal("40.00") + Decimal("17.00") + Decimal("0.75")


def test_a_change_straddling_the_month_end_is_charged_to_each_month_for_its_own_hours(billing) -> None:
    service, accounting, clock = billing
    change(service, clock, at(31, 22, month=10), INITECH, "initech-office", "gold", 1 * M)
    change(service, clock, at(1, 3), INITECH, "initech-office", "bronze", 8 * M)
    clock.now = at(1, 4, month=12)
    october = accounting.compute(DOMAIN_MANAGER, "initech", "2026-10")
    november = accounting.compute(DOMAIN_MANAGER, "initech", "2026-11")
    assert [line.quantity for line in lines(october, "additional-hours")] == [Decimal(2)]
    assert [line.quantity for line in lines(november, "additional-hours")] == [Decimal(3)]
    # Operational from 20 October: October's fee is prorated (12 of 31 days), November's is whole.
    [october_fee] = lines(october, "monthly-fee")
    assert october_fee.amount == (Decimal("40.00") * 12 / 31).quantize(Decimal("0.01"))
    assert lines(november, "monthly-fee")[0].amount == Decimal("40.00")


def test_an_sla_deinstalled_mid_month_pays_a_prorated_fee_and_prorated_included_hours(billing) -> None:
    service, accounting, clock = billing
    change(service, clock, at(10), ACME, "acme-hq", "gold", 2 * M)
    clock.now = at(16)   # 6 days of Gold, then the contract ends: 15 days of 30 billed
    service.set_sla_state(DOMAIN_MANAGER, "acme-hq", LifecycleState.DEINSTALLED)
    clock.now = at(2, month=12)
    invoice = accounting.compute(DOMAIN_MANAGER, "acme", "2026-11")
    assert lines(invoice, "monthly-fee")[0].amount == Decimal("75.00")
    [included] = [line for line in lines(invoice, "included-hours") if "Gold" in line.description]
    assert included.quantity == Decimal(5)        # half of the 10 included hours
    [beyond] = lines(invoice, "additional-hours")
    assert beyond.quantity == Decimal(6 * 24 - 5)


# ----------------------------------------------------------------------------- issuing and correcting

def test_invoices_are_issued_once_after_the_month_ends_and_verify_against_a_recomputation(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    with pytest.raises(Conflict, match="has not ended"):
        accounting.issue_month(DOMAIN_MANAGER, "2026-11")
    clock.now = at(1, 1, month=12)
    issued = accounting.issue_month(DOMAIN_MANAGER, "2026-11")
    assert sorted(i.customer for i in issued) == ["acme", "as64500", "globex", "initech", "umbrella"]
    assert accounting.issue_month(DOMAIN_MANAGER, "2026-11") == []          # once per customer and month
    acme = next(i for i in issued if i.customer == "acme")
    assert acme.number.startswith("INV-2026-11-") and acme.total == Decimal("158.20")
    check = accounting.verify(DOMAIN_MANAGER, acme.number)
    assert check.ok and check.since == []
    assert [e.type for e in service.recent_events(DOMAIN_MANAGER, 1)] == ["month.closed"]


def test_a_late_penalty_credit_is_issued_as_a_credit_note_and_the_invoice_never_changes(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    clock.now = at(1, 1, month=12)
    acme = next(i for i in accounting.issue_month(DOMAIN_MANAGER, "2026-11") if i.customer == "acme")
    clock.now = at(1, 2, month=12)
    with service.database.write() as session:
        sla_id = service.get_sla(DOMAIN_MANAGER, "acme-hq").id
        session.add(PenaltyCreditRow(sla_id=sla_id, month=at(1), amount_cents=1500, reason="availability 99.5 %",
                                     created_at=clock.now))
    check = accounting.verify(DOMAIN_MANAGER, acme.number)
    assert check.ok                     # as issued, the invoice still recomputes exactly
    assert check.since == ["acme-hq/penalty/1: -15.00 USD"]
    note = accounting.correct(DOMAIN_MANAGER, acme.number)
    assert note is not None and note.kind == CREDIT_NOTE and note.refers_to == acme.number
    assert note.total == Decimal("-15.00")
    assert accounting.correct(DOMAIN_MANAGER, acme.number) is None          # nothing more to correct
    assert accounting.verify(DOMAIN_MANAGER, acme.number).since == []
    assert accounting.invoice(DOMAIN_MANAGER, acme.number).total == acme.total == Decimal("158.20")
    with pytest.raises(DBAPIError, match="never changed"):
        with service.database.write() as session:
            session.query(InvoiceRow).filter(InvoiceRow.number == acme.number).update({"total_cents": 0})


def test_a_customer_reads_only_its_own_invoices_and_statements(billing) -> None:
    service, accounting, clock = billing
    clock.now = at(1, 1, month=12)
    issued = accounting.issue_month(DOMAIN_MANAGER, "2026-11")
    globex = next(i for i in issued if i.customer == "globex")
    assert [i.customer for i in accounting.invoices(ACME)] == ["acme"]
    with pytest.raises(NotFound):
        accounting.invoice(ACME, globex.number)
    with pytest.raises(NotFound):
        accounting.statement(ACME, "globex")
    with pytest.raises(NotFound):
        accounting.verify(ACME, globex.number)
    with pytest.raises(Forbidden):
        accounting.issue_month(ACME, "2026-11")
    with pytest.raises(NotFound):       # a peer principal cannot reach a customer of the same name
        accounting.statement(Principal(Role.PEER, "acme"), "acme")


def test_hot_billing_charges_the_month_to_date(billing) -> None:
    service, accounting, clock = billing
    change(service, clock, at(3, 8), INITECH, "initech-office", "gold", 1 * M)
    clock.now = at(3, 10, 30)
    statement = accounting.statement(INITECH, "initech")
    assert statement.kind == "statement" and statement.number == ""
    [gold] = lines(statement, "additional-hours")
    assert (gold.quantity, gold.amount) == (Decimal("2.5"), Decimal("12.50"))
    assert lines(statement, "monthly-fee")[0].amount == Decimal("40.00")     # the month's, as it will be billed


# ----------------------------------------------------------------------------- usage records

def test_a_usage_record_replayed_twice_is_counted_once_and_a_changed_one_is_refused(billing) -> None:
    service, accounting, clock = billing
    record = {"slaName": "acme-hq", "ipDiffServCodePoint": 34, "flowStartMilliseconds": 1793952000000,
              "flowEndMilliseconds": 1793955600000, "octetDeltaCount": 1_000_000, "packetDeltaCount": 1000,
              "source": "probe-1"}
    assert accounting.import_usage(DOMAIN_MANAGER, [record]).added == 1
    again = accounting.import_usage(DOMAIN_MANAGER, [record, dict(record)])
    assert (again.added, again.duplicates, again.conflicts) == (0, 2, [])
    changed = accounting.import_usage(DOMAIN_MANAGER, [{**record, "octetDeltaCount": 5}])
    assert changed.added == 0 and "differs from the stored" in changed.conflicts[0]
    clock.now = at(1, 1, month=12)
    [volume] = lines(accounting.compute(DOMAIN_MANAGER, "acme", "2026-11"), "volume")
    assert volume.quantity == Decimal(1_000_000) and "1 usage records" in volume.description
    [usage] = [u for u in accounting.usage_report(ACME, "acme", "2026-11") if u.service_class == "silver"]
    assert (usage.octets, usage.packets) == (1_000_000, 1000)


def test_a_usage_record_with_an_unknown_dscp_is_refused_naming_the_field(billing) -> None:
    _, accounting, _ = billing
    with pytest.raises(Exception, match="ipDiffServCodePoint 10 is not a GSB class's DSCP"):
        accounting.import_usage(DOMAIN_MANAGER, [{"slaName": "acme-hq", "ipDiffServCodePoint": 10,
                                                  "flowStartMilliseconds": 0, "flowEndMilliseconds": 1,
                                                  "octetDeltaCount": 1, "packetDeltaCount": 1}])


# ----------------------------------------------------------------------------- exports

def test_invoices_export_as_json_csv_and_escaped_html(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    clock.now = at(1, 1, month=12)
    issued = next(i for i in accounting.issue_month(DOMAIN_MANAGER, "2026-11") if i.customer == "acme")
    invoice = accounting.invoice(DOMAIN_MANAGER, issued.number)
    document = json.loads(json.dumps(to_document(invoice)))
    assert document["total"] == "158.20" and all(isinstance(line["amount"], str) for line in document["lines"])
    rows = list(csv.DictReader(io.StringIO(to_csv([invoice]))))
    assert rows[-1]["line_kind"] == "total" and rows[-1]["amount"] == "158.20"
    assert sum(Decimal(r["amount"]) for r in rows if r["line_kind"] not in ("tax", "total")) == invoice.subtotal
    page = to_html(invoice)
    assert invoice.number in page and "158.20" in page and "<script" not in page


def test_the_revenue_summary_adds_up_the_issued_invoices(billing) -> None:
    service, accounting, clock = billing
    seed_month(service, clock)
    clock.now = at(1, 1, month=12)
    issued = accounting.issue_month(DOMAIN_MANAGER, "2026-11")
    summary = accounting.summary(DOMAIN_MANAGER, "2026-11")
    assert Decimal(summary["revenue_before_tax"]) == sum(accounting.invoice(DOMAIN_MANAGER, i.number).subtotal
                                                         for i in issued)
    assert summary["customers_by_offering"] == {"gsb-business": 2, "gsb-economy": 2, "gsb-peering": 1}
    assert Decimal(summary["hours_by_class"]["gold"]) == 14 + 3 + 30 * 24   # globex is in Gold all month
    assert timedelta(hours=float(sum(Decimal(v) for v in summary["hours_by_class"].values()))) == \
        timedelta(days=30) * 5


# ----------------------------------------------------------------------------- the controller's meter

def report(boot_epoch: int, octets: int, packets: int):  # type: ignore[no-untyped-def]
    import numpy as np

    from controller.southbound.counters import CounterReport
    column = lambda value: np.array([value], dtype=np.uint64)  # noqa: E731
    return CounterReport(boot_epoch, [("eth2", "gold/acme-hq")], column(octets), column(packets), column(0),
                         column(0), np.array([0], dtype=np.int64))


def test_counter_reports_become_hourly_usage_records_and_a_replayed_report_adds_nothing(billing) -> None:
    from controller.southbound.store import SouthboundStore
    service, accounting, clock = billing
    store = SouthboundStore(service.database, accounting.dscp)
    members = {("eth2", "gold/acme-hq"): ("acme-hq",)}
    store.ingest("edge1", report(7, 1000, 10), members)       # the first sample: the mark
    store.ingest("edge1", report(7, 6000, 60), members)
    store.ingest("edge1", report(7, 6000, 60), members)       # the same report again
    store.ingest("edge1", report(7, 9000, 90), members)
    clock.now = datetime.now(UTC)
    records = accounting.usage_records(ACME, "acme", f"{clock.now:%Y-%m}")
    assert [(r.source, r.service_class, r.dscp, r.octets, r.packets) for r in records] == [
        ("meter", "gold", 46, 8000, 80)]
    assert records[0].flow_end_ms - records[0].flow_start_ms == 3_600_000
    assert records[0].to_ipfix()["octetDeltaCount"] == 8000
