"""The router's QoS state machine: holds the desired config, applies snapshots and diffs from the
controller, repairs drift, restores the last config after a restart, and reads counters.

All kernel work goes through one lock: the session (configs from the controller), the drift
timer and the counter timer call in from different threads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from csmm_proto import agent_pb2 as pb
from csmm_proto.configs import apply_diff, fingerprint
from csmm_proto.counters import ClassCount

from agent.desired import Minors, check_config, class_names, kernel_plan
from agent.driver.netlink import NetlinkError
from agent.driver.nft import NftError, NftState, element_commands, full_commands
from agent.kernel import Kernel
from agent.plan import HtbPlan, KernelPlan, NftPlan
from agent.reconcile import htb_steps
from agent.state import Saved, StateStore

log = logging.getLogger("csmm.agent")


@dataclass
class Believed:
    """What the kernel holds after our last successful apply (so a diff needs no kernel read)."""

    htb: dict[str, HtbPlan | None]
    nft: dict[str, NftPlan] | None      # None: our nftables table is not as we left it (rebuild it whole)


@dataclass
class Outcome:
    changes: int = 0
    errors: list[pb.ApplyError] = field(default_factory=list)


class Reconciler:
    def __init__(self, kernel: Kernel, store: StateStore, leaf_qdisc: str | None = None) -> None:
        self.kernel = kernel
        self.store = store
        self.leaf_qdisc = leaf_qdisc
        self.config: pb.DesiredConfig | None = None
        self.minors: Minors = {}
        self.managed: set[str] = set()
        self._plan: KernelPlan | None = None
        self._believed: Believed | None = None
        # Held for every use of the kernel: applies, drift repair and counter reads share one
        # netlink socket, and two threads reading it at once take each other's replies (one then
        # waits for ever).
        self._lock = threading.Lock()

    # --------------------------------------------------------------------------------- the config

    def restore(self) -> bool:
        """Put back the last applied config (before the controller is reached). True if there was one."""
        saved = self.store.load()
        if saved is None:
            return False
        self.minors, self.managed = saved.minors, set(saved.managed)
        result = self.apply_config(saved.config)
        log.info("restored config version %d (%s): %s", saved.config.version, saved.config.fingerprint,
                 "ok" if result.ok else f"{len(result.errors)} errors")
        return True

    def apply_config(self, config: pb.DesiredConfig) -> pb.ApplyResult:
        """A full snapshot: compared with what the kernel has now, not with what we believe."""
        with self._lock:
            problems = check_config(config)
            if fingerprint(config) != config.fingerprint:
                problems.append(pb.ApplyError(item="fingerprint", message=f"config content has fingerprint "
                                              f"{fingerprint(config)}, message says {config.fingerprint}"))
            if problems:
                return self._result(config, Outcome(errors=problems))
            return self._converge_to(config, believed=False)

    def apply_diff(self, change: pb.ConfigDiff) -> pb.ApplyResult:
        with self._lock:
            if self.config is None or self.config.version != change.base_version:
                held = "nothing" if self.config is None else f"version {self.config.version}"
                return self._refused(change, "base_version", f"diff is against version {change.base_version}, "
                                     f"the agent holds {held}: send a snapshot")
            try:
                config = apply_diff(self.config, change)
            except KeyError as error:
                return self._refused(change, "interfaces", str(error))
            if fingerprint(config) != change.fingerprint:
                return self._refused(change, "fingerprint", f"config after the diff has fingerprint "
                                     f"{fingerprint(config)}, diff says {change.fingerprint}: send a snapshot")
            return self._converge_to(config, believed=True)

    def reconcile(self) -> int:
        """Drift check: compare the kernel with the config and repair. Returns the changes made."""
        with self._lock:
            if self.config is None or self._plan is None:
                return 0
            outcome = self._converge(self._plan, believed=False)
            if outcome.changes:
                log.warning("drift repaired: %d changes to put the kernel back to config version %d",
                            outcome.changes, self.config.version)
            for error in outcome.errors:
                log.error("drift repair failed on %s %s: %s", error.interface, error.item, error.message)
            return outcome.changes

    # ----------------------------------------------------------------------------------- counters

    def counters(self) -> list[ClassCount]:
        read = []
        with self._lock:
            names = class_names(self.minors)
            for device in list(self._plan.htb()) if self._plan else []:
                try:
                    read.append((device, self.kernel.class_stats(device), time.time_ns()))
                except NetlinkError as error:
                    log.warning("counters of %s: %s", device, error)
        out = []
        for device, stats, now in read:
            for minor, s in sorted(stats.items()):
                name = names.get(device, {}).get(minor)
                if name is not None:
                    out.append(ClassCount(device, name, s.bytes, s.packets, s.drops, s.overlimits, now))
        return out

    # ----------------------------------------------------------------------------------- internals

    def _converge_to(self, config: pb.DesiredConfig, *, believed: bool) -> pb.ApplyResult:
        plan, minors = kernel_plan(config, self.minors, self.leaf_qdisc)
        outcome = self._converge(plan, believed=believed)
        if not outcome.errors:
            self.config, self.minors, self._plan = config, minors, plan
            self.managed = set(plan.htb())
            self.store.save(Saved(config, minors, sorted(self.managed)))
            log.info("config version %d (%s) applied: %d kernel changes", config.version, config.fingerprint,
                     outcome.changes)
        return self._result(config, outcome)

    def _converge(self, plan: KernelPlan, *, believed: bool) -> Outcome:
        outcome = Outcome()
        want_htb = plan.htb()
        devices = sorted(set(want_htb) | self.managed)
        have = self._believed if believed and self._believed is not None else self._read(devices, outcome)
        if have is None:
            return outcome
        steps = {d: htb_steps(d, want_htb.get(d), have.htb.get(d)) for d in devices if d in have.htb}
        self._run_htb([op for d in steps for op in steps[d].before], outcome)
        want_nft = plan.nft()   # `iifname`/`oifname` rules need no device: a missing one is no error here
        self._run_nft(have.nft, want_nft, outcome)
        self._run_htb([op for d in steps for op in steps[d].after], outcome)
        self._believed = None if outcome.errors else Believed({d: want_htb.get(d) for d in have.htb}, want_nft)
        return outcome

    def _read(self, devices: list[str], outcome: Outcome) -> Believed | None:
        htb: dict[str, HtbPlan | None] = {}
        self.kernel.forget_devices()
        for device in devices:
            try:
                htb.update(self.kernel.read_htb([device]))
            except NetlinkError as error:
                outcome.errors.append(pb.ApplyError(interface=device, item="interface", message=str(error)))
        try:
            nft: NftState = self.kernel.read_nft()
        except NftError as error:
            outcome.errors.append(pb.ApplyError(item="nftables", message=str(error)))
            return None
        return Believed(htb, nft.plans if nft.intact else None)

    def _run_htb(self, ops: list, outcome: Outcome) -> None:  # type: ignore[type-arg]
        failures = self.kernel.run_htb(ops)
        outcome.changes += len(ops) - len(failures)
        names = class_names(self.minors)
        for failure in failures:
            cls = failure.op.cls
            item = names.get(failure.op.device, {}).get(cls.minor, f"1:{cls.minor:x}") if cls else failure.op.action
            outcome.errors.append(pb.ApplyError(interface=failure.op.device, item=item, message=failure.message))

    def _run_nft(self, have: dict[str, NftPlan] | None, want: dict[str, NftPlan], outcome: Outcome) -> None:
        if have == want:
            return
        commands = element_commands(have, want) if have is not None else None
        if commands is None:
            commands = full_commands(want)
        try:
            self.kernel.run_nft(commands)
            outcome.changes += 1
        except NftError as error:
            outcome.errors.append(pb.ApplyError(item="nftables", message=str(error)))

    def _result(self, config: pb.DesiredConfig, outcome: Outcome) -> pb.ApplyResult:
        held = self.config.fingerprint if self.config is not None else ""
        ok = not outcome.errors
        return pb.ApplyResult(version=config.version, fingerprint=config.fingerprint if ok else held, ok=ok,
                              errors=outcome.errors)

    def _refused(self, change: pb.ConfigDiff, item: str, message: str) -> pb.ApplyResult:
        log.warning("diff to version %d refused: %s", change.version, message)
        held = self.config.fingerprint if self.config is not None else ""
        return pb.ApplyResult(version=change.version, fingerprint=held, ok=False,
                              errors=[pb.ApplyError(item=item, message=message)])
