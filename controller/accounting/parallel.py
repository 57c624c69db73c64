"""Computing a month of invoices on every CPU.

Charging is pure Python: 40,000 invoices are tens of seconds of one core. When the process may
fork safely (no other thread running: the `csmm` command, not `csmm serve`, whose gRPC and
asyncio threads must not be forked) and the batch is large, the customers are split into
contiguous chunks, and forked workers compute and store them, each through its own database
connections and each chunk in its own transaction (whole invoices only). Only a summary of each
invoice comes back: pickling the documents would cost about as much as computing them.
Otherwise the one chunk is done in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.accounting.service import Accounting
    from controller.domain.principal import Principal

PARALLEL_FROM = 2000   # customers; below this a fork costs more than it saves
CHUNKS_PER_WORKER = 5  # evens out the workers' loads; each chunk pays a few table scans

_worker: "Accounting | None" = None


def issue_in_parallel(accounting: "Accounting", principal: "Principal", month: str, at: datetime,
                      customer_ids: Sequence[int]) -> list[tuple[str, str, int, str]]:
    """Compute and store the month's invoices of `customer_ids`: (number, customer, total in
    cents, currency) of each one issued."""
    workers = min(os.cpu_count() or 1, 8)
    if len(customer_ids) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 or \
            "fork" not in multiprocessing.get_all_start_methods():
        return accounting.issue_chunk(principal, month, at, set(customer_ids))
    ordered = sorted(customer_ids)
    size = -(-len(ordered) // (workers * CHUNKS_PER_WORKER))
    chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_start_worker, initargs=(accounting,)) as pool:
        parts = pool.map(_issue, [(principal, month, at, chunk) for chunk in chunks], chunksize=1)
    return [item for part in parts for item in part]


def _start_worker(accounting: "Accounting") -> None:
    global _worker
    accounting.database.after_fork()   # the parent's pooled connections are not the child's
    _worker = accounting


def _issue(task: tuple["Principal", str, datetime, list[int]]) -> list[tuple[str, str, int, str]]:
    principal, month, at, customer_ids = task
    assert _worker is not None
    return _worker.issue_chunk(principal, month, at, set(customer_ids), (customer_ids[0], customer_ids[-1]))
