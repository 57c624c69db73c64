"""`csmm invoice ...`, `csmm usage ...`, `csmm report ...`, `csmm notifications`: billing, metering
and reporting from the command line. Customers (`--as customer:NAME`) reach their own only."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import click

from controller.accounting.invoice import Invoice, to_csv, to_document, to_html
from controller.accounting.metering import format_hours, month_name, month_of
from controller.accounting.service import Accounting
from controller.cli import Context, _json, pass_context, refusals_to_exit
from controller.service.views import usage_view

FORMATS = click.Choice(["text", "json", "csv", "html"])


def _accounting(obj: Context) -> Accounting:
    return Accounting(obj.service)


def _print(invoices: list[Invoice], form: str, output: Path | None = None,
           notes: dict[str, str] | None = None) -> None:
    """`notes`: what each SLS version named in the lines was (text and HTML show it)."""
    notes = notes or {}
    if form == "json":
        text = _json([to_document(i) for i in invoices] if len(invoices) != 1 else to_document(invoices[0]))
    elif form == "csv":
        text = to_csv(invoices)
    elif form == "html":
        text = "\n".join(to_html(i, notes) for i in invoices)
    else:
        text = "\n\n".join(_text(i, notes) for i in invoices)
    if output is None:
        click.echo(text.rstrip("\n"))
    else:
        output.write_text(text)
        click.echo(f"wrote {len(invoices)} document(s) to {output}")


def _text(invoice: Invoice, notes: dict[str, str] | None = None) -> str:
    head = {"invoice": "Invoice", "credit-note": "Credit note", "debit-note": "Debit note",
            "statement": "Statement, month to date"}[invoice.kind]
    lines = [f"{head} {invoice.number}".rstrip() + f" — {invoice.customer_name} ({invoice.customer}), {invoice.month}"]
    if invoice.refers_to:
        lines.append(f"corrects {invoice.refers_to}")
    for line in invoice.lines:
        lines.append(f"  {line.sla:<16} {line.description:<78} {line.amount:>10}")
        lines.extend(f"  {'':<16}   {source}" + (f": {notes[source]}" if notes and source in notes else "")
                     for source in line.sources)
    lines.append(f"  {'subtotal':<95} {invoice.subtotal:>10}")
    lines.append(f"  {invoice.tax_name + ' ' + str(invoice.tax_percent) + ' %':<95} {invoice.tax:>10}")
    lines.append(f"  {'total ' + invoice.currency:<95} {invoice.total:>10}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- invoice

@click.group("invoice")
def invoice_group() -> None:
    """Invoices: issue a month's, show, export, verify, correct; statements of the month to date.

    An issued invoice never changes. `verify` recomputes it from the SLS history, usage records,
    policy charges and penalty credits as they were at issue time (it must match) and as they are
    now; `correct` issues a credit or debit note for the difference."""


@invoice_group.command("issue")
@click.option("--month", required=True, help="The month to bill, e.g. 2026-11 (it must have ended).")
@click.option("--quiet", is_flag=True, help="Print only the summary line, not one line per invoice.")
@pass_context
@refusals_to_exit
def invoice_issue(obj: Context, month: str, quiet: bool) -> None:
    """Issue the month's invoice of every customer not yet invoiced for it; announces month.closed.
    Running it again issues only what is missing."""
    issued = _accounting(obj).issue_month(obj.principal, month)
    if not quiet:
        click.echo("\n".join(f"{i.number}  {i.customer:<20} {i.total:>12} {i.currency}" for i in issued))
    total = sum((i.total for i in issued), Decimal("0.00"))
    click.echo(f"issued {len(issued)} invoice(s) for {month}, {total} {obj.service.catalog.currency} before notes")


@invoice_group.command("list")
@click.option("--customer", help="Only this customer's.")
@click.option("--month", help="Only this month's (2026-11).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def invoice_list(obj: Context, customer: str | None, month: str | None, as_json: bool) -> None:
    """Issued invoices and notes the principal may see."""
    found = _accounting(obj).invoices(obj.principal, customer, month)
    if as_json:
        click.echo(_json([{"number": i.number, "kind": i.kind, "customer": i.customer, "month": i.month,
                           "total": str(i.total), "currency": i.currency, "refers_to": i.refers_to} for i in found]))
        return
    for i in found:
        click.echo(f"{i.number:<22} {i.kind:<12} {i.customer:<20} {i.month} {i.total:>12} {i.currency}"
                   + (f"  corrects {i.refers_to}" if i.refers_to else ""))


@invoice_group.command("show")
@click.argument("number")
@click.option("--format", "form", type=FORMATS, default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@pass_context
@refusals_to_exit
def invoice_show(obj: Context, number: str, form: str, output: Path | None) -> None:
    """One issued invoice or note, with the SLS changes and records behind each line."""
    accounting = _accounting(obj)
    invoice = accounting.invoice(obj.principal, number)
    _print([invoice], form, output, accounting.version_notes(obj.principal, invoice))


@invoice_group.command("preview")
@click.argument("customer")
@click.option("--month", help="A month to compute as it would be issued now; default: this month to date.")
@click.option("--format", "form", type=FORMATS, default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@pass_context
@refusals_to_exit
def invoice_preview(obj: Context, customer: str, month: str | None, form: str, output: Path | None) -> None:
    """Hot billing: what the customer owes so far (nothing is stored)."""
    accounting = _accounting(obj)
    if month is None or month == month_name(month_of(obj.service.clock())):
        document = accounting.statement(obj.principal, customer)
    else:
        document = accounting.compute(obj.principal, customer, month)
    _print([document], form, output, accounting.version_notes(obj.principal, document))


@invoice_group.command("export")
@click.option("--month", required=True, help="The month (2026-11).")
@click.option("--customer", help="Only this customer's.")
@click.option("--format", "form", type=click.Choice(["json", "csv", "html"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@pass_context
@refusals_to_exit
def invoice_export(obj: Context, month: str, customer: str | None, form: str, output: Path | None) -> None:
    """Every issued invoice and note of a month, for a billing or accounting system."""
    _print(_accounting(obj).invoices(obj.principal, customer, month), form, output)


@invoice_group.command("verify")
@click.argument("number")
@pass_context
@refusals_to_exit
def invoice_verify(obj: Context, number: str) -> None:
    """Recompute an issued invoice. Exit 0: it matches what was issued; 1: it does not."""
    check = _accounting(obj).verify(obj.principal, number)
    click.echo(f"{number}: stored document {'intact' if check.digest_ok else 'ALTERED (digest mismatch)'}")
    if check.as_issued:
        click.echo("recomputed as of its issue time, it differs:")
        click.echo("\n".join(f"  {d}" for d in check.as_issued))
    else:
        click.echo("recomputed as of its issue time: identical")
    if check.notes:
        click.echo(f"notes issued: {', '.join(check.notes)}")
    if check.since:
        click.echo("changed since (late data); `csmm invoice correct` issues a note for:")
        click.echo("\n".join(f"  {d}" for d in check.since))
    sys.exit(0 if check.ok else 1)


@invoice_group.command("correct")
@click.argument("number")
@pass_context
@refusals_to_exit
def invoice_correct(obj: Context, number: str) -> None:
    """Issue a credit or debit note for what changed since the invoice was issued."""
    note = _accounting(obj).correct(obj.principal, number)
    if note is None:
        click.echo(f"{number}: nothing to correct")
        return
    click.echo(f"issued {note.kind} {note.number} for {number}: {note.total} {note.currency}")
    click.echo(_text(note))


# ---------------------------------------------------------------------------------------------- usage

@click.group("usage")
def usage_group() -> None:
    """Usage records (IPFIX field names): the controller's meter, imports from other meters."""


@usage_group.command("records")
@click.argument("customer")
@click.option("--month", required=True, help="The month (2026-11).")
@pass_context
@refusals_to_exit
def usage_records(obj: Context, customer: str, month: str) -> None:
    """The customer's usage records of a month, as JSON (IPFIX information element names)."""
    records = _accounting(obj).usage_records(obj.principal, customer, month)
    click.echo(_json([r.to_ipfix() for r in records]))


@usage_group.command("import")
@click.argument("file", type=click.File("r"))
@pass_context
@refusals_to_exit
def usage_import(obj: Context, file: click.utils.LazyFile) -> None:
    """Import a JSON list of usage records (slaName, ipDiffServCodePoint, flowStartMilliseconds,
    flowEndMilliseconds, octetDeltaCount, packetDeltaCount, optional droppedPacketDeltaCount and
    source). A record already imported is counted once; one with other counts refuses the batch."""
    try:
        data = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{file.name}: not JSON: {exc}") from None
    if not isinstance(data, list):
        raise click.BadParameter(f"{file.name}: expected a JSON list of records")
    result = _accounting(obj).import_usage(obj.principal, data, where=f"{file.name} record")
    for conflict in result.conflicts:
        click.echo(f"conflict: {conflict}", err=True)
    click.echo(f"{result.added} added, {result.duplicates} already counted, {len(result.conflicts)} conflicting")
    if result.conflicts:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- reports

@click.group("report")
def report_group() -> None:
    """Usage reports for customers and the domain manager's month summary."""


@report_group.command("usage")
@click.argument("customer")
@click.option("--month", help="The month (2026-11); default: this month to date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def report_usage(obj: Context, customer: str, month: str | None, as_json: bool) -> None:
    """Hours in each class (against the included hours) and volume, per SLA."""
    month = month or month_name(month_of(obj.service.clock()))
    rows = _accounting(obj).usage_report(obj.principal, customer, month)
    if as_json:
        click.echo(_json(usage_view(customer, month, rows)))
        return
    click.echo(f"{'sla':<20} {'class':<7} {'hours':>12} {'included':>10} {'octets':>16} {'packets':>12}")
    for u in rows:
        included = "unlimited" if u.included_hours is None else format_hours(u.included_hours)
        click.echo(f"{u.sla:<20} {u.service_class:<7} {format_hours(u.hours):>12} {included:>10} {u.octets:>16,} "
                   f"{u.packets:>12,}")


@report_group.command("summary")
@click.option("--month", required=True, help="The month (2026-11).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def report_summary(obj: Context, month: str, as_json: bool) -> None:
    """Revenue by offering (issued invoices and notes), customers per offering, hours per class."""
    summary = _accounting(obj).summary(obj.principal, month)
    if as_json:
        click.echo(_json(summary))
        return
    click.echo(f"{month}: {summary['invoices']} invoices, {summary['notes']} notes, revenue before tax "
               f"{summary['revenue_before_tax']} {summary['currency']}")
    for offering, amount in summary["revenue_by_offering"].items():
        click.echo(f"  revenue  {offering:<16} {amount:>14}")
    for offering, count in summary["customers_by_offering"].items():
        click.echo(f"  customers {offering:<15} {count:>14}")
    for service_class, value in summary["hours_by_class"].items():
        click.echo(f"  hours    {service_class:<16} {value:>14}")


# ---------------------------------------------------------------------------------------------- notifications

@click.command("notifications")
@click.option("--customer", help="Only this customer's.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def notifications_cmd(obj: Context, customer: str | None, limit: int, as_json: bool) -> None:
    """Messages accounting policies sent to customers, newest first."""
    found = _accounting(obj).notifications(obj.principal, customer, limit)
    if as_json:
        click.echo(_json(found))
        return
    for n in found:
        click.echo(f"{n.at:%Y-%m-%d %H:%M:%S}  {n.customer:<16} {n.sla or '-':<16} {n.text}  [{n.policy}]")


# ---------------------------------------------------------------------------------------------- policies

@click.group("policy")
def policy_group() -> None:
    """Accounting policies and meta-policies, in the seed's language (domain manager only).

    \b
      POLICY id FOR subject ON target ON EVENT events DO activities [CONSTRAINT expression];
      META-POLICY id [ON POLICY id] ON CHANGES (newly added|existing altered|existing deleted) entity
        DO (create POLICY ... | delete|activate|deactivate POLICY id) [CONSTRAINT expression];

    Activities: charging.charge(amount: "0.50", text: "...") and notification.send(text: "...").
    Examples ship in controller/policy/examples/. `csmm serve` enforces the active policies on
    every event (and after each metering run); `csmm policy run` does one pass by hand."""


@policy_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--inactive", is_flag=True, help="Store the statements deactivated.")
@pass_context
@refusals_to_exit
def policy_add(obj: Context, file: Path, inactive: bool) -> None:
    """Add (or replace, by id) the statements in FILE; all or none."""
    from controller.accounting.policies import PolicyBook
    ids = PolicyBook(_accounting(obj)).add(obj.principal, file.read_text(), str(file), active=not inactive)
    click.echo(f"stored {', '.join(ids)} ({'inactive' if inactive else 'active'})")


@policy_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with each statement's text).")
@pass_context
@refusals_to_exit
def policy_list(obj: Context, as_json: bool) -> None:
    """The stored policies and meta-policies, in evaluation order."""
    from controller.accounting.policies import PolicyBook
    found = PolicyBook(_accounting(obj)).list(obj.principal)
    if as_json:
        click.echo(_json(found))
        return
    for p in found:
        click.echo(f"{p.id:<40} {p.kind:<12} {'active' if p.active else 'inactive':<9} {p.origin}")


@policy_group.command("show")
@click.argument("policy_id")
@pass_context
@refusals_to_exit
def policy_show(obj: Context, policy_id: str) -> None:
    """One statement's text."""
    from controller.accounting.policies import PolicyBook
    for p in PolicyBook(_accounting(obj)).list(obj.principal):
        if p.id == policy_id:
            click.echo(p.text)
            return
    click.echo(f"error: accounting policy {policy_id!r} does not exist", err=True)
    sys.exit(3)


def _set(obj: Context, policy_id: str, active: bool) -> None:
    from controller.accounting.policies import PolicyBook
    PolicyBook(_accounting(obj)).set_active(obj.principal, policy_id, active)
    click.echo(f"{policy_id} {'activated' if active else 'deactivated'}")


@policy_group.command("activate")
@click.argument("policy_id")
@pass_context
@refusals_to_exit
def policy_activate(obj: Context, policy_id: str) -> None:
    """Enforce a stored statement again."""
    _set(obj, policy_id, True)


@policy_group.command("deactivate")
@click.argument("policy_id")
@pass_context
@refusals_to_exit
def policy_deactivate(obj: Context, policy_id: str) -> None:
    """Keep a statement but stop enforcing it."""
    _set(obj, policy_id, False)


@policy_group.command("remove")
@click.argument("policy_id")
@pass_context
@refusals_to_exit
def policy_remove(obj: Context, policy_id: str) -> None:
    """Delete a stored statement."""
    from controller.accounting.policies import PolicyBook
    PolicyBook(_accounting(obj)).remove(obj.principal, policy_id)
    click.echo(f"removed {policy_id}")


@policy_group.command("run")
@click.option("--no-metering", is_flag=True, help="Handle new events only; skip the metering run.")
@pass_context
@refusals_to_exit
def policy_run(obj: Context, no_metering: bool) -> None:
    """One enforcement pass: catalog changes, every event since the last pass, a metering run."""
    from controller.accounting.policies import PolicyRunner
    if not obj.principal.is_domain_manager:
        raise click.UsageError("`csmm policy run` acts as the domain manager")
    report = PolicyRunner(_accounting(obj)).run_once(metering=not no_metering)
    for change in report.policy_changes:
        click.echo(f"meta-policy: {change}")
    for error in report.errors:
        click.echo(f"policy error: {error}", err=True)
    click.echo(f"{report.events} events, {report.decisions} decisions: {report.charges} charges, "
               f"{report.notifications} notifications, {len(report.policy_changes)} policy changes")
