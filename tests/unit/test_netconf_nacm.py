"""NACM rules derived from SLA ownership (controller/northbound/netconf/nacm.py), RFC 8341 3.4."""

from __future__ import annotations

from controller.northbound.netconf import nacm

RULES = nacm.generate([("as64500-nms", "as64500"), ("as64500-backup", "as64500"), ("acme-nms", "acme"),
                       ("noc", None)], [(5, "as64500"), (7, "as64500"), (1, "acme"), (2, "globex")])


def test_a_peer_reads_and_updates_its_own_slas_only() -> None:
    for user in ("as64500-nms", "as64500-backup"):
        for sla_id in (5, 7):
            for operation in ("read", "update"):
                assert RULES.allowed(user, operation, "csm-service", node=nacm.sla_node(sla_id))
        for sla_id in (1, 2, 99):
            assert not RULES.allowed(user, "read", "csm-service", node=nacm.sla_node(sla_id))
            assert not RULES.allowed(user, "update", "csm-service", node=nacm.sla_node(sla_id))
        assert not RULES.allowed(user, "create", "csm-service", node=nacm.sla_node(5))  # read update only
        assert not RULES.allowed(user, "delete", "csm-service", node=nacm.sla_node(5))


def test_operators_may_do_everything_and_strangers_get_the_defaults() -> None:
    assert RULES.allowed("noc", "update", "csm-service", node=nacm.sla_node(2))
    assert RULES.allowed("noc", "read", "ietf-netconf-acm")
    assert RULES.allowed("noc", "exec", "ietf-netconf", rpc="kill-session")
    # No group: read-default permit, write-default deny, default-deny-all on NACM data and kill-session.
    assert RULES.allowed("nobody", "read", "csm-service", node=nacm.sla_node(2))
    assert not RULES.allowed("nobody", "update", "csm-service", node=nacm.sla_node(2))
    assert not RULES.allowed("nobody", "read", "ietf-netconf-acm")
    assert not RULES.allowed("nobody", "exec", "ietf-netconf", rpc="kill-session")
    assert RULES.allowed("nobody", "exec", "ietf-netconf", rpc="get-config")


def test_peers_may_kill_sessions_but_not_read_the_rules() -> None:
    assert RULES.allowed("acme-nms", "exec", "ietf-netconf", rpc="kill-session")
    assert not RULES.allowed("acme-nms", "exec", "ietf-netconf", rpc="delete-config")
    assert not RULES.allowed("acme-nms", "read", "ietf-netconf-acm")


def test_paths_cover_the_nodes_below_them() -> None:
    assert nacm.parse_path("/csm:csm/csm:sla[csm:id='5']") == (("csm", None), ("sla", "5"))
    sls = [("csm", None), ("sla", "5"), ("sls", None), ("bandwidth", None)]
    assert RULES.allowed("as64500-nms", "update", "csm-service", node=sls)
    assert not RULES.allowed("as64500-nms", "update", "csm-service", node=[("csm", None), ("sla", "55"), ("sls", None)])


def test_the_rules_read_as_ietf_netconf_acm_data() -> None:
    xml = nacm.to_xml(RULES)
    ns = f"{{{nacm.NACM}}}"
    lists = {r.findtext(ns + "name"): r for r in xml.iter(ns + "rule-list")}
    assert set(lists) == {"operators", "peer-acme", "peer-as64500"}
    paths = [r.findtext(ns + "path") for r in lists["peer-as64500"].iter(ns + "rule")]
    assert "/csm:csm/csm:sla[csm:id='5']" in paths and "/csm:csm/csm:sla[csm:id='7']" in paths
    users = {g.findtext(ns + "name"): [u.text for u in g.iter(ns + "user-name")] for g in xml.iter(ns + "group")}
    assert users["peer-as64500"] == ["as64500-nms", "as64500-backup"] and users["operators"] == ["noc"]


def test_readable_slas_agrees_with_the_rule_by_rule_answer() -> None:
    ids = [1, 2, 5, 7, 99]
    for user in ("noc", "as64500-nms", "acme-nms", "nobody"):
        expected = {i for i in ids if RULES.allowed(user, "read", "csm-service", node=nacm.sla_node(i))}
        assert RULES.readable_slas(user, ids) == expected
    assert RULES.readable_slas("noc", ids) == set(ids)           # the operators' permit-all, at once
    assert RULES.readable_slas("as64500-nms", ids) == {5, 7}
    denied = nacm.Nacm({"ops": ("x",)}, (nacm.RuleList("ops", ("ops",), (nacm.Rule("deny-all", action="deny"),)),))
    assert denied.readable_slas("x", ids) == set()
