"""The agent's memory across restarts: the last config it applied and the HTB minor ids it chose.

With it, an agent restarted while the controller is unreachable puts back exactly the QoS the
router had (and, when the kernel still has it, changes nothing). Written atomically: a crash
mid-write leaves the previous file.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from csmm_proto import agent_pb2 as pb

from agent.desired import Minors

FILE = "applied.json"


@dataclass
class Saved:
    config: pb.DesiredConfig
    minors: Minors
    managed: list[str]        # devices whose root qdisc is ours (to remove it when no longer wanted)


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE

    def load(self) -> Saved | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        config = pb.DesiredConfig.FromString(base64.b64decode(data["config"]))
        return Saved(config, {d: dict(m) for d, m in data["minors"].items()}, list(data.get("managed", [])))

    def save(self, saved: Saved) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The config in its wire form (base64): at 10,000 customers a JSON rendering of it costs
        # ~0.3 s per change, the wire form ~1 ms. `csmm config show` is the readable view.
        data = {"version": saved.config.version, "fingerprint": saved.config.fingerprint,
                "config": base64.b64encode(saved.config.SerializeToString()).decode(),
                "minors": saved.minors, "managed": sorted(saved.managed)}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            # dumps, not dump: dump streams through the pure-Python encoder, ~10x slower at 10k classes
            f.write(json.dumps(data, separators=(",", ":")))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
