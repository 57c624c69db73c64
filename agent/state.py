"""The agent's memory across restarts: the last config it applied and the HTB minor ids it chose.

With it, an agent restarted while the controller is unreachable puts back exactly the QoS the
router had (and, when the kernel still has it, changes nothing). Written atomically: a crash
mid-write leaves the previous file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from csmm_proto import agent_pb2 as pb
from google.protobuf import json_format

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
        config = json_format.ParseDict(data["config"], pb.DesiredConfig())
        return Saved(config, {d: dict(m) for d, m in data["minors"].items()}, list(data.get("managed", [])))

    def save(self, saved: Saved) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"config": json_format.MessageToDict(saved.config), "minors": saved.minors, "managed": sorted(saved.managed)}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
