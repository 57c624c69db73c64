"""The customer portal (/portal): a customer's people read their SLAs, change their SLS, follow
conformance, usage and invoices, and read their notifications, in a browser with no script.

Every read and change goes through the service layer (and accounting) as the session's principal:
another customer's SLA or invoice answers 404, exactly like a missing one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

from controller.accounting import invoice as documents
from controller.accounting.metering import month_name, month_of
from controller.accounting.service import Accounting
from controller.domain.errors import CsmmError, Forbidden, InvalidValue, NotFound
from controller.domain.principal import Channel, Principal
from controller.domain.units import format_bandwidth
from controller.northbound.web.chart import Point, Step, throughput_chart
from controller.northbound.web.site import Refusal, Site, bandwidth_field, principal_of, refusal_of
from controller.service.layer import ServiceLayer

CHART_HOURS = {"6": 6, "24": 24, "168": 168}   # the chart's periods a customer can pick


def customer_of(request: web.Request) -> Principal:
    """The session's customer; the domain manager has the console instead."""
    principal = principal_of(request)
    if principal.is_domain_manager:
        raise web.HTTPSeeOther("/console")
    return principal


class CustomerPortal:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.service: ServiceLayer = site.service
        self.accounting = Accounting(site.service)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/portal", self.home),
                web.get("/portal/slas/{sla}", self.sla_page),
                web.post("/portal/slas/{sla}/sls", self.change_sls),
                web.get("/portal/slas/{sla}/conformance", self.conformance),
                web.get("/portal/usage", self.usage),
                web.get("/portal/invoices", self.invoices),
                web.get("/portal/invoices/{number}", self.invoice),
                web.get("/portal/statement", self.statement),
                web.get("/portal/notifications", self.notifications)]

    async def home(self, request: web.Request) -> web.Response:
        principal = customer_of(request)

        def read() -> dict[str, Any]:
            rows = self.service.list_sls(principal)
            measured = self.service.conformance(principal)
            following = {sla.id: self.service.next_change_allowed(principal, sla.id) for sla, _ in rows}
            return {"rows": rows, "measured": measured, "following": following}
        return self.site.page(request, "portal_home.html", title="My SLAs", **await asyncio.to_thread(read))

    # ------------------------------------------------------------------ one SLA, and changing its SLS

    async def sla_page(self, request: web.Request, refusal: Refusal | None = None, status: int = 200,
                       asked: dict[str, str] | None = None) -> web.Response:
        principal, name = customer_of(request), request.match_info["sla"]
        values = await _not_found_as_page(self.site, request, asyncio.to_thread(self._sla_values, principal, name))
        if isinstance(values, web.Response):
            return values
        changed = request.query.get("changed", "")
        done = next((h for h in values["history"] if str(h.version) == changed), None) if changed.isdigit() else None
        sls = values["sls"]
        asked = asked or {"class": sls.service_class.value, "bandwidth": format_bandwidth(sls.bandwidth_bps)}
        return self.site.page(request, "portal_sla.html", status=status, title=f"SLA {name}", refusal=refusal,
                              done=done, asked=asked, **values)

    def _sla_values(self, principal: Principal, name: str) -> dict[str, Any]:
        sla = self.service.get_sla(principal, name)
        return {"sla": sla, "sls": self.service.get_sls(principal, name),
                "following": self.service.next_change_allowed(principal, name),
                "history": list(reversed(self.service.sls_history(principal, name)))[:10],
                "classes": sorted(sla.terms.bounds, key=list(self.service.catalog.classes).index)}

    async def change_sls(self, request: web.Request) -> web.Response:
        principal, name = customer_of(request), request.match_info["sla"]
        form = await request.post()
        asked = {"class": str(form.get("class", "")), "bandwidth": str(form.get("bandwidth", "")).strip()}
        try:
            bandwidth = bandwidth_field(asked["bandwidth"], "sls.bandwidth")
            change = await asyncio.to_thread(self.service.change_sls, principal, name, asked["class"], bandwidth,
                                             Channel.WEB)
        except NotFound as exc:
            return self.site.not_found(request, exc)
        except CsmmError as exc:
            return await self.sla_page(request, refusal_of(exc), status=422 if not _conflict(exc) else 409,
                                       asked=asked)
        raise web.HTTPSeeOther(f"/portal/slas/{name}?changed={change.sls.version}")

    # ------------------------------------------------------------------ conformance

    async def conformance(self, request: web.Request) -> web.Response:
        principal, name = customer_of(request), request.match_info["sla"]
        period = request.query.get("hours", "24")
        hours = CHART_HOURS.get(period, 24)

        def read() -> dict[str, Any]:
            sla, sls = self.service.get_sla(principal, name), self.service.get_sls(principal, name)
            end = self.service.clock()
            start = end - timedelta(hours=hours)
            measured = self.service.conformance(principal).get(sla.id)
            series = self.accounting.throughput_series(principal, name, start - timedelta(hours=1), end)
            history = self.service.sls_history(principal, name)
            return {"sla": sla, "sls": sls, "measured": measured,
                    "chart": Markup(_chart(series, history, measured, start, end)), "hours": hours,
                    "loss_bound": self.service.catalog.classes[sls.service_class].loss_ratio}
        values = await _not_found_as_page(self.site, request, asyncio.to_thread(read))
        if isinstance(values, web.Response):
            return values
        return self.site.page(request, "portal_conformance.html", title=f"Conformance of {name}", **values)

    # ------------------------------------------------------------------ usage, invoices, notifications

    async def usage(self, request: web.Request) -> web.Response:
        principal = customer_of(request)
        month = request.query.get("month") or month_name(month_of(self.service.clock()))
        try:
            rows = await asyncio.to_thread(self.accounting.usage_report, principal, principal.customer or "", month)
        except InvalidValue as exc:
            return self.site.page(request, "error.html", status=422, title="Usage", message=exc.message)
        return self.site.page(request, "portal_usage.html", title="Usage", month=month, rows=rows)

    async def invoices(self, request: web.Request) -> web.Response:
        principal = customer_of(request)
        found = await asyncio.to_thread(self.accounting.invoices, principal, principal.customer)
        return self.site.page(request, "portal_invoices.html", title="Invoices", invoices=found)

    async def invoice(self, request: web.Request) -> web.Response:
        """An issued invoice or note as printable HTML, JSON or CSV (?format=)."""
        principal, number = customer_of(request), request.match_info["number"]
        form = request.query.get("format", "html")
        try:
            found = await asyncio.to_thread(self.accounting.invoice, principal, number)
            notes = await asyncio.to_thread(self.accounting.version_notes, principal, found)
        except NotFound as exc:
            return self.site.not_found(request, exc)
        return _document(found, form, notes)

    async def statement(self, request: web.Request) -> web.Response:
        """This month so far (hot billing), as printable HTML; not an invoice."""
        principal = customer_of(request)
        found = await asyncio.to_thread(self.accounting.statement, principal, principal.customer or "")
        notes = await asyncio.to_thread(self.accounting.version_notes, principal, found)
        return _document(found, "html", notes)

    async def notifications(self, request: web.Request) -> web.Response:
        principal = customer_of(request)
        found = await asyncio.to_thread(self.accounting.notifications, principal, principal.customer)
        violations = await asyncio.to_thread(self.service.sla_events, principal, ("sla.violation", "sla.cleared"))
        return self.site.page(request, "portal_notifications.html", title="Notifications", notifications=found,
                              violations=violations)


def _conflict(exc: CsmmError) -> bool:
    return exc.code in ("too-soon", "conflict", "capacity-exceeded")


def _document(found: documents.Invoice, form: str, notes: dict[str, str]) -> web.Response:
    if form == "json":
        body, kind = documents.canonical_json(documents.to_document(found)), "application/json"
    elif form == "csv":
        body, kind = documents.to_csv([found]), "text/csv"
    else:
        body, kind = documents.to_html(found, notes), "text/html"
    response = web.Response(text=body, content_type=kind)
    # The printable invoice styles itself with an inline <style> (it is also a standalone file);
    # no script anywhere, and every value in it is escaped.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; " \
                                                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    if form in ("json", "csv"):
        response.headers["Content-Disposition"] = f'attachment; filename="{found.number}.{form}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _chart(series: dict[str, list[tuple[datetime, float]]], history: list[Any], measured: Any,
           start: datetime, end: datetime) -> str:
    """Hourly meter averages per class, the latest measurement interval as the newest point, and
    the SLS versions as the agreed steps."""
    points = {c: [Point(at, bps) for at, bps in rows] for c, rows in series.items()}
    if measured is not None and measured.measured_at is not None and measured.throughput_bps is not None \
            and measured.sls_class is not None:
        points.setdefault(measured.sls_class.value, []).append(Point(measured.measured_at,
                                                                     float(measured.throughput_bps)))
    steps = [Step(h.effective_from, h.service_class.value, h.bandwidth_bps) for h in history]
    return throughput_chart(points, steps, start, end)


async def _not_found_as_page(site: Site, request: web.Request, work: Any) -> Any:
    """Run a read; a NotFound (a missing SLA, or another customer's) becomes a 404 page."""
    try:
        return await work
    except (NotFound, Forbidden) as exc:
        return site.not_found(request, exc)
