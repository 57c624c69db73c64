"""The domain manager's console (/console): customers and SLAs (create, modify, life cycle, with
the checking function's refusals shown on the form), topology and the guaranteed load of every
link per class, routers and their agents, bulk import with progress, violations and revenue.

Only a session of the domain manager reaches it; a customer's is sent to its portal.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from controller.accounting.metering import month_name, month_of
from controller.accounting.service import Accounting
from controller.domain.catalog import ClassBounds, ServiceClassName
from controller.domain.errors import CsmmError, InvalidValue, NotFound
from controller.domain.principal import Principal
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.domain.units import format_bandwidth
from controller.northbound.web.site import Refusal, Site, bandwidth_field, principal_of, refusal_of
from controller.provisioning.apply import plan
from controller.provisioning.model import parse_provisioning
from controller.domain.topology import Topology
from controller.service.layer import ServiceLayer, SlaSpec, amended_spec
from controller.southbound.store import SouthboundStore

CLASSES = [c.value for c in ServiceClassName]
KEPT_IMPORTS = 20          # finished imports whose pages stay available
log = logging.getLogger("csmm.web")
_CREATE_FIELDS = ("name", "customer", "offering", "router", "interface", "access_speed", "prefixes", "state", "class",
                  "bandwidth")
_BOUND_FIELDS = tuple(f"{c}_{end}" for c in CLASSES for end in ("min", "max"))


def manager_of(request: web.Request) -> Principal:
    principal = principal_of(request)
    if not principal.is_domain_manager:
        raise web.HTTPSeeOther("/portal")
    return principal


@dataclass
class ImportJob:
    """A bulk import running in a thread; its page reads it while it runs."""

    id: str
    file: str
    started: datetime
    total: int = 0
    done: int = 0
    state: str = "checking"       # checking → applying → done | refused
    summary: str = ""
    refusal: Refusal | None = None
    warnings: list[str] = field(default_factory=list)


ClassRates = dict[tuple[str, str, str], float]     # (router, interface, class) -> bit/s now


@dataclass(frozen=True)
class LinkUse:
    """What a link carries now per class, each way: measured on the egress interface of each end."""

    link: str
    capacity_bps: int
    forward: dict[str, float]      # a -> b: the classes of a's interface
    backward: dict[str, float]     # b -> a (empty for an egress point)


def link_use(topology: Topology, rates: ClassRates) -> list[LinkUse]:
    def at(router: str, interface: str) -> dict[str, float]:
        return {c: rates[(router, interface, c)] for c in CLASSES if (router, interface, c) in rates}
    return [LinkUse(link.name, link.capacity_bps, at(link.a.router, link.a.interface),
                    at(link.b.router, link.b.interface) if link.b is not None else {})
            for link in topology.links]


class Console:
    def __init__(self, site: Site, class_rates: Callable[[], ClassRates] | None = None) -> None:
        self.site = site
        self.class_rates = class_rates
        self.service: ServiceLayer = site.service
        self.accounting = Accounting(site.service)
        self.imports: dict[str, ImportJob] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/console", self.home),
                web.get("/console/customers", self.customers), web.post("/console/customers", self.add_customer),
                web.get("/console/slas", self.slas), web.post("/console/slas", self.create_sla),
                web.get("/console/slas/{sla}", self.sla_page), web.post("/console/slas/{sla}", self.modify_sla),
                web.post("/console/slas/{sla}/state", self.set_state),
                web.get("/console/topology", self.topology), web.get("/console/routers", self.routers),
                web.get("/console/violations", self.violations), web.get("/console/revenue", self.revenue),
                web.get("/console/import", self.import_form), web.post("/console/import", self.start_import),
                web.get("/console/import/{job}", self.import_progress)]

    async def home(self, request: web.Request) -> web.Response:
        principal = manager_of(request)

        def read() -> dict[str, Any]:
            rows = self.service.list_sls(principal)
            states: dict[str, int] = {}
            for sla, _ in rows:
                states[sla.state.value] = states.get(sla.state.value, 0) + 1
            agents = SouthboundStore(self.service.database).statuses()
            measured = self.service.conformance(principal)
            return {"customers": len(self.service.list_customers(principal)), "slas": len(rows), "states": states,
                    "agents": agents, "violating": sum(1 for c in measured.values() if c.violations)}
        return self.site.page(request, "console_home.html", title="Console", **await asyncio.to_thread(read))

    # ------------------------------------------------------------------ customers

    async def customers(self, request: web.Request, refusal: Refusal | None = None, status: int = 200,
                        asked: dict[str, str] | None = None) -> web.Response:
        principal = manager_of(request)
        found = await asyncio.to_thread(self.service.list_customers, principal)
        return self.site.page(request, "console_customers.html", status=status, title="Customers", customers=found,
                              refusal=refusal, asked=asked or {"name": "", "kind": "customer", "display_name": ""},
                              added=request.query.get("added", ""))

    async def add_customer(self, request: web.Request) -> web.Response:
        principal = manager_of(request)
        form = await request.post()
        asked = {k: str(form.get(k, "")).strip() for k in ("name", "kind", "display_name")}
        try:
            kind = _choice(CustomerKind, asked["kind"], "kind")
            await asyncio.to_thread(self.service.add_customer, principal, asked["name"], kind, asked["display_name"])
        except CsmmError as exc:
            return await self.customers(request, refusal_of(exc), 422, asked)
        raise web.HTTPSeeOther(f"/console/customers?added={asked['name']}")

    # ------------------------------------------------------------------ SLAs

    async def slas(self, request: web.Request, refusal: Refusal | None = None, status: int = 200,
                   asked: dict[str, str] | None = None) -> web.Response:
        principal = manager_of(request)

        def read() -> dict[str, Any]:
            return {"rows": self.service.list_sls(principal), "customers": self.service.list_customers(principal),
                    "measured": self.service.conformance(principal)}
        empty = {**{k: "" for k in (*_CREATE_FIELDS, *_BOUND_FIELDS)}, "state": "offered"}
        return self.site.page(request, "console_slas.html", status=status, title="SLAs", refusal=refusal,
                              asked=asked or empty, offerings=sorted(self.service.catalog.offerings), classes=CLASSES,
                              states=[s.value for s in LifecycleState][:5], **await asyncio.to_thread(read))

    async def create_sla(self, request: web.Request) -> web.Response:
        principal = manager_of(request)
        form = await request.post()
        asked = {k: str(v).strip() for k, v in form.items() if k != "csrf"}
        asked = {k: asked.get(k, "") for k in (*_CREATE_FIELDS, *_BOUND_FIELDS)}
        try:
            spec = SlaSpec(name=asked["name"], customer=asked["customer"], offering=asked["offering"],
                           attachment=Attachment(asked["router"], asked["interface"],
                                                 _required(_bandwidth(asked["access_speed"], "attachment.access_speed"),
                                                           "attachment.access_speed"),
                                                 tuple(asked["prefixes"].replace(",", " ").split())),
                           bounds=_bounds(asked), state=_choice(LifecycleState, asked["state"], "state"),
                           initial_class=_choice(ServiceClassName, asked["class"], "sls.class") if asked["class"]
                           else None,
                           initial_bandwidth_bps=_bandwidth(asked["bandwidth"], "sls.bandwidth") if asked["bandwidth"]
                           else None)
            created = await asyncio.to_thread(self.service.create_sla, principal, spec)
        except CsmmError as exc:
            return await self.slas(request, refusal_of(exc), 422 if exc.code != "capacity-exceeded" else 409, asked)
        raise web.HTTPSeeOther(f"/console/slas/{created.name}?created=1")

    async def sla_page(self, request: web.Request, refusal: Refusal | None = None, status: int = 200,
                       asked: dict[str, str] | None = None) -> web.Response:
        principal, name = manager_of(request), request.match_info["sla"]

        def read() -> dict[str, Any]:
            sla = self.service.get_sla(principal, name)
            return {"sla": sla, "sls": self.service.get_sls(principal, name),
                    "states": self.service.state_history(principal, name),
                    "history": list(reversed(self.service.sls_history(principal, name)))[:10]}
        try:
            values = await asyncio.to_thread(read)
        except NotFound as exc:
            return self.site.not_found(request, exc)
        t = values["sla"].terms
        current = {"offering": t.offering, "access_speed": format_bandwidth(t.attachment.access_speed_bps),
                   "prefixes": " ".join(t.attachment.prefixes),
                   "valid_until": t.valid_until.strftime("%Y-%m-%dT%H:%M") if t.valid_until else "",
                   **{f"{c.value}_{end}": format_bandwidth(getattr(b, end)) for c, b in t.bounds.items()
                      for end in ("min", "max")}}
        return self.site.page(request, "console_sla.html", status=status, title=f"SLA {name}", refusal=refusal,
                              asked=asked or current, offerings=sorted(self.service.catalog.offerings),
                              classes=CLASSES, next_states=_next_states(values["sla"].state),
                              saved=request.query.get("saved", ""), created=request.query.get("created", ""),
                              **values)

    async def modify_sla(self, request: web.Request) -> web.Response:
        principal, name = manager_of(request), request.match_info["sla"]
        form = await request.post()
        asked = {k: str(v).strip() for k, v in form.items() if k != "csrf"}
        try:
            current = await asyncio.to_thread(self.service.get_sla, principal, name)
        except NotFound as exc:
            return self.site.not_found(request, exc)
        try:   # from here a NotFound (an unknown offering) is a refusal of the form
            spec = amended_spec(current, offering=asked.get("offering") or None,
                                access_speed_bps=_bandwidth(asked.get("access_speed", ""), "attachment.access_speed"),
                                prefixes=asked.get("prefixes", "").replace(",", " ").split(),
                                bounds=_bounds(asked), valid_until=_moment(asked.get("valid_until", ""), "valid_until"))
            await asyncio.to_thread(self.service.modify_sla, principal, current.id, spec)
        except CsmmError as exc:
            return await self.sla_page(request, refusal_of(exc), 422 if exc.code != "capacity-exceeded" else 409,
                                       asked)
        raise web.HTTPSeeOther(f"/console/slas/{name}?saved=1")

    async def set_state(self, request: web.Request) -> web.Response:
        principal, name = manager_of(request), request.match_info["sla"]
        form = await request.post()
        try:
            state = _choice(LifecycleState, str(form.get("state", "")), "state")
            await asyncio.to_thread(self.service.set_sla_state, principal, name, state, str(form.get("note", "")))
        except NotFound as exc:
            return self.site.not_found(request, exc)
        except CsmmError as exc:
            return await self.sla_page(request, refusal_of(exc), 409)
        raise web.HTTPSeeOther(f"/console/slas/{name}?saved=1")

    # ------------------------------------------------------------------ network

    async def topology(self, request: web.Request) -> web.Response:
        principal = manager_of(request)
        rates = self.class_rates() if self.class_rates else {}   # on the loop, which owns the agents' sessions

        def read() -> dict[str, Any]:
            topology = self.service.topology(principal)
            return {"topology": topology, "loads": self.service.link_loads(principal),
                    "overbooking": self.service.overbooking, "measuring": self.class_rates is not None,
                    "uses": link_use(topology, rates), "classes": CLASSES}
        return self.site.page(request, "console_topology.html", title="Topology", **await asyncio.to_thread(read))

    async def routers(self, request: web.Request) -> web.Response:
        manager_of(request)
        statuses = await asyncio.to_thread(SouthboundStore(self.service.database).statuses)
        return self.site.page(request, "console_routers.html", title="Routers", agents=statuses)

    async def violations(self, request: web.Request) -> web.Response:
        principal = manager_of(request)

        def read() -> dict[str, Any]:
            measured = self.service.conformance(principal)
            names = {sla.id: sla for sla in self.service.list_slas(principal)}
            open_now = [(names[i], c) for i, c in sorted(measured.items()) if c.violations and i in names]
            return {"open_now": open_now,
                    "events": self.service.sla_events(principal, ("sla.violation", "sla.cleared"), 200)}
        return self.site.page(request, "console_violations.html", title="Violations", **await asyncio.to_thread(read))

    async def revenue(self, request: web.Request) -> web.Response:
        principal = manager_of(request)
        month = request.query.get("month") or month_name(month_of(self.service.clock()))
        try:
            summary = await asyncio.to_thread(self.accounting.summary, principal, month)
        except InvalidValue as exc:
            return self.site.page(request, "error.html", status=422, title="Revenue", message=exc.message)
        return self.site.page(request, "console_revenue.html", title="Revenue", month=month, summary=summary)

    # ------------------------------------------------------------------ bulk import

    async def import_form(self, request: web.Request, refusal: Refusal | None = None,
                          status: int = 200) -> web.Response:
        manager_of(request)
        jobs = sorted(self.imports.values(), key=lambda j: j.started, reverse=True)[:10]
        return self.site.page(request, "console_import.html", status=status, title="Bulk import", jobs=jobs,
                              refusal=refusal)

    async def start_import(self, request: web.Request) -> web.Response:
        principal = manager_of(request)
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or not upload.filename:
            return await self.import_form(request, refusal_of(InvalidValue(
                "choose a provisioning file (YAML or JSON, like csmm apply takes)", field="file")), 422)
        text = upload.file.read().decode("utf-8", errors="replace")
        job = ImportJob(secrets.token_urlsafe(8), upload.filename, datetime.now(timezone.utc))
        for finished in [j.id for j in self.imports.values() if j.state in ("done", "refused")][:-KEPT_IMPORTS]:
            del self.imports[finished]
        self.imports[job.id] = job
        threading.Thread(target=self._run_import, args=(principal, job, text), name=f"import-{job.id}",
                         daemon=True).start()
        raise web.HTTPSeeOther(f"/console/import/{job.id}")

    def _run_import(self, principal: Principal, job: ImportJob, text: str) -> None:
        """Check, then apply in one transaction (all or nothing), counting SLAs as they go in."""
        try:
            desired = parse_provisioning(text, job.file)
            work, report = plan(self.service, principal, desired)
            job.total, job.state = len(work.new_slas) + len(work.changed_slas), "applying"
            if not work.is_empty:
                self.service.provision(principal, work, lambda n: setattr(job, "done", job.done + n))
            job.done, job.summary, job.warnings, job.state = job.total, report.summary(), report.warnings, "done"
        except CsmmError as exc:
            job.refusal, job.state = refusal_of(exc), "refused"
        except Exception as exc:   # noqa: BLE001 - the page must not wait for a thread that died
            log.exception("bulk import %s of %s failed", job.id, job.file)
            job.refusal = Refusal("error", f"the import failed ({type(exc).__name__}); nothing was changed, and "
                                           "the controller's log has the details", None, None, None)
            job.state = "refused"

    async def import_progress(self, request: web.Request) -> web.Response:
        manager_of(request)
        job = self.imports.get(request.match_info["job"])
        if job is None:
            return self.site.page(request, "error.html", status=404, title="Not found",
                                  message="no such import (imports are kept until the controller restarts)")
        return self.site.page(request, "console_import_job.html", title=f"Import of {job.file}", job=job)


def _choice(kind: Any, value: str, field_name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidValue(f"{field_name} {value!r} is not one of {', '.join(k.value for k in kind)}",
                           field=field_name, value=value) from None


def _bandwidth(text: str, field_name: str) -> int | None:
    """An optional bandwidth field: empty is None."""
    return bandwidth_field(text, field_name) if text else None


def _required(value: int | None, field_name: str) -> int:
    if value is None:
        raise InvalidValue(f"{field_name} is required", field=field_name)
    return value


def _bounds(asked: dict[str, str]) -> dict[ServiceClassName, ClassBounds] | None:
    """Per-class bounds from the form's CLASS_min / CLASS_max fields; a class left empty has none."""
    bounds = {}
    for c in ServiceClassName:
        low, high = asked.get(f"{c.value}_min", ""), asked.get(f"{c.value}_max", "")
        if not low and not high:
            continue
        high_bps = _bandwidth(high, f"bounds.{c.value}.max")
        if high_bps is None:
            raise InvalidValue(f"bounds.{c.value}: a maximum is needed when a minimum is given",
                               field=f"bounds.{c.value}.max")
        try:
            bounds[c] = ClassBounds(min=_bandwidth(low, f"bounds.{c.value}.min") or 0, max=high_bps)
        except ValueError as exc:
            raise InvalidValue(f"bounds.{c.value}: {exc}", field=f"bounds.{c.value}", value=f"{low}:{high}") from None
    return bounds or None


def _moment(text: str, field_name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{field_name} {text!r} is not a time like 2027-01-31T00:00", field=field_name,
                           value=text) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _next_states(state: LifecycleState) -> list[str]:
    order = list(LifecycleState)
    return [s.value for s in order[order.index(state) + 1:]]
