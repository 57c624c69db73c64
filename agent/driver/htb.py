"""Render a scheduler of the device-neutral config into Linux HTB, as lines for `tc -batch`.

Class names map to HTB minor ids that stay stable across configs (a class keeps its id while it
exists; new classes take the lowest free ids), so later diffs and make-before-break class moves
touch only what changed. Rates are in bit/s, as tc writes them.
"""

from __future__ import annotations

from collections.abc import Mapping

from csmm_proto import agent_pb2 as pb

MAJOR = 1                 # the HTB qdisc's handle: 1:
MIN_RATE_BPS = 8_000      # HTB needs a positive rate; a Bronze share can round to 0 with many customers
MIN_QUANTUM = 1_514       # one full Ethernet frame
MAX_QUANTUM = 60_000      # keeps the kernel's "quantum is big" warning away and latency fair


def allocate_minors(classes: list[pb.QosClass], previous: Mapping[str, int] | None = None) -> dict[str, int]:
    """Minor id per class name: kept from `previous` where the class still exists, else the
    lowest free id (from 1; the id 0 is the qdisc's own). An id `previous` gave a class that is
    going away is not reused in the same step: that class is deleted only after the switch
    (make-before-break), so both exist in the kernel for a moment."""
    previous = previous or {}
    names = [c.name for c in classes]
    minors = {name: previous[name] for name in names if name in previous}
    used = set(minors.values()) | set(previous.values())
    candidate = 1
    for name in sorted(n for n in names if n not in minors):
        while candidate in used:
            candidate += 1
        minors[name] = candidate
        used.add(candidate)
    return minors


def quantum_bytes(rate_bps: int) -> int:
    """Bytes served per round: a tenth of a second's worth at the class rate, within frame bounds."""
    return max(MIN_QUANTUM, min(MAX_QUANTUM, rate_bps // 8 // 10))


def classid(minor: int) -> str:
    return f"{MAJOR}:{minor:x}"


def full_build(device: str, scheduler: pb.Scheduler, minors: Mapping[str, int], *, qdisc_present: bool = False) -> list[str]:
    """`tc -batch` lines that build the whole tree on `device`, or rebuild it over an existing one
    (`qdisc_present`): `class replace` then changes only what differs. Parents come before children
    (the config lists them so). The kernel refuses to `replace` an HTB root qdisc in place ("Change
    operation not supported"), so the qdisc line is emitted only when there is none yet; the
    default class keeps its minor id across configs, so it never needs changing."""
    lines = [] if qdisc_present else [
        f"qdisc add dev {device} root handle {MAJOR}: htb default {minors[scheduler.default_leaf]:x}"]
    for cls in scheduler.classes:
        parent = f"{MAJOR}:" if not cls.parent else classid(minors[cls.parent])
        rate = max(cls.rate_bps, MIN_RATE_BPS)
        ceil = max(cls.ceil_bps, rate)
        lines.append(f"class replace dev {device} parent {parent} classid {classid(minors[cls.name])} "
                     f"htb rate {rate}bit ceil {ceil}bit prio {cls.priority} quantum {quantum_bytes(rate)}")
    return lines
