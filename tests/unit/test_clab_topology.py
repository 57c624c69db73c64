"""The containerlab topology reader: containerlab's precedence, naming, links, binds and ${VAR}
expansion; the emulator's management range; everything else refused with its path and reason."""

import ipaddress
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulation.topology import (
    Bind,
    Endpoint,
    Link,
    Node,
    Topology,
    TopologyError,
    load_topology,
    parse_topology,
)

LAB = Path("/labs/gsb")
LEVELS = ("defaults", "kind", "group", "node")


def parse(text: str, **kwargs: Any) -> Topology:
    return parse_topology(textwrap.dedent(text), directory=LAB, **kwargs)


def document(**levels: dict[str, Any]) -> str:
    """A one-node lab (n1, kind linux, group g1) with settings at the given levels."""
    node = {"kind": "linux", "group": "g1", **levels.get("node", {})}
    topology: dict[str, Any] = {"nodes": {"n1": node}}
    if "defaults" in levels:
        topology["defaults"] = levels["defaults"]
    if "kind" in levels:
        topology["kinds"] = {"linux": levels["kind"]}
    if "group" in levels:
        topology["groups"] = {"g1": levels["group"]}
    return yaml.safe_dump({"name": "gsb", "topology": topology})


def node_with(**levels: dict[str, Any]) -> Node:
    return parse_topology(document(**levels), directory=LAB).nodes["n1"]


def refused(text: str, **kwargs: Any) -> TopologyError:
    with pytest.raises(TopologyError) as caught:
        parse(text, **kwargs)
    return caught.value


ONE_NODE = """
    name: gsb
    topology:
      nodes:
        n1: {kind: linux}
"""


# --- precedence: node > group > kind > defaults -------------------------------------------------------

@pytest.mark.parametrize("setting", ["image", "cmd"])
@pytest.mark.parametrize("most_specific", LEVELS)
def test_image_and_cmd_come_whole_from_the_most_specific_level_that_sets_them(setting: str,
                                                                              most_specific: str) -> None:
    present = LEVELS[:LEVELS.index(most_specific) + 1]
    node = node_with(**{level: {setting: f"{setting}-from-{level}"} for level in present})
    assert getattr(node, setting) == f"{setting}-from-{most_specific}"


def test_image_and_cmd_are_none_when_no_level_sets_them() -> None:
    node = node_with()
    assert (node.image, node.cmd) == (None, None)


def test_exec_lists_are_concatenated_defaults_kind_group_node() -> None:
    node = node_with(**{level: {"exec": [f"echo {level} 1", f"echo {level} 2"]} for level in LEVELS})
    assert node.exec == tuple(f"echo {level} {i}" for level in LEVELS for i in (1, 2))


@pytest.mark.parametrize("setting", ["env", "labels"])
def test_env_and_labels_merge_key_by_key_and_the_more_specific_value_wins(setting: str) -> None:
    node = node_with(
        defaults={setting: {"A": "defaults", "B": "defaults", "C": "defaults", "D": "defaults"}},
        kind={setting: {"B": "kind", "C": "kind", "D": "kind"}},
        group={setting: {"C": "group", "D": "group"}},
        node={setting: {"D": "node"}},
    )
    assert getattr(node, setting) == {"A": "defaults", "B": "kind", "C": "group", "D": "node"}


def test_binds_merge_by_container_path_and_the_more_specific_level_replaces() -> None:
    node = node_with(
        defaults={"binds": ["/d/etc:/etc/app", "/d/shared:/shared:ro"]},
        kind={"binds": ["/k/etc:/etc/app"]},
        group={"binds": ["/g/etc:/etc/app:ro", "/g/log:/var/log/app"]},
        node={"binds": ["/n/etc:/etc/app"]},
    )
    assert node.binds == (
        Bind(Path("/n/etc"), "/etc/app", "rw"),
        Bind(Path("/d/shared"), "/shared", "ro"),
        Bind(Path("/g/log"), "/var/log/app", "rw"),
    )


def test_binds_are_ordered_by_container_path_so_a_directory_comes_before_what_is_inside() -> None:
    node = node_with(node={"binds": ["/h/frr.conf:/etc/frr/frr.conf", "/h/etc:/etc", "/h/frr:/etc/frr"]})
    assert [bind.container for bind in node.binds] == ["/etc", "/etc/frr", "/etc/frr/frr.conf"]


def test_kind_comes_from_the_group_then_the_defaults_group_then_the_defaults() -> None:
    lab = parse("""
        name: gsb
        topology:
          defaults: {group: dg}
          groups:
            g1: {kind: linux, image: from-g1}
            dg: {kind: linux, image: from-dg}
          nodes:
            by-group: {group: g1}
            by-defaults-group: {}
    """)
    assert lab.nodes["by-group"].kind == "linux"
    assert lab.nodes["by-group"].image == "from-g1"
    assert (lab.nodes["by-defaults-group"].group, lab.nodes["by-defaults-group"].image) == ("dg", "from-dg")


def test_group_comes_from_the_kind_entry_before_the_defaults() -> None:
    lab = parse("""
        name: gsb
        topology:
          defaults: {kind: linux, group: from-defaults}
          kinds:
            linux: {group: from-kind}
          groups:
            from-kind: {cmd: kind-group-cmd}
          nodes:
            n1: {}
            n2: {group: own}
    """)
    assert (lab.nodes["n1"].group, lab.nodes["n1"].cmd) == ("from-kind", "kind-group-cmd")
    assert (lab.nodes["n2"].group, lab.nodes["n2"].cmd) == ("own", None)


def test_a_node_without_a_kind_anywhere_is_refused() -> None:
    error = refused("""
        name: gsb
        topology:
          nodes: {n1: {}}
    """)
    assert error.path == "topology.nodes.n1"
    assert "no kind" in error.reason


@pytest.mark.parametrize(("where", "key", "path"), [
    ("defaults", "mgmt-ipv4", "topology.defaults.mgmt-ipv4"),
    ("kind", "mgmt-ipv4", "topology.kinds.linux.mgmt-ipv4"),
    ("group", "mgmt-ipv4", "topology.groups.g1.mgmt-ipv4"),
    ("kind", "kind", "topology.kinds.linux.kind"),
    ("group", "group", "topology.groups.g1.group"),
])
def test_keys_containerlab_ignores_at_a_level_are_refused_there(where: str, key: str, path: str) -> None:
    value = "198.18.0.9" if key == "mgmt-ipv4" else "linux" if key == "kind" else "x"
    with pytest.raises(TopologyError) as caught:
        node_with(**{where: {key: value}})
    assert caught.value.path == path
    assert "ignored by containerlab" in caught.value.reason


# --- kinds --------------------------------------------------------------------------------------------

def test_kinds_other_than_linux_are_refused_on_nodes_and_in_kinds() -> None:
    on_node = refused("""
        name: gsb
        topology:
          nodes: {r1: {kind: nokia_srlinux}}
    """)
    assert on_node.path == "topology.nodes.r1.kind"
    assert "'nokia_srlinux'" in on_node.reason and "only kind linux" in on_node.reason
    in_kinds = refused("""
        name: gsb
        topology:
          kinds: {ceos: {image: ceos}}
          nodes: {n1: {kind: linux}}
    """)
    assert in_kinds.path == "topology.kinds.ceos"


# --- links --------------------------------------------------------------------------------------------

TWO_NODES = """
    name: gsb
    topology:
      defaults: {kind: linux}
      nodes: {edge1: {}, core: {}}
      links:
"""


def links(text: str) -> str:
    return TWO_NODES + textwrap.indent(textwrap.dedent(text), "        ")


def test_brief_and_extended_links_give_the_same_link() -> None:
    brief = parse(links("""
        - endpoints: ["edge1:eth1", "core:eth1"]
          mtu: 1500
    """))
    extended = parse(links("""
        - type: veth
          mtu: 1500
          endpoints:
            - {node: edge1, interface: eth1}
            - {node: core, interface: eth1}
    """))
    expected = Link(Endpoint("edge1", "eth1"), Endpoint("core", "eth1"), 1500)
    assert brief.links == extended.links == (expected,)


def test_a_link_without_mtu_has_none_and_mtu_zero_means_unset_as_in_containerlab() -> None:
    lab = parse(links("""
        - endpoints: ["edge1:eth1", "core:eth1"]
        - endpoints: ["edge1:eth2", "core:eth2"]
          mtu: 0
    """))
    assert [link.mtu for link in lab.links] == [None, None]


@pytest.mark.parametrize("link_type", ["host", "mgmt-net", "macvlan", "vxlan", "vxlan-stitch", "dummy"])
def test_other_extended_link_types_are_refused_by_name(link_type: str) -> None:
    error = refused(links(f"""
        - type: {link_type}
          endpoint: {{node: edge1, interface: eth1}}
    """))
    assert error.path == "topology.links[0].type"
    assert f"'{link_type}'" in error.reason and "not supported by the netns emulator" in error.reason


@pytest.mark.parametrize("special", ["host", "mgmt-net", "macvlan"])
def test_brief_endpoints_that_containerlab_reads_as_link_types_are_refused(special: str) -> None:
    error = refused(links(f"""
        - endpoints: ["edge1:eth1", "{special}:veth-edge1"]
    """))
    assert error.path == "topology.links[0].endpoints[1]"
    assert f"a {special} link" in error.reason


def test_an_unknown_link_type_lists_containerlabs_types() -> None:
    error = refused(links("""
        - type: vethh
          endpoints: ["edge1:eth1", "core:eth1"]
    """))
    assert error.path == "topology.links[0].type" and "unknown link type 'vethh'" in error.reason
    assert "veth" in error.reason and "vxlan" in error.reason


@pytest.mark.parametrize(("key", "value", "path"), [
    ("vars", "{a: 1}", "topology.links[0].vars"),
    ("labels", "{a: b}", "topology.links[0].labels"),
])
def test_link_vars_and_labels_are_refused(key: str, value: str, path: str) -> None:
    error = refused(links(f"""
        - endpoints: ["edge1:eth1", "core:eth1"]
          {key}: {value}
    """))
    assert error.path == path and "not supported by the netns emulator" in error.reason


def test_an_endpoint_mac_is_refused() -> None:
    error = refused(links("""
        - type: veth
          endpoints:
            - {node: edge1, interface: eth1, mac: "02:00:00:00:00:01"}
            - {node: core, interface: eth1}
    """))
    assert error.path == "topology.links[0].endpoints[0].mac"


@pytest.mark.parametrize(("link", "fragment"), [
    ('["edge1:eth1", "core:eth1", "core:eth2"]', "exactly 2 endpoints"),
    ('["edge1:eth1"]', "exactly 2 endpoints"),
    ('["edge1-eth1", "core:eth1"]', "expected <node>:<interface>"),
    ('["edge1:eth1", "spine:eth1"]', "node 'spine' is not defined"),
    ('["edge1:eth0", "core:eth1"]', "eth0 is the node's management interface"),
    ('["edge1:lo", "core:eth1"]', "loopback"),
    ('["edge1:eth1", "core:ethernet-1-1-long"]', "at most 15 bytes"),
    ('["edge1:e1/1", "core:eth1"]', "not a Linux interface name"),
    ('["edge1:eth1:x", "core:eth1"]', "not a Linux interface name"),
])
def test_bad_endpoints_are_refused(link: str, fragment: str) -> None:
    error = refused(links(f"""
        - endpoints: {link}
    """))
    assert fragment in str(error)
    assert error.path.startswith("topology.links[0]")


def test_each_endpoint_is_used_by_one_link_only() -> None:
    error = refused(links("""
        - endpoints: ["edge1:eth1", "core:eth1"]
        - endpoints: ["edge1:eth2", "core:eth1"]
    """))
    assert error.path == "topology.links[1]" and "core:eth1 is used by topology.links[0] too" in error.reason


def test_a_15_byte_interface_name_is_accepted_and_16_bytes_are_not() -> None:
    lab = parse(links("""
        - endpoints: ["edge1:eth1-5678901234", "core:eth1"]
    """))
    assert lab.links[0].a.interface == "eth1-5678901234"
    error = refused(links("""
        - endpoints: ["edge1:eth1-56789012345", "core:eth1"]
    """))
    assert "at most 15 bytes" in error.reason


@pytest.mark.parametrize(("mtu", "fragment"), [("67", "outside 68-65535"), ("65536", "outside 68-65535"),
                                               ("1.5k", "not a decimal")])
def test_link_mtu_must_be_one_a_veth_takes(mtu: str, fragment: str) -> None:
    error = refused(links(f"""
        - endpoints: ["edge1:eth1", "core:eth1"]
          mtu: {mtu}
    """))
    assert error.path == "topology.links[0].mtu" and fragment in error.reason


# --- refused and unknown keys ------------------------------------------------------------------------

NODE_KEYS_CONTAINERLAB_KNOWS = [
    "type", "startup-config", "enforce-startup-config", "suppress-startup-config", "startup-delay",
    "auto-remove", "restart-policy", "config", "image-pull-policy", "license", "position", "entrypoint",
    "devices", "cap-add", "shm-size", "ports", "publish", "mgmt-ipv6", "env-files", "user", "network-mode",
    "sandbox", "kernel", "runtime", "cpu", "cpu-set", "memory", "sysctls", "extras", "stages", "wait-for",
    "dns", "certificate", "healthcheck", "aliases", "components",
]


@pytest.mark.parametrize("key", NODE_KEYS_CONTAINERLAB_KNOWS)
@pytest.mark.parametrize("level", LEVELS)
def test_node_keys_the_emulator_does_not_support_are_refused_naming_key_and_path(key: str, level: str) -> None:
    with pytest.raises(TopologyError) as caught:
        node_with(**{level: {key: "x"}})
    paths = {"defaults": "topology.defaults", "kind": "topology.kinds.linux", "group": "topology.groups.g1",
             "node": "topology.nodes.n1"}
    assert caught.value.path == f"{paths[level]}.{key}"
    assert caught.value.reason.startswith("not supported by the netns emulator (")


def test_ports_are_refused_with_the_reason() -> None:
    error = refused("""
        name: gsb
        topology:
          nodes:
            edge1: {kind: linux, ports: ["8080:80"]}
    """)
    assert str(error) == ("topology.nodes.edge1.ports: not supported by the netns emulator (containerlab "
                          "publishes container ports; there is no container here)")


@pytest.mark.parametrize(("text", "path"), [
    ("name: gsb\nsettings: {certificate-authority: {key-size: 2048}}\n" + "topology: {nodes: {n1: {kind: linux}}}",
     "settings"),
    ("name: gsb\ndebug: true\ntopology: {nodes: {n1: {kind: linux}}}", "debug"),
    ("name: gsb\nmgmt: {bridge: br-mgmt}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.bridge"),
    ("name: gsb\nmgmt: {ipv6-subnet: 'fd00::/64'}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.ipv6-subnet"),
    ("name: gsb\nmgmt: {mtu: 1400}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.mtu"),
    ("name: gsb\nmgmt: {external-access: false}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.external-access"),
    ("name: gsb\nmgmt: {ipv4-range: 198.18.0.128/25}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.ipv4-range"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux, env: {__IMPORT_ENVS: 'true'}}}}",
     "topology.nodes.n1.env.__IMPORT_ENVS"),
])
def test_other_settings_containerlab_knows_are_refused_by_path(text: str, path: str) -> None:
    error = refused(text)
    assert error.path == path and error.reason.startswith("not supported by the netns emulator (")


@pytest.mark.parametrize(("text", "path", "hint"), [
    ("name: gsb\ntopolgy: {nodes: {n1: {kind: linux}}}", "topolgy", "'topology'"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux, imgae: alpine}}}", "topology.nodes.n1.imgae", "'image'"),
    ("name: gsb\ntopology: {node: {n1: {kind: linux}}}", "topology.node", "'nodes'"),
    ("name: gsb\nmgmt: {ipv4_gw: 198.18.0.1}\ntopology: {nodes: {n1: {kind: linux}}}", "mgmt.ipv4_gw", "'ipv4-gw'"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux}, n2: {kind: linux}}, links: [{endpoint: []}]}",
     "topology.links[0].endpoint", "'endpoints'"),
])
def test_unknown_keys_are_refused_with_a_hint_and_the_supported_keys(text: str, path: str, hint: str) -> None:
    error = refused(text)
    assert error.path == path
    assert error.reason.startswith(f"unknown key; did you mean {hint}?")
    assert "(supported here: " in error.reason


def test_the_supported_node_keys_are_listed_for_a_typo() -> None:
    error = refused("name: gsb\ntopology: {nodes: {n1: {kind: linux, zzz: 1}}}")
    assert error.reason == ("unknown key (supported here: binds, cmd, env, exec, group, image, kind, labels, "
                            "mgmt-ipv4)")


@pytest.mark.parametrize(("text", "path"), [
    ("name: gsb\ntopology: [n1]", "topology"),
    ("name: gsb\ntopology: {nodes: [n1, n2]}", "topology.nodes"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux, env: [A=1]}}}", "topology.nodes.n1.env"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux, exec: 'echo hi'}}}", "topology.nodes.n1.exec"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux, env: {A: [1, 2]}}}}", "topology.nodes.n1.env.A"),
    ("name: gsb\ntopology: {nodes: {n1: {kind: linux}}, links: {a: b}}", "topology.links"),
])
def test_a_value_of_the_wrong_shape_is_refused_with_its_path(text: str, path: str) -> None:
    assert refused(text).path == path


def test_duplicate_keys_are_refused_as_containerlab_does() -> None:
    error = refused("""
        name: gsb
        topology:
          nodes:
            n1: {kind: linux}
            n1: {kind: linux, image: other}
    """)
    assert "duplicate key 'n1'" in error.reason


def test_go_template_actions_are_refused() -> None:
    error = refused("""
        name: gsb
        topology:
          nodes:
            {{ range .nodes }}n{{ . }}: {kind: linux}{{ end }}
    """)
    assert error.path == "line 5" and "Go template" in error.reason


# --- names and namespaces -----------------------------------------------------------------------------

@pytest.mark.parametrize(("prefix_line", "prefix", "namespace"), [
    ("", None, "clab-gsb-edge1"),
    ("prefix:", None, "clab-gsb-edge1"),
    ('prefix: ""', "", "edge1"),
    ("prefix: __lab-name", "__lab-name", "gsb-edge1"),
    ("prefix: csmm", "csmm", "csmm-gsb-edge1"),
])
def test_namespaces_are_named_as_containerlab_names_containers(prefix_line: str, prefix: str | None,
                                                               namespace: str) -> None:
    lab = parse(f"""
        name: gsb
        {prefix_line}
        topology:
          nodes: {{edge1: {{kind: linux}}}}
    """)
    assert lab.prefix == prefix
    assert lab.nodes["edge1"].namespace == namespace
    assert lab.lab_dir == LAB / "clab-gsb"        # whatever the prefix


def test_a_namespace_name_longer_than_ip_netns_takes_is_refused() -> None:
    node = "n" * 246                                   # clab-gsb- + 246 = 255 bytes: the limit
    assert parse(f"name: gsb\ntopology: {{nodes: {{{node}: {{kind: linux}}}}}}").nodes[node].namespace == \
        f"clab-gsb-{node}"
    error = refused(f"name: gsb\ntopology: {{nodes: {{{node}x: {{kind: linux}}}}}}")
    assert error.path == f"topology.nodes.{node}x" and "at most 255" in error.reason


@pytest.mark.parametrize(("text", "path"), [
    ("name: 'g/sb'\ntopology: {nodes: {n1: {kind: linux}}}", "name"),
    ("topology: {nodes: {n1: {kind: linux}}}", "name"),
    ("name: gsb\ntopology: {nodes: {'edge 1': {kind: linux}}}", "topology.nodes.edge 1"),
    ("name: gsb\nprefix: 'my prefix'\ntopology: {nodes: {n1: {kind: linux}}}", "prefix"),
])
def test_lab_and_node_names_must_make_valid_container_and_namespace_names(text: str, path: str) -> None:
    assert refused(text).path == path


def test_nodes_are_ordered_by_name_as_containerlab_indexes_them() -> None:
    lab = parse("name: gsb\ntopology: {defaults: {kind: linux}, nodes: {edge2: {}, core: {}, edge1: {}}}")
    assert list(lab.nodes) == ["core", "edge1", "edge2"]


def test_the_name_argument_replaces_the_files_name_like_deploy_name() -> None:
    lab = parse(ONE_NODE, name="other")
    assert lab.name == "other"
    assert lab.nodes["n1"].namespace == "clab-other-n1"
    assert lab.lab_dir == LAB / "clab-other"


def test_the_name_argument_suffices_when_the_file_has_no_name() -> None:
    assert parse("topology: {nodes: {n1: {kind: linux}}}", name="given").name == "given"
    error = refused(ONE_NODE, name="bad name")
    assert error.path == "name (--name)"


# --- management network --------------------------------------------------------------------------------

def test_without_mgmt_the_emulator_uses_198_18_0_0_24_not_containerlabs_default() -> None:
    mgmt = parse(ONE_NODE).mgmt
    assert (mgmt.network, mgmt.ipv4_subnet, mgmt.ipv4_gw) == (
        "clab", ipaddress.IPv4Network("198.18.0.0/24"), ipaddress.IPv4Address("198.18.0.1"))


def test_an_ipv4_subnet_inside_198_18_0_0_15_has_its_first_host_as_gateway() -> None:
    mgmt = parse("name: gsb\nmgmt: {network: lab, ipv4-subnet: 198.19.7.0/24}\n"
                 "topology: {nodes: {n1: {kind: linux}}}").mgmt
    assert (mgmt.network, mgmt.ipv4_subnet, mgmt.ipv4_gw) == (
        "lab", ipaddress.IPv4Network("198.19.7.0/24"), ipaddress.IPv4Address("198.19.7.1"))


def test_an_explicit_gateway_is_kept() -> None:
    mgmt = parse("name: gsb\nmgmt: {ipv4-subnet: 198.18.4.0/22, ipv4-gw: 198.18.7.254}\n"
                 "topology: {nodes: {n1: {kind: linux}}}").mgmt
    assert mgmt.ipv4_gw == ipaddress.IPv4Address("198.18.7.254")


@pytest.mark.parametrize("subnet", ["172.20.20.0/24", "198.20.0.0/24", "198.16.0.0/14", "10.0.0.0/8"])
def test_an_ipv4_subnet_outside_198_18_0_0_15_is_refused_naming_value_and_range(subnet: str) -> None:
    error = refused(f"name: gsb\nmgmt: {{ipv4-subnet: {subnet}}}\ntopology: {{nodes: {{n1: {{kind: linux}}}}}}")
    assert error.path == "mgmt.ipv4-subnet"
    assert subnet in error.reason and "198.18.0.0/15" in error.reason


@pytest.mark.parametrize(("mgmt", "fragment"), [
    ("{ipv4-subnet: 198.18.0.5/24}", "not an IPv4 subnet"),
    ("{ipv4-subnet: auto}", "not an IPv4 subnet"),
    ("{ipv4-subnet: 198.18.0.0/31}", "too small"),
    ("{ipv4-gw: 198.18.1.1}", "not a host address of the management subnet 198.18.0.0/24"),
    ("{ipv4-gw: 198.18.0.255}", "not a host address"),
])
def test_bad_management_settings_are_refused(mgmt: str, fragment: str) -> None:
    error = refused(f"name: gsb\nmgmt: {mgmt}\ntopology: {{nodes: {{n1: {{kind: linux}}}}}}")
    assert fragment in error.reason


@pytest.mark.parametrize(("addresses", "path", "fragment"), [
    (("198.18.1.5", None), "topology.nodes.n1.mgmt-ipv4", "not a host address of the management subnet"),
    (("198.18.0.1", None), "topology.nodes.n1.mgmt-ipv4", "is the management gateway"),
    (("198.18.0.0", None), "topology.nodes.n1.mgmt-ipv4", "not a host address"),
    (("198.18.0.11", "198.18.0.11"), "topology.nodes.n2.mgmt-ipv4", "is node n1's address too"),
    (("198.18.0.1/24", None), "topology.nodes.n1.mgmt-ipv4", "not an IPv4 address"),
])
def test_mgmt_ipv4_must_be_a_free_host_address_of_the_subnet(addresses: tuple[str, str | None], path: str,
                                                             fragment: str) -> None:
    nodes = {f"n{i + 1}": {"kind": "linux", **({"mgmt-ipv4": a} if a else {})} for i, a in enumerate(addresses)}
    with pytest.raises(TopologyError) as caught:
        parse_topology(yaml.safe_dump({"name": "gsb", "topology": {"nodes": nodes}}), directory=LAB)
    assert caught.value.path == path and fragment in caught.value.reason


def test_mgmt_ipv4_addresses_inside_the_subnet_are_kept() -> None:
    lab = parse("name: gsb\ntopology: {defaults: {kind: linux}, nodes: {n1: {mgmt-ipv4: 198.18.0.11}, n2: {}}}")
    assert (lab.nodes["n1"].mgmt_ipv4, lab.nodes["n2"].mgmt_ipv4) == ("198.18.0.11", None)


# --- binds and magic variables ---------------------------------------------------------------------------

def test_magic_variables_in_bind_host_paths_name_the_lab_and_node_directories() -> None:
    node = node_with(node={"binds": [
        "__clabNodeDir__/conf:/conf",
        "__clabDir__/topology-data.json:/data/topology.json:ro",
        "configs/__clabNodeName__.cfg:/etc/__clabNodeName__.cfg",
    ]})
    assert node.binds == (
        Bind(LAB / "clab-gsb" / "n1" / "conf", "/conf", "rw"),
        Bind(LAB / "clab-gsb" / "topology-data.json", "/data/topology.json", "ro"),
        Bind(LAB / "configs" / "n1.cfg", "/etc/__clabNodeName__.cfg", "rw"),   # container path as written
    )


def test_relative_bind_host_paths_are_resolved_against_the_topology_files_directory() -> None:
    node = node_with(node={"binds": ["cfg/frr.conf:/etc/frr/frr.conf", "../shared/./x:/x", "/abs/y:/y"]})
    assert [bind.host for bind in node.binds] == [Path("/labs/gsb/cfg/frr.conf"), Path("/labs/shared/x"),
                                                  Path("/abs/y")]


def test_magic_variables_in_exec_are_replaced_too() -> None:
    node = node_with(node={"exec": ["sh __clabNodeDir__/init.sh __clabNodeName__ __clabDir__"]})
    assert node.exec == ("sh /labs/gsb/clab-gsb/n1/init.sh n1 /labs/gsb/clab-gsb",)


@pytest.mark.parametrize(("bind", "fragment"), [
    ("/var/lib/data", "anonymous Docker volume"),
    ("~/.ssh/id_rsa:/root/.ssh/id_rsa", "`~` is not supported"),
    ("/a:/b:z", "mode 'z' is not supported"),
    ("/a:/b:ro,z", "mode 'ro,z' is not supported"),
    ("/a:relative/b", "must be absolute"),
    (":/b", "host path is empty"),
    ("/a:/b:ro:x", "expected HOST:CONTAINER"),
])
def test_binds_the_emulator_cannot_honour_are_refused(bind: str, fragment: str) -> None:
    with pytest.raises(TopologyError) as caught:
        node_with(group={"binds": ["/ok:/ok", bind]})
    assert caught.value.path == "topology.groups.g1.binds[1]"
    assert fragment in caught.value.reason


# --- ${VAR} expansion and scalar text ---------------------------------------------------------------------

@pytest.mark.parametrize(("written", "environ", "value"), [
    ("${IMG}", {"IMG": "alpine:3"}, "alpine:3"),
    ("$IMG", {"IMG": "alpine:3"}, "alpine:3"),
    ("alpine:${V:=3}", {}, "alpine:3"),
    ("alpine:${V:=3}", {"V": ""}, "alpine:3"),
    ("alpine:${V:=3}", {"V": "3.20"}, "alpine:3.20"),
    ("alpine:${V:-3}", {}, "alpine:3"),
    ("alpine:${V-3}", {"V": ""}, "alpine:"),
    ("alpine:${V=3}", {}, "alpine:3"),
    ("x${V+set}", {"V": ""}, "xset"),
    ("x${V:+set}", {}, "x"),
    ("${V:-$OTHER}", {"OTHER": "o"}, "o"),
    ("${UNSET}", {}, "${UNSET}"),
    ("$UNSET-x", {}, "$UNSET-x"),
    ("$$IMG", {"IMG": "alpine:3"}, "$IMG"),
    ("$${IMG}", {"IMG": "alpine:3"}, "${IMG}"),
    ("a$1b", {"1": "no"}, "a$1b"),
    ("cost $", {}, "cost $"),
])
def test_variables_expand_as_containerlabs_envsubst_does(written: str, environ: dict[str, str],
                                                         value: str) -> None:
    lab = parse(f"""
        name: gsb
        topology:
          nodes:
            n1: {{kind: linux, image: "{written}"}}
    """, environ=environ)
    assert lab.nodes["n1"].image == value


def test_variables_expand_anywhere_before_yaml_is_read() -> None:
    lab = parse("""
        name: ${LAB:=gsb}
        topology:
          nodes:
            ${NODE}: {kind: linux, mgmt-ipv4: 198.18.0.${HOST}}
    """, environ={"NODE": "edge1", "HOST": "11"})
    assert lab.name == "gsb" and lab.nodes["edge1"].mgmt_ipv4 == "198.18.0.11"


@pytest.mark.parametrize(("written", "fragment"), [
    ("${IMG", "without a closing"),
    ("${IMG a}", "bad substitution"),
    ("${IMG:-a$B$C}", "only plain text or a single $VAR"),
])
def test_broken_substitutions_are_refused_with_their_line(written: str, fragment: str) -> None:
    error = refused(f"""
        name: gsb
        topology:
          nodes:
            n1:
              kind: linux
              image: {written}
    """)
    assert error.path == "line 7" and fragment in error.reason


def test_env_values_keep_the_text_written_as_containerlabs_yaml_v2_does() -> None:
    lab = parse("""
        name: gsb
        topology:
          nodes:
            n1:
              kind: linux
              env: {UMASK: 0755, ON: yes, RATE: 1.50, BIG: 1_000, DAY: 2024-01-02, EMPTY: ~, NONE:, Q: "0755"}
              labels: {tier: 1}
    """)
    assert lab.nodes["n1"].env == {"UMASK": "0755", "ON": "yes", "RATE": "1.50", "BIG": "1_000",
                                   "DAY": "2024-01-02", "EMPTY": "", "NONE": "", "Q": "0755"}
    assert lab.nodes["n1"].labels == {"tier": "1"}


# --- reading a file ---------------------------------------------------------------------------------------

def test_load_topology_takes_the_directory_names_and_variables_from_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "labs").mkdir()
    path = tmp_path / "labs" / "gsb.clab.yml"
    path.write_text(textwrap.dedent("""
        name: gsb
        topology:
          nodes:
            edge1: {kind: linux, image: "${IMAGE}", binds: ["cfg/edge1:/etc/csmm"]}
    """))
    lab = load_topology(path, name="mine", environ={"IMAGE": "csmm-router"})
    assert lab.directory == tmp_path / "labs"
    assert lab.lab_dir == tmp_path / "labs" / "clab-mine"
    assert lab.nodes["edge1"].image == "csmm-router"
    assert lab.nodes["edge1"].binds == (Bind(tmp_path / "labs" / "cfg" / "edge1", "/etc/csmm", "rw"),)


def test_clab_labdir_base_moves_the_lab_directory_as_in_containerlab() -> None:
    lab = parse(ONE_NODE, environ={"CLAB_LABDIR_BASE": "/var/lib/labs"})
    assert lab.lab_dir == Path("/var/lib/labs/clab-gsb")
    assert refused(ONE_NODE, environ={"CLAB_LABDIR_BASE": "labs"}).path == "CLAB_LABDIR_BASE"


def test_an_unreadable_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path / "missing.clab.yml")
    assert "cannot read the topology file" in caught.value.reason


def test_invalid_yaml_is_a_topology_error() -> None:
    assert "not valid YAML" in refused("name: gsb\ntopology: {nodes: [\n").reason
