"""Protocol rules for Counters, which both ends must agree on: one little-endian 64-bit value per
class in each column, in the order of the report's class list (its layout).

A layout is sent once per session (the first report after it changed, or after a reconnect);
later reports carry only its number and the columns. The agent uses `encode` (stdlib only: the
agent does not depend on numpy); the controller reads the columns with numpy (southbound.counters).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from csmm_proto import agent_pb2 as pb


class ClassCount(NamedTuple):
    """One class as the agent read it from the kernel."""

    interface: str
    class_name: str
    bytes: int
    packets: int
    drops: int
    overlimits: int
    timestamp_ns: int


def column(values: Sequence[int], *, signed: bool = False) -> bytes:
    """`values` as little-endian 64-bit integers."""
    packed = array("q" if signed else "Q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def encode(boot_epoch: int, layout: int, classes: Sequence[ClassCount], *, with_keys: bool) -> pb.Counters:
    """One report; `with_keys`: include the class list (the receiver does not know `layout` yet)."""
    message = pb.Counters(boot_epoch=boot_epoch, layout=layout,
                          bytes=column([c.bytes for c in classes]), packets=column([c.packets for c in classes]),
                          drops=column([c.drops for c in classes]), overlimits=column([c.overlimits for c in classes]),
                          timestamp_ns=column([c.timestamp_ns for c in classes], signed=True))
    if with_keys:
        message.keys.extend(pb.ClassKey(interface=c.interface, class_name=c.class_name) for c in classes)
    return message
