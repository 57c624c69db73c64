"""Shared pieces of the lab tests: the skip rule, namespaces of our own, kernel state as text.

Namespaces are named `csmm-t<pid>-<what>` for the run that made them; only those are removed
(after killing, by PID, whatever still runs inside them).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def lab_unready(*, nft: bool = False) -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, nftables)"
    for tool in ("ip", "tc", *(["nft"] if nft else [])):
        if shutil.which(tool) is None:
            return f"needs {tool} (./scripts/test installs iproute2 and nftables)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


def run(*command: str, netns: str | None = None, check: bool = True, text_input: str | None = None) -> str:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, input=text_input).stdout


def delete_namespace(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def namespace(what: str, *, veths: tuple[tuple[str, str], ...] = ()) -> Iterator[str]:
    """A namespace of our own with veth pairs (name, peer) inside it, up; removed afterwards."""
    name = f"csmm-t{os.getpid()}-{what}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        for dev, peer in veths:
            subprocess.run(["ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name", peer], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", peer, "up"], check=True)
        yield name
    finally:
        delete_namespace(name)
