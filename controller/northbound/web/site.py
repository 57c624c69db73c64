"""The people's side of the web application: log in and out, sessions, CSRF, security headers and
page rendering, shared by the customer portal (/portal) and the domain manager's console (/console).

Pages are rendered on the server (jinja2, autoescaped) and every action is a plain HTML form, so
the portal works without JavaScript; the Content-Security-Policy allows no script at all.

* Session cookie `csmm_session`: HttpOnly, SameSite=Strict, Path=/, and Secure unless `csmm serve
  --web-insecure-cookies` (browsers keep Secure cookies on http://127.0.0.1 and localhost, which
  they treat as secure origins; anywhere else the portal belongs behind TLS).
* CSRF: every POST carries the session's token in the `csrf` field (the login form a
  double-submit token of its own), and a POST whose Origin is not this server is refused.
* Login: wrong name or password look the same; too many failures answer 429 (accounts.py).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web

from controller.domain.principal import Principal
from controller.domain.errors import CsmmError, InvalidValue
from controller.domain.units import format_bandwidth, parse_bandwidth
from controller.northbound.web.accounts import LoginThrottled, WebAccounts, WebSession
from controller.service.layer import ServiceLayer

SESSION_COOKIE = "csmm_session"
LOGIN_CSRF_COOKIE = "csmm_login_csrf"
SESSION = "csmm.session"       # the request's WebSession, set by the middleware
IMPORT_PATH = "/console/import"
MAX_IMPORT_BYTES = 64 * 1024 * 1024   # a bulk import's provisioning file; every other body: aiohttp's 1 MiB
STATIC = Path(__file__).parent / "static"
MAX_LOGINS_WAITING = 8
_PUBLIC = ("/login", "/static/", "/favicon.ico", "/healthz", "/metrics", "/api/")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_templates = jinja2.Environment(loader=jinja2.PackageLoader("controller.northbound.web", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True)
_templates.filters["bw"] = lambda bps: "–" if bps is None else format_bandwidth(int(bps))
_templates.filters["when"] = lambda t: "–" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


class Site:
    def __init__(self, service: ServiceLayer, secure_cookies: bool = True) -> None:
        self.service = service
        self.accounts = WebAccounts(service)
        self.secure_cookies = secure_cookies
        # Password hashing gets threads of its own, so a burst of logins cannot hold up the
        # worker threads that pages, the REST API and the agents' counters share.
        self._hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login")
        self._logins_waiting = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.home), web.get("/login", self.login_form), web.post("/login", self.login),
                web.post("/logout", self.logout), web.static("/static", STATIC)]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Attach the session, send people without one to the login page, check CSRF on every
        POST, and add the security headers to every page."""
        if request.path.startswith(_PUBLIC) and not request.path.startswith("/login"):
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        session = await asyncio.to_thread(self.accounts.session, token) if token else None
        if session is None and not request.path.startswith("/login"):
            if request.method == "GET":
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
            return self.page(request, "error.html", status=401, title="Logged out",
                             message="Your session has ended; log in again.")
        if session is not None:
            request[SESSION] = session
        if request.method == "POST" and request.path == IMPORT_PATH:
            request = request.clone(client_max_size=MAX_IMPORT_BYTES)
        if request.method == "POST":
            refused = await self._check_post(request, session)
            if refused is not None:
                return refused
        response = await handler(request)
        for header, value in _HEADERS.items():   # a response may set its own (a printable invoice's CSP)
            response.headers.setdefault(header, value)
        return response

    async def _check_post(self, request: web.Request, session: WebSession | None) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            return self.page(request, "error.html", status=403, title="Refused",
                             message="This form was sent from another site.")
        form = await request.post()
        on_login = request.path == "/login"
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "") if on_login or session is None else session.csrf_token
        given = str(form.get("csrf", "")).encode()
        if not expected or not hmac.compare_digest(given, expected.encode()):
            return self.page(request, "error.html", status=403, title="Refused",
                             message="The form's security token is missing or stale; reload the page and try again.")
        return None

    # ------------------------------------------------------------------ rendering

    def page(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        session: WebSession | None = request.get(SESSION)
        html = _templates.get_template(template).render(
            session=session, principal=session.principal if session else None,
            csrf=session.csrf_token if session else "", path=request.path, currency=self.service.catalog.currency,
            **values)
        response = web.Response(text=html, status=status, content_type="text/html")
        response.headers.update(_HEADERS)
        return response

    def not_found(self, request: web.Request, exc: CsmmError) -> web.Response:
        """A missing object, or another customer's: the same 404 page either way."""
        return self.page(request, "error.html", status=404, title="Not found", message=exc.message)

    # ------------------------------------------------------------------ handlers

    async def home(self, request: web.Request) -> web.Response:
        principal: Principal = request[SESSION].principal
        raise web.HTTPSeeOther("/console" if principal.is_domain_manager else "/portal")

    async def login_form(self, request: web.Request, error: str = "", status: int = 200,
                         name: str = "", next_path: str | None = None) -> web.Response:
        # One token per browser until it logs in: a second login page (another tab, a browser's own
        # request that lands here) must not invalidate the form already shown.
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = self.page(request, "login.html", status=status, title="Log in", login_csrf=token, error=error,
                             name=name,
                             next=_local(next_path if next_path is not None else request.query.get("next", "/")))
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                            secure=self.secure_cookies)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        target = _local(str(form.get("next", "/")))
        if self._logins_waiting >= MAX_LOGINS_WAITING:   # Argon2 is costly by design: refuse, don't queue
            response = await self.login_form(request, error="the server is busy; try again in a moment",
                                             status=503, name=name, next_path=target)
            response.headers["Retry-After"] = "2"
            return response
        self._logins_waiting += 1
        try:
            token = await asyncio.get_running_loop().run_in_executor(
                self._hashing, self.accounts.log_in, name, password, request.remote or "?")
        except LoginThrottled as exc:
            response = await self.login_form(request, error=str(exc), status=429, name=name, next_path=target)
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        finally:
            self._logins_waiting -= 1
        if token is None:
            return await self.login_form(request, error="wrong login name or password", status=401, name=name,
                                         next_path=target)
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            await asyncio.to_thread(self.accounts.log_out, previous)
        response = web.HTTPSeeOther(target)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=self.secure_cookies)
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(self.accounts.log_out, request.cookies.get(SESSION_COOKIE, ""))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/._~?&=%+-]*")


@dataclass(frozen=True)
class Refusal:
    """A refusal as a page shows it: the service layer's words, with bounds in people's units."""

    code: str
    message: str
    field: str | None
    bound: Any
    value: Any

    @property
    def bound_text(self) -> str:
        return _readable(self.field, self.bound)

    @property
    def value_text(self) -> str:
        return _readable(self.field, self.value)


def refusal_of(exc: CsmmError) -> Refusal:
    return Refusal(exc.code, exc.message, exc.field, exc.bound, exc.value)


def _readable(field: str | None, value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, int) and not isinstance(value, bool) and field and \
            ("bandwidth" in field or "speed" in field or field.startswith("link[") or field.startswith("bounds")):
        return f"{format_bandwidth(value)} ({value} bit/s)"
    return str(value)


def bandwidth_field(text: str, field_name: str) -> int:
    """A bandwidth typed in a form (2M, 512k, 1500000); a refusal naming the field otherwise."""
    try:
        return parse_bandwidth(text)
    except ValueError:
        raise InvalidValue(f"{field_name} {text!r} is not a bandwidth; write it like 2M, 512k or 1500000",
                           field=field_name, value=text) from None


def _local(target: str) -> str:
    """Only a plain path on this server may follow a login: no scheme, no host, and no character
    (backslash, tab, newline...) that a browser might read as the start of another site."""
    return target if _LOCAL_PATH.fullmatch(target) and not target.startswith("//") else "/"


def principal_of(request: web.Request) -> Principal:
    return request[SESSION].principal
