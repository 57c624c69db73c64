"""The controller process (`csmm serve`): one asyncio loop hosting the adapters.

The southbound gRPC server for router agents, the SNMP agent (SNMPv3, CSM-MIB), the NETCONF
server, the accounting policies' enforcement, and one HTTP endpoint with the web portal and
console (`/`), the REST API (`/api/v1`), `/healthz` and the Prometheus `/metrics`; and a log line
for every event the service layer emits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller import __version__
from controller.accounting.policies import PolicyRunner
from controller.accounting.service import Accounting
from controller.domain.principal import DOMAIN_MANAGER
from controller.northbound.netconf.server import NetconfServer, NetconfSettings
from controller.northbound.snmp.agent import SnmpAgent, SnmpSettings
from controller.northbound.web.api import add_api
from controller.northbound.web.app import MAX_REQUEST_BYTES, add_site
from controller.service.events import Event
from controller.service.layer import ServiceLayer
from controller.southbound.metrics import SouthboundCollector
from controller.southbound.server import AgentListener, Southbound, start_server
from controller.store import migrate

log = logging.getLogger("csmm.controller")


def http_app(service: ServiceLayer, southbound: Southbound | None = None,
             secure_cookies: bool = True) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        # Liveness and database reachability only: no customer data on an unauthenticated endpoint.
        schema_ok = await asyncio.to_thread(migrate.is_up_to_date, service.database)
        return web.json_response({"status": "ok" if schema_ok else "schema-outdated", "version": __version__,
                                  "database": service.database.describe(), "offerings": sorted(service.catalog.offerings)},
                                 status=200 if schema_ok else 503)

    registry = CollectorRegistry()
    if southbound is not None:
        registry.register(SouthboundCollector(southbound))

    async def metrics(_request: web.Request) -> web.Response:
        # Per-class counters by router and interface: operational data for the provider's
        # monitoring, bound to 127.0.0.1 like every controller port.
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    add_api(app, service)
    add_site(app, service, secure_cookies, southbound.class_rates if southbound is not None else None)
    return app


def _log_event(event: Event) -> None:
    log.info("event %s %s by %s %s", event.type, event.subject, event.principal, event.payload)


async def enforce_accounting_policies(service: ServiceLayer, stop: asyncio.Event, metering_interval_s: float) -> None:
    """Every second, the accounting policies handle new events; every metering interval, a
    metering run. A failing pass is logged and retried: policies never stop the controller."""
    runner = PolicyRunner(Accounting(service))
    last_metering = time.monotonic()
    while not stop.is_set():
        metering = time.monotonic() - last_metering >= metering_interval_s
        try:
            report = await asyncio.to_thread(runner.run_once, metering)
            if report.decisions or report.policy_changes:
                log.info("accounting policies: %d events, %d charges, %d notifications, policy changes: %s",
                         report.events, report.charges, report.notifications, report.policy_changes or "none")
        except Exception:
            log.exception("accounting policy pass failed; retrying")
        if metering:
            last_metering = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass


async def serve(service: ServiceLayer, host: str, port: int, agents: AgentListener | None, stop: asyncio.Event,
                snmp: SnmpSettings | None = None, netconf: NetconfSettings | None = None,
                metering_interval_s: float = 300.0, secure_cookies: bool = True) -> None:
    southbound = None
    grpc_server = None
    snmp_agent = None
    netconf_server = None
    if snmp is not None:
        snmp_agent = SnmpAgent(service, snmp)
        await snmp_agent.start()  # raises OSError (port in use, ...) before anything else starts
    if netconf is not None:
        netconf_server = NetconfServer(service, netconf)
        await netconf_server.start()
    if agents is not None:
        southbound = Southbound(service, counter_interval_ms=agents.counter_interval_ms,
                                check_identity=agents.tls_dir is not None)
        grpc_server = await start_server(southbound, agents)
        log.info("agents: listening on %s (%s)", ", ".join(grpc_server.bound) or "no address yet",
                 f"mTLS, CA in {agents.tls_dir}" if agents.tls_dir else "PLAINTEXT, lab only")
    runner = web.AppRunner(http_app(service, southbound, secure_cookies), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()  # raises OSError (address in use, ...) instead of starting half-way
    policies = asyncio.create_task(enforce_accounting_policies(service, stop, metering_interval_s))
    log.info("csmm %s serving: the portal and console at http://%s:%d/, REST at /api/v1, /healthz and /metrics; "
             "database %s; %d offerings", __version__, host, port, service.database.describe(),
             len(service.catalog.offerings))
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if southbound is not None and grpc_server is not None:
            await southbound.stop()
            await grpc_server.stop(grace=1)
        if snmp_agent is not None:
            await snmp_agent.stop()
        if netconf_server is not None:
            await netconf_server.stop()
        await runner.cleanup()
        await policies


def run_controller(service: ServiceLayer, host: str, port: int, apply_file: Path | None,
                   agents: AgentListener | None = None, snmp: SnmpSettings | None = None,
                   netconf: NetconfSettings | None = None, metering_interval_s: float = 300.0,
                   secure_cookies: bool = True) -> None:
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
        await serve(service, host, port, agents, stop, snmp, netconf, metering_interval_s, secure_cookies)

    asyncio.run(main())
