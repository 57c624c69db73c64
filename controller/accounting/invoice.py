"""Invoices, credit and debit notes, and month-to-date statements: building, comparing and
exporting them (JSON, CSV, printable HTML). Pure; the accounting service stores them.

An issued invoice never changes. A late correction (usage that arrived after the invoice, a
penalty credit recorded later) is issued as a credit note (the customer owes less) or a debit
note (more) whose lines are the differences, line key by line key, and which refers to the
invoice.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from controller.accounting.charging import LineItem, cents
from controller.accounting.metering import iso

INVOICE, CREDIT_NOTE, DEBIT_NOTE, STATEMENT = "invoice", "credit-note", "debit-note", "statement"
_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Invoice:
    number: str                  # "INV-2026-11-000042"; a statement (month to date) has "" until issued
    kind: str                    # invoice, credit-note, debit-note, statement
    customer: str
    customer_name: str
    month: str                   # "2026-11"
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    currency: str
    tax_name: str
    tax_percent: Decimal
    lines: tuple[LineItem, ...]
    refers_to: str | None = None

    # Computed once per document (frozen: the lines never change).
    @cached_property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @cached_property
    def tax(self) -> Decimal:
        return cents(self.subtotal * self.tax_percent / 100)

    @cached_property
    def total(self) -> Decimal:
        return self.subtotal + self.tax


# ------------------------------------------------------------------------------------------ corrections

def amounts_by_key(documents: Sequence[Invoice]) -> dict[str, Decimal]:
    """What the customer has been charged per line key, over an invoice and its notes."""
    totals: dict[str, Decimal] = {}
    for document in documents:
        for line in document.lines:
            totals[line.key] = totals.get(line.key, Decimal("0.00")) + line.amount
    return totals


def correction_lines(issued: Sequence[Invoice], recomputed: Invoice) -> tuple[LineItem, ...]:
    """The lines a note must carry so that invoice + notes equal the recomputed month."""
    charged = amounts_by_key(issued)
    wanted = {line.key: line for line in recomputed.lines}
    lines = []
    for key in [*wanted, *(k for k in charged if k not in wanted)]:
        difference = (wanted[key].amount if key in wanted else Decimal("0.00")) - charged.get(key, Decimal("0.00"))
        if difference:
            line = wanted.get(key)
            described = line.description if line else f"{key} no longer charged"
            lines.append(LineItem(key, line.sla if line else key.split("/")[0], "correction",
                                  f"Correction: {described}", Decimal(1), "", difference, difference,
                                  line.sources if line else ()))
    return tuple(lines)


def note_kind(lines: Sequence[LineItem]) -> str:
    return CREDIT_NOTE if sum((line.amount for line in lines), Decimal(0)) < 0 else DEBIT_NOTE


# ------------------------------------------------------------------------------------------ documents

def to_document(invoice: Invoice) -> dict[str, Any]:
    """The JSON form: money and quantities as decimal strings (never floats)."""
    return {
        "number": invoice.number, "kind": invoice.kind, "customer": invoice.customer,
        "customer_name": invoice.customer_name, "month": invoice.month,
        "period_start": iso(invoice.period_start), "period_end": iso(invoice.period_end),
        "issued_at": iso(invoice.issued_at), "currency": invoice.currency, "refers_to": invoice.refers_to,
        "lines": [{"key": line.key, "sla": line.sla, "kind": line.kind, "description": line.description,
                   "quantity": str(line.quantity), "unit": line.unit,
                   "unit_price": None if line.unit_price is None else str(line.unit_price),
                   "amount": str(line.amount), "sources": line.sources} for line in invoice.lines],
        "subtotal": str(invoice.subtotal), "tax_name": invoice.tax_name, "tax_percent": str(invoice.tax_percent),
        "tax": str(invoice.tax), "total": str(invoice.total),
    }


def from_document(data: dict[str, Any]) -> Invoice:
    return Invoice(
        number=data["number"], kind=data["kind"], customer=data["customer"], customer_name=data["customer_name"],
        month=data["month"], period_start=_time(data["period_start"]), period_end=_time(data["period_end"]),
        issued_at=_time(data["issued_at"]), currency=data["currency"], tax_name=data["tax_name"],
        tax_percent=Decimal(data["tax_percent"]), refers_to=data.get("refers_to"),
        lines=tuple(LineItem(line["key"], line["sla"], line["kind"], line["description"], Decimal(line["quantity"]),
                             line["unit"], None if line["unit_price"] is None else Decimal(line["unit_price"]),
                             Decimal(line["amount"]), tuple(line["sources"])) for line in data["lines"]))


def canonical_json(document: dict[str, Any]) -> str:
    """Compact UTF-8 JSON in the document's own key order: `to_document` always builds the same
    order, and a stored document read back keeps it, so equal documents give equal texts."""
    return orjson.dumps(document).decode()


def parse_json(text: str) -> dict[str, Any]:
    return orjson.loads(text)  # type: ignore[no-any-return]


def digest(document: dict[str, Any] | str) -> str:
    """The SHA-256 of the canonical JSON (given as a document or as its canonical text): stored at
    issue, checked by verification."""
    text = document if isinstance(document, str) else canonical_json(document)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(issued: Invoice, recomputed: Invoice) -> list[str]:
    """Human-readable differences between an issued document and its recomputation (empty: equal)."""
    out = []
    old, new = {line.key: line for line in issued.lines}, {line.key: line for line in recomputed.lines}
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            out.append(f"{key}: {'missing' if b is None else 'not on the invoice'} "
                       f"({(a or b).amount} {issued.currency})")  # type: ignore[union-attr]
        elif (a.amount, a.quantity, a.description, a.sources) != (b.amount, b.quantity, b.description, b.sources):
            out.append(f"{key}: issued {a.amount} for {a.quantity} {a.unit}, recomputed {b.amount} for {b.quantity} "
                       f"{b.unit}")
    if not out and issued.total != recomputed.total:
        out.append(f"total: issued {issued.total}, recomputed {recomputed.total}")
    return out


# ------------------------------------------------------------------------------------------ exports

CSV_COLUMNS = ("number", "kind", "customer", "month", "sla", "line_kind", "description", "quantity", "unit",
               "unit_price", "amount", "currency", "sources")


def to_csv(invoices: Sequence[Invoice]) -> str:
    """One row per line item, then a TAX and a TOTAL row per document."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in invoices:
        head = (invoice.number, invoice.kind, invoice.customer, invoice.month)
        for line in invoice.lines:
            writer.writerow((*head, line.sla, line.kind, line.description, line.quantity, line.unit,
                             "" if line.unit_price is None else line.unit_price, line.amount, invoice.currency,
                             " | ".join(line.sources)))
        writer.writerow((*head, "", "tax", f"{invoice.tax_name} {invoice.tax_percent} %", "", "", "", invoice.tax,
                         invoice.currency, ""))
        writer.writerow((*head, "", "total", "", "", "", "", invoice.total, invoice.currency, ""))
    return out.getvalue()


_environment = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]))


def to_html(invoice: Invoice, notes: dict[str, str] | None = None) -> str:
    """A printable page (A4 in the print stylesheet); every text is escaped. `notes` describe the
    SLS versions the lines name."""
    titles = {INVOICE: "Invoice", CREDIT_NOTE: "Credit note", DEBIT_NOTE: "Debit note",
              STATEMENT: "Statement (month to date, not an invoice)"}
    return _environment.get_template("invoice.html").render(invoice=invoice, title=titles[invoice.kind], iso=iso,
                                                            notes=notes or {})


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
