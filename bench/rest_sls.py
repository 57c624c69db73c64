"""SLS changes per second through the REST API (`PUT /api/v1/slas/{sla}/sls`), against the service layer alone.

Set-up (not measured): a SQLite database in a temporary directory with bench/common.py's network
(4 edge routers, a core and an egress router; every SLA's path is edgeN-core, core-egress,
internet) and --slas customers with one gsb-business SLA each. Every customer gets a bearer token
of its own, made by ApiTokens.add (what `csmm api token add NAME --customer C` runs), so each
request acts as that customer: the case that matters is customers changing their own SLS.

Change policy: gsb-business allows a customer one SLS change per 5 minutes
(controller/catalog/gsb.yaml); a second change within that answers 409 (TooSoon). The domain
manager is not bound by it (controller/domain/checks.py), but it is not the interesting case.
So, like bench/sls_changes.py and bench/netconf_server.py, every SLA here overrides the offering's
policy in the provisioning file with `change_policy: {min_interval: 0s, fee_per_change: "0.10"}`:
the interval check still runs, and the fee is still charged and recorded, but nothing is refused.

Then `csmm serve --no-agents --no-snmp --no-netconf --http 127.0.0.1:PORT` runs on that database
(a separate process, its log in the temporary directory; stopped by its PID at the end).
Each SLA steps through silver 5M -> gold 2M -> silver 6M -> bronze 8M -> ..., so every change
is real (`changed` is true, a new version, an sls_history row, an event, admission on 3 links).
Changes go round the SLAs, one change per SLA per round.

Measured, --repeat times in turn (the medians are reported), --changes changes each:
  * anchor: ServiceLayer.change_sls called directly in this process, on the same database, as
    the SLA's customer with channel rest, one after another: the service layer alone, without
    HTTP, JSON, the token look-up or the hand-over to the server's worker threads;
  * REST, sequential: one aiohttp ClientSession (one keep-alive connection), one PUT in flight;
  * REST, concurrent: the same with --concurrency PUTs in flight (each worker owns a disjoint
    set of SLAs, so every SLA's changes stay in order).
Every answer must be 200 with the class, bandwidth, channel and version expected, and
`changed: true`. Afterwards every SLA's SLS is read back through REST with its customer's token
and in process, and must equal the last one set; the sls_history rows are counted and the
service's audit (link loads, versions) must be clean. Any failure stops the benchmark.

Printed: changes/s of each, the ratio REST/anchor (1.0: REST costs nothing on top of the
service layer), the sequential latency (median, p95), the server's and this process's CPU time
per change (/proc), and one token look-up (ApiTokens.principal, done on every request) in process.
With --profile, the REST app is also driven in this process (aiohttp server and client on one
loop, asyncio.to_thread run inline so that cProfile sees the handlers' work), to show where a
change's time goes.

    .venv/bin/python bench/rest_sls.py [--changes 1000] [--slas 500] [--concurrency 8] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from common import ROOT, Stopwatch, customer_name, customers_entry, machine_note, migrated, sla_name, topology_entry

from controller.domain.catalog import load_catalog
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.northbound.web.tokens import ApiTokens
from controller.provisioning.apply import apply
from controller.provisioning.model import ProvisioningFile
from controller.service.layer import ServiceLayer

CSMM = Path(sys.executable).parent / "csmm"
M = 1_000_000
# Consecutive entries differ in class or bandwidth and in guaranteed demand: every change is recorded
# and moves the link loads. The SLAs start at entry 0.
CYCLE: list[tuple[str, int]] = [("silver", 5 * M), ("gold", 2 * M), ("silver", 6 * M), ("bronze", 8 * M)]
EDGES = 4
ACCESS_PER_EDGE = 4
WARM_UP = 100


class Stop(Exception):
    """SIGTERM or SIGHUP: leave through the same clean-up as Ctrl-C."""


def _stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


# ---------------------------------------------------------------------------------------------- workload

@dataclass(frozen=True)
class Target:
    """One SLA as the benchmark drives it, and its customer's token."""

    index: int
    sla: str
    principal: Principal
    token: str


@dataclass
class Workload:
    """Which SLA changes next and to what; the SLS and version each SLA should have now."""

    targets: list[Target]
    position: list[int] = field(default_factory=list)   # index into CYCLE of the SLS in effect
    version: list[int] = field(default_factory=list)    # the SLS version in effect
    start: int = 0

    def next_batch(self, count: int) -> list[int]:
        batch = [(self.start + k) % len(self.targets) for k in range(count)]
        self.start += count
        return batch

    def advance(self, index: int) -> tuple[str, int, int]:
        """The next SLS of SLA `index` and its version, recorded as in effect (callers apply it right away)."""
        self.position[index] = (self.position[index] + 1) % len(CYCLE)
        self.version[index] += 1
        return (*CYCLE[self.position[index]], self.version[index])


def provisioning(slas: int) -> ProvisioningFile:
    policy = {"change_policy": {"min_interval": "0s", "fee_per_change": "0.10"}}
    return ProvisioningFile.model_validate({"topology": topology_entry(EDGES, ACCESS_PER_EDGE, "10T"),
                                           "customers": customers_entry(slas, EDGES, ACCESS_PER_EDGE, policy)})


def setup(url: str, slas: int) -> tuple[ServiceLayer, Workload]:
    service = ServiceLayer(migrated(url), load_catalog())
    apply(service, DOMAIN_MANAGER, provisioning(slas))
    tokens = ApiTokens(service)
    targets = [Target(i, sla_name(i), Principal(Role.CUSTOMER, customer_name(i)),
                      tokens.add(DOMAIN_MANAGER, f"bench-{customer_name(i)}", customer_name(i))) for i in range(slas)]
    in_effect = {sla.name: sls for sla, sls in service.list_sls(DOMAIN_MANAGER)}
    for target in targets:
        sls = in_effect[target.sla]
        if (sls.service_class, sls.bandwidth_bps) != CYCLE[0]:
            raise AssertionError(f"{target.sla}: provisioned as {sls.service_class} {sls.bandwidth_bps}, "
                                 f"not {CYCLE[0]}")
    return service, Workload(targets, [0] * slas, [in_effect[t.sla].version for t in targets])


# ---------------------------------------------------------------------------------------------- anchor

def anchor_changes(service: ServiceLayer, workload: Workload, indexes: Sequence[int]) -> None:
    for index in indexes:
        target = workload.targets[index]
        service_class, bandwidth, version = workload.advance(index)
        change = service.change_sls(target.principal, target.sla, service_class, bandwidth, Channel.REST)
        if not change.changed or change.sls.version != version:
            raise AssertionError(f"{target.sla}: change to {service_class} {bandwidth} gave changed={change.changed}, "
                                 f"version {change.sls.version} (expected {version})")


# ---------------------------------------------------------------------------------------------- REST client

async def rest_changes(http: Any, base: str, workload: Workload, indexes: Sequence[int],
                       latencies: list[float] | None = None) -> None:
    """PUT each change in turn and check the answer."""
    for index in indexes:
        target = workload.targets[index]
        service_class, bandwidth, version = workload.advance(index)
        started = time.perf_counter()
        async with http.put(f"{base}/api/v1/slas/{target.sla}/sls",
                            json={"class": service_class, "bandwidth_bps": bandwidth},
                            headers={"Authorization": f"Bearer {target.token}"}) as response:
            body = await response.json(content_type=None)
            status = response.status
        if latencies is not None:
            latencies.append(time.perf_counter() - started)
        if status != 200:
            raise AssertionError(f"PUT {target.sla}/sls {service_class} {bandwidth}: HTTP {status}: {body}")
        got = (body.get("class"), body.get("bandwidth_bps"), body.get("version"), body.get("channel"),
               body.get("changed"), body.get("fee"))
        if got != (service_class, bandwidth, version, "rest", True, "0.10"):
            raise AssertionError(f"PUT {target.sla}/sls {service_class} {bandwidth}: expected version {version}, "
                                 f"changed, channel rest, fee 0.10; got {body}")


async def rest_timed(base: str, workload: Workload, indexes: list[int], concurrency: int,
                     latencies: list[float] | None = None) -> float:
    """Seconds for `indexes` through REST with `concurrency` PUTs in flight (SLA index % concurrency
    decides the worker, so each SLA's changes stay in order)."""
    import aiohttp

    parts = [[i for i in indexes if i % concurrency == w] for w in range(concurrency)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{base}/healthz") as response:   # the connection(s) opened before the clock
            await response.read()
        with Stopwatch() as watch:
            await asyncio.gather(*(rest_changes(http, base, workload, part, latencies) for part in parts if part))
    return watch.seconds


async def rest_check(base: str, workload: Workload, concurrency: int) -> int:
    """Every SLA's SLS read back with its customer's token: the last one set. Returns the SLAs checked."""
    import aiohttp

    async def check(http: aiohttp.ClientSession, indexes: Sequence[int]) -> None:
        for index in indexes:
            target = workload.targets[index]
            async with http.get(f"{base}/api/v1/slas/{target.sla}/sls",
                                headers={"Authorization": f"Bearer {target.token}"}) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise AssertionError(f"GET {target.sla}/sls: HTTP {response.status}: {body}")
            expected = (*CYCLE[workload.position[index]], workload.version[index])
            if (body["class"], body["bandwidth_bps"], body["version"]) != expected:
                raise AssertionError(f"GET {target.sla}/sls: {body}, expected (class, bandwidth, version) {expected}")

    indexes = range(len(workload.targets))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(check(http, indexes[w::concurrency]) for w in range(concurrency)))
    return len(indexes)


# ---------------------------------------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU time of a process: its main thread (the server's event loop: aiohttp, JSON)
    and its other threads together (asyncio.to_thread's workers: token look-up, service layer)."""
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += seconds
        else:
            others += seconds
    return main, others


def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [str(CSMM), "--db", url, "serve", "--no-agents", "--no-snmp", "--no-netconf", "--http", f"127.0.0.1:{port}"]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)  # Ctrl-C reaches us only; we stop it by PID


def wait_serving(process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"csmm serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if b"serving: http://" in log.read_bytes():
            return
        time.sleep(0.1)
    raise RuntimeError(f"csmm serve: not serving after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)


# ---------------------------------------------------------------------------------------------- profile

def profile(url: str, workload: Workload, changes: int) -> None:
    """The REST app of `csmm serve` (controller.server.http_app) and a client on one loop in this
    process, asyncio.to_thread inline: `changes` sequential PUTs timed by phase (wall clock of the
    token look-up and of ServiceLayer.change_sls; the rest is HTTP, JSON and aiohttp on both sides),
    then the same under cProfile."""
    from aiohttp import web

    from controller.server import http_app

    service = ServiceLayer(migrated(url), load_catalog())
    spent: dict[str, float] = {"token look-up (ApiTokens.principal)": 0.0,
                               "service layer (ServiceLayer.change_sls)": 0.0}

    def timing(cls: type, name: str, phase: str) -> None:
        original = getattr(cls, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - started
        setattr(cls, name, timed)

    async def inline(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    asyncio.to_thread = inline  # type: ignore[assignment] # the handlers' thread work, in this thread for cProfile

    async def drive() -> None:
        runner = web.AppRunner(http_app(service), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        try:
            await rest_timed(base, workload, workload.next_batch(WARM_UP), 1)
            timing(ApiTokens, "principal", "token look-up (ApiTokens.principal)")
            timing(ServiceLayer, "change_sls", "service layer (ServiceLayer.change_sls)")
            seconds = await rest_timed(base, workload, workload.next_batch(changes), 1)
            phases = dict(spent)
            profiler = cProfile.Profile()
            profiler.enable()
            profiled = await rest_timed(base, workload, workload.next_batch(changes), 1)
            profiler.disable()
        finally:
            await runner.cleanup()
        print(f"\nin process (server and client on one loop, no threads): {changes} sequential PUTs, "
              f"{changes / seconds:.1f} changes/s, {seconds / changes * 1e3:.2f} ms per change:")
        phases["HTTP, JSON, aiohttp server and client"] = seconds - sum(phases.values())
        for phase, total in phases.items():
            print(f"  {phase:<42} {total / changes * 1e3:6.2f} ms  {total / seconds:4.0%}")
        print(f"cProfile of {changes} more ({changes / profiled:.1f} changes/s under the profiler), by own time:")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        body = out.getvalue()
        print(body[body.find("   ncalls"):] if "   ncalls" in body else body)

    asyncio.run(drive())
    service.database.dispose()


# ---------------------------------------------------------------------------------------------- main

@dataclass
class Figures:
    anchor: list[float] = field(default_factory=list)       # changes/s, one per repetition
    sequential: list[float] = field(default_factory=list)
    concurrent: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)    # seconds, sequential PUTs
    anchor_cpu: list[float] = field(default_factory=list)   # seconds per change
    server_loop_cpu: dict[str, list[float]] = field(default_factory=lambda: {"sequential": [], "concurrent": []})
    server_workers_cpu: dict[str, list[float]] = field(default_factory=lambda: {"sequential": [], "concurrent": []})
    client_cpu: dict[str, list[float]] = field(default_factory=lambda: {"sequential": [], "concurrent": []})


def run(args: argparse.Namespace, tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'rest.sqlite3'}"
    with Stopwatch() as watch:
        service, workload = setup(url, args.slas)
    print(f"set-up: {args.slas} customers with one SLA and one API token each ({watch.seconds:.1f} s, not measured)")

    tokens = ApiTokens(service)
    with Stopwatch() as lookup:
        for target in workload.targets:
            if tokens.principal(target.token) != target.principal:
                raise AssertionError(f"token of {target.principal} does not act for it")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, port, tmp / "serve.log")
    try:
        wait_serving(server, tmp / "serve.log")
        print(f"csmm serve (PID {server.pid}) on 127.0.0.1:{port}, log {tmp / 'serve.log'}")
        anchor_changes(service, workload, workload.next_batch(WARM_UP))
        asyncio.run(rest_timed(base, workload, workload.next_batch(WARM_UP), args.concurrency))
        figures = Figures()

        def rest(mode: str, concurrency: int, latencies: list[float] | None) -> float:
            (loop_cpu, workers_cpu), client_cpu = cpu_seconds(server.pid), time.process_time()
            seconds = asyncio.run(rest_timed(base, workload, workload.next_batch(args.changes), concurrency,
                                             latencies))
            loop_after, workers_after = cpu_seconds(server.pid)
            figures.server_loop_cpu[mode].append((loop_after - loop_cpu) / args.changes)
            figures.server_workers_cpu[mode].append((workers_after - workers_cpu) / args.changes)
            figures.client_cpu[mode].append((time.process_time() - client_cpu) / args.changes)
            return args.changes / seconds

        for repetition in range(1, args.repeat + 1):  # in turn, so that drift on the machine hits all three
            indexes = workload.next_batch(args.changes)
            cpu = time.process_time()
            with Stopwatch() as anchor:
                anchor_changes(service, workload, indexes)
            figures.anchor_cpu.append((time.process_time() - cpu) / args.changes)
            figures.anchor.append(args.changes / anchor.seconds)
            figures.sequential.append(rest("sequential", 1, figures.latencies))
            figures.concurrent.append(rest("concurrent", args.concurrency, None))
            print(f"#{repetition}: anchor {figures.anchor[-1]:7.1f} changes/s, REST sequential "
                  f"{figures.sequential[-1]:7.1f} changes/s, REST {args.concurrency} in flight "
                  f"{figures.concurrent[-1]:7.1f} changes/s")

        checked = asyncio.run(rest_check(base, workload, args.concurrency))
    finally:
        stop_server(server)

    in_effect = {sla.name: sls for sla, sls in service.list_sls(DOMAIN_MANAGER)}
    for target in workload.targets:
        sls, expected = in_effect[target.sla], (*CYCLE[workload.position[target.index]], workload.version[target.index])
        if (sls.service_class, sls.bandwidth_bps, sls.version) != expected:
            raise AssertionError(f"{target.sla}: in effect {sls.service_class} {sls.bandwidth_bps} v{sls.version}, "
                                 f"expected {expected}")
    with service.database.read() as session:
        history = session.execute(text("SELECT count(*) FROM sls_history")).scalar_one()
    if history != args.slas + workload.start:  # one row per SLA created and per change
        raise AssertionError(f"{history} sls_history rows, expected {args.slas + workload.start}")
    problems = service.audit(DOMAIN_MANAGER)
    if problems:
        raise AssertionError(f"audit: {len(problems)} problem(s), first: {problems[0]}")
    print(f"check: {checked} SLAs read back through REST and in process equal the last SLS set; "
          f"{history} sls_history rows as expected; audit clean")

    anchor, sequential, concurrent = (statistics.median(f) for f in (figures.anchor, figures.sequential,
                                                                      figures.concurrent))
    latencies = sorted(figures.latencies)
    print(f"after: {machine_note()}")
    print()
    print(f"SLS changes/s, {args.slas} SLAs, {args.changes} changes per measurement, median of {args.repeat}; "
          f"ratio = REST/anchor")
    print(f"{'':<34} {'changes/s':>10} {'ratio':>7}")
    print(f"{'anchor: ServiceLayer.change_sls':<34} {anchor:>10.1f} {1:>7.3f}")
    print(f"{'REST, sequential':<34} {sequential:>10.1f} {sequential / anchor:>7.3f}")
    print(f"{f'REST, {args.concurrency} in flight':<34} {concurrent:>10.1f} {concurrent / anchor:>7.3f}")
    print()
    print(f"REST sequential latency: median {statistics.median(latencies) * 1e3:.2f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1e3:.2f} ms; anchor {1e3 / anchor:.2f} ms per change")
    print(f"CPU per change (median): anchor {statistics.median(figures.anchor_cpu) * 1e3:.2f} ms in process")
    for mode, title in (("sequential", "REST sequential"), ("concurrent", f"REST {args.concurrency} in flight")):
        loop = statistics.median(figures.server_loop_cpu[mode]) * 1e3
        workers = statistics.median(figures.server_workers_cpu[mode]) * 1e3
        print(f"  {title}: server {loop + workers:.2f} ms (event loop thread {loop:.2f} ms, worker threads "
              f"{workers:.2f} ms), client {statistics.median(figures.client_cpu[mode]) * 1e3:.2f} ms")
    print(f"token look-up (ApiTokens.principal, in process): {lookup.seconds / args.slas * 1e3:.2f} ms")
    service.database.dispose()
    if args.profile:
        profile(url, workload, args.changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=1000, help="timed SLS changes per measurement (default 1000)")
    parser.add_argument("--slas", type=int, default=500, help="customers, one SLA and one token each (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="PUTs in flight in the concurrent mode (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each; medians reported (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, drive the REST app in process under cProfile")
    args = parser.parse_args()
    if min(args.changes, args.slas, args.concurrency, args.repeat) < 1:
        parser.error("--changes, --slas, --concurrency and --repeat must be at least 1")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    print(f"before: {machine_note()}")
    tmp = Path(tempfile.mkdtemp(prefix="csmm-bench-rest-"))
    try:
        run(args, tmp)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # clean-up is not to be interrupted half-way
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
