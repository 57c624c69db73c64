"""The controller process (`csmm serve`): one asyncio loop hosting the adapters.

Northbound adapters (SNMP, NETCONF, web) and the southbound gRPC server plug in here as they
land; today it serves a health endpoint and logs every event the service layer emits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from controller import __version__
from controller.domain.principal import DOMAIN_MANAGER
from controller.service.events import Event
from controller.service.layer import ServiceLayer
from controller.store import migrate

log = logging.getLogger("csmm.controller")


def health_app(service: ServiceLayer) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        # Liveness and database reachability only: no customer data on an unauthenticated endpoint.
        schema_ok = await asyncio.to_thread(migrate.is_up_to_date, service.database)
        return web.json_response({"status": "ok" if schema_ok else "schema-outdated", "version": __version__,
                                  "database": service.database.describe(), "offerings": sorted(service.catalog.offerings)},
                                 status=200 if schema_ok else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return app


def _log_event(event: Event) -> None:
    log.info("event %s %s by %s %s", event.type, event.subject, event.principal, event.payload)


async def serve(service: ServiceLayer, host: str, port: int, stop: asyncio.Event) -> None:
    runner = web.AppRunner(health_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()  # raises OSError (address in use, ...) instead of starting half-way
    log.info("csmm %s serving: http://%s:%d/healthz; database %s; %d offerings", __version__, host, port,
             service.database.describe(), len(service.catalog.offerings))
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runner.cleanup()


def run_controller(service: ServiceLayer, host: str, port: int, apply_file: Path | None) -> None:
    service.bus.subscribe("", _log_event)
    if apply_file is not None:
        from controller.provisioning.apply import apply
        from controller.provisioning.model import load_provisioning

        report = apply(service, DOMAIN_MANAGER, load_provisioning(apply_file))
        log.info("applied %s: %s", apply_file, report.summary())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(service, host, port, stop)

    asyncio.run(main())
