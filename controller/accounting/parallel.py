"""Computing a month of invoices on every CPU.

Charging is pure Python: 40,000 invoices are tens of seconds of one core. When the process may
fork safely (no other thread running: the `csmm` command, not `csmm serve`, whose gRPC and
asyncio threads must not be forked) and the batch is large, the customers are split into
contiguous chunks and computed by forked workers, each reading through its own database
connections; the caller stores the results in one transaction. Otherwise it runs in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.accounting.service import Accounting

PARALLEL_FROM = 2000   # customers; below this a fork costs more than it saves
CHUNKS_PER_WORKER = 3  # results arrive while the rest is computed; each chunk pays a few table scans

_worker: "Accounting | None" = None


def compute_in_parallel(accounting: "Accounting", month: str, at: datetime,
                        customer_ids: Sequence[int]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The computed invoices, a chunk at a time as workers finish them, so the caller can store
    one chunk while the next are computed."""
    workers = min(os.cpu_count() or 1, 8)
    if len(customer_ids) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 or \
            "fork" not in multiprocessing.get_all_start_methods():
        yield accounting.issue_documents(month, at, set(customer_ids))
        return
    ordered = sorted(customer_ids)
    size = -(-len(ordered) // (workers * CHUNKS_PER_WORKER))
    chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_start_worker, initargs=(accounting,)) as pool:
        yield from pool.imap_unordered(_compute, [(month, at, chunk) for chunk in chunks])


def _start_worker(accounting: "Accounting") -> None:
    # The parent's pooled connections must not be shared with a child: open fresh ones.
    global _worker
    accounting.database.engine.dispose(close=False)
    _worker = accounting


def _compute(task: tuple[str, datetime, list[int]]) -> list[tuple[str, dict[str, Any]]]:
    month, at, customer_ids = task
    assert _worker is not None
    return _worker.issue_documents(month, at, set(customer_ids), (customer_ids[0], customer_ids[-1]))
