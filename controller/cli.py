"""`csmm`: the operator's command line for the CSMM controller.

Every command runs as a principal (`--as`, default the domain manager) through the same
service layer as SNMP, NETCONF and the web, so the same checks and the same isolation apply.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from controller import __version__
from controller.config import Settings, open_service
from controller.domain.catalog import (DEFAULT_CATALOG, ClassBounds, ClassTariff, ServiceClassName,
                                     load_catalog)
from controller.domain.errors import CsmmError
from controller.domain.principal import Channel, Principal
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.domain.units import format_bandwidth, format_duration, parse_bandwidth
from controller.service.layer import Keep, ServiceLayer, SlaSpec, amended_spec
from controller.service.views import agent_view, conformance_view, json_default, sla_view, sls_view
from controller.store import migrate
from controller.store.database import DEFAULT_URL, Database

F = TypeVar("F", bound=Callable[..., Any])
EXIT_REFUSED = 3
PROGRESS_FROM = 200  # SLAs; below this an apply is quick enough to need no progress bar


class Context:
    def __init__(self, settings: Settings, principal: Principal) -> None:
        self.settings = settings
        self.principal = principal
        self._service: ServiceLayer | None = None

    @property
    def service(self) -> ServiceLayer:
        if self._service is None:
            self._service = open_service(self.settings)
        return self._service


def refusals_to_exit(func: F) -> F:
    """Print a service-layer refusal as the user needs it (message, field, bound, value) and exit 3."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CsmmError as exc:
            click.echo(f"error: {exc.message}", err=True)
            for key in ("field", "bound", "value"):
                value = getattr(exc, key)
                if value is not None:
                    shown = value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
                    click.echo(f"  {key}: {shown}", err=True)
            sys.exit(EXIT_REFUSED)
    return wrapper  # type: ignore[return-value]


def _principal(_ctx: click.Context, _param: click.Parameter, value: str) -> Principal:
    try:
        return Principal.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-11-03T08:00:00Z") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone; write Z for UTC")
    return moment.astimezone(timezone.utc)


def _bandwidth(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_bandwidth(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--db", "database_url", envvar="CSMM_DB", default=DEFAULT_URL, show_default=True,
              help="Database URL: sqlite:///FILE (embedded default) or postgresql+psycopg://USER@HOST/DB. Env: CSMM_DB.")
@click.option("--catalog", "catalog_path", envvar="CSMM_CATALOG", type=click.Path(path_type=Path, dir_okay=False),
              default=DEFAULT_CATALOG, show_default="the GSB catalog shipped with csmm",
              help="Service catalog YAML (classes and offerings). Env: CSMM_CATALOG.")
@click.option("--overbooking", envvar="CSMM_OVERBOOKING", type=click.FloatRange(min=0.1, max=100), default=1.0,
              show_default=True, help="Admission overbooking factor for SLA reservations. Env: CSMM_OVERBOOKING.")
@click.option("--as", "principal", default="domain-manager", show_default=True, callback=_principal,
              help="Act as: domain-manager, customer:NAME or peer:NAME.")
@click.option("--now", envvar="CSMM_NOW", callback=_moment, metavar="TIME",
              help="Act as if it were TIME (ISO 8601, UTC: 2026-11-03T08:00:00Z): to replay a scenario such as a "
                   "month of SLS changes and its billing. Times must not run backwards. Not for `serve`. Env: CSMM_NOW.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(__version__, prog_name="csmm")
@click.pass_context
def cli(ctx: click.Context, database_url: str, catalog_path: Path, overbooking: float, principal: Principal,
        now: datetime | None, verbose: bool) -> None:
    """CSMM: Customer Service Management for the GSB DiffServ transport service.

    The domain manager sets SLAs (static contracts); customers and peer domains change their
    SLS (class and bandwidth in effect) within them. Start with `csmm db upgrade`, then
    `csmm apply FILE`, then `csmm serve`.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.obj = Context(Settings(database_url, catalog_path, Decimal(str(overbooking)), now), principal)


pass_context = click.make_pass_decorator(Context)


# ---------------------------------------------------------------------------------------------- db

@cli.group()
def db() -> None:
    """Database schema (Alembic migrations) and integrity audit."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Create the schema or migrate it to the newest revision."""
    _operator_only(obj, "db upgrade")
    database = Database(obj.settings.database_url)
    before = migrate.current_revision(database)
    migrate.upgrade(database)
    after = migrate.current_revision(database)
    change = "already at" if before == after else f"{before or 'empty'} ->"
    click.echo(f"{database.describe()}: schema {change} {after}")


@db.command("current")
@click.pass_obj
def db_current(obj: Context) -> None:
    """Show the schema revision of the database and the newest one csmm knows."""
    database = Database(obj.settings.database_url)
    click.echo(f"current: {migrate.current_revision(database) or 'none'}  head: {migrate.head_revision(database)}")


@db.command("audit")
@pass_context
@refusals_to_exit
def db_audit(obj: Context) -> None:
    """Recompute link loads and SLS history from scratch and report any discrepancy (exit 1)."""
    problems = obj.service.audit(obj.principal)
    for problem in problems:
        click.echo(problem)
    click.echo(f"audit: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


# ---------------------------------------------------------------------------------------------- catalog

@cli.group()
def catalog() -> None:
    """The service catalog: classes and offerings."""


@catalog.command("check")
@click.pass_obj
@refusals_to_exit
def catalog_check(obj: Context) -> None:
    """Validate the catalog file and say what it holds."""
    loaded = load_catalog(obj.settings.catalog_path)
    click.echo(f"{obj.settings.catalog_path}: ok ({len(loaded.classes)} classes, {len(loaded.offerings)} offerings)")


@catalog.command("show")
@click.pass_obj
@refusals_to_exit
def catalog_show(obj: Context) -> None:
    """Print the classes and offerings."""
    loaded = load_catalog(obj.settings.catalog_path)
    click.echo(f"service {loaded.service} ({loaded.currency})")
    for cls in loaded.classes.values():
        click.echo(f"  class {cls.name.value:<7} {cls.phb:<5} DSCP {cls.dscp:<3} "
                   f"{'guaranteed' if cls.guaranteed else 'best effort'}  {cls.description}")
    for offering in loaded.offerings.values():
        click.echo(f"offering {offering.name}: {offering.title} (for {offering.for_kind}s), default {offering.default_class.value}, "
                   f"{loaded.currency} {offering.tariff.monthly_fee}/month")
        for cls_name in (c for c in ServiceClassName if c in offering.bounds):
            bounds = offering.bounds[cls_name]
            click.echo(f"    {cls_name.value:<7} {format_bandwidth(bounds.min)}..{format_bandwidth(bounds.max)}  "
                       f"{_price(offering.tariff.classes[cls_name])}")
        policy = offering.change_policy
        click.echo(f"    SLS changes: {_change_limit(policy.min_interval_s)}, fee {policy.fee_per_change}")


# ---------------------------------------------------------------------------------------------- apply

@cli.command("apply")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@pass_context
@refusals_to_exit
def apply_cmd(obj: Context, file: Path, dry_run: bool) -> None:
    """Provision topology, customers and SLAs from a YAML FILE (declarative, idempotent).

    The whole file is applied in one transaction: if any SLA is refused, nothing changes.
    """
    from controller.provisioning.apply import plan
    from controller.provisioning.model import load_provisioning

    size = file.stat().st_size
    if size > 1_000_000:
        click.echo(f"reading {file} ({size / 1e6:.1f} MB)", err=True)
    started = time.monotonic()
    desired = load_provisioning(file)
    if size > 1_000_000:
        click.echo(f"read {len(desired.customers)} customers in {time.monotonic() - started:.1f} s; comparing with the database",
                   err=True)
    work, report = plan(obj.service, obj.principal, desired)
    steps = len(work.new_slas) + len(work.changed_slas)
    if dry_run:
        click.echo(f"dry run: {report.summary()}")
    elif steps >= PROGRESS_FROM:
        with _progress(steps, "applying SLAs") as advance:
            obj.service.provision(obj.principal, work, advance)
        click.echo(report.summary())
    else:
        if not work.is_empty:
            obj.service.provision(obj.principal, work)
        click.echo(report.summary())
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


# ---------------------------------------------------------------------------------------------- topology

@cli.command("topology")
@pass_context
@refusals_to_exit
def topology_cmd(obj: Context) -> None:
    """Routers, interfaces and links, with each link's guaranteed load against its class shares."""
    topo = obj.service.topology(obj.principal)
    for router in topo.routers:
        click.echo(f"router {router.id} (mgmt {router.mgmt_address})")
        for iface in router.interfaces:
            click.echo(f"    {iface.name:<8} {iface.role.value:<8} {format_bandwidth(iface.capacity_bps)}")
    click.echo(f"{'link':<16} {'ends':<28} {'capacity':>11}  {'gold in use/limit':>24}  {'gold+silver in use/limit':>26}  reserved g/g+s")
    for load in obj.service.link_loads(obj.principal):
        link = load.link
        ends = f"{link.a} - {link.b or 'outside'}"
        click.echo(f"{link.name:<16} {ends:<28} {format_bandwidth(link.capacity_bps):>11}  "
                   f"{format_bandwidth(load.in_use.gold):>11}/{format_bandwidth(link.gold_limit()):<12}  "
                   f"{format_bandwidth(load.in_use.gold_silver):>12}/{format_bandwidth(link.gold_silver_limit()):<13}  "
                   f"{format_bandwidth(load.reserved.gold)}/{format_bandwidth(load.reserved.gold_silver)}")


# ---------------------------------------------------------------------------------------------- customers

@cli.group()
def customers() -> None:
    """Customers and peer domains."""


@customers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def customers_list(obj: Context, as_json: bool) -> None:
    """List the customers the principal may see."""
    rows = obj.service.list_customers(obj.principal)
    if as_json:
        click.echo(_json([asdict(c) for c in rows]))
        return
    for c in rows:
        click.echo(f"{c.name:<24} {c.kind.value:<9} {c.display_name}")


@customers.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in CustomerKind]), default="customer", show_default=True)
@click.option("--display-name", default="", help="Human-readable name (default: NAME).")
@click.option("--snmp", "snmp_user", is_flag=True,
              help="Give it SNMP access: an SNMPv3 user named NAME (SHA-256, AES, authPriv) with generated "
                   "passphrases, printed once (see `csmm snmp user add` for more choices).")
@pass_context
@refusals_to_exit
def customers_add(obj: Context, name: str, kind: str, display_name: str, snmp_user: bool) -> None:
    """Add a customer or peer domain (domain manager only)."""
    customer = obj.service.add_customer(obj.principal, name, CustomerKind(kind), display_name)
    click.echo(f"added {customer.kind.value} {customer.name} (id {customer.id})")
    if snmp_user:
        from controller.northbound.snmp.access import DEFAULT_AUTH, DEFAULT_PRIV
        from controller.northbound.snmp.commands import add_user

        add_user(obj, name, name, DEFAULT_AUTH, DEFAULT_PRIV, None, None)


# ---------------------------------------------------------------------------------------------- SLAs

@cli.group()
def sla() -> None:
    """SLAs: the static contracts (set by the domain manager)."""


@sla.command("list")
@click.option("--customer", help="Only this customer's SLAs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def sla_list(obj: Context, customer: str | None, as_json: bool) -> None:
    """List the SLAs the principal may see."""
    slas = obj.service.list_slas(obj.principal, customer)
    if as_json:
        click.echo(_json([sla_view(s) for s in slas]))
        return
    click.echo(f"{'id':>6} {'sla':<24} {'customer':<20} {'offering':<14} {'state':<17} attachment")
    for s in slas:
        a = s.terms.attachment
        click.echo(f"{s.id:>6} {s.name:<24} {s.customer:<20} {s.terms.offering:<14} {s.state.value:<17} "
                   f"{a.router}:{a.interface} {format_bandwidth(a.access_speed_bps)} {','.join(a.prefixes)}")


@sla.command("show")
@click.argument("sla_ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def sla_show(obj: Context, sla_ref: str, as_json: bool) -> None:
    """Show one SLA in full (by name or numeric id)."""
    s = obj.service.get_sla(obj.principal, _ref(sla_ref))
    if as_json:
        click.echo(_json(sla_view(s)))
        return
    t = s.terms
    click.echo(f"SLA {s.name} (id {s.id}) of {s.customer_kind.value} {s.customer}: {t.offering}, {s.state.value}")
    click.echo(f"  attachment: {t.attachment.router}:{t.attachment.interface}, access {format_bandwidth(t.attachment.access_speed_bps)}, "
               f"prefixes {', '.join(t.attachment.prefixes)}")
    for cls_name in (c for c in ServiceClassName if c in t.bounds):
        bounds = t.bounds[cls_name]
        tariff = t.tariff.classes.get(cls_name)
        price = "" if tariff is None else f"; {_price(tariff)}"
        click.echo(f"  {cls_name.value:<7} {format_bandwidth(bounds.min)}..{format_bandwidth(bounds.max)}{price}")
    click.echo(f"  monthly fee {t.tariff.monthly_fee}; SLS changes {_change_limit(t.change_policy.min_interval_s)}, "
               f"fee {t.change_policy.fee_per_change}")
    click.echo(f"  availability {t.availability.objective_percent} %/month, no outage over "
               f"{format_duration(t.availability.max_outage_s)}, penalty {t.availability.penalty_percent_of_monthly_fee} % of the monthly fee")
    click.echo(f"  valid {t.valid_from.isoformat()} .. {t.valid_until.isoformat() if t.valid_until else 'open-ended'}")
    click.echo(f"  path toward egress: {', '.join(s.path)}")


def _bounds_option(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[ServiceClassName, ClassBounds] | None:
    """Parse repeated --bounds CLASS=MIN:MAX (e.g. gold=1M:3M)."""
    if not values:
        return None
    bounds: dict[ServiceClassName, ClassBounds] = {}
    for value in values:
        name, _, span = value.partition("=")
        low, _, high = span.partition(":")
        try:
            bounds[ServiceClassName(name)] = ClassBounds(min=parse_bandwidth(low), max=parse_bandwidth(high))
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: expected CLASS=MIN:MAX such as gold=1M:3M ({exc})") from None
    return bounds


@sla.command("create")
@click.argument("name")
@click.option("--customer", required=True, help="The customer (or peer domain) the SLA is with.")
@click.option("--offering", required=True, help="An offering of the catalog (csmm catalog show).")
@click.option("--router", required=True, help="Attachment router.")
@click.option("--interface", required=True, help="Attachment (access) interface on that router.")
@click.option("--access-speed", required=True, callback=_bandwidth, help="Access speed, e.g. 20M.")
@click.option("--prefix", "prefixes", multiple=True, required=True, help="Customer prefix (repeatable).")
@click.option("--bounds", multiple=True, callback=_bounds_option,
              help="Per-class bounds CLASS=MIN:MAX (repeatable); default: the offering's, capped at the access speed.")
@click.option("--state", type=click.Choice([s.value for s in LifecycleState][:5]), default="offered", show_default=True)
@click.option("--class", "initial_class", type=click.Choice([c.value for c in ServiceClassName]),
              help="Initial SLS class (default: the offering's default class).")
@click.option("--bandwidth", "initial_bandwidth", callback=_bandwidth, help="Initial SLS bandwidth (default: the class maximum).")
@pass_context
@refusals_to_exit
def sla_create(obj: Context, name: str, customer: str, offering: str, router: str, interface: str, access_speed: int,
               prefixes: tuple[str, ...], bounds: dict[ServiceClassName, ClassBounds] | None, state: str,
               initial_class: str | None, initial_bandwidth: int | None) -> None:
    """Create an SLA (domain manager only); admission control decides."""
    spec = SlaSpec(name=name, customer=customer, offering=offering,
                   attachment=Attachment(router, interface, access_speed, prefixes), bounds=bounds,
                   state=LifecycleState(state), initial_class=ServiceClassName(initial_class) if initial_class else None,
                   initial_bandwidth_bps=initial_bandwidth)
    created = obj.service.create_sla(obj.principal, spec)
    click.echo(f"created SLA {created.name} (id {created.id}), {created.state.value}")


@sla.command("set")
@click.argument("sla_ref")
@click.option("--offering", help="Move to another offering (takes its current tariff).")
@click.option("--access-speed", callback=_bandwidth, help="New access speed.")
@click.option("--prefix", "prefixes", multiple=True, help="Replace the customer prefixes (repeatable).")
@click.option("--bounds", multiple=True, callback=_bounds_option, help="Replace per-class bounds CLASS=MIN:MAX (repeatable).")
@click.option("--valid-until", type=click.DateTime(), help="End of validity (UTC).")
@pass_context
@refusals_to_exit
def sla_set(obj: Context, sla_ref: str, offering: str | None, access_speed: int | None, prefixes: tuple[str, ...],
            bounds: dict[ServiceClassName, ClassBounds] | None, valid_until: datetime | None) -> None:
    """Change an SLA's terms (domain manager only). The SLS in effect must still fit them."""
    current = obj.service.get_sla(obj.principal, _ref(sla_ref))
    spec = amended_spec(current, offering=offering, access_speed_bps=access_speed, prefixes=prefixes, bounds=bounds,
                        valid_until=valid_until.replace(tzinfo=timezone.utc) if valid_until else Keep.KEEP)
    changed = obj.service.modify_sla(obj.principal, current.id, spec)
    click.echo(f"SLA {changed.name} changed" if changed != current else f"SLA {changed.name} unchanged")


@sla.command("state")
@click.argument("sla_ref")
@click.argument("state", type=click.Choice([s.value for s in LifecycleState]))
@click.option("--note", default="", help="Why (recorded with the change).")
@pass_context
@refusals_to_exit
def sla_state(obj: Context, sla_ref: str, state: str, note: str) -> None:
    """Move an SLA forward in its life cycle (offered -> ... -> operational -> deinstalled)."""
    s = obj.service.set_sla_state(obj.principal, _ref(sla_ref), LifecycleState(state), note)
    click.echo(f"SLA {s.name} is {s.state.value}")


@sla.command("lifecycle")
@click.argument("sla_ref")
@pass_context
@refusals_to_exit
def sla_lifecycle(obj: Context, sla_ref: str) -> None:
    """Show the recorded life-cycle changes of an SLA."""
    for at, before, after, who, note in obj.service.state_history(obj.principal, _ref(sla_ref)):
        click.echo(f"{at.isoformat()}  {before or '-':<17} -> {after:<17} by {who}  {note}")


# ---------------------------------------------------------------------------------------------- SLS

@cli.group(invoke_without_command=True)
@click.pass_context
def sls(ctx: click.Context) -> None:
    """SLSs: the class and bandwidth in effect (changed by customers). Without a subcommand: list."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(sls_list)


@sls.command("list")
@click.option("--customer", help="Only this customer's SLSs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def sls_list(obj: Context, customer: str | None = None, as_json: bool = False) -> None:
    """List the SLSs in effect that the principal may see."""
    rows = obj.service.list_sls(obj.principal, customer)
    if as_json:
        click.echo(_json([{"sla": s.name, "customer": s.customer, **sls_view(v)} for s, v in rows]))
        return
    click.echo(f"{'sla':<24} {'customer':<20} {'class':<7} {'bandwidth':>12} {'ver':>4}  last change")
    for s, v in rows:
        click.echo(f"{s.name:<24} {s.customer:<20} {v.service_class.value:<7} {format_bandwidth(v.bandwidth_bps):>12} "
                   f"{v.version:>4}  {v.changed_at.isoformat(timespec='seconds')} by {v.changed_by} via {v.channel.value}")


@sls.command("show")
@click.argument("sla_ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def sls_show(obj: Context, sla_ref: str, as_json: bool) -> None:
    """Show the SLS in effect for an SLA, and when the customer may next change it."""
    v = obj.service.get_sls(obj.principal, _ref(sla_ref))
    nxt = obj.service.next_change_allowed(obj.principal, _ref(sla_ref))
    if as_json:
        click.echo(_json({**sls_view(v), "next_change_allowed": nxt}))
        return
    click.echo(f"{v.service_class.value} {format_bandwidth(v.bandwidth_bps)} (version {v.version}, "
               f"changed {v.changed_at.isoformat(timespec='seconds')} by {v.changed_by} via {v.channel.value}); "
               f"next change {'allowed now' if nxt is None else 'allowed at ' + nxt.isoformat(timespec='seconds')}")


@sls.command("set")
@click.argument("sla_ref")
@click.option("--class", "service_class", required=True, type=click.Choice([c.value for c in ServiceClassName]),
              help="Service class to use from now on.")
@click.option("--bandwidth", required=True, callback=_bandwidth, help="Bandwidth, e.g. 5M or 1500k.")
@click.option("--expect-version", type=int, help="Refuse unless the SLS is at this version (no lost updates).")
@pass_context
@refusals_to_exit
def sls_set(obj: Context, sla_ref: str, service_class: str, bandwidth: int, expect_version: int | None) -> None:
    """Change the SLS of an SLA (as the customer with --as customer:NAME, or as the domain manager)."""
    result = obj.service.change_sls(obj.principal, _ref(sla_ref), service_class, bandwidth, Channel.CLI, expect_version)
    v = result.sls
    if not result.changed:
        click.echo(f"unchanged: already {v.service_class.value} {format_bandwidth(v.bandwidth_bps)} (version {v.version})")
    else:
        click.echo(f"SLS now {v.service_class.value} {format_bandwidth(v.bandwidth_bps)} (version {v.version}); fee {result.fee}")


@sls.command("history")
@click.argument("sla_ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def sls_history(obj: Context, sla_ref: str, as_json: bool) -> None:
    """Every SLS version of an SLA (append-only; billing derives time per class from it)."""
    entries = obj.service.sls_history(obj.principal, _ref(sla_ref))
    if as_json:
        click.echo(_json([asdict(e) for e in entries]))
        return
    for e in entries:
        click.echo(f"v{e.version:<4} {e.effective_from.isoformat(timespec='seconds')}  {e.service_class.value:<7} "
                   f"{format_bandwidth(e.bandwidth_bps):>12}  by {e.principal} via {e.channel.value}  fee {e.fee}")


# ---------------------------------------------------------------------------------------------- router configs

@cli.group("config")
def config_group() -> None:
    """Router QoS configs computed by the mapping function from the joint SLSs."""


@config_group.command("show")
@click.option("--router", "routers", multiple=True, help="Only this router (repeatable); default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the device-neutral config as JSON.")
@pass_context
@refusals_to_exit
def config_show(obj: Context, routers: tuple[str, ...], as_json: bool) -> None:
    """Print the QoS config each router should have now (a dry run: nothing is pushed)."""
    from controller.domain.errors import NotFound
    from controller.mapping.text import describe

    configs = obj.service.router_configs(obj.principal)
    for router in routers:
        if router not in configs:
            raise NotFound(f"no router {router!r} in the topology (known: {', '.join(sorted(configs))})",
                           field="router", value=router)
    chosen = [configs[r] for r in (routers or sorted(configs))]
    if as_json:
        click.echo(_json({c.router: {"fingerprint": c.fingerprint(), **c.to_dict()} for c in chosen}))
        return
    click.echo("\n\n".join(describe(c) for c in chosen))


@config_group.command("diff")
@click.option("--router", "routers", multiple=True, help="Only this router (repeatable); default: all.")
@pass_context
@refusals_to_exit
def config_diff(obj: Context, routers: tuple[str, ...]) -> None:
    """Check-sync: compare each router's config now with what its agent last reported applying.

    Exits 0 when every router asked for is in sync, 1 when one is not (like diff(1))."""
    from controller.domain.checks import require_domain_manager
    from controller.domain.errors import NotFound
    from controller.southbound.store import SouthboundStore
    from controller.southbound.sync import describe_sync
    from controller.southbound.wire import config_message

    require_domain_manager(obj.principal, "compare router configs")
    configs = obj.service.router_configs(obj.principal)
    for router in routers:
        if router not in configs:
            raise NotFound(f"no router {router!r} in the topology (known: {', '.join(sorted(configs))})",
                           field="router", value=router)
    store = SouthboundStore(obj.service.database)
    all_in_sync = True
    for router in routers or sorted(configs):
        lines, in_sync = describe_sync(config_message(configs[router], version=0), store.status(router))
        all_in_sync &= in_sync
        click.echo("\n".join(lines))
    sys.exit(0 if all_in_sync else 1)


@cli.command("conformance")
@click.option("--customer", help="Only this customer's SLAs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def conformance_cmd(obj: Context, customer: str | None, as_json: bool) -> None:
    """Measured against agreed, per SLA: the latest interval's throughput and loss against the SLS
    and the class's loss bound, this month's availability and longest outage against the SLA's
    objective, and the violations open now (measured by `csmm serve` from the agents' counters)."""
    measured = obj.service.conformance(obj.principal)
    rows = obj.service.list_sls(obj.principal, customer)
    catalog = obj.service.catalog
    if as_json:
        click.echo(_json([conformance_view(sla, sls, measured.get(sla.id), catalog) for sla, sls in rows]))
        return
    click.echo(f"{'sla':<20} {'state':<11} {'SLS':<16} {'throughput':>11} {'loss ppm (bound)':>17} "
               f"{'availability (objective)':>25} {'longest outage':>15}  violations")
    for sla, sls in rows:
        c = measured.get(sla.id)
        bound = catalog.classes[sls.service_class].loss_ratio
        loss = "-" if c is None or c.loss_ppm is None else str(c.loss_ppm)
        loss += f" ({round(bound * 1_000_000)})" if bound is not None else " (-)"
        objective = sla.terms.availability
        availability = "-" if c is None else f"{c.availability_percent:.3f} %"
        click.echo(f"{sla.name:<20} {c.state if c else 'unknown':<11} "
                   f"{sls.service_class.value + ' ' + format_bandwidth(sls.bandwidth_bps):<16} "
                   f"{'-' if c is None or c.throughput_bps is None else format_bandwidth(c.throughput_bps):>11} "
                   f"{loss:>17} {availability + f' ({objective.objective_percent} %)':>25} "
                   f"{'-' if c is None else format_duration(c.longest_outage_s):>15}  "
                   f"{' '.join(c.violations) if c and c.violations else '-'}")


@cli.command("agents")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@refusals_to_exit
def agents_cmd(obj: Context, as_json: bool) -> None:
    """Router agents: connected or not, config version applied and in sync, last seen, last error."""
    from controller.domain.checks import require_domain_manager
    from controller.southbound.store import SouthboundStore

    require_domain_manager(obj.principal, "read agent status")
    statuses = SouthboundStore(obj.service.database).statuses()
    if as_json:
        click.echo(_json([agent_view(s) for s in statuses]))
        return
    click.echo(f"{'router':<12} {'agent':<13} {'config':<22} {'last seen':<26} last error")
    for s in statuses:
        config = f"v{s.applied_version}/{s.sent_version} {'in sync' if s.in_sync else 'OUT OF SYNC'}"
        seen = s.last_seen.isoformat(timespec="seconds") if s.last_seen else "never"
        click.echo(f"{s.router:<12} {'connected' if s.connected else 'disconnected':<13} {config:<22} {seen:<26} "
                   f"{s.last_error or '-'}")


# ---------------------------------------------------------------------------------------------- lab PKI

@cli.group("ca")
def ca_group() -> None:
    """A lab certificate authority for the agents' mTLS channel (a production CA works the same way:
    the controller needs a serverAuth certificate, each agent a clientAuth one named by its router id)."""


@ca_group.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default="CSMM lab CA", show_default=True, help="The CA's common name.")
@pass_context
@refusals_to_exit
def ca_init(obj: Context, directory: Path, name: str) -> None:
    """Create a CA in DIRECTORY (ca.pem, and ca.key readable by its owner only)."""
    from controller.southbound.pki import PkiError, create_ca

    _operator_only(obj, "ca init")
    try:
        issued = create_ca(directory, common_name=name)
    except PkiError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"created CA {issued.certificate} (key {issued.key})")


@ca_group.command("issue")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("name")
@click.option("--role", type=click.Choice(["controller", "agent"]), required=True,
              help="controller: the agents' server certificate; agent: a router's client certificate (NAME = router id).")
@click.option("--address", "addresses", multiple=True, help="Extra IP address the controller is reached at (repeatable).")
@click.option("--dns", "dns_names", multiple=True, help="Extra DNS name of the controller (repeatable).")
@pass_context
@refusals_to_exit
def ca_issue(obj: Context, directory: Path, name: str, role: str, addresses: tuple[str, ...],
             dns_names: tuple[str, ...]) -> None:
    """Issue NAME.pem and NAME.key in DIRECTORY, signed by its CA."""
    from controller.southbound.pki import PkiError, issue

    _operator_only(obj, "ca issue")
    try:
        issued = issue(directory, name, role=role, addresses=addresses, dns_names=dns_names)  # type: ignore[arg-type]
    except PkiError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"issued {issued.certificate} (key {issued.key})")


# ---------------------------------------------------------------------------------------------- events / serve

@cli.command("events")
@click.option("--limit", default=20, show_default=True)
@pass_context
@refusals_to_exit
def events_cmd(obj: Context, limit: int) -> None:
    """The newest events (sla.created, sls.changed, ...), newest first."""
    for event in obj.service.recent_events(obj.principal, limit):
        click.echo(f"{event.id:>8} {event.at.isoformat(timespec='seconds')} {event.type:<18} {event.subject:<28} "
                   f"by {event.principal} {_json(event.payload, indent=None)}")


@cli.command("serve")
@click.option("--http", "http_address", default="127.0.0.1:8080", show_default=True,
              help="Address of the controller's HTTP endpoint: the web portal and console (/), the REST API "
                   "(/api/v1), health (/healthz) and metrics (/metrics).")
@click.option("--apply", "apply_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Apply this provisioning file before serving (idempotent).")
@click.option("--agents", "agent_addresses", multiple=True, default=["127.0.0.1:50051"], show_default=True,
              help="Where router agents connect (gRPC): HOST:PORT or unix:/PATH (repeatable).")
@click.option("--agents-tls", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="mTLS for agents: a `csmm ca` directory holding ca.pem and the controller's certificate.")
@click.option("--agents-cert", default="controller", show_default=True,
              help="Name of the controller's certificate in --agents-tls (NAME.pem, NAME.key).")
@click.option("--agents-insecure-lab", is_flag=True,
              help="Let agents connect without TLS (a lab whose agent port nobody else can reach).")
@click.option("--counter-interval", type=click.FloatRange(min=0.1, max=3600), default=1.0, show_default=True,
              metavar="SECONDS", help="How often agents report per-class counters.")
@click.option("--no-agents", is_flag=True, help="Do not start the agents' gRPC server.")
@click.option("--snmp", "snmp_address", default="127.0.0.1:1161", show_default=True, metavar="HOST:PORT",
              help="UDP address of the SNMP agent (SNMPv3 authPriv only; users from `csmm snmp user add`).")
@click.option("--no-snmp", is_flag=True, help="Do not start the SNMP agent.")
@click.option("--snmp-engine-id", metavar="HEX",
              help="Fixed snmpEngineID (hex, 5-32 octets); default: one made on first start and stored.")
@click.option("--snmp-location", default="", help="sysLocation of the SNMP agent.")
@click.option("--snmp-contact", default="", help="sysContact of the SNMP agent.")
@click.option("--netconf", "netconf_address", default="127.0.0.1:2022", show_default=True, metavar="HOST:PORT",
              help="Where the NETCONF server listens (SSH, subsystem netconf; logins from `csmm netconf user add`).")
@click.option("--no-netconf", is_flag=True, help="Do not start the NETCONF server.")
@click.option("--netconf-host-key", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("var/netconf/ssh_host_ed25519_key"), show_default=True,
              help="The NETCONF server's SSH host key; made on first start if missing.")
@click.option("--snmp-no-fast-path", is_flag=True,
              help="Answer every SNMP request through pysnmp's message layer (5-10x slower; for comparison).")
@click.option("--metering-interval", type=click.FloatRange(min=1), default=300, show_default=True, metavar="SECONDS",
              help="How often accounting policies see a metering run (metering.ended: hours used per class).")
@click.option("--web-insecure-cookies", is_flag=True,
              help="Send the portal's session cookie without the Secure flag: only for plain HTTP on an address "
                   "other than 127.0.0.1/localhost (browsers keep Secure cookies there), never on a shared network.")
@pass_context
@refusals_to_exit
def serve_cmd(obj: Context, http_address: str, apply_file: Path | None, agent_addresses: tuple[str, ...],
              agents_tls: Path | None, agents_cert: str, agents_insecure_lab: bool, counter_interval: float,
              no_agents: bool, snmp_address: str, no_snmp: bool, snmp_engine_id: str | None, snmp_location: str,
              snmp_contact: str, netconf_address: str, no_netconf: bool, netconf_host_key: Path,
              snmp_no_fast_path: bool, metering_interval: float, web_insecure_cookies: bool) -> None:
    """Run the controller process until SIGINT/SIGTERM.

    Router agents connect over mTLS (--agents-tls) or, in a lab, plaintext (--agents-insecure-lab);
    one of the two is required unless --no-agents."""
    from controller.server import run_controller
    from controller.southbound.server import AgentListener

    _operator_only(obj, "serve")
    if obj.settings.now is not None:
        raise click.UsageError("`csmm serve` runs on the real clock; --now (CSMM_NOW) does not apply to it")
    host, _, port = http_address.rpartition(":")
    agents = None
    if not no_agents:
        if (agents_tls is None) == (not agents_insecure_lab):
            raise click.UsageError("give --agents-tls DIR (mTLS) or --agents-insecure-lab (lab only), or --no-agents")
        agents = AgentListener(tuple(agent_addresses), agents_tls, agents_cert, round(counter_interval * 1000))
    snmp = None if no_snmp else _snmp_settings(snmp_address, snmp_engine_id, snmp_location, snmp_contact,
                                                not snmp_no_fast_path)
    netconf = None
    if not no_netconf:
        from controller.northbound.netconf.server import NetconfSettings

        netconf_host, netconf_port = _host_port(netconf_address, "--netconf")
        netconf = NetconfSettings(netconf_host, netconf_port, netconf_host_key)
    try:
        run_controller(obj.service, host or "127.0.0.1", int(port), apply_file, agents, snmp, netconf,
                       metering_interval_s=metering_interval, secure_cookies=not web_insecure_cookies)
    except OSError as exc:  # a port in use, an address not on this machine
        raise click.ClickException(exc.strerror or str(exc)) from None


def _host_port(address: str, option: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{address!r} is not HOST:PORT", param_hint=option)
    return host.strip("[]"), int(port)


def _snmp_settings(address: str, engine_id: str | None, location: str, contact: str, fast_path: bool) -> Any:
    from controller.northbound.snmp.agent import SnmpSettings

    host, port = _host_port(address, "--snmp")
    engine = None
    if engine_id is not None:
        try:
            engine = bytes.fromhex(engine_id.removeprefix("0x"))
        except ValueError:
            raise click.BadParameter(f"{engine_id!r} is not hexadecimal", param_hint="--snmp-engine-id") from None
        if not 5 <= len(engine) <= 32:
            raise click.BadParameter(f"an engine ID has 5 to 32 octets, not {len(engine)}",
                                     param_hint="--snmp-engine-id")
    return SnmpSettings(host=host, port=port, engine_id=engine, sys_location=location,
                        sys_contact=contact, fast_path=fast_path)


# ---------------------------------------------------------------------------------------------- helpers

@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; on a pipe or in a log, a line every tenth of the way."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True) as bar:
            yield bar.update
        return
    done = 0
    started = time.monotonic()
    next_report = total / 10

    def advance(count: int) -> None:
        nonlocal done, next_report
        done += count
        if done >= next_report or done == total:
            click.echo(f"{label}: {done}/{total} ({100 * done // total} %, {time.monotonic() - started:.1f} s)", err=True)
            next_report = done + total / 10
    yield advance

def _price(tariff: ClassTariff) -> str:
    if tariff.included_hours is None:
        return "included in the monthly fee"
    if tariff.included_hours == 0:
        return f"{tariff.price_per_hour} per hour"
    return f"{tariff.included_hours} h/month included, then {tariff.price_per_hour} per hour"


def _change_limit(min_interval_s: int) -> str:
    return f"at most one per {format_duration(min_interval_s)}" if min_interval_s else "at any time"


def _operator_only(obj: Context, command: str) -> None:
    """Commands that run the controller or change its schema act for the operator, never as a customer."""
    if not obj.principal.is_domain_manager:
        raise click.UsageError(f"`csmm {command}` runs as the domain manager; --as {obj.principal} does not apply to it")


def _ref(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _json(data: Any, indent: int | None = 2) -> str:
    return json.dumps(data, default=json_default, indent=indent, sort_keys=False)


# Command groups of the northbound adapters live beside their adapter; they import this module's
# helpers, so they are attached once everything above is defined.
from controller.accounting.commands import (invoice_group, notifications_cmd, policy_group,  # noqa: E402
                                            report_group, usage_group)
from controller.northbound.netconf.commands import netconf_group  # noqa: E402
from controller.northbound.snmp.commands import snmp_group  # noqa: E402
from controller.northbound.web.commands import api_group, web_group  # noqa: E402

cli.add_command(snmp_group)
cli.add_command(netconf_group)
for _command in (invoice_group, usage_group, report_group, policy_group, notifications_cmd, api_group, web_group):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="csmm")


if __name__ == "__main__":
    main()
