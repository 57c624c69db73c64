"""The REST/JSON API under /api/v1: a thin adapter onto the service layer, like SNMP and NETCONF.

Every request but the OpenAPI document carries `Authorization: Bearer <token>` (`csmm api token
add`); the token decides the principal, and the service layer decides what it may see and do: a
customer reaches only its own SLAs and invoices, and another customer's answers 404, exactly like
a missing one. Refusals are JSON bodies with the service layer's code, message, field, bound and
value, under the HTTP status that fits (400, 401, 403, 404, 409, 422).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller import __version__
from controller.accounting.invoice import to_document
from controller.accounting.metering import month_name, month_of
from controller.accounting.service import Accounting
from controller.domain.checks import require_domain_manager
from controller.domain.errors import (CapacityExceeded, ClassNotAllowed, Conflict, CsmmError, Forbidden, InvalidValue,
                                      NotFound, OutOfBounds, TooSoon)
from controller.domain.principal import Channel
from controller.northbound.web.tokens import ApiTokens
from controller.service.layer import ServiceLayer
from controller.service.views import agent_view, conformance_view, json_default, sla_view, sls_view, usage_view
from controller.southbound.store import SouthboundStore

PREFIX = "/api/v1"
PRINCIPAL = "csmm.principal"   # the request's principal, set by the middleware
_STATUS = [(NotFound, 404), (Forbidden, 403), (TooSoon, 409), (Conflict, 409), (CapacityExceeded, 409),
           (OutOfBounds, 422), (ClassNotAllowed, 422), (InvalidValue, 422)]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=json_default), status=status, content_type="application/json")


def refusal(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    response = reply(body, status)
    response.headers.update(headers)
    return response


class RestApi:
    def __init__(self, service: ServiceLayer) -> None:
        self.service = service
        self.accounting = Accounting(service)
        self.tokens = ApiTokens(service)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"{PREFIX}/openapi.json", self.openapi),
                web.get(f"{PREFIX}/slas", self.list_slas),
                web.get(f"{PREFIX}/slas/{{sla}}", self.get_sla),
                web.get(f"{PREFIX}/slas/{{sla}}/sls", self.get_sls),
                web.put(f"{PREFIX}/slas/{{sla}}/sls", self.change_sls),
                web.get(f"{PREFIX}/slas/{{sla}}/conformance", self.get_conformance),
                web.get(f"{PREFIX}/invoices", self.list_invoices),
                web.get(f"{PREFIX}/invoices/{{number}}", self.get_invoice),
                web.get(f"{PREFIX}/customers/{{customer}}/usage", self.get_usage),
                web.get(f"{PREFIX}/agents", self.list_agents)]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate API requests and turn refusals into JSON; other paths pass through."""
        if not request.path.startswith(PREFIX) or request.path == f"{PREFIX}/openapi.json":
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        principal = await asyncio.to_thread(self.tokens.principal, token.strip()) \
            if scheme.lower() == "bearer" and token.strip() else None
        if principal is None:
            return refusal(401, {"error": "unauthenticated", "message": "a valid bearer token is required "
                                 "(Authorization: Bearer TOKEN; `csmm api token add` makes one)"},
                           **{"WWW-Authenticate": 'Bearer realm="csmm"'})
        request[PRINCIPAL] = principal
        try:
            return await handler(request)
        except CsmmError as exc:
            status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
            return refusal(status, exc.to_dict())

    # ------------------------------------------------------------------ handlers

    async def openapi(self, _request: web.Request) -> web.Response:
        return reply(OPENAPI)

    async def list_slas(self, request: web.Request) -> web.Response:
        rows = await asyncio.to_thread(self.service.list_sls, request[PRINCIPAL])
        return reply([{**sla_view(sla), "sls": sls_view(sls)} for sla, sls in rows])

    async def get_sla(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]
        sla = await asyncio.to_thread(self.service.get_sla, principal, name)
        sls = await asyncio.to_thread(self.service.get_sls, principal, name)
        return reply({**sla_view(sla), "sls": sls_view(sls)})

    async def get_sls(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]
        sls = await asyncio.to_thread(self.service.get_sls, principal, name)
        following = await asyncio.to_thread(self.service.next_change_allowed, principal, name)
        return reply({**sls_view(sls), "next_change_allowed": following})

    async def change_sls(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]
        body = await _json_body(request)
        service_class, bandwidth, expected = body.get("class"), body.get("bandwidth_bps"), body.get("expect_version")
        if not isinstance(service_class, str):
            raise InvalidValue("class is required: gold, silver or bronze", field="class", value=service_class)
        if not isinstance(bandwidth, int) or isinstance(bandwidth, bool):
            raise InvalidValue("bandwidth_bps is required, an integer in bit/s", field="bandwidth_bps",
                               value=bandwidth)
        if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
            raise InvalidValue("expect_version must be an integer", field="expect_version", value=expected)
        change = await asyncio.to_thread(self.service.change_sls, principal, name, service_class, bandwidth,
                                         Channel.REST, expected)
        return reply({**sls_view(change.sls), "changed": change.changed, "fee": str(change.fee)})

    async def get_conformance(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]

        def read() -> dict[str, object]:
            sla, sls = self.service.get_sla(principal, name), self.service.get_sls(principal, name)
            measured = self.service.conformance(principal).get(sla.id)
            return conformance_view(sla, sls, measured, self.service.catalog)
        return reply(await asyncio.to_thread(read))

    async def list_invoices(self, request: web.Request) -> web.Response:
        month = request.query.get("month")
        found = await asyncio.to_thread(self.accounting.invoices, request[PRINCIPAL], None, month)
        return reply([{"number": i.number, "kind": i.kind, "customer": i.customer, "month": i.month,
                       "total": str(i.total), "currency": i.currency, "refers_to": i.refers_to} for i in found])

    async def get_usage(self, request: web.Request) -> web.Response:
        principal, customer = request[PRINCIPAL], request.match_info["customer"]
        month = request.query.get("month") or month_name(month_of(self.service.clock()))
        rows = await asyncio.to_thread(self.accounting.usage_report, principal, customer, month)
        return reply(usage_view(customer, month, rows))

    async def list_agents(self, request: web.Request) -> web.Response:
        require_domain_manager(request[PRINCIPAL], "read agent status")
        statuses = await asyncio.to_thread(SouthboundStore(self.service.database).statuses)
        return reply([agent_view(s) for s in statuses])

    async def get_invoice(self, request: web.Request) -> web.Response:
        invoice = await asyncio.to_thread(self.accounting.invoice, request[PRINCIPAL], request.match_info["number"])
        return reply(to_document(invoice))


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidValue("the request body must be a JSON object", field="body") from None
    if not isinstance(body, dict):
        raise InvalidValue("the request body must be a JSON object", field="body")
    return body


def add_api(app: web.Application, service: ServiceLayer) -> None:
    api = RestApi(service)
    app.middlewares.append(api.middleware)
    app.add_routes(api.routes())


_ERROR = {"$ref": "#/components/schemas/Error"}
_SLA_NAME = {"name": "sla", "in": "path", "required": True, "schema": {"type": "string"}}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}},
                           "401": {"description": "No valid bearer token",
                                   "content": {"application/json": {"schema": _ERROR}}}}
    for code in codes:
        out[str(code)] = {"description": "Refused", "content": {"application/json": {"schema": _ERROR}}}
    return out


_OBJECT = {"type": "object"}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "CSMM REST API", "version": __version__,
             "description": "Customer Service Management for the GSB DiffServ service: SLAs, the SLS in effect, "
                            "conformance and invoices. A customer's token reaches its own objects only."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                     "field": {"type": "string"}, "bound": {}, "value": {}}},
            "SlsChange": {"type": "object", "required": ["class", "bandwidth_bps"],
                          "properties": {"class": {"type": "string", "enum": ["gold", "silver", "bronze"]},
                                         "bandwidth_bps": {"type": "integer", "minimum": 0},
                                         "expect_version": {"type": "integer"}}},
        }},
    "security": [{"bearer": []}],
    "paths": {
        f"{PREFIX}/slas": {"get": {"summary": "The SLAs (with their SLS) the token may see",
                                   "responses": _responses({"type": "array", "items": _OBJECT})}},
        f"{PREFIX}/slas/{{sla}}": {"get": {"summary": "One SLA with its SLS", "parameters": [_SLA_NAME],
                                           "responses": _responses(_OBJECT, 404)}},
        f"{PREFIX}/slas/{{sla}}/sls": {
            "get": {"summary": "The SLS in effect and when the next change is allowed", "parameters": [_SLA_NAME],
                    "responses": _responses(_OBJECT, 404)},
            "put": {"summary": "Change the SLS (class and bandwidth) within the SLA", "parameters": [_SLA_NAME],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/SlsChange"}}}},
                    "responses": _responses(_OBJECT, 403, 404, 409, 422)}},
        f"{PREFIX}/slas/{{sla}}/conformance": {
            "get": {"summary": "Measured against agreed: throughput, loss, availability, open violations",
                    "parameters": [_SLA_NAME], "responses": _responses(_OBJECT, 404)}},
        f"{PREFIX}/invoices": {"get": {"summary": "Issued invoices and notes the token may see",
                                       "parameters": [{"name": "month", "in": "query", "required": False,
                                                       "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}}],
                                       "responses": _responses({"type": "array", "items": _OBJECT})}},
        f"{PREFIX}/invoices/{{number}}": {"get": {"summary": "One issued invoice or note (JSON document)",
                                                  "parameters": [{"name": "number", "in": "path", "required": True,
                                                                  "schema": {"type": "string"}}],
                                                  "responses": _responses(_OBJECT, 404)}},
        f"{PREFIX}/customers/{{customer}}/usage": {
            "get": {"summary": "Hours per class against the included hours, and volume, per SLA (default: this month)",
                    "parameters": [{"name": "customer", "in": "path", "required": True, "schema": {"type": "string"}},
                                   {"name": "month", "in": "query", "required": False,
                                    "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}}],
                    "responses": _responses(_OBJECT, 404, 422)}},
        f"{PREFIX}/agents": {"get": {"summary": "Router agents: connected, config in sync, last seen (domain manager)",
                                     "responses": _responses({"type": "array", "items": _OBJECT}, 403)}},
    },
}
