"""The web application's people's side, assembled: the site (log in, sessions, CSRF), the
customer portal and the domain manager's console. The REST API (api.py) sits beside it."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from controller.northbound.web.console import ClassRates, Console
from controller.northbound.web.portal import CustomerPortal
from controller.northbound.web.site import Site
from controller.service.layer import ServiceLayer

MAX_REQUEST_BYTES = 1024 * 1024   # every body but a bulk import's file (site.MAX_IMPORT_BYTES)


def add_site(app: web.Application, service: ServiceLayer, secure_cookies: bool = True,
             class_rates: Callable[[], ClassRates] | None = None) -> Site:
    """`class_rates`: the southbound's measured rate of every QoS class (none without agents)."""
    site = Site(service, secure_cookies)
    app.middlewares.append(site.middleware)
    app.add_routes([*site.routes(), *CustomerPortal(site).routes(), *Console(site, class_rates).routes()])
    return site
