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
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from controller import __version__
from controller.accounting.invoice import to_document
from controller.accounting.metering import month_name, month_of
from controller.accounting.service import Accounting
from controller.domain.catalog import ClassBounds, ServiceClassName
from controller.domain.checks import require_domain_manager
from controller.domain.errors import (CapacityExceeded, ClassNotAllowed, Conflict, CsmmError, Forbidden, InvalidValue,
                                      NotFound, OutOfBounds, TooSoon)
from controller.domain.principal import Channel
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.northbound.web.tokens import ApiTokens
from controller.service.layer import Keep, ServiceLayer, SlaSpec, amended_spec
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
                web.get(f"{PREFIX}/customers", self.list_customers),
                web.post(f"{PREFIX}/customers", self.add_customer),
                web.get(f"{PREFIX}/slas", self.list_slas),
                web.post(f"{PREFIX}/slas", self.create_sla),
                web.get(f"{PREFIX}/slas/{{sla}}", self.get_sla),
                web.patch(f"{PREFIX}/slas/{{sla}}", self.modify_sla),
                web.put(f"{PREFIX}/slas/{{sla}}/state", self.set_state),
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

    async def list_customers(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.service.list_customers, request[PRINCIPAL])
        return reply([{"name": c.name, "kind": c.kind, "display_name": c.display_name} for c in found])

    async def add_customer(self, request: web.Request) -> web.Response:
        body = _parsed(CustomerBody, await _json_body(request))
        added = await asyncio.to_thread(self.service.add_customer, request[PRINCIPAL], body.name,
                                        CustomerKind(body.kind), body.display_name)
        return reply({"name": added.name, "kind": added.kind, "display_name": added.display_name}, 201)

    async def create_sla(self, request: web.Request) -> web.Response:
        principal, body = request[PRINCIPAL], _parsed(SlaBody, await _json_body(request))
        require_domain_manager(principal, "create SLAs")
        a = body.attachment
        spec = SlaSpec(name=body.name, customer=body.customer, offering=body.offering,
                       attachment=Attachment(a.router, a.interface, a.access_speed_bps, tuple(a.prefixes)),
                       bounds=_bounds(body.bounds), state=LifecycleState(body.state),
                       initial_class=ServiceClassName(body.initial_class) if body.initial_class else None,
                       initial_bandwidth_bps=body.initial_bandwidth_bps)
        created = await asyncio.to_thread(self.service.create_sla, principal, spec, Channel.REST)
        sls = await asyncio.to_thread(self.service.get_sls, principal, created.name)
        return reply({**sla_view(created), "sls": sls_view(sls)}, 201)

    async def modify_sla(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]
        body = _parsed(SlaChangeBody, await _json_body(request))
        require_domain_manager(principal, "change an SLA's terms")

        def modify() -> dict[str, Any]:
            current = self.service.get_sla(principal, name)
            spec = amended_spec(current, offering=body.offering, access_speed_bps=body.access_speed_bps,
                                prefixes=body.prefixes or (), bounds=_bounds(body.bounds),
                                valid_until=body.valid_until if "valid_until" in body.model_fields_set else Keep.KEEP)
            changed = self.service.modify_sla(principal, current.id, spec)
            return {**sla_view(changed), "sls": sls_view(self.service.get_sls(principal, name))}
        return reply(await asyncio.to_thread(modify))

    async def set_state(self, request: web.Request) -> web.Response:
        principal, name = request[PRINCIPAL], request.match_info["sla"]
        body = _parsed(StateBody, await _json_body(request))
        changed = await asyncio.to_thread(self.service.set_sla_state, principal, name, LifecycleState(body.state),
                                          body.note)
        return reply(sla_view(changed))

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
        month = request.query.get("month") or None
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


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerBody(_Body):
    name: str
    kind: Literal["customer", "peer"] = "customer"
    display_name: str = ""


class BoundsBody(_Body):
    min_bps: int = Field(default=0, ge=0)
    max_bps: int = Field(ge=0)


class AttachmentBody(_Body):
    router: str
    interface: str
    access_speed_bps: int = Field(gt=0)
    prefixes: list[str] = Field(min_length=1)


_CLASSES = Literal["gold", "silver", "bronze"]


class SlaBody(_Body):
    name: str
    customer: str
    offering: str
    attachment: AttachmentBody
    bounds: dict[_CLASSES, BoundsBody] | None = None
    state: Literal["offered", "negotiated", "implementing", "installed-tested", "operational"] = "offered"
    initial_class: _CLASSES | None = None
    initial_bandwidth_bps: int | None = Field(default=None, ge=0)


class SlaChangeBody(_Body):
    offering: str | None = None
    access_speed_bps: int | None = Field(default=None, gt=0)
    prefixes: list[str] | None = Field(default=None, min_length=1)
    bounds: dict[_CLASSES, BoundsBody] | None = None
    valid_until: AwareDatetime | None = None    # null: open-ended; absent: kept


class StateBody(_Body):
    state: Literal["offered", "negotiated", "implementing", "installed-tested", "operational", "deinstalled"]
    note: str = ""


Parsed = TypeVar("Parsed", bound=_Body)


def _parsed(model: type[Parsed], body: dict[str, Any]) -> Parsed:
    """A request body checked against its model; the first problem names its field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidValue(f"{where}: {first['msg']}", field=where,
                           value=first.get("input") if isinstance(first.get("input"), (str, int, float)) else None) \
            from None


def _bounds(bounds: dict[str, BoundsBody] | None) -> dict[ServiceClassName, ClassBounds] | None:
    if bounds is None:
        return None
    try:
        return {ServiceClassName(c): ClassBounds(min=b.min_bps, max=b.max_bps) for c, b in bounds.items()}
    except ValidationError as exc:
        raise InvalidValue(f"bounds: {exc.errors()[0]['msg']}", field="bounds") from None


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
_CREATED = {"201": {"description": "Created", "content": {"application/json": {"schema": _OBJECT}}}}
_, _BODIES = models_json_schema([(m, "validation") for m in (CustomerBody, SlaBody, SlaChangeBody, StateBody)],
                                ref_template="#/components/schemas/{model}")


def _body(model: type[_Body]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
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
            **_BODIES["$defs"],
        }},
    "security": [{"bearer": []}],
    "paths": {
        f"{PREFIX}/customers": {
            "get": {"summary": "The customers and peer domains the token may see (a customer's: itself)",
                    "responses": _responses({"type": "array", "items": _OBJECT})},
            "post": {"summary": "Add a customer or peer domain (domain manager)", "requestBody": _body(CustomerBody),
                     "responses": {**_CREATED, **_responses(_OBJECT, 403, 409, 422)}}},
        f"{PREFIX}/slas": {
            "get": {"summary": "The SLAs (with their SLS) the token may see",
                    "responses": _responses({"type": "array", "items": _OBJECT})},
            "post": {"summary": "Create an SLA (domain manager); unset bounds come from the offering, capped at the "
                                "access speed; admission control checks every link on the path",
                     "requestBody": _body(SlaBody),
                     "responses": {**_CREATED, **_responses(_OBJECT, 403, 404, 409, 422)}}},
        f"{PREFIX}/slas/{{sla}}": {
            "get": {"summary": "One SLA with its SLS", "parameters": [_SLA_NAME],
                    "responses": _responses(_OBJECT, 404)},
            "patch": {"summary": "Change an SLA's terms (domain manager); the terms not given are kept, and the SLS "
                                 "in effect must still fit", "parameters": [_SLA_NAME],
                      "requestBody": _body(SlaChangeBody), "responses": _responses(_OBJECT, 403, 404, 409, 422)}},
        f"{PREFIX}/slas/{{sla}}/state": {
            "put": {"summary": "Move an SLA along its life cycle (domain manager)", "parameters": [_SLA_NAME],
                    "requestBody": _body(StateBody), "responses": _responses(_OBJECT, 403, 404, 409, 422)}},
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
                                       "responses": _responses({"type": "array", "items": _OBJECT}, 422)}},
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
