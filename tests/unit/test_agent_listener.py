"""The agents' listener waits for an address that is not on this machine yet (a lab's management
bridge) instead of failing; anything else (a port in use) is gRPC's to report."""

from __future__ import annotations

import asyncio
import socket

from controller.southbound.server import AgentListener, AgentServers, _address_state

ABSENT = "198.18.77.1"   # in the lab range, and on no interface of a test machine


class _Southbound:
    started = False

    async def start(self) -> None:
        self.started = True


def test_an_address_of_no_interface_is_absent_and_loopback_or_a_busy_port_are_present() -> None:
    assert _address_state(f"{ABSENT}:50051") == "absent"
    assert _address_state("127.0.0.1:50051") == "present"
    assert _address_state("unix:/run/csmm/agents.sock") == "present"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert _address_state(f"127.0.0.1:{busy.getsockname()[1]}") == "present"


def test_an_absent_address_is_waited_for_not_an_error() -> None:
    async def scenario() -> tuple[list[str], list[str], bool]:
        southbound = _Southbound()
        servers = AgentServers(southbound, AgentListener((f"{ABSENT}:50051",), None))  # type: ignore[arg-type]
        await servers.start()
        try:
            return list(servers.bound), list(servers.pending), southbound.started
        finally:
            await servers.stop(grace=0)
    assert asyncio.run(scenario()) == ([], [f"{ABSENT}:50051"], True)
