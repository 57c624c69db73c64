"""The agent's HTB driver against the real kernel: a veth in a network namespace of our own gets
exactly the tree the mapping function computed for the demo's core uplink (`tc class show`)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from agent.driver.htb import MIN_RATE_BPS, allocate_minors, classid, full_build
from controller.domain.principal import DOMAIN_MANAGER
from controller.service.layer import ServiceLayer
from controller.southbound.wire import config_message
from tests.lab.support import lab_unready

_UNITS = {"bit": 1, "Kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9}


pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_unready() is not None, reason=str(lab_unready()))]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace named for this run, with a veth pair v0/v1 inside; removed afterwards."""
    name = f"csmm-t{os.getpid()}-htb"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                        ["link", "set", "v0", "up"], ["link", "set", "v1", "up"]):
            subprocess.run(["ip", "-n", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _kernel_classes(namespace: str, device: str) -> dict[str, tuple[str, int, int]]:
    """classid -> (parent, rate bit/s, ceil bit/s), from `tc class show`."""
    out = subprocess.run(["tc", "-n", namespace, "class", "show", "dev", device], check=True,
                         capture_output=True, text=True).stdout
    classes = {}
    for line in out.splitlines():
        match = re.match(r"class htb (\S+) (?:root|parent (\S+)).* rate (\d+)(\w+) ceil (\d+)(\w+)", line)
        assert match, line
        cid, parent, rate, rate_unit, ceil, ceil_unit = match.groups()
        classes[cid] = (parent or "1:", int(rate) * _UNITS[rate_unit], int(ceil) * _UNITS[ceil_unit])
    return classes


def test_the_kernel_gets_the_demo_core_uplink_tree(demo: ServiceLayer, namespace: str) -> None:
    config = config_message(demo.router_configs(DOMAIN_MANAGER)["core"], 1)
    (uplink,) = [i for i in config.interfaces if i.name == "eth3"]
    scheduler = uplink.scheduler
    minors = allocate_minors(list(scheduler.classes))
    for present in (False, True):  # build, then rebuild over the existing tree: no error, same result
        lines = full_build("v0", scheduler, minors, qdisc_present=present)
        subprocess.run(["tc", "-n", namespace, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
    kernel = _kernel_classes(namespace, "v0")
    expected = {classid(minors[c.name]): ("1:" if not c.parent else classid(minors[c.parent]),
                                          max(c.rate_bps, MIN_RATE_BPS), max(c.ceil_bps, c.rate_bps, MIN_RATE_BPS))
                for c in scheduler.classes}
    assert kernel == expected
