"""Shared pieces of the benchmarks: the benchmark network, generated customers, databases.

The network: E edge routers, each with K access interfaces and one core uplink, one core router
and one egress router with an egress point "internet". Every SLA's path is therefore three links
(edgeN-core, core-egress, internet). Core and egress capacity is large enough that admission
never refuses the benchmark's SLAs; the loads are still counted and checked on every write.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so that `tests.postgres` (and `controller`) import from the checkout
    sys.path.insert(0, str(ROOT))

from controller.store import migrate  # noqa: E402
from controller.store.database import Database  # noqa: E402

CUSTOMER_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range
# Explicit SLA bounds, like the demo provisioning file (labs/containerlab/gsb-provisioning.yaml).
BOUNDS = {"gold": {"min": "1M", "max": "10M"}, "silver": {"min": "1M", "max": "20M"},
          "bronze": {"min": "1M", "max": "20M"}}


def topology_entry(edges: int, access_per_edge: int, core_capacity: str) -> dict[str, Any]:
    """The benchmark network as a provisioning-file `topology` entry."""
    routers: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for e in range(1, edges + 1):
        interfaces = [{"name": "up", "role": "core", "capacity": core_capacity}]
        interfaces += [{"name": f"acc{k}", "role": "access", "capacity": "1G"} for k in range(1, access_per_edge + 1)]
        routers.append({"id": f"edge{e}", "mgmt_address": f"198.18.0.{10 + e}", "interfaces": interfaces})
        links.append({"name": f"edge{e}-core", "a": f"edge{e}:up", "b": f"core:e{e}"})
    routers.append({"id": "core", "mgmt_address": "198.18.0.2", "interfaces": [
        *({"name": f"e{e}", "role": "core", "capacity": core_capacity} for e in range(1, edges + 1)),
        {"name": "up", "role": "core", "capacity": core_capacity}]})
    routers.append({"id": "egress", "mgmt_address": "198.18.0.3", "interfaces": [
        {"name": "down", "role": "core", "capacity": core_capacity},
        {"name": "out", "role": "peering", "capacity": core_capacity}]})
    links.append({"name": "core-egress", "a": "core:up", "b": "egress:down"})
    return {"class_shares": {"gold": "0.30", "gold_silver": "0.80"}, "routers": routers, "links": links,
            "egress": [{"name": "internet", "at": "egress:out"}]}


def customer_name(i: int) -> str:
    return f"cust{i:06d}"


def sla_name(i: int) -> str:
    return f"cust{i:06d}-sla"


def customer_prefix(i: int) -> str:
    """A /32 of its own for customer i (up to 131,072 customers)."""
    if i >= CUSTOMER_RANGE.num_addresses:
        raise ValueError(f"at most {CUSTOMER_RANGE.num_addresses} customers fit in {CUSTOMER_RANGE}")
    return f"{CUSTOMER_RANGE.network_address + i}/32"


def customers_entry(count: int, edges: int, access_per_edge: int,
                    extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` customers with one gsb-business SLA each, spread over the edges' access interfaces
    (SLAs may share an access interface; only interfaces carrying a link are refused)."""
    customers = []
    for i in range(count):
        sla = {"name": sla_name(i), "offering": "gsb-business", "router": f"edge{i % edges + 1}",
               "interface": f"acc{(i // edges) % access_per_edge + 1}", "access_speed": "20M",
               "prefixes": [customer_prefix(i)], "bounds": BOUNDS, "state": "operational",
               "sls": {"class": "silver", "bandwidth": "5M"}, **(extra or {})}
        customers.append({"name": customer_name(i), "display_name": f"Customer {i}", "slas": [sla]})
    return customers


def migrated(url: str) -> Database:
    database = Database(url)
    migrate.upgrade(database)
    return database


@contextmanager
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server (tests/postgres.py), stopped and removed afterwards."""
    from tests.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def psycopg_dsn(sqlalchemy_url: str) -> str:
    """The libpq form of a postgresql+psycopg:// URL."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    return f"host={url.host} port={url.port} user={url.username} dbname={url.database}"


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.start


def machine_note() -> str:
    """CPUs and load average: other work on the machine skews every figure."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"
