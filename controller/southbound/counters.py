"""From the agents' cumulative class counters to per-customer usage: deltas that are safe across
counter wrap, agent restarts, router reboots and classes that come and go. Pure functions.

The agent reports, per interface and class, cumulative 64-bit counters and the kernel's boot
epoch. A delta is taken against the previous sample (the "mark") of the same class:

* same epoch, value grew: the difference;
* same epoch, value fell, and the mark was in the top half of the 64-bit range: the counter
  wrapped (2^64 is reached only by a counter that ran for years) — the difference modulo 2^64;
* value fell otherwise, or the epoch changed: the class was re-created (a customer moved away and
  back, the router rebooted) and counts from zero — the whole new value is the delta;
* no mark: the first sample of a class seen for the first time counts from zero only if the class
  is newer than our last look at this router; otherwise (the controller was just installed, or a
  mark was lost) it only sets the mark, so traffic from before is never billed twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from csmm_proto import agent_pb2 as pb

WRAP = 2**64
ClassKey = tuple[str, str]    # (interface, class name)


@dataclass(frozen=True)
class Sample:
    boot_epoch: int
    octets: int
    packets: int
    drops: int


@dataclass(frozen=True)
class Delta:
    octets: int
    packets: int
    drops: int
    reset: bool = False        # the class counted from zero again (reported as a discontinuity)

    def __bool__(self) -> bool:
        return bool(self.octets or self.packets or self.drops)


def _one(previous: int, current: int) -> int | None:
    """current - previous for one counter, modulo 2^64 on a wrap; None when it was reset."""
    if current >= previous:
        return current - previous
    if previous >= WRAP // 2:
        return current + WRAP - previous
    return None


def delta(mark: Sample | None, sample: Sample, *, new_class: bool) -> Delta:
    """The traffic between `mark` and `sample`. `new_class`: the class did not exist at the
    router's previous report (so everything it counted is new)."""
    if mark is None:
        return Delta(sample.octets, sample.packets, sample.drops, reset=True) if new_class else Delta(0, 0, 0)
    if mark.boot_epoch == sample.boot_epoch:
        parts = (_one(mark.octets, sample.octets), _one(mark.packets, sample.packets), _one(mark.drops, sample.drops))
        if None not in parts:
            octets, packets, drops = parts
            return Delta(octets, packets, drops)  # type: ignore[arg-type]
    return Delta(sample.octets, sample.packets, sample.drops, reset=True)


def customer_leaf(class_name: str, members: tuple[str, ...] | list[str]) -> tuple[str, str] | None:
    """(SLA, service class) when `class_name` is one customer's own leaf ("gold/acme-hq"), else
    None: aggregates and transit leaves carry several customers and are counted at their edges."""
    service_class, _, owner = class_name.partition("/")
    if len(members) == 1 and owner == members[0]:
        return owner, service_class
    return None


class ClassRow(NamedTuple):
    interface: str
    class_name: str
    octets: int
    packets: int
    drops: int
    overlimits: int
    timestamp_ns: int


@dataclass(frozen=True)
class CounterReport:
    """One agent report, decoded: the class list and each counter as a numpy column in its order."""

    boot_epoch: int
    keys: list[ClassKey]
    octets: np.ndarray            # uint64
    packets: np.ndarray           # uint64
    drops: np.ndarray             # uint64
    overlimits: np.ndarray        # uint64
    timestamps_ns: np.ndarray     # int64

    def rows(self) -> Iterator[ClassRow]:
        """Class by class, as Python ints (for the per-class consumers: usage, metrics)."""
        columns = zip(self.octets.tolist(), self.packets.tolist(), self.drops.tolist(), self.overlimits.tolist(),
                      self.timestamps_ns.tolist())
        for (interface, class_name), values in zip(self.keys, columns):
            yield ClassRow(interface, class_name, *values)


class CounterFormatError(ValueError):
    pass


def decode_report(message: pb.Counters, keys: list[ClassKey]) -> CounterReport:
    """`message`'s columns, which follow `keys` (its own, or those of its layout sent earlier)."""
    columns = []
    for name, dtype in (("bytes", "<u8"), ("packets", "<u8"), ("drops", "<u8"), ("overlimits", "<u8"),
                        ("timestamp_ns", "<i8")):
        raw = getattr(message, name)
        if len(raw) != 8 * len(keys):
            raise CounterFormatError(f"counters column {name} holds {len(raw)} bytes, not 8 for each of "
                                     f"{len(keys)} classes of layout {message.layout}")
        columns.append(np.frombuffer(raw, dtype=dtype).astype(dtype[1:]))
    return CounterReport(message.boot_epoch, keys, *columns)
