"""The agent's side of the protocol: dial the controller, hold one Session stream, apply what
arrives, stream counters and heartbeats; on any failure, wait (exponential backoff with jitter)
and dial again. The kernel keeps its QoS meanwhile: nothing here ever clears it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from csmm_proto import agent_pb2 as pb
from csmm_proto import agent_pb2_grpc
from csmm_proto.counters import encode as encode_counters

from agent import __version__
from agent.reconciler import Reconciler

log = logging.getLogger("csmm.agent.session")

KEEPALIVE = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
             ("grpc.keepalive_permit_without_calls", 1)]
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
DEFAULT_COUNTER_INTERVAL_S, DEFAULT_HEARTBEAT_INTERVAL_S = 1.0, 5.0


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


@dataclass(frozen=True)
class SessionOptions:
    router_id: str
    controller: str            # "host:port" or "unix:/path/to.sock"
    tls: TlsFiles | None       # None only with --insecure-lab
    interfaces: tuple[pb.InterfaceInfo, ...] = ()


def open_channel(options: SessionOptions) -> grpc.aio.Channel:
    if options.tls is None:
        return grpc.aio.insecure_channel(options.controller, options=KEEPALIVE)
    credentials = grpc.ssl_channel_credentials(root_certificates=options.tls.ca.read_bytes(),
                                               private_key=options.tls.key.read_bytes(),
                                               certificate_chain=options.tls.certificate.read_bytes())
    return grpc.aio.secure_channel(options.controller, credentials, options=KEEPALIVE)


def boot_epoch() -> int:
    """The kernel's boot time: counters held by the kernel are continuous until it changes (an
    agent restart does not reset them, a reboot does)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


class Session:
    """One connection's worth of work. `run()` returns when the stream ends."""

    def __init__(self, options: SessionOptions, reconciler: Reconciler, capabilities: pb.KernelCapabilities) -> None:
        self.options = options
        self.reconciler = reconciler
        self.capabilities = capabilities
        self.counter_interval = DEFAULT_COUNTER_INTERVAL_S
        self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL_S
        self.got_config = False
        self._outbox: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()

    def _hello(self) -> pb.AgentMessage:
        held = self.reconciler.config
        return pb.AgentMessage(hello=pb.Hello(
            router_id=self.options.router_id, agent_version=__version__, capabilities=self.capabilities,
            interfaces=list(self.options.interfaces), boot_epoch=boot_epoch(),
            applied_version=held.version if held else 0, applied_fingerprint=held.fingerprint if held else ""))

    async def _outgoing(self) -> AsyncIterator[pb.AgentMessage]:
        yield self._hello()
        while True:
            yield await self._outbox.get()

    async def run(self) -> None:
        async with open_channel(self.options) as channel:
            call = agent_pb2_grpc.AgentServiceStub(channel).Session(self._outgoing())
            timers = [asyncio.create_task(self._send_counters()), asyncio.create_task(self._send_heartbeats())]
            try:
                async for message in call:
                    await self._handle(message)
            finally:
                for task in timers:
                    task.cancel()

    async def _handle(self, message: pb.ControllerMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "config":
            self.got_config = True
            result = await asyncio.to_thread(self.reconciler.apply_config, message.config)
            await self._outbox.put(pb.AgentMessage(apply_result=result))
        elif kind == "diff":
            result = await asyncio.to_thread(self.reconciler.apply_diff, message.diff)
            await self._outbox.put(pb.AgentMessage(apply_result=result))
        elif kind == "parameters":
            p = message.parameters
            self.counter_interval = p.counter_interval_ms / 1000 if p.counter_interval_ms else DEFAULT_COUNTER_INTERVAL_S
            self.heartbeat_interval = (p.heartbeat_interval_ms / 1000 if p.heartbeat_interval_ms
                                       else DEFAULT_HEARTBEAT_INTERVAL_S)
            log.info("counters every %.3g s, heartbeats every %.3g s", self.counter_interval, self.heartbeat_interval)

    async def _send_counters(self) -> None:
        epoch = boot_epoch()
        layout, keys = 0, None   # this session's class list: sent again only when it changes
        while True:
            await asyncio.sleep(self.counter_interval)
            classes = await asyncio.to_thread(self.reconciler.counters)
            if not classes:
                continue
            now_keys = [(c.interface, c.class_name) for c in classes]
            changed = now_keys != keys
            if changed:
                layout, keys = layout + 1, now_keys
            await self._outbox.put(pb.AgentMessage(counters=encode_counters(epoch, layout, classes,
                                                                            with_keys=changed)))

    async def _send_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self._outbox.put(pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_ns=time.time_ns())))


async def keep_connected(options: SessionOptions, reconciler: Reconciler, capabilities: pb.KernelCapabilities,
                         stop: asyncio.Event) -> None:
    """Dial, serve the session, back off, dial again — until `stop`."""
    delay = BACKOFF_FIRST_S
    while not stop.is_set():
        session = Session(options, reconciler, capabilities)
        started = time.monotonic()
        runner = asyncio.create_task(session.run())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return
        stopper.cancel()
        error = runner.exception()
        if isinstance(error, grpc.aio.AioRpcError):
            log.warning("controller %s: %s %s", options.controller, error.code().name, error.details())
        elif error is not None:
            log.error("session failed: %r", error)
        else:
            log.warning("controller %s closed the session", options.controller)
        if session.got_config or time.monotonic() - started > 10:
            delay = BACKOFF_FIRST_S   # it worked for a while: start the backoff again
        wait = delay * random.uniform(0.8, 1.2)
        log.info("reconnecting in %.1f s", wait)
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, BACKOFF_MAX_S)
