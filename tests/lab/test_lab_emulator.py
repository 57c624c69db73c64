"""`csmm-lab` on a two-node topology of the test's own: what `up` builds, that `down` removes all
of it (namespaces, the bridge, the root-side veth ends, processes), a crashed `up` cleaned from its
state file, a failed `up` rolled back, and a namespace that is not the lab's left alone."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.lab.support import BIN, lab_leftovers, lab_unready, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_unready() is not None, reason=str(lab_unready()))]

MGMT = "198.18.65"       # the test's management /24


def _topology(directory: Path, name: str, *, b_exec: str = "ip addr add 198.18.66.2/30 dev eth1") -> Path:
    path = directory / f"{name}.clab.yml"
    path.write_text(f"""\
name: {name}
mgmt: {{network: t, ipv4-subnet: {MGMT}.0/24}}
topology:
  nodes:
    a:
      kind: linux
      mgmt-ipv4: {MGMT}.11
      env: {{GREETING: hello}}
      binds: [__clabNodeDir__/data:/srv/data]
      exec:
        - ip addr add 198.18.66.1/30 dev eth1
        - sh -c 'echo $GREETING > /srv/data/greeting'
      cmd: sleep 300
    b:
      kind: linux
      exec: ["{b_exec}"]
  links:
    - endpoints: ["a:eth1", "b:eth1"]
""")
    return path


def _lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "csmm-lab", *args], capture_output=True, text=True, check=False)


def test_up_builds_the_nodes_links_mgmt_exec_and_cmd_and_down_removes_all_of_it(tmp_path: Path) -> None:
    name = f"emu-t{os.getpid()}"
    up = _lab("up", str(_topology(tmp_path, name)))
    try:
        assert up.returncode == 0, up.stderr
        ns_a, ns_b = f"clab-{name}-a", f"clab-{name}-b"
        a_addresses = subprocess.run(["ip", "-n", ns_a, "-4", "-o", "addr"], capture_output=True, text=True).stdout
        assert f"{MGMT}.11/24" in a_addresses and "198.18.66.1/30" in a_addresses
        b_addresses = subprocess.run(["ip", "-n", ns_b, "-4", "-o", "addr"], capture_output=True, text=True).stdout
        assert f"{MGMT}.1/24" not in b_addresses and f"{MGMT}.2/24" in b_addresses   # next free after the gateway
        route = subprocess.run(["ip", "-n", ns_b, "route", "show", "default"], capture_output=True, text=True).stdout
        assert f"via {MGMT}.1" in route
        # exec ran with the node's env, the bind's container path written as its host path
        assert (tmp_path / f"clab-{name}" / "a" / "data" / "greeting").read_text() == "hello\n"
        status = _lab("status", "--lab", name).stdout
        assert "running (pid" in status.split("\na ", 1)[1].splitlines()[0]
        # the link: one veth pair, an end in each node under the link's interface name, up
        for ns in (ns_a, ns_b):
            link = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "eth1"], capture_output=True, text=True).stdout
            assert "veth" in subprocess.run(["ip", "-n", ns, "-d", "link", "show", "eth1"], capture_output=True,
                                            text=True).stdout and "LOWER_UP" in link
    finally:
        down = _lab("down", "--lab", name)
    assert down.returncode == 0, down.stderr
    assert lab_leftovers(name, MGMT) == []


def test_a_crashed_up_is_cleaned_from_its_state_file(tmp_path: Path) -> None:
    name = f"emu-c{os.getpid()}"
    # b's exec blocks, so `up` is killed half way: namespaces, bridge and a's cmd exist, up is not complete
    crashing = subprocess.Popen([BIN / "csmm-lab", "up", str(_topology(tmp_path, name, b_exec="sleep 30"))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    def blocked_in_b() -> str:
        return subprocess.run(["ip", "netns", "pids", f"clab-{name}-b"], capture_output=True, text=True).stdout.strip()
    wait_for("the half-built lab (b's exec running)", blocked_in_b, 15)
    os.killpg(crashing.pid, signal.SIGKILL)
    crashing.wait(10)
    assert lab_leftovers(name, MGMT) != []                     # what the crash left
    down = _lab("down", "--lab", name)
    assert down.returncode == 0, down.stderr
    assert lab_leftovers(name, MGMT) == []


def test_a_failing_exec_stops_up_names_the_node_and_command_and_leaves_nothing(tmp_path: Path) -> None:
    name = f"emu-f{os.getpid()}"
    up = _lab("up", str(_topology(tmp_path, name, b_exec="ip link set nosuchdev up")))
    assert up.returncode != 0
    assert "node b: exec `ip link set nosuchdev up` exited" in up.stderr
    assert lab_leftovers(name, MGMT) == []


def test_a_namespace_that_is_not_the_labs_is_refused_and_kept(tmp_path: Path) -> None:
    name = f"emu-n{os.getpid()}"
    foreign = f"clab-{name}-b"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        up = _lab("up", str(_topology(tmp_path, name)))
        assert up.returncode != 0 and f"{foreign} exist but are not this lab's" in up.stderr
        assert Path(f"/run/netns/{foreign}").exists()
        assert not Path(f"/run/csmm-lab/{name}.json").exists()
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=False)
