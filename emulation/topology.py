"""Read a containerlab topology file (`*.clab.yml`) the way containerlab reads it, strictly, into the
values the netns emulator deploys. Pure: no kernel, no subprocess; `load_topology` only reads the file.

What containerlab does, and where it says so (srl-labs/containerlab; docs at containerlab.dev):

* Reading: the file is a Go template (rendered first), then `${VAR}` expansion with hellt/envsubst
  (`BytesRestrictedNoReplace(..., noUnset=false, noEmpty=false, noReplace=true, noDigit=true)`),
  then `yaml.UnmarshalStrict` (yaml.v2): unknown keys and duplicate keys are errors, and a scalar read
  into a string keeps its source text (`FOO: 0755` stays "0755", `yes` stays "yes", `~` is "").
  [core/file.go LoadTopologyFromFile; gopkg.in/yaml.v2 decode.go; hellt/envsubst parse/*_test.go;
  docs/manual/topo-def-file.md "Environment variables"]
  Expansion: `$V`/`${V}` -> value, left as written when V is unset; `${V:-d}`/`${V:=d}` -> d when V
  is unset or empty; `${V-d}`/`${V=d}` -> d when unset; `${V+o}`/`${V:+o}` -> o when set, else "";
  `$$` -> `$`; `$1`/`${1}` are left alone.
* Precedence node > group > kind > defaults [types/topology.go, GetNode*]:
  `image`, `cmd`: the most specific non-empty value replaces the others.
  `env`, `labels`: maps merged key by key, the more specific value wins.
  `exec`: lists concatenated, defaults + kind + group + node, nothing removed.
  `binds`: merged by container path, the more specific bind replaces the other
  [GetNodeBinds; docs/manual/nodes.md "binds"].
  `kind`: node, else its group's, else the group of `defaults.group`, else `defaults.kind`;
  `group`: node, else its kind's entry, else `defaults.group` [GetNodeKind, GetNodeGroup].
  `mgmt-ipv4` is read from the node only [core/config.go createNodeCfg].
* Names: container `clab-<lab>-<node>`; `prefix: P` -> `P-<lab>-<node>`; `prefix: __lab-name` ->
  `<lab>-<node>`; `prefix: ""` -> `<node>`; absent or null -> `clab` [core/config.go createNodeCfg,
  parseTopology; docs/manual/topo-def-file.md "Prefix"]. The lab directory is `clab-<lab>` whatever the
  prefix, next to the topology file or under `$CLAB_LABDIR_BASE` [types/topo_paths.go SetLabDirByPrefix].
  `containerlab deploy --name N` replaces the file's `name` before anything is derived from it
  [cmd/options.go toClabOptions: WithTopoPath, then WithTopologyName].
* Binds `HOST:CONTAINER[:MODE]`: magic variables `__clabDir__` (the lab directory), `__clabNodeDir__`
  (`<lab dir>/<node>`) and `__clabNodeName__` are replaced in the host path, then a relative host path
  is joined to the topology file's directory [core/config.go resolveBindPaths, magicVarReplacer;
  utils ResolvePath]. The same variables are replaced in `exec` commands [processNodeExecs].
* Links [links/link.go, link_brief.go, link_veth.go, endpoint_raw.go; docs topo-def-file.md "Links"]:
  brief `endpoints: ["a:eth1", "b:eth1"]`; extended `type: veth` with `endpoints: [{node, interface,
  mac}, ...]`; both take `mtu`, `vars`, `labels`. A brief endpoint on `host`, `mgmt-net` or `macvlan`
  is that link type. Other types: host, mgmt-net, macvlan, vxlan, vxlan-stitch, dummy. Unset `mtu` is
  9500 in containerlab (`DefaultLinkMTU`); here `Link.mtu` is None then, and the deployer decides.
* Management [types/types.go MgmtNet; core/clab.go initMgmtNetwork; schemas/clab.schema.json]: keys
  network, bridge, ipv4-subnet, ipv4-gw, ipv4-range, ipv6-*, mtu, external-access, driver-opts.
  containerlab's default is network `clab`, 172.20.20.0/24.

What this emulator does differently:

* Management addresses: 198.18.0.0/24 with gateway 198.18.0.1 when the file sets no `ipv4-subnet`,
  not containerlab's 172.20.20.0/24 (our lab address rule: everything lab-side inside 198.18.0.0/15).
  An `ipv4-subnet` must lie inside 198.18.0.0/15; `ipv4-gw` defaults to the subnet's first host.
* Only `kind: linux`, veth links and the keys listed in the tables below; every other key containerlab
  knows is refused with the reason, any key it does not know is refused as unknown. Go template
  actions (`{{`) are refused: render the file first.
* `Node.env` is what the file declares; containerlab also adds `CLAB_LABEL_*` and `no_proxy` variables
  at deploy time. `topology.nodes` is ordered by name, as containerlab indexes nodes.
"""

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LAB_ADDRESS_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
DEFAULT_MGMT_NETWORK = "clab"                      # containerlab's default network name
DEFAULT_MGMT_SUBNET = ipaddress.IPv4Network("198.18.0.0/24")
DEFAULT_MGMT_GATEWAY = ipaddress.IPv4Address("198.18.0.1")
CONTAINERLAB_MGMT_SUBNET = ipaddress.IPv4Network("172.20.20.0/24")   # what containerlab would use
CONTAINERLAB_LINK_MTU = 9500                       # containerlab's MTU for a link without `mtu`
MANAGEMENT_INTERFACE = "eth0"
IFNAME_MAX_BYTES = 15                              # IFNAMSIZ 16, with the terminating NUL
NETNS_NAME_MAX_BYTES = 255                         # iproute2 ipnetns.c: NAME_MAX

_DEFAULT_PREFIX = "clab"
_LAB_NAME_PREFIX = "__lab-name"
_LAB_DIR_PREFIX = "clab-"
# Docker's container-name rule: containerlab names a container after the node (with the prefix).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]*")
_MAGIC = re.compile(r"__clabDir__|__clabNodeDir__|__clabNodeName__")


class TopologyError(ValueError):
    """The topology file cannot be deployed here; `path` names the place (`topology.nodes.edge1.ports`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Bind:
    host: Path            # absolute, magic variables replaced
    container: str        # absolute path as the node's processes would see it in a container
    mode: str             # "rw" | "ro"


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    image: str | None
    group: str | None
    cmd: str | None
    exec: tuple[str, ...]
    env: dict[str, str]
    binds: tuple[Bind, ...]     # ordered by container path: a parent directory before what is inside it
    mgmt_ipv4: str | None
    labels: dict[str, str]
    namespace: str              # what containerlab names the node's container


@dataclass(frozen=True)
class Endpoint:
    node: str
    interface: str


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int | None             # None: not set in the file (containerlab would use CONTAINERLAB_LINK_MTU)


@dataclass(frozen=True)
class Mgmt:
    network: str
    ipv4_subnet: ipaddress.IPv4Network
    ipv4_gw: ipaddress.IPv4Address


@dataclass(frozen=True)
class Topology:
    name: str
    prefix: str | None          # as written; None when absent (containerlab then uses "clab")
    mgmt: Mgmt
    nodes: dict[str, Node]
    links: tuple[Link, ...]
    directory: Path             # the topology file's directory
    lab_dir: Path               # containerlab's lab directory, clab-<name>


# --- what is supported where, and why the rest is not ----------------------------------------------

def _unsupported(why: str) -> str:
    return f"not supported by the netns emulator ({why})"


_TOP_KEYS = frozenset({"name", "prefix", "mgmt", "topology"})
_TOP_REFUSED = {
    "settings": _unsupported("lab settings configure containerlab's certificate authority; no certificates "
                             "are issued here"),
    "debug": _unsupported("a containerlab command-line switch, not a lab setting"),
}
_TOPOLOGY_KEYS = frozenset({"defaults", "kinds", "groups", "nodes", "links"})

_MGMT_KEYS = frozenset({"network", "ipv4-subnet", "ipv4-gw"})
_IPV6 = "the management network is IPv4 only here; IPv6 is off in the node namespaces"
_NOT_DOCKER = "the management network is a plain Linux bridge here, not a Docker network"
_MGMT_REFUSED = {
    "bridge": _unsupported("the emulator creates and names its own management bridge per lab"),
    "ipv4-range": _unsupported("management addresses are assigned from the whole ipv4-subnet"),
    "ipv6-subnet": _unsupported(_IPV6),
    "ipv6-gw": _unsupported(_IPV6),
    "ipv6-range": _unsupported(_IPV6),
    "mtu": _unsupported("the management veths keep the kernel's default MTU"),
    "external-access": _unsupported("no iptables rules are installed for the management network"),
    "driver-opts": _unsupported(_NOT_DOCKER),
    "driver": _unsupported(_NOT_DOCKER),
    "macvlan-parent": _unsupported(_NOT_DOCKER),
    "macvlan-mode": _unsupported(_NOT_DOCKER),
    "macvlan-aux": _unsupported(_NOT_DOCKER),
    "ipv4_subnet": _unsupported("the deprecated spelling of ipv4-subnet; write ipv4-subnet"),
    "ipv6_subnet": _unsupported(_IPV6),
}

_NO_CONTAINER = "there is no container here: a node is a network namespace running host processes"
_NO_RUNTIME = "there is no container runtime here: a node is a network namespace running host processes"
_STARTUP_CONFIG = "startup configurations are loaded by NOS kinds; configure a linux node with exec"
_LIMITS = "resource limits are cgroup settings of a container; none are applied to a namespace"
_STAGES = "stages and wait-for need containerlab's dependency manager; nodes are deployed in one pass here"
_NODE_REFUSED = {
    "type": _unsupported("a type selects a variant of a NOS kind; kind linux has none"),
    "startup-config": _unsupported(_STARTUP_CONFIG),
    "enforce-startup-config": _unsupported(_STARTUP_CONFIG),
    "suppress-startup-config": _unsupported(_STARTUP_CONFIG),
    "startup-delay": _unsupported("nodes are started in one pass; there is no delayed container start"),
    "auto-remove": _unsupported(_NO_CONTAINER),
    "restart-policy": _unsupported(_NO_RUNTIME),
    "config": _unsupported("containerlab's configuration engine (templates, vars) is not part of the emulator"),
    "image-pull-policy": _unsupported("there are no images to pull: node processes see the host's files"),
    "license": _unsupported("licenses are mounted into NOS containers; " + _NO_CONTAINER),
    "position": _unsupported("a layout hint for containerlab's graph; the emulator draws no graph"),
    "entrypoint": _unsupported("there is no image whose entrypoint could be replaced; use cmd"),
    "devices": _unsupported("devices are mapped into a container; node processes see the host's devices"),
    "cap-add": _unsupported("capabilities of a container; node processes run with the deployer's privileges"),
    "shm-size": _unsupported("/dev/shm of a container; " + _NO_CONTAINER),
    "ports": _unsupported("containerlab publishes container ports; there is no container here"),
    "publish": _unsupported("publishing ports through border0 needs containerlab's integration"),
    "mgmt-ipv6": _unsupported(_IPV6),
    "env-files": _unsupported("env files are not read; write the variables under env"),
    "user": _unsupported("node processes run as the deploying user; there is no container user"),
    "network-mode": _unsupported("every node gets its own namespace with eth0 on the management bridge; "
                                 "host, container: and none modes are not emulated"),
    "sandbox": _unsupported("an ignite VM option; " + _NO_RUNTIME),
    "kernel": _unsupported("an ignite VM option; " + _NO_RUNTIME),
    "runtime": _unsupported(_NO_RUNTIME),
    "cpu": _unsupported(_LIMITS),
    "cpu-set": _unsupported(_LIMITS),
    "memory": _unsupported(_LIMITS),
    "sysctls": _unsupported("no sysctls are set for a node; set them with exec (sysctl -w)"),
    "extras": _unsupported("kind-specific extras belong to NOS kinds"),
    "stages": _unsupported(_STAGES),
    "wait-for": _unsupported(_STAGES),
    "dns": _unsupported("node processes use the host's resolver; there is no container resolv.conf"),
    "certificate": _unsupported("containerlab's certificate authority is not part of the emulator"),
    "healthcheck": _unsupported("a Docker healthcheck needs a container"),
    "aliases": _unsupported("network aliases are names on a Docker management network"),
    "components": _unsupported("components are line cards of multi-component NOS kinds"),
}
_COMMON_KEYS = frozenset({"image", "cmd", "exec", "env", "binds", "labels"})
# Which node keys each level takes. The others are refused: a key containerlab ignores at a level
# would look like a setting and do nothing.
_LEVEL_KEYS = {
    "defaults": _COMMON_KEYS | {"kind", "group"},
    "kind": _COMMON_KEYS | {"group"},
    "group": _COMMON_KEYS | {"kind"},
    "node": _COMMON_KEYS | {"kind", "group", "mgmt-ipv4"},
}
_MGMT_IPV4_IGNORED = "ignored by containerlab here: it reads mgmt-ipv4 only from a node's own definition"
_LEVEL_IGNORED = {
    "defaults": {"mgmt-ipv4": _MGMT_IPV4_IGNORED},
    "kind": {"mgmt-ipv4": _MGMT_IPV4_IGNORED,
             "kind": "ignored by containerlab here: the entry's key is its kind"},
    "group": {"mgmt-ipv4": _MGMT_IPV4_IGNORED,
              "group": "ignored by containerlab here: a group's own group is never read"},
    "node": {},
}
_IMPORT_ENVS = "__IMPORT_ENVS"
_IMPORT_ENVS_REFUSED = _unsupported("it copies the deploying shell's whole environment into the node; "
                                    "name the variables under env, with ${VAR} for values from the shell")

_SUPPORTED_KIND = "linux"
_OTHER_KINDS = ("only kind linux: a node is a network namespace running host processes, "
                "not a network OS container")

_LINK_KEYS = frozenset({"type", "endpoints", "mtu"})
_LINK_TEMPLATING = "used by containerlab's templating and graphs; the emulator has no use for it"
_LINK_REFUSED = {"vars": _unsupported(_LINK_TEMPLATING), "labels": _unsupported(_LINK_TEMPLATING)}
_ENDPOINT_KEYS = frozenset({"node", "interface"})
_ENDPOINT_REFUSED = {
    "mac": _unsupported("an endpoint carries no MAC address: the kernel picks one, as containerlab "
                        "generates one when mac is absent"),
}
_OTHER_LINK_TYPES = {
    "host": "a veth to the host namespace is not emulated; nodes reach the host over the management bridge",
    "mgmt-net": "an extra veth on the management network is not emulated",
    "macvlan": "a macvlan on a host interface would attach the lab to a physical network",
    "vxlan": "tunnels to a remote VTEP on another machine are not emulated",
    "vxlan-stitch": "tunnels to a remote VTEP on another machine are not emulated",
    "dummy": "dummy interfaces are not created by the emulator; add one with exec (ip link add NAME type dummy)",
}
_VETH_TYPES = ("veth", "brief")     # containerlab accepts `type: brief` for the brief format too


# --- reading -----------------------------------------------------------------------------------------

def load_topology(path: Path, *, name: str | None = None, environ: Mapping[str, str] | None = None) -> Topology:
    """Read the topology file at `path`.

    Args:
        path: the `*.clab.yml` file.
        name: the lab name to use instead of the file's `name` (`containerlab deploy --name`).
        environ: the variables `${VAR}` expands from; the process environment when None.

    Raises:
        TopologyError: the file cannot be read, or describes what the emulator does not deploy.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TopologyError(str(path), f"cannot read the topology file: {error}") from None
    directory = Path(os.path.abspath(path)).parent     # containerlab: filepath.Abs, symlinks kept
    return parse_topology(text, directory=directory, name=name,
                          environ=os.environ if environ is None else environ)


def parse_topology(text: str, *, directory: Path, name: str | None = None,
                   environ: Mapping[str, str] | None = None) -> Topology:
    """Parse topology `text` as if it were a file in `directory` (absolute).

    `environ` is empty when None, so that a test does not depend on the shell it runs in.

    Raises:
        TopologyError: as `load_topology`.
    """
    if not directory.is_absolute():
        raise ValueError(f"directory must be absolute, got {directory}")
    environ = {} if environ is None else environ
    _refuse_template(text)
    document = _parse_yaml(expand_variables(text, environ))
    root = _mapping(document, "(top level)")
    _check_keys(root, "", _TOP_KEYS, _TOP_REFUSED)
    lab_name = _lab_name(root, name)
    prefix = _prefix(root)
    lab_dir = _lab_dir(directory, lab_name, environ)
    mgmt = _mgmt(root.get("mgmt"))
    if root.get("topology") is None:
        raise TopologyError("topology", "missing: the file defines no nodes")
    section = _mapping(root["topology"], "topology")
    _check_keys(section, "topology", _TOPOLOGY_KEYS, {})
    nodes = _nodes(section, lab_name, prefix, lab_dir, directory)
    _check_mgmt_addresses(nodes, mgmt)
    links = _links(section.get("links"), nodes)
    return Topology(lab_name, prefix, mgmt, nodes, links, directory, lab_dir)


def _refuse_template(text: str) -> None:
    at = text.find("{{")
    if at >= 0:
        raise TopologyError(_line(text, at), "a Go template action `{{`: containerlab renders the file as a Go "
                                             "template first; the emulator does not, render it beforehand")


def _line(text: str, at: int) -> str:
    number = text.count("\n", 0, at) + 1
    return f"line {number}"


class _TopologyLoader(yaml.SafeLoader):
    """SafeLoader that reads every scalar but null as its text and refuses duplicate keys, as
    containerlab's yaml.v2 `UnmarshalStrict` into string fields does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                        key_node.start_mark)
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# Keep only the null and merge-key resolvers: `0755`, `yes`, `1.50` and dates stay the text written.
_TopologyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_TopologyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        raise TopologyError("(file)", f"not valid YAML: {error}") from None


# --- ${VAR} expansion, as hellt/envsubst with containerlab's restrictions ----------------------------

_BRACED = re.compile(r"([^\W\d]\w*)(?:(:?[-=+])(.*))?", re.DOTALL)
_PLAIN_VARIABLE = re.compile(r"\$([^\W\d]\w*)")


def expand_variables(text: str, environ: Mapping[str, str]) -> str:
    """`text` with `$VAR`, `${VAR}` and `${VAR<op>word}` expanded from `environ` (see the module text)."""
    out: list[str] = []
    at = 0
    while at < len(text):
        dollar = text.find("$", at)
        if dollar < 0:
            out.append(text[at:])
            break
        out.append(text[at:dollar])
        piece, at = _expand_one(text, dollar, environ)
        out.append(piece)
    return "".join(out)


def _expand_one(text: str, dollar: int, environ: Mapping[str, str]) -> tuple[str, int]:
    """The expansion of the `$` at `dollar`, and where scanning goes on."""
    following = text[dollar + 1:dollar + 2]
    if following == "$":
        return "$", dollar + 2
    if following == "{":
        return _expand_braced(text, dollar, environ)
    match = _PLAIN_VARIABLE.match(text, dollar)
    if match is None or match.group(1) == "_":      # `$1`, `$_`, a lone `$`: text
        return "$", dollar + 1
    name = match.group(1)
    return environ.get(name, match.group(0)), match.end()


def _expand_braced(text: str, dollar: int, environ: Mapping[str, str]) -> tuple[str, int]:
    if text[dollar + 2:dollar + 3].isdecimal():     # `${1}`: text, as `$1`
        return "${", dollar + 2
    close = text.find("}", dollar)
    newline = text.find("\n", dollar)
    if close < 0 or 0 <= newline < close:
        raise TopologyError(_line(text, dollar), "`${` without a closing `}` on the same line")
    written = text[dollar:close + 1]
    match = _BRACED.fullmatch(text, dollar + 2, close)
    if match is None:
        raise TopologyError(_line(text, dollar), f"bad substitution {written!r}")
    name, operator, word = match.groups()
    if name == "_":
        return written, close + 1
    return _substitute(name, operator, word, written, environ, _line(text, dollar)), close + 1


def _substitute(name: str, operator: str | None, word: str | None, written: str,
                environ: Mapping[str, str], where: str) -> str:
    if operator is None:
        return environ.get(name, written)          # unset: left as written (envsubst's noReplace)
    assert word is not None
    other = _word(word, environ, where)
    if operator in (":-", ":="):
        return environ.get(name) or other
    if operator in ("-", "="):
        return environ[name] if name in environ else other
    return other if name in environ else ""        # "+" and ":+" alike, as envsubst does


def _word(word: str, environ: Mapping[str, str], where: str) -> str:
    """The default/alternative of a substitution: text, or one `$VAR`."""
    if "$" not in word:
        return word
    match = _PLAIN_VARIABLE.fullmatch(word)
    if match is None:
        raise TopologyError(where, f"substitution word {word!r}: only plain text or a single $VAR is supported")
    return environ.get(match.group(1), "")


# --- generic checks ----------------------------------------------------------------------------------

def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{value!r}"


def _mapping(value: object, path: str) -> dict[str, object]:
    """A mapping with string keys; null reads as an empty mapping (as in yaml.v2)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError(path, f"expected a mapping, got {_describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise TopologyError(path, f"key {key!r} is not a string")
    return value


def _list(value: object, path: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TopologyError(path, f"expected a list, got {_describe(value)}")
    return value


def _text(value: object, path: str) -> str:
    """A string setting; null is "" (unset), as Go's zero value."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TopologyError(path, f"expected a string, got {_describe(value)}")
    return value


def _check_keys(mapping: Mapping[str, object], path: str, supported: Iterable[str],
                refused: Mapping[str, str]) -> None:
    supported = frozenset(supported)
    for key in mapping:
        if key in supported:
            continue
        where = _join(path, key)
        if key in refused:
            raise TopologyError(where, refused[key])
        close = difflib.get_close_matches(key, [*supported, *refused], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TopologyError(where, f"unknown key{hint} (supported here: {', '.join(sorted(supported))})")


# --- lab name, prefix, directories, management --------------------------------------------------------

def _lab_name(root: Mapping[str, object], override: str | None) -> str:
    path = "name (--name)" if override is not None else "name"
    lab_name = override if override is not None else _text(root.get("name"), "name")
    if not lab_name:
        raise TopologyError(path, "missing: containerlab names the containers and the lab directory after it")
    if not _NAME.fullmatch(lab_name):
        raise TopologyError(path, f"{lab_name!r}: use letters, digits, '_', '.' and '-', starting with a "
                                  "letter or digit (it becomes part of container and namespace names)")
    return lab_name


def _prefix(root: Mapping[str, object]) -> str | None:
    value = root.get("prefix")
    if value is None:
        return None
    prefix = _text(value, "prefix")
    if prefix != _LAB_NAME_PREFIX and not _PREFIX.fullmatch(prefix):
        raise TopologyError("prefix", f"{prefix!r}: use letters, digits, '_', '.' and '-' (it starts every "
                                      "container and namespace name)")
    return prefix


def namespace_name(prefix: str | None, lab_name: str, node: str) -> str:
    """What containerlab names the node's container, and so the emulator the node's namespace."""
    if prefix is None:
        prefix = _DEFAULT_PREFIX
    if prefix == "":
        return node
    if prefix == _LAB_NAME_PREFIX:
        return f"{lab_name}-{node}"
    return f"{prefix}-{lab_name}-{node}"


def _lab_dir(directory: Path, lab_name: str, environ: Mapping[str, str]) -> Path:
    base = environ.get("CLAB_LABDIR_BASE", "")
    if not base:
        return directory / f"{_LAB_DIR_PREFIX}{lab_name}"
    if not os.path.isabs(base):
        raise TopologyError("CLAB_LABDIR_BASE", f"{base!r}: must be an absolute directory")
    return Path(base) / f"{_LAB_DIR_PREFIX}{lab_name}"


def _mgmt(value: object) -> Mgmt:
    mgmt = _mapping(value, "mgmt")
    _check_keys(mgmt, "mgmt", _MGMT_KEYS, _MGMT_REFUSED)
    network = _text(mgmt.get("network"), "mgmt.network") or DEFAULT_MGMT_NETWORK
    subnet_text = _text(mgmt.get("ipv4-subnet"), "mgmt.ipv4-subnet")
    subnet = _subnet(subnet_text) if subnet_text else DEFAULT_MGMT_SUBNET
    gateway_text = _text(mgmt.get("ipv4-gw"), "mgmt.ipv4-gw")
    gateway = _host_address(gateway_text, subnet, "mgmt.ipv4-gw") if gateway_text else next(subnet.hosts())
    return Mgmt(network, subnet, gateway)


def _subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as error:
        raise TopologyError("mgmt.ipv4-subnet", f"{text!r} is not an IPv4 subnet ({error})") from None
    if not subnet.subnet_of(LAB_ADDRESS_RANGE):
        raise TopologyError("mgmt.ipv4-subnet", f"{text} is outside {LAB_ADDRESS_RANGE}, the range the lab's "
                                                "management addresses must come from")
    if subnet.prefixlen > 30:
        raise TopologyError("mgmt.ipv4-subnet", f"{text} is too small: the gateway and each node need an address")
    return subnet


def _host_address(text: str, subnet: ipaddress.IPv4Network, path: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise TopologyError(path, f"{text!r} is not an IPv4 address") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise TopologyError(path, f"{address} is not a host address of the management subnet {subnet}")
    return address


def _check_mgmt_addresses(nodes: Mapping[str, Node], mgmt: Mgmt) -> None:
    """Each mgmt-ipv4 inside the subnet, not the gateway, and used once (containerlab:
    verifyDuplicateAddresses)."""
    owner: dict[str, str] = {}
    for node in nodes.values():
        if node.mgmt_ipv4 is None:
            continue
        path = f"topology.nodes.{node.name}.mgmt-ipv4"
        address = _host_address(node.mgmt_ipv4, mgmt.ipv4_subnet, path)
        if address == mgmt.ipv4_gw:
            raise TopologyError(path, f"{address} is the management gateway")
        if str(address) in owner:
            raise TopologyError(path, f"{address} is node {owner[str(address)]}'s address too")
        owner[str(address)] = node.name


# --- nodes ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _BindSpec:
    host: str             # as written, magic variables not yet replaced
    container: str
    mode: str
    path: str             # where it was written, for errors


@dataclass(frozen=True)
class _Level:
    """One level's settings as written: defaults, a kind, a group or a node ("" and () are unset)."""
    kind: str = ""
    group: str = ""
    image: str = ""
    cmd: str = ""
    exec: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    binds: tuple[_BindSpec, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    mgmt_ipv4: str = ""


def _level(value: object, path: str, place: str) -> _Level:
    raw = _mapping(value, path)
    _check_keys(raw, path, _LEVEL_KEYS[place], _NODE_REFUSED | _LEVEL_IGNORED[place])
    kind = _text(raw.get("kind"), f"{path}.kind")
    if kind and kind.lower() != _SUPPORTED_KIND:
        raise TopologyError(f"{path}.kind", f"{kind!r} is {_unsupported(_OTHER_KINDS)}")
    env = _string_map(raw.get("env"), f"{path}.env")
    if _IMPORT_ENVS in env:
        raise TopologyError(f"{path}.env.{_IMPORT_ENVS}", _IMPORT_ENVS_REFUSED)
    return _Level(
        kind=kind,
        group=_text(raw.get("group"), f"{path}.group"),
        image=_text(raw.get("image"), f"{path}.image"),
        cmd=_text(raw.get("cmd"), f"{path}.cmd"),
        exec=_commands(raw.get("exec"), f"{path}.exec"),
        env=env,
        binds=tuple(_bind_spec(text, f"{path}.binds[{i}]")
                    for i, text in enumerate(_strings(raw.get("binds"), f"{path}.binds"))),
        labels=_string_map(raw.get("labels"), f"{path}.labels"),
        mgmt_ipv4=_text(raw.get("mgmt-ipv4"), f"{path}.mgmt-ipv4"),
    )


def _string_map(value: object, path: str) -> dict[str, str]:
    return {key: _text(item, _join(path, key)) for key, item in _mapping(value, path).items()}


def _strings(value: object, path: str) -> list[str]:
    return [_text(item, _join(path, i)) for i, item in enumerate(_list(value, path))]


def _commands(value: object, path: str) -> tuple[str, ...]:
    commands = _strings(value, path)
    for i, command in enumerate(commands):
        if not command.strip():
            raise TopologyError(_join(path, i), "an empty command")
    return tuple(commands)


def _bind_spec(text: str, path: str) -> _BindSpec:
    """`HOST:CONTAINER[:MODE]`, split as containerlab does (types/bind.go NewBindFromString)."""
    parts = text.split(":")
    if len(parts) == 1:
        raise TopologyError(path, f"{text!r} is " + _unsupported("a bind without a host path is an anonymous "
                                                                 "Docker volume; there is no container runtime here"))
    if len(parts) > 3:
        raise TopologyError(path, f"{text!r}: expected HOST:CONTAINER or HOST:CONTAINER:MODE")
    host, container = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 and parts[2] else "rw"
    if not host:
        raise TopologyError(path, f"{text!r}: the host path is empty")
    if not container.startswith("/"):
        raise TopologyError(path, f"{text!r}: the container path must be absolute (Docker refuses relative ones)")
    if mode not in ("rw", "ro"):
        raise TopologyError(path, f"mode {mode!r} is " + _unsupported("only ro and rw; SELinux relabelling and "
                                                                      "mount propagation options need Docker"))
    return _BindSpec(host, container, mode, path)


def _nodes(section: Mapping[str, object], lab_name: str, prefix: str | None, lab_dir: Path,
           directory: Path) -> dict[str, Node]:
    defaults = _level(section.get("defaults"), "topology.defaults", "defaults")
    kinds = _levels(section.get("kinds"), "topology.kinds", "kind")
    for kind in kinds:
        if kind.lower() != _SUPPORTED_KIND:
            raise TopologyError(f"topology.kinds.{kind}", f"kind {kind!r} is {_unsupported(_OTHER_KINDS)}")
    groups = _levels(section.get("groups"), "topology.groups", "group")
    definitions = _levels(section.get("nodes"), "topology.nodes", "node")
    if not definitions:
        raise TopologyError("topology.nodes", "no nodes defined")
    place = _Place(lab_name, prefix, lab_dir, directory)
    nodes = {}
    for name in sorted(definitions):     # containerlab indexes nodes in name order
        path = f"topology.nodes.{name}"
        if not _NAME.fullmatch(name):
            raise TopologyError(path, "a node name uses letters, digits, '_', '.' and '-', starting with a letter "
                                      "or digit (it becomes part of container and namespace names)")
        nodes[name] = _node(name, definitions[name], defaults, kinds, groups, place)
    return nodes


def _levels(value: object, path: str, place: str) -> dict[str, _Level]:
    return {key: _level(item, _join(path, key), place) for key, item in _mapping(value, path).items()}


@dataclass(frozen=True)
class _Place:
    """Where the lab is: what names and paths of a node derive from."""
    lab_name: str
    prefix: str | None
    lab_dir: Path
    directory: Path


def _node(name: str, node: _Level, defaults: _Level, kinds: Mapping[str, _Level],
          groups: Mapping[str, _Level], place: _Place) -> Node:
    path = f"topology.nodes.{name}"
    kind = _resolve_kind(node, defaults, groups)
    if not kind:
        raise TopologyError(path, "no kind: set kind: linux on the node, its group or topology.defaults")
    kind_level = kinds.get(kind, _Level())                   # looked up as written, as containerlab does
    group = node.group or kind_level.group or defaults.group
    group_level = groups.get(group, _Level())                # a group without an entry is only a label
    levels = (defaults, kind_level, group_level, node)       # least specific first
    namespace = namespace_name(place.prefix, place.lab_name, name)
    _check_namespace(namespace, path)
    return Node(
        name=name,
        kind=kind.lower(),
        image=_most_specific(level.image for level in levels),
        group=group or None,
        cmd=_most_specific(level.cmd for level in levels),
        exec=tuple(_replace_magic(command, name, place.lab_dir) for level in levels for command in level.exec),
        env=_merged(level.env for level in levels),
        binds=_binds(levels, name, place),
        mgmt_ipv4=node.mgmt_ipv4 or None,
        labels=_merged(level.labels for level in levels),
        namespace=namespace,
    )


def _resolve_kind(node: _Level, defaults: _Level, groups: Mapping[str, _Level]) -> str:
    """containerlab GetNodeKind: the node's, its group's, the defaults' group's, the defaults'."""
    return (node.kind
            or groups.get(node.group, _Level()).kind
            or groups.get(defaults.group, _Level()).kind
            or defaults.kind)


def _most_specific(values: Iterable[str]) -> str | None:
    found = [value for value in values if value]
    return found[-1] if found else None


def _merged(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for mapping in maps:
        merged.update(mapping)
    return merged


def _binds(levels: Iterable[_Level], node: str, place: _Place) -> tuple[Bind, ...]:
    by_container: dict[str, _BindSpec] = {}
    for level in levels:
        for spec in level.binds:
            by_container[spec.container] = spec             # the more specific level replaces
    return tuple(_bind(by_container[container], node, place) for container in sorted(by_container))


def _bind(spec: _BindSpec, node: str, place: _Place) -> Bind:
    host = _replace_magic(spec.host, node, place.lab_dir)
    if host.startswith("~"):
        raise TopologyError(spec.path, f"host path {spec.host!r}: `~` is " + _unsupported(
            "containerlab expands it to the invoking user's home, which differs under sudo; write the path out"))
    if os.path.isabs(host):
        return Bind(Path(host), spec.container, spec.mode)
    # filepath.Join cleans the joined path ("a/../b" -> "b"); os.path.normpath does the same.
    return Bind(Path(os.path.normpath(place.directory / host)), spec.container, spec.mode)


def _replace_magic(text: str, node: str, lab_dir: Path) -> str:
    """containerlab's magicVarReplacer: one left-to-right pass, replacements not rescanned."""
    values = {"__clabDir__": str(lab_dir), "__clabNodeDir__": str(lab_dir / node), "__clabNodeName__": node}
    return _MAGIC.sub(lambda match: values[match.group(0)], text)


def _check_namespace(namespace: str, path: str) -> None:
    size = len(namespace.encode())
    if size > NETNS_NAME_MAX_BYTES:
        raise TopologyError(path, f"namespace name {namespace!r} is {size} bytes; ip netns takes at most "
                                  f"{NETNS_NAME_MAX_BYTES}")
    if namespace in (".", "..") or not _NAME.fullmatch(namespace):
        raise TopologyError(path, f"namespace name {namespace!r} is not a valid container or namespace name")


# --- links ---------------------------------------------------------------------------------------------

def _links(value: object, nodes: Mapping[str, Node]) -> tuple[Link, ...]:
    links = []
    used: dict[Endpoint, str] = {}
    for i, item in enumerate(_list(value, "topology.links")):
        path = f"topology.links[{i}]"
        link = _link(_mapping(item, path), path)
        for end, endpoint in (("a", link.a), ("b", link.b)):
            _check_endpoint(endpoint, nodes, f"{path} ({end} end)")
            if endpoint in used:
                raise TopologyError(path, f"{endpoint.node}:{endpoint.interface} is used by {used[endpoint]} too")
            used[endpoint] = path
        links.append(link)
    return tuple(links)


def _link(raw: Mapping[str, object], path: str) -> Link:
    link_type = _text(raw.get("type"), f"{path}.type").strip().lower()
    if link_type in _OTHER_LINK_TYPES:
        raise TopologyError(f"{path}.type", f"{link_type!r} is {_unsupported(_OTHER_LINK_TYPES[link_type])}")
    if link_type and link_type not in _VETH_TYPES:
        known = ", ".join(sorted([*_VETH_TYPES, *_OTHER_LINK_TYPES]))
        raise TopologyError(f"{path}.type", f"unknown link type {link_type!r} (containerlab's: {known})")
    _check_keys(raw, path, _LINK_KEYS, _LINK_REFUSED)
    endpoints = _list(raw.get("endpoints"), f"{path}.endpoints")
    if len(endpoints) != 2:
        raise TopologyError(f"{path}.endpoints", f"a link has exactly 2 endpoints, got {len(endpoints)}")
    parse = _extended_endpoint if link_type == "veth" else _brief_endpoint
    a, b = (parse(endpoint, f"{path}.endpoints[{i}]") for i, endpoint in enumerate(endpoints))
    return Link(a, b, _mtu(raw.get("mtu"), f"{path}.mtu"))


def _brief_endpoint(value: object, path: str) -> Endpoint:
    text = _text(value, path)
    node, colon, interface = text.partition(":")
    if not colon:
        raise TopologyError(path, f"{text!r}: expected <node>:<interface>")
    special = node.strip().lower()
    if special in ("host", "mgmt-net", "macvlan"):     # containerlab reads these as link types
        raise TopologyError(path, f"{text!r} is a {special} link, " + _unsupported(_OTHER_LINK_TYPES[special]))
    return Endpoint(node, interface)


def _extended_endpoint(value: object, path: str) -> Endpoint:
    raw = _mapping(value, path)
    _check_keys(raw, path, _ENDPOINT_KEYS, _ENDPOINT_REFUSED)
    return Endpoint(_text(raw.get("node"), f"{path}.node"), _text(raw.get("interface"), f"{path}.interface"))


def _mtu(value: object, path: str) -> int | None:
    if value is None:
        return None
    text = _text(value, path)
    if not text.isdecimal():
        raise TopologyError(path, f"{text!r} is not a decimal number of bytes")
    mtu = int(text)
    if mtu == 0:
        return None                                  # containerlab: 0 is unset
    if not 68 <= mtu <= 65535:
        raise TopologyError(path, f"{mtu} is outside 68-65535, the MTUs a veth takes")
    return mtu


def _check_endpoint(endpoint: Endpoint, nodes: Mapping[str, Node], path: str) -> None:
    if endpoint.node not in nodes:
        raise TopologyError(path, f"node {endpoint.node!r} is not defined under topology.nodes")
    name = endpoint.interface
    where = f"{path} {endpoint.node}:{name}"
    if name == MANAGEMENT_INTERFACE:
        raise TopologyError(where, "eth0 is the node's management interface (in containerlab and here); "
                                   "links start at eth1")
    if name == "lo":
        raise TopologyError(where, "lo is the loopback every namespace has already")
    if not name or name in (".", "..") or any(c == "/" or c == ":" or c.isspace() for c in name):
        raise TopologyError(where, "not a Linux interface name (no '/', ':' or white space, not empty)")
    if len(name.encode()) > IFNAME_MAX_BYTES:
        raise TopologyError(where, f"a Linux interface name has at most {IFNAME_MAX_BYTES} bytes")
