"""`csmm-agent`: the router agent's command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from csmm_proto import agent_pb2 as pb

from agent import __version__, capabilities
from agent.kernel import Kernel
from agent.reconciler import Reconciler
from agent.session import SessionOptions, TlsFiles, keep_connected
from agent.state import StateStore

log = logging.getLogger("csmm.agent")

DESCRIPTION = """\
The CSMM router agent. It dials the controller (gRPC, one stream), applies the QoS config the
controller computes for this router to the kernel (tc HTB and nftables), repairs drift, and
streams per-class counters back. The last applied config is kept in --state-dir: restarted while
the controller is unreachable, the agent puts the router's QoS back as it was and keeps dialling.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="csmm-agent", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--router-id", required=True, help="this router's id in the controller's topology (e.g. edge1)")
    p.add_argument("--controller", required=True,
                   help="the controller's agent endpoint: HOST:PORT, or unix:/PATH for a socket file")
    p.add_argument("--ca", type=Path, help="CA certificate that signed the controller's certificate (mTLS)")
    p.add_argument("--cert", type=Path, help="this agent's certificate (its CN is the router id)")
    p.add_argument("--key", type=Path, help="this agent's private key")
    p.add_argument("--insecure-lab", action="store_true",
                   help="no TLS: only for a lab where the channel cannot be reached from outside")
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/csmm-agent"),
                   help="where the last applied config is kept (default: %(default)s)")
    p.add_argument("--reconcile-interval", type=float, default=5.0, metavar="SECONDS",
                   help="how often the kernel is checked for drift and repaired (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every kernel change")
    p.add_argument("--version", action="version", version=f"csmm-agent {__version__}")
    args = p.parse_args(argv)
    tls = (args.ca, args.cert, args.key)
    if args.insecure_lab and any(tls):
        p.error("--insecure-lab and --ca/--cert/--key exclude each other")
    if not args.insecure_lab and not all(tls):
        p.error("give --ca, --cert and --key (mTLS), or --insecure-lab for a plaintext lab channel")
    for path in (x for x in tls if x is not None):
        if not path.is_file():
            p.error(f"{path}: no such file")
    if args.reconcile_interval <= 0:
        p.error("--reconcile-interval must be positive")
    return args


def interfaces() -> tuple[pb.InterfaceInfo, ...]:
    """The router's interfaces as the kernel shows them (speed 0 where the link reports none)."""
    out = []
    for name in sorted(os.listdir("/sys/class/net")):
        base = Path("/sys/class/net") / name
        try:
            speed = int((base / "speed").read_text()) * 1_000_000
        except (OSError, ValueError):
            speed = 0
        up = (base / "operstate").read_text().strip() in ("up", "unknown") if (base / "operstate").exists() else False
        out.append(pb.InterfaceInfo(name=name, speed_bps=max(speed, 0), up=up))
    return tuple(out)


async def _drift_loop(reconciler: Reconciler, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            await asyncio.to_thread(reconciler.reconcile)


async def run(args: argparse.Namespace) -> None:
    caps = await asyncio.to_thread(capabilities.detect)
    log.info("csmm-agent %s for router %s; kernel has qdiscs %s, classifiers %s, nftables %s", __version__,
             args.router_id, ",".join(caps.qdiscs), ",".join(caps.classifiers), caps.nftables)
    kernel = Kernel()
    reconciler = Reconciler(kernel, StateStore(args.state_dir), capabilities.leaf_qdisc(caps))
    await asyncio.to_thread(reconciler.restore)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tls = None if args.insecure_lab else TlsFiles(args.ca, args.cert, args.key)
    options = SessionOptions(args.router_id, args.controller, tls, interfaces())
    try:
        await asyncio.gather(keep_connected(options, reconciler, caps, stop),
                             _drift_loop(reconciler, args.reconcile_interval, stop))
    finally:
        kernel.close()
        log.info("stopped; the router keeps its QoS")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
