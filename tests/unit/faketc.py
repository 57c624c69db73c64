"""A fake tc table (the FAUCET way): applies `tc -batch` lines to an in-memory HTB model and
refuses anything the kernel would refuse, or that would make the tree inconsistent."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_QDISC = re.compile(r"^qdisc add dev (\S+) root handle (\d+): htb default ([0-9a-f]+)$")
_CLASS = re.compile(r"^class replace dev (\S+) parent (\d+:[0-9a-f]*) classid (\d+:[0-9a-f]+) htb "
                    r"rate (\d+)bit ceil (\d+)bit prio (\d) quantum (\d+)$")


@dataclass
class HtbClass:
    classid: str
    parent: str
    rate_bps: int
    ceil_bps: int
    prio: int
    quantum: int


@dataclass
class Device:
    major: int
    default_minor: int
    classes: dict[str, HtbClass] = field(default_factory=dict)


class FakeTcError(Exception):
    pass


class FakeTc:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}

    def batch(self, lines: list[str]) -> None:
        for line in lines:
            self.apply(line)
        for name, device in self.devices.items():
            if f"{device.major}:{device.default_minor:x}" not in device.classes:
                raise FakeTcError(f"{name}: default class {device.default_minor:x} does not exist")

    def apply(self, line: str) -> None:
        if match := _QDISC.match(line):
            dev, major, default = match.groups()
            if dev in self.devices:
                raise FakeTcError(f"{dev}: a root qdisc exists already (the kernel answers 'File exists')")
            self.devices[dev] = Device(int(major), int(default, 16))
        elif match := _CLASS.match(line):
            dev, parent, cid, rate, ceil, prio, quantum = match.groups()
            device = self.devices.get(dev)
            if device is None:
                raise FakeTcError(f"{dev}: class before qdisc: {line}")
            if not cid.startswith(f"{device.major}:") or cid.endswith(":0"):
                raise FakeTcError(f"{dev}: classid {cid} not under qdisc {device.major}:")
            if parent != f"{device.major}:" and parent not in device.classes:
                raise FakeTcError(f"{dev}: parent {parent} of {cid} does not exist")
            if int(rate) <= 0 or int(ceil) < int(rate):
                raise FakeTcError(f"{dev}: {cid} needs 0 < rate <= ceil")
            device.classes[cid] = HtbClass(cid, parent, int(rate), int(ceil), int(prio), int(quantum))
        else:
            raise FakeTcError(f"not a command the driver may emit: {line!r}")

    def children(self, dev: str, parent: str) -> list[HtbClass]:
        return [c for c in self.devices[dev].classes.values() if c.parent == parent]
