"""The containerlab lab (labs/containerlab/gsb.clab.yml) read against what it has to agree with:
the demo provisioning it hosts (gsb-provisioning.yaml) and the router image's default command.

Node properties are resolved as containerlab resolves them (the node's own value, else its
group's, else its kind's, else the defaults'; `exec`, `binds` and `env` add up), so a property
moved from one level to another is still checked where it takes effect.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.main import parse_args

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "labs" / "containerlab"
CLAB_FILE = LAB_DIR / "gsb.clab.yml"
PROVISIONING = LAB_DIR / "gsb-provisioning.yaml"
ROUTER_DOCKERFILE = LAB_DIR / "router" / "Dockerfile"
HOST_DOCKERFILE = LAB_DIR / "host" / "Dockerfile"

ADDRESS_RULE = ipaddress.ip_network("198.18.0.0/15")       # every lab address, management and data
ROUTER_IMAGE = "csmm/router:latest"
HOST_IMAGE = "csmm/host:latest"
AGENT_PORT = 50051
AGENT_FLAGS = {"--router-id", "--controller", "--ca", "--cert", "--key", "--state-dir"}
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\d.])")
SHELL_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

Interface = ipaddress.IPv4Interface
Network = ipaddress.IPv4Network


# --- the topology as containerlab resolves it --------------------------------------------------

@dataclass(frozen=True)
class Lab:
    """A containerlab topology file after containerlab's `$$` unescaping, with its precedence."""

    doc: dict[str, Any]

    @classmethod
    def load(cls, text: str) -> Lab:
        return cls(yaml.safe_load(text.replace("$$", "$")))

    @property
    def topology(self) -> dict[str, Any]:
        return self.doc["topology"]

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return {name: spec or {} for name, spec in self.topology["nodes"].items()}

    def _section(self, key: str) -> dict[str, Any]:
        return self.topology.get(key) or {}

    def kind(self, node: str) -> str | None:
        spec, defaults, groups = self.nodes[node], self._section("defaults"), self._section("groups")
        group_kinds = [(groups.get(group) or {}).get("kind") for group in (spec.get("group"), defaults.get("group"))]
        return next((kind for kind in (spec.get("kind"), *group_kinds, defaults.get("kind")) if kind), None)

    def group(self, node: str) -> str | None:
        kind = self.kind(node)
        kind_group = (self._section("kinds").get(kind) or {}).get("group") if kind else None
        return self.nodes[node].get("group") or kind_group or self._section("defaults").get("group")

    def levels(self, node: str) -> list[dict[str, Any]]:
        """The definitions that apply to `node`, most specific first."""
        group, kind = self.group(node), self.kind(node)
        return [self.nodes[node],
                (self._section("groups").get(group) or {}) if group else {},
                (self._section("kinds").get(kind) or {}) if kind else {},
                self._section("defaults")]

    def value(self, node: str, key: str) -> Any:
        return next((level[key] for level in self.levels(node) if level.get(key)), None)

    def listed(self, node: str, key: str) -> list[str]:
        """A list property: the defaults' entries first, then the kind's, the group's, the node's,
        each entry once."""
        merged: list[str] = []
        for level in reversed(self.levels(node)):
            merged += [item for item in level.get(key) or [] if item not in merged]
        return merged

    def env(self, node: str) -> dict[str, str]:
        merged: dict[str, str] = {}
        for level in reversed(self.levels(node)):
            merged.update({name: str(value) for name, value in (level.get("env") or {}).items()})
        return merged

    def binds(self, node: str) -> dict[str, tuple[str, str]]:
        """Container path -> (host path, options); a more specific level's bind replaces one to the
        same container path."""
        out: dict[str, tuple[str, str]] = {}
        for bind in self.listed(node, "binds"):
            source, target, *options = bind.split(":")
            out[target] = (source, ":".join(options))
        return out

    def peers(self) -> dict[str, str]:
        """Each link endpoint ("node:interface") -> the endpoint at the other end."""
        out: dict[str, str] = {}
        for link in self.topology["links"]:
            a, b = link["endpoints"]
            out[a], out[b] = b, a
        return out

    def commands(self, node: str) -> Iterator[list[str]]:
        yield from (shlex.split(command) for command in self.listed(node, "exec"))

    def addresses(self, node: str) -> dict[str, Interface]:
        """Interface -> the address the node's exec commands give it."""
        return {argv[5]: Interface(argv[3]) for argv in self.commands(node)
                if argv[:3] == ["ip", "addr", "add"] and argv[4] == "dev"}

    def routes(self, node: str) -> list[tuple[Network, ipaddress.IPv4Address]]:
        return [(Network(argv[3]), ipaddress.IPv4Address(argv[5])) for argv in self.commands(node)
                if argv[:3] == ["ip", "route", "add"] and argv[4] == "via"]

    def interfaces_up(self, node: str) -> set[str]:
        return {argv[3] for argv in self.commands(node) if argv[:3] == ["ip", "link", "set"] and argv[4:] == ["up"]}

    def forwards(self, node: str) -> bool:
        return any(argv[0] == "sysctl" and "net.ipv4.ip_forward=1" in argv for argv in self.commands(node))


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab.load(CLAB_FILE.read_text())


@pytest.fixture(scope="module")
def provisioning() -> dict[str, Any]:
    return yaml.safe_load(PROVISIONING.read_text())


def _routers(provisioning: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {router["id"]: router for router in provisioning["topology"]["routers"]}


def _slas(provisioning: dict[str, Any]) -> list[dict[str, Any]]:
    return [sla for customer in provisioning["customers"] for sla in customer["slas"]]


def _attachment(lab: Lab, port: str) -> tuple[str, str, Interface, Interface]:
    """A router port ("edge1:eth2") -> (host, host interface, router's address, host's address)."""
    router, interface = port.split(":")
    assert port in lab.peers(), f"{port} is not wired in {CLAB_FILE.name}"
    host, host_interface = lab.peers()[port].split(":")
    assert interface in lab.addresses(router), f"{port} has no address"
    assert host_interface in lab.addresses(host), f"{host}:{host_interface} has no address"
    return host, host_interface, lab.addresses(router)[interface], lab.addresses(host)[host_interface]


def _dockerfile_cmd(path: Path) -> list[str]:
    """The image's CMD, which must be the JSON-array (exec) form."""
    instructions = re.sub(r"\\\n", " ", path.read_text()).splitlines()
    commands = [line.strip()[3:].strip() for line in instructions if line.strip().upper().startswith("CMD ")]
    assert commands, f"{path} has no CMD"
    argv = json.loads(commands[-1])
    assert isinstance(argv, list) and all(isinstance(word, str) for word in argv), f"{path}: CMD is not a JSON array"
    return argv


def _expand(script: str, env: dict[str, str]) -> str:
    """What the container's shell makes of $NAME and ${NAME} with the node's environment."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"the command uses ${name}, which the node's env does not set"
        return env[name]
    return SHELL_VARIABLE.sub(value, script)


# --- the file as containerlab reads it ---------------------------------------------------------

def test_containerlab_expands_nothing_in_the_file_from_the_deploying_users_environment() -> None:
    text = CLAB_FILE.read_text()
    # containerlab expands $VAR and ${VAR} from its own environment before it parses the YAML;
    # `$$` is its escape for a `$` that the container's shell should expand.
    assert "$" not in text.replace("$$", ""), "a `$` that is not `$$`: containerlab would expand it"
    assert "{{" not in text, "containerlab renders the file as a Go template first"


def test_every_address_in_the_lab_is_inside_198_18_0_0_15() -> None:
    found = IPV4.findall(CLAB_FILE.read_text())
    assert len(found) > 50
    outside = [text for text in found if not ipaddress.ip_network(text, strict=False).subnet_of(ADDRESS_RULE)]
    assert outside == []


def test_management_addresses_are_distinct_and_on_the_management_subnet(lab: Lab) -> None:
    subnet = Network(lab.doc["mgmt"]["ipv4-subnet"])
    gateway = ipaddress.IPv4Address(lab.doc["mgmt"]["ipv4-gw"])
    addresses = [ipaddress.IPv4Address(lab.value(node, "mgmt-ipv4")) for node in lab.nodes]
    assert lab.doc["mgmt"]["network"] == "csmm-mgmt"
    assert (subnet, gateway) == (Network("198.18.0.0/24"), ipaddress.IPv4Address("198.18.0.1"))
    assert all(address in subnet and address != gateway for address in addresses)
    assert len(set(addresses)) == len(addresses)


def test_every_node_is_a_linux_container_of_the_router_or_the_host_image(lab: Lab) -> None:
    assert {node: lab.kind(node) for node in lab.nodes} == dict.fromkeys(lab.nodes, "linux")
    assert {lab.value(node, "image") for node in lab.nodes} == {ROUTER_IMAGE, HOST_IMAGE}


# --- the lab against the provisioning ----------------------------------------------------------

def test_every_provisioned_router_is_a_router_node_at_its_management_address(
        lab: Lab, provisioning: dict[str, Any]) -> None:
    routers = _routers(provisioning)
    router_nodes = {node for node in lab.nodes if lab.value(node, "image") == ROUTER_IMAGE}
    assert router_nodes == set(routers)
    assert {node: lab.value(node, "mgmt-ipv4") for node in router_nodes} == \
        {router_id: router["mgmt_address"] for router_id, router in routers.items()}


def test_every_provisioned_interface_is_a_link_endpoint_of_its_router_and_no_other_router_port_is(
        lab: Lab, provisioning: dict[str, Any]) -> None:
    provisioned = {f"{router_id}:{interface['name']}"
                   for router_id, router in _routers(provisioning).items() for interface in router["interfaces"]}
    wired = {endpoint for endpoint in lab.peers() if endpoint.split(":")[0] in _routers(provisioning)}
    assert wired == provisioned


def test_provisioned_core_links_and_egress_points_are_the_labs_links(lab: Lab, provisioning: dict[str, Any]) -> None:
    peers = lab.peers()
    for link in provisioning["topology"]["links"]:
        assert peers.get(link["a"]) == link["b"], f"link {link['name']} is not {link['a']} -- {link['b']} in the lab"
    for egress in provisioning["topology"]["egress"]:
        far_end = peers.get(egress["at"], ":").split(":")[0]
        assert lab.value(far_end, "image") == HOST_IMAGE, f"egress {egress['name']} leads to no host"


def test_customer_prefixes_are_the_subnets_of_their_hosts(lab: Lab, provisioning: dict[str, Any]) -> None:
    for sla in _slas(provisioning):
        host, _, router_address, host_address = _attachment(lab, f"{sla['router']}:{sla['interface']}")
        assert [str(host_address.network)] == sla["prefixes"], f"{sla['name']}: host {host} is {host_address}"
        assert router_address.network == host_address.network, f"{sla['name']}: router port {router_address}"


def test_every_host_routes_through_its_router_on_that_link(lab: Lab, provisioning: dict[str, Any]) -> None:
    ports = [f"{sla['router']}:{sla['interface']}" for sla in _slas(provisioning)]
    ports += [egress["at"] for egress in provisioning["topology"]["egress"]]
    for port in ports:
        host, host_interface, router_address, _ = _attachment(lab, port)
        routes = lab.routes(host)
        assert routes, f"{host} has no route toward the customers"
        assert {gateway for _, gateway in routes} == {router_address.ip}, f"{host}: {routes}"
        assert host_interface in lab.interfaces_up(host)


def _path(lab: Lab, source: str, destination: ipaddress.IPv4Address) -> list[str]:
    """The nodes a packet from `source` visits on its way to `destination`: longest prefix match
    on each node's connected networks and exec routes, over the links of the topology."""
    peers, node, path = lab.peers(), source, [source]
    for _ in range(16):
        if destination in {address.ip for address in lab.addresses(node).values()}:
            return path
        assert node == source or lab.forwards(node), f"{' -> '.join(path)}: {node} does not forward"
        connected = {address.network: (interface, None) for interface, address in lab.addresses(node).items()}
        candidates = [(network, gateway) for network, gateway in lab.routes(node) if destination in network]
        candidates += [(network, None) for network in connected if destination in network]
        assert candidates, f"{' -> '.join(path)}: {node} has no route to {destination}"
        _, gateway = max(candidates, key=lambda candidate: candidate[0].prefixlen)
        next_hop = gateway or destination
        interface = next((name for network, (name, _) in connected.items() if next_hop in network), None)
        assert interface in lab.interfaces_up(node), f"{node}: next hop {next_hop} is on no interface that is up"
        neighbour, neighbour_interface = peers[f"{node}:{interface}"].split(":")
        assert lab.addresses(neighbour).get(neighbour_interface, Interface("0.0.0.0/32")).ip == next_hop, \
            f"{node}: next hop {next_hop} is not {neighbour}:{neighbour_interface}"
        node = neighbour
        path.append(node)
    raise AssertionError(f"loop: {' -> '.join(path)}")


def test_every_host_reaches_every_other_host_over_the_data_links(lab: Lab) -> None:
    hosts = {node: next(iter(lab.addresses(node).values())).ip
             for node in lab.nodes if lab.value(node, "image") == HOST_IMAGE}
    assert len(hosts) == 6
    paths = {(source, target): _path(lab, source, address)
             for source in hosts for target, address in hosts.items() if source != target}
    assert paths[("acme", "internet")] == ["acme", "edge1", "core", "egress", "internet"]
    assert paths[("umbrella", "globex")] == ["umbrella", "edge2", "core", "edge1", "globex"]
    assert paths[("as64500", "initech")] == ["as64500", "egress", "core", "edge2", "initech"]


# --- the routers' command ----------------------------------------------------------------------

def test_routers_run_the_agent_with_mtls_under_their_own_router_id(
        lab: Lab, provisioning: dict[str, Any], tmp_path: Path) -> None:
    gateway = lab.doc["mgmt"]["ipv4-gw"]
    for router in _routers(provisioning):
        sh, dash_c, script = shlex.split(lab.value(router, "cmd"))
        assert (sh, dash_c) == ("sh", "-c")
        exec_, program, *argv = shlex.split(_expand(script, lab.env(router)))
        assert (exec_, program) == ("exec", "csmm-agent")   # the agent is the container's PID 1
        assert {word for word in argv if word.startswith("-")} == AGENT_FLAGS   # spelled out, no abbreviations

        # The files the command names come through the node's binds: from the lab CA made by
        # ./scripts/serve and `csmm ca issue var/pki ROUTER --role agent`, the CA's certificate and
        # the router's own certificate and key (never the CA key or another router's key), and a
        # state directory of its own.
        binds = lab.binds(router)
        pki = REPO / "var" / "pki"
        expected = {"/etc/csmm/pki/ca.pem": pki / "ca.pem", "/etc/csmm/pki/router.pem": pki / f"{router}.pem",
                    "/etc/csmm/pki/router.key": pki / f"{router}.key"}
        for target, source in expected.items():
            host, options = binds[target]
            assert (LAB_DIR / host.replace("__clabNodeName__", router)).resolve() == source and options == "ro"
        exposed = {(LAB_DIR / host.replace("__clabNodeName__", router)).resolve() for host, _ in binds.values()}
        assert pki not in exposed and pki / "ca.key" not in exposed
        assert binds["/var/lib/csmm-agent"][0].startswith("__clabNodeDir__/")
        issued, state = tmp_path / router / "pki", tmp_path / router / "state"
        issued.mkdir(parents=True)
        mounted: dict[str, Path] = {"/var/lib/csmm-agent": state}
        for target in expected:
            mounted[target] = issued / target.rsplit("/", 1)[1]
            mounted[target].write_text("")
        on_host = [str(mounted.get(word, word)) if word in mounted else
                   re.sub(r"^/var/lib/csmm-agent", str(state), word) for word in argv]

        args = parse_args(on_host)              # exits (fails the test) on an unknown flag or missing file
        assert args.router_id == router
        assert args.controller == f"{gateway}:{AGENT_PORT}"
        assert not args.insecure_lab and args.cert == issued / "router.pem" and args.key == issued / "router.key"
        assert args.state_dir == state


def test_the_router_image_starts_the_command_the_topology_gives_its_routers(
        lab: Lab, provisioning: dict[str, Any]) -> None:
    image_cmd = _dockerfile_cmd(ROUTER_DOCKERFILE)
    assert {router: shlex.split(lab.value(router, "cmd")) for router in _routers(provisioning)} == \
        dict.fromkeys(_routers(provisioning), image_cmd)


def test_the_host_image_keeps_its_container_running() -> None:
    assert _dockerfile_cmd(HOST_DOCKERFILE) == ["sleep", "infinity"]
