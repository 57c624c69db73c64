"""SLS changes per second through ServiceLayer.change_sls, on SQLite and on PostgreSQL.

What it measures: customers (customer principals, so authorization, the SLA checks, the change
fee and admission control all run) changing their own SLS through ServiceLayer.change_sls, one
transaction per change. Every change is a real change (the class or the bandwidth differs from
the SLS in effect, and the guaranteed demand on the SLA's three path links changes). The SLAs'
change policy is {min_interval: 0s} so the customers may change as often as they like.
Measured single-threaded for --changes changes, then with --threads threads (each thread owns
a disjoint set of SLAs, so each SLA's changes stay in order).

Anchor, measured in the same run on the same database: the minimal raw work one SLS change
needs, done with the DB driver directly (sqlite3 / psycopg), one transaction per change:
SELECT the sls row (FOR UPDATE on PostgreSQL), UPDATE it, UPDATE the load rows of the 3 links on
the path, INSERT one sls_history row, INSERT one events row, COMMIT. The anchor keeps the data
consistent (versions, link loads), so `audit` still passes afterwards.

Each mode is measured --repeat times, service and anchor alternating; the medians are reported.
Printed: changes/s for the service and for the anchor, and the ratio service/anchor (1.0 would
mean the service costs nothing above the raw database work). Afterwards the benchmark counts the
history rows and runs the service's audit, so a fast but wrong run does not go unnoticed.

    .venv/bin/python bench/sls_changes.py [--changes N] [--customers N] [--threads N] [--repeat N]
                                          [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text

from common import Stopwatch, customer_name, customers_entry, machine_note, migrated, postgres_server, psycopg_dsn, \
    sla_name, topology_entry

from controller.domain.catalog import load_catalog
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.provisioning.apply import apply
from controller.provisioning.model import ProvisioningFile
from controller.service.layer import ServiceLayer

M = 1_000_000
# Each SLA walks this cycle; consecutive entries differ in class or bandwidth, and in guaranteed
# demand, so every change is recorded and touches the link loads. The SLAs start at entry 0.
CYCLE: list[tuple[str, int]] = [("silver", 5 * M), ("gold", 2 * M), ("silver", 6 * M), ("bronze", 8 * M)]
EDGES = 4
ACCESS_PER_EDGE = 4


@dataclass(frozen=True)
class Target:
    """One SLA as the benchmark drives it."""

    index: int
    sla_id: int
    sla: str
    principal: Principal
    path: tuple[str, ...]


class Workload:
    """Which SLA changes next and to what: SLA k % customers, one step further along CYCLE."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.position = [0] * len(targets)  # index into CYCLE of each SLA's SLS in effect

    def batch(self, count: int, start: int) -> list[int]:
        return [(start + k) % len(self.targets) for k in range(count)]

    def advance(self, index: int) -> tuple[str, int]:
        """The next SLS of SLA `index`, recorded as in effect (callers apply it right away)."""
        self.position[index] = (self.position[index] + 1) % len(CYCLE)
        return CYCLE[self.position[index]]


def demand(service_class: str, bandwidth: int) -> tuple[int, int]:
    """(gold, gold+silver) an SLS puts on its links, as controller.domain.checks.sls_demand."""
    if service_class == "gold":
        return bandwidth, bandwidth
    if service_class == "silver":
        return 0, bandwidth
    return 0, 0


# ---------------------------------------------------------------------------------------------- setup

def provisioning(customers: int) -> ProvisioningFile:
    return ProvisioningFile.model_validate({
        "topology": topology_entry(EDGES, ACCESS_PER_EDGE, "10T"),
        "customers": customers_entry(customers, EDGES, ACCESS_PER_EDGE,
                                     {"change_policy": {"min_interval": "0s", "fee_per_change": "0.10"}})})


def setup(url: str, customers: int) -> tuple[ServiceLayer, Workload, float]:
    with Stopwatch() as watch:
        service = ServiceLayer(migrated(url), load_catalog())
        apply(service, DOMAIN_MANAGER, provisioning(customers))
    by_name = {sla.name: sla for sla in service.list_slas(DOMAIN_MANAGER)}
    targets = [Target(i, by_name[sla_name(i)].id, sla_name(i), Principal(Role.CUSTOMER, customer_name(i)),
                      tuple(sorted(by_name[sla_name(i)].path))) for i in range(customers)]
    return service, Workload(targets), watch.seconds


# ---------------------------------------------------------------------------------------------- service

def service_changes(service: ServiceLayer, workload: Workload, indexes: Sequence[int]) -> None:
    for index in indexes:
        target = workload.targets[index]
        service_class, bandwidth = workload.advance(index)
        result = service.change_sls(target.principal, target.sla, service_class, bandwidth, Channel.REST)
        if not result.changed:
            raise AssertionError(f"{target.sla}: change to {service_class} {bandwidth} was not recorded")


# ---------------------------------------------------------------------------------------------- anchor

class RawChanger:
    """The anchor: one SLS change as raw SQL through the driver, one transaction."""

    def change(self, target: Target, service_class: str, bandwidth: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _event_payload(target: Target, version: int, service_class: str, bandwidth: int,
                   previous: tuple[str, int]) -> dict[str, Any]:
    return {"sla_id": target.sla_id, "customer": target.principal.customer, "version": version,
            "service_class": service_class, "bandwidth_bps": bandwidth, "previous_class": previous[0],
            "previous_bandwidth_bps": previous[1], "channel": "rest", "fee": "0.10"}


class SqliteChanger(RawChanger):
    def __init__(self, path: str) -> None:
        # The same connection settings as controller.store.database.
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
            self.conn.execute(f"PRAGMA {pragma}")

    def change(self, target: Target, service_class: str, bandwidth: int) -> None:
        now = datetime.now(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        who = str(target.principal)
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            old_class, old_bandwidth, version = cur.execute(
                "SELECT service_class, bandwidth_bps, version FROM sls WHERE sla_id = ?", (target.sla_id,)).fetchone()
            version += 1
            cur.execute("UPDATE sls SET service_class = ?, bandwidth_bps = ?, version = ?, changed_at = ?, "
                        "changed_by = ?, channel = ?, last_customer_change_at = ? WHERE sla_id = ?",
                        (service_class, bandwidth, version, now, who, "rest", now, target.sla_id))
            new, old = demand(service_class, bandwidth), demand(old_class, old_bandwidth)
            for link in target.path:
                cur.execute("UPDATE links SET in_use_gold_bps = in_use_gold_bps + ?, "
                            "in_use_gold_silver_bps = in_use_gold_silver_bps + ? WHERE name = ?",
                            (new[0] - old[0], new[1] - old[1], link))
            cur.execute("INSERT INTO sls_history (sla_id, version, service_class, bandwidth_bps, effective_from, "
                        "principal, channel, fee_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (target.sla_id, version, service_class, bandwidth, now, who, "rest", 10))
            payload = _event_payload(target, version, service_class, bandwidth, (old_class, old_bandwidth))
            cur.execute("INSERT INTO events (at, type, subject, principal, payload) VALUES (?, ?, ?, ?, ?)",
                        (now, "sls.changed", f"sla:{target.sla}", who, json.dumps(payload)))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class PostgresChanger(RawChanger):
    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn)

    def change(self, target: Target, service_class: str, bandwidth: int) -> None:
        from psycopg.types.json import Json

        now = datetime.now(timezone.utc)
        who = str(target.principal)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT service_class, bandwidth_bps, version FROM sls WHERE sla_id = %s FOR UPDATE",
                        (target.sla_id,))
            row = cur.fetchone()
            assert row is not None
            old_class, old_bandwidth, version = row
            version += 1
            cur.execute("UPDATE sls SET service_class = %s, bandwidth_bps = %s, version = %s, changed_at = %s, "
                        "changed_by = %s, channel = %s, last_customer_change_at = %s WHERE sla_id = %s",
                        (service_class, bandwidth, version, now, who, "rest", now, target.sla_id))
            new, old = demand(service_class, bandwidth), demand(old_class, old_bandwidth)
            for link in target.path:  # sorted by name: the lock order every writer uses
                cur.execute("UPDATE links SET in_use_gold_bps = in_use_gold_bps + %s, "
                            "in_use_gold_silver_bps = in_use_gold_silver_bps + %s WHERE name = %s",
                            (new[0] - old[0], new[1] - old[1], link))
            cur.execute("INSERT INTO sls_history (sla_id, version, service_class, bandwidth_bps, effective_from, "
                        "principal, channel, fee_cents) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (target.sla_id, version, service_class, bandwidth, now, who, "rest", 10))
            payload = _event_payload(target, version, service_class, bandwidth, (old_class, old_bandwidth))
            cur.execute("INSERT INTO events (at, type, subject, principal, payload) VALUES (%s, %s, %s, %s, %s)",
                        (now, "sls.changed", f"sla:{target.sla}", who, Json(payload)))

    def close(self) -> None:
        self.conn.close()


def anchor_changes(changer: RawChanger, workload: Workload, indexes: Sequence[int]) -> None:
    for index in indexes:
        service_class, bandwidth = workload.advance(index)
        changer.change(workload.targets[index], service_class, bandwidth)


# ---------------------------------------------------------------------------------------------- timing

def timed(threads: int, indexes: list[int], run: Callable[[int, list[int]], None]) -> float:
    """Seconds to run `indexes` split over `threads` threads by SLA (index % threads)."""
    if threads <= 1:
        with Stopwatch() as watch:
            run(0, indexes)
        return watch.seconds
    parts = [[i for i in indexes if i % threads == t] for t in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        barrier.wait()
        try:
            run(number, parts[number])
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    with Stopwatch() as watch:
        barrier.wait()
        for thread in workers:
            thread.join()
    if errors:
        raise errors[0]
    return watch.seconds


@dataclass
class Row:
    database: str
    threads: int
    changes: int
    service_per_s: list[float]  # one figure per repetition
    anchor_per_s: list[float]

    @property
    def service(self) -> float:
        return statistics.median(self.service_per_s)

    @property
    def anchor(self) -> float:
        return statistics.median(self.anchor_per_s)

    @property
    def ratio(self) -> float:
        return self.service / self.anchor


def bench_database(kind: str, url: str, make_changer: Callable[[], RawChanger], args: argparse.Namespace) -> list[Row]:
    service, workload, setup_s = setup(url, args.customers)
    print(f"[{kind}] provisioned {args.customers} customers/SLAs in {setup_s:.1f} s")
    start = 0

    def next_batch(count: int) -> list[int]:
        nonlocal start
        batch = workload.batch(count, start)
        start += count
        return batch

    warmup = min(100, args.changes)
    service_changes(service, workload, next_batch(warmup))
    changer = make_changer()
    anchor_changes(changer, workload, next_batch(warmup))
    changer.close()

    rows: list[Row] = []
    for threads in sorted({1, args.threads}):
        if threads < 1:
            continue
        row = Row(kind, threads, args.changes, [], [])
        for repetition in range(1, args.repeat + 1):  # alternate service and anchor, so drift hits both
            service_s = timed(threads, next_batch(args.changes),
                              lambda _n, part: service_changes(service, workload, part))
            changers = [make_changer() for _ in range(threads)]
            anchor_s = timed(threads, next_batch(args.changes),
                             lambda n, part: anchor_changes(changers[n], workload, part))
            for changer in changers:
                changer.close()
            row.service_per_s.append(args.changes / service_s)
            row.anchor_per_s.append(args.changes / anchor_s)
            print(f"[{kind}] {threads} thread(s) #{repetition}: service {args.changes / service_s:8.1f} changes/s "
                  f"({service_s:.2f} s), anchor {args.changes / anchor_s:8.1f} changes/s ({anchor_s:.2f} s)")
        rows.append(row)

    expected = args.customers + start  # one history entry per SLA creation and per change
    with service.database.read() as session:
        history = session.execute(text("SELECT count(*) FROM sls_history")).scalar_one()
    problems = service.audit(DOMAIN_MANAGER)
    print(f"[{kind}] check: {history} sls_history rows (expected {expected}); audit: "
          + ("clean" if not problems else f"{len(problems)} problem(s), first: {problems[0]}"))
    service.database.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=2000, help="timed SLS changes per measurement (default 2000)")
    parser.add_argument("--customers", type=int, default=1000, help="customers, one SLA each (default 1000)")
    parser.add_argument("--threads", type=int, default=8,
                        help="also measure with this many threads; 1 or 0: single-threaded only (default 8)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements per mode; the median is reported (default 3)")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")
    args = parser.parse_args()
    if args.changes < 1 or args.customers < 1 or args.repeat < 1:
        parser.error("--changes, --customers and --repeat must be at least 1")
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    unknown = set(kinds) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown database(s): {', '.join(sorted(unknown))}")

    print(f"before: {machine_note()}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="csmm-bench-") as tmp:
        if "sqlite" in kinds:
            path = str(Path(tmp) / "bench.sqlite3")
            rows += bench_database("sqlite", f"sqlite:///{path}", lambda: SqliteChanger(path), args)
        if "postgresql" in kinds:
            with postgres_server() as server:
                url = server.empty_database()
                dsn = psycopg_dsn(url)
                rows += bench_database("postgresql", url, lambda: PostgresChanger(dsn), args)

    print(f"after: {machine_note()}")
    print()
    print(f"SLS changes/s, {args.customers} customers, {args.changes} changes per measurement, "
          f"median of {args.repeat}; ratio = service/anchor")
    print(f"{'database':<11} {'threads':>7} {'service/s':>10} {'anchor/s':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row.database:<11} {row.threads:>7} {row.service:>10.1f} {row.anchor:>10.1f} {row.ratio:>7.3f}")


if __name__ == "__main__":
    main()
