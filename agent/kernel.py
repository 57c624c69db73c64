"""The agent's hands on the kernel: tc HTB by netlink (or `tc -batch` for many changes at once),
nftables through libnftables. Reads back what is there in the same terms the plans use."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

from agent.driver.netlink import ClassStats, NetlinkError, Rtnl
from agent.driver.nft import Nft, NftState
from agent.plan import HtbPlan
from agent.reconcile import HtbOp

log = logging.getLogger("csmm.agent.kernel")

# Above this many HTB operations one `tc -batch` run beats a netlink request each (a full build of
# thousands of classes); below it, netlink avoids starting a process.
BATCH_THRESHOLD = 64


@dataclass
class OpFailure:
    op: HtbOp
    message: str


class Kernel:
    """One router's kernel. `netns` is for tests and benchmarks that drive a namespace from
    outside; the agent itself runs inside its router and passes None."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.rtnl = Rtnl(netns)
        self.nft = Nft(netns)
        self._ifindex: dict[str, int] = {}

    def close(self) -> None:
        self.rtnl.close()

    def ifindex(self, device: str) -> int:
        if device not in self._ifindex:
            self._ifindex[device] = self.rtnl.ifindex(device)
        return self._ifindex[device]

    def forget_devices(self) -> None:
        """Interfaces may have been re-created (new ifindex): look them up again."""
        self._ifindex.clear()

    # ------------------------------------------------------------------------------------ reading

    def read_htb(self, devices: Iterable[str]) -> dict[str, HtbPlan | None]:
        """Our HTB tree (root 1:) on each device, None where there is none. A missing device
        raises NetlinkError."""
        out: dict[str, HtbPlan | None] = {}
        for device in devices:
            index = self.ifindex(device)
            default = self.rtnl.htb_root(index)
            out[device] = None if default is None else HtbPlan(default, self.rtnl.htb_classes(index))
        return out

    def read_nft(self) -> NftState:
        return self.nft.read()

    def class_stats(self, device: str) -> dict[int, ClassStats]:
        return self.rtnl.class_stats(self.ifindex(device))

    # ------------------------------------------------------------------------------------ writing

    def run_htb(self, ops: list[HtbOp]) -> list[OpFailure]:
        if not ops:
            return []
        if len(ops) > BATCH_THRESHOLD:
            return self._run_batch(ops)
        failures = []
        for op in ops:
            try:
                self._run_one(op)
            except NetlinkError as error:
                failures.append(OpFailure(op, str(error)))
        return failures

    def _run_one(self, op: HtbOp) -> None:
        index = self.ifindex(op.device)
        if op.action == "add-root":
            self.rtnl.add_htb_root(index, op.default_minor)
        elif op.action == "delete-root":
            self.rtnl.delete_root_qdisc(index)
        elif op.action == "delete":
            assert op.cls is not None
            self.rtnl.delete_class(index, op.cls.minor)
        elif op.action == "leaf-qdisc":
            assert op.cls is not None
            self.rtnl.add_leaf_qdisc(index, op.cls.minor, op.leaf_qdisc)
        else:
            assert op.cls is not None
            self.rtnl.set_htb_class(index, op.cls, create=op.action == "add")

    def _run_batch(self, ops: list[HtbOp]) -> list[OpFailure]:
        """`tc -batch` with -force goes on after a failing line and names it on stderr."""
        started = time.perf_counter()
        command = ["tc", *(["-n", self.netns] if self.netns else []), "-force", "-batch", "-"]
        result = subprocess.run(command, input="".join(op.tc_line() + "\n" for op in ops), text=True, capture_output=True)
        log.debug("tc -batch: %d lines in %.1f ms", len(ops), (time.perf_counter() - started) * 1000)
        if result.returncode == 0:
            return []
        failures = []
        for line in result.stderr.splitlines():
            # "Command failed -:12" follows the kernel's message for line 12
            if line.startswith("Command failed -:"):
                number = int(line.rsplit(":", 1)[1])
                failures.append(OpFailure(ops[number - 1], result.stderr.strip().splitlines()[0]))
        return failures or [OpFailure(ops[0], result.stderr.strip() or "tc -batch failed")]

    def run_nft(self, commands: list[dict]) -> None:
        if commands:
            self.nft.run(commands)
