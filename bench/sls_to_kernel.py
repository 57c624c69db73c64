"""SLS change through the service layer -> the router's kernel changed (issue 3, item 6d).

The controller runs in this process (service layer, southbound gRPC server on a unix socket);
`csmm-agent` for router edge1 of the demo runs in a namespace of its own. Each sample changes
acme-hq's SLS as the domain manager (alternating silver 6M / silver 5M: a rate change; with
--moves, gold 3M / silver 6M: a class move) and polls the kernel by netlink until a class with
the new rate shows (the rates are chosen so that no other class of the router has them). Anchor: the same change_sls call followed by one `tc class change` of the leaf —
what a controller that programmed the router itself, synchronously, would take at best.

Run as root:  .venv/bin/python bench/sls_to_kernel.py [--changes 100] [--moves]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.driver.netlink import Rtnl  # noqa: E402
from bench.common import machine_note  # noqa: E402
from controller.domain.catalog import load_catalog  # noqa: E402
from controller.domain.principal import DOMAIN_MANAGER, Channel  # noqa: E402
from controller.provisioning.apply import apply  # noqa: E402
from controller.provisioning.model import load_provisioning  # noqa: E402
from controller.service.layer import ServiceLayer  # noqa: E402
from controller.southbound.server import AgentListener, Southbound, start_server  # noqa: E402
from controller.store import migrate  # noqa: E402
from controller.store.database import Database  # noqa: E402

NS = f"csmm-b{os.getpid()}-edge1"
DEMO = ROOT / "labs" / "containerlab" / "gsb-provisioning.yaml"
BIN = Path(sys.executable).parent


def leaf_rates(rtnl: Rtnl, index: int) -> set[int]:
    return {c.rate_bps for c in rtnl.htb_classes(index).values()}


def wait_rate(rtnl: Rtnl, index: int, rate: int, timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while rate not in leaf_rates(rtnl, index):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"rate {rate} not in the kernel after {timeout} s")
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--moves", action="store_true", help="alternate silver/gold (class moves) instead of rates")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace of its own)")
    print(machine_note())
    work = Path(tempfile.mkdtemp(prefix="csmm-bench-"))
    database = Database(f"sqlite:///{work}/csmm.sqlite3")
    migrate.upgrade(database)
    service = ServiceLayer(database, load_catalog())
    apply(service, DOMAIN_MANAGER, load_provisioning(DEMO))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    southbound = Southbound(service, check_identity=False)
    socket_path = work / "agents.sock"
    server = asyncio.run_coroutine_threadsafe(  # keep the reference: a collected server stops serving
        start_server(southbound, AgentListener((f"unix:{socket_path}",), None)), loop).result()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    agent = None
    try:
        for dev, peer in (("eth1", "c1"), ("eth2", "a"), ("eth3", "g")):
            subprocess.run(["ip", "-n", NS, "link", "add", dev, "type", "veth", "peer", "name", peer], check=True)
            subprocess.run(["ip", "-n", NS, "link", "set", dev, "up"], check=True)
        agent = subprocess.Popen(["ip", "netns", "exec", NS, BIN / "csmm-agent", "--router-id", "edge1", "--controller",
                                  f"unix:{socket_path}", "--insecure-lab", "--state-dir", work / "agent"],
                                 stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "wb"))
        rtnl = Rtnl(NS)
        index = rtnl.ifindex("eth1")
        wait_rate(rtnl, index, 5_000_000, 30)
        sla = service.get_sla(DOMAIN_MANAGER, "acme-hq").id
        steps = [("gold", 3_000_000), ("silver", 6_000_000)] if args.moves else [("silver", 6_000_000), ("silver", 5_000_000)]
        ours, anchor = [], []
        for k in range(args.changes):
            cls, rate = steps[k % 2]
            started = time.perf_counter()
            service.change_sls(DOMAIN_MANAGER, sla, cls, rate, Channel.CLI)
            wait_rate(rtnl, index, rate)
            ours.append(time.perf_counter() - started)
        # anchor: the service-layer call plus one synchronous tc call of the same change
        for k in range(args.changes // 2):
            cls, rate = steps[k % 2]
            leaf = next(c for c in rtnl.htb_classes(index).values() if c.parent)   # any class below the root
            started = time.perf_counter()
            service.change_sls(DOMAIN_MANAGER, sla, cls, rate, Channel.CLI)
            subprocess.run(["tc", "-n", NS, "class", "change", "dev", "eth1", "parent", f"1:{leaf.parent:x}", "classid",
                            f"1:{leaf.minor:x}", "htb", "rate", f"{leaf.rate_bps}bit", "ceil", f"{leaf.ceil_bps}bit"],
                           check=True, capture_output=True)
            anchor.append(time.perf_counter() - started)
        ours.sort()
        p50, p99 = statistics.median(ours), ours[min(len(ours) - 1, int(len(ours) * 0.99))]
        a50 = statistics.median(anchor)
        what = "class move" if args.moves else "rate change"
        print(f"SLS {what} -> kernel, {len(ours)} changes: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
              f"max {ours[-1] * 1000:.1f} ms; anchor change_sls + tc class change p50 {a50 * 1000:.1f} ms "
              f"-> ratio {p50 / a50:.2f}")
        rtnl.close()
    except BaseException:
        sys.stderr.write((work / "agent.log").read_text()[-3000:])
        raise
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        subprocess.run(["ip", "netns", "del", NS], check=False)
        asyncio.run_coroutine_threadsafe(southbound.stop(), loop).result()
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result()
    print(machine_note())


if __name__ == "__main__":
    main()
