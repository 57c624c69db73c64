"""What the agent does to the kernel for a config: the HTB steps, make-before-break ordering,
and nothing at all when the kernel already matches. Pure (no kernel)."""

from __future__ import annotations

from csmm_proto import agent_pb2 as pb

from agent.desired import check_config, kernel_plan
from agent.plan import HtbClass, HtbPlan
from agent.reconcile import htb_steps


def _config(acme_class: str = "silver", acme_rate: int = 5_000_000) -> pb.DesiredConfig:
    classes = [pb.QosClass(name="root", rate_bps=40_000_000, ceil_bps=40_000_000),
               pb.QosClass(name="gold", parent="root", rate_bps=2_000_000, ceil_bps=2_000_000),
               pb.QosClass(name="gold/globex", parent="gold", rate_bps=2_000_000, ceil_bps=2_000_000, members=["globex"]),
               pb.QosClass(name=acme_class, parent="root", rate_bps=acme_rate, ceil_bps=acme_rate, priority=1),
               pb.QosClass(name=f"{acme_class}/acme", parent=acme_class, rate_bps=acme_rate, ceil_bps=acme_rate,
                           priority=1, members=["acme"]),
               pb.QosClass(name="bronze", parent="root", rate_bps=10_000_000, ceil_bps=40_000_000, priority=2),
               pb.QosClass(name="bronze/default", parent="bronze", rate_bps=10_000_000, ceil_bps=40_000_000, priority=2)]
    if acme_class == "gold":   # gold is already there: drop the second definition
        classes = [c for k, c in enumerate(classes) if not (k == 3 and c.name == "gold")]
    scheduler = pb.Scheduler(capacity_bps=40_000_000, classes=classes, default_leaf="bronze/default",
                             by_prefix=[pb.PrefixMatch(prefix="198.19.1.0/24", sla="acme", leaf=f"{acme_class}/acme"),
                                        pb.PrefixMatch(prefix="198.19.2.0/24", sla="globex", leaf="gold/globex")])
    return pb.DesiredConfig(router_id="edge1", version=1, interfaces=[pb.InterfaceQos(name="eth1", role="core", scheduler=scheduler)])


def _plan(config: pb.DesiredConfig, previous=None):  # type: ignore[no-untyped-def]
    return kernel_plan(config, previous or {})


def test_a_new_tree_is_built_root_first_parents_before_children() -> None:
    plan, minors = _plan(_config())
    steps = htb_steps("eth1", plan.interfaces["eth1"].htb, None)
    assert [op.action for op in steps.before[:2]] == ["add-root", "add"]
    assert steps.before[0].default_minor == minors["eth1"]["bronze/default"]
    added = [op.cls.minor for op in steps.before if op.cls is not None]
    for op in steps.before[1:]:
        assert op.cls is not None
        assert op.cls.parent == 0 or added.index(op.cls.parent) < added.index(op.cls.minor)
    assert not steps.after


def test_an_unchanged_kernel_gets_no_step() -> None:
    plan, _ = _plan(_config())
    htb = plan.interfaces["eth1"].htb
    assert htb is not None
    have = HtbPlan(htb.default_minor, dict(htb.classes))
    assert not htb_steps("eth1", htb, have)


def test_a_rate_change_is_one_class_change() -> None:
    before, minors = _plan(_config())
    after, _ = _plan(_config(acme_rate=6_000_000), minors)
    steps = htb_steps("eth1", after.interfaces["eth1"].htb, before.interfaces["eth1"].htb)
    assert sorted((op.action, op.cls.minor) for op in steps.before if op.cls) == sorted(
        [("change", minors["eth1"]["silver"]), ("change", minors["eth1"]["silver/acme"])])
    assert not steps.after


def test_a_class_move_is_make_before_break() -> None:
    """silver -> gold: the new leaf is added before the switch, the old one deleted after it."""
    before, minors = _plan(_config())
    after, new_minors = _plan(_config("gold", 2_000_000), minors)
    steps = htb_steps("eth1", after.interfaces["eth1"].htb, before.interfaces["eth1"].htb)
    new_leaf, old_leaf = new_minors["eth1"]["gold/acme"], minors["eth1"]["silver/acme"]
    assert ("add", new_leaf) in [(op.action, op.cls.minor) for op in steps.before if op.cls]
    deleted = [op.cls.minor for op in steps.after if op.action == "delete" and op.cls]
    assert deleted == [old_leaf, minors["eth1"]["silver"]]   # child before its parent
    assert new_minors["eth1"]["gold/globex"] == minors["eth1"]["gold/globex"]   # stable ids: untouched


def test_an_inner_class_prio_the_kernel_keeps_is_no_drift() -> None:
    plan, minors = _plan(_config())
    htb = plan.interfaces["eth1"].htb
    assert htb is not None
    root = minors["eth1"]["root"]
    have = dict(htb.classes)
    r = have[root]
    have[root] = HtbClass(r.minor, r.parent, r.rate_bps, r.ceil_bps, 7, 1514)   # as the kernel reports it
    assert not htb_steps("eth1", htb, HtbPlan(htb.default_minor, have))


def test_a_new_default_class_rebuilds_the_tree() -> None:
    plan, _ = _plan(_config())
    htb = plan.interfaces["eth1"].htb
    assert htb is not None
    steps = htb_steps("eth1", htb, HtbPlan(htb.default_minor + 1, dict(htb.classes)))
    assert [op.action for op in steps.before[:2]] == ["delete-root", "add-root"]


def test_rates_round_to_whole_bytes_and_a_tiny_rate_is_raised() -> None:
    config = _config(acme_rate=5_000_003)
    config.interfaces[0].scheduler.classes[1].rate_bps = 0
    plan, minors = _plan(config)
    htb = plan.interfaces["eth1"].htb
    assert htb is not None
    assert htb.classes[minors["eth1"]["silver/acme"]].rate_bps == 5_000_000
    assert htb.classes[minors["eth1"]["gold"]].rate_bps == 8_000


def test_a_config_naming_unknown_classes_is_refused_before_the_kernel() -> None:
    config = _config()
    config.interfaces[0].scheduler.by_prefix[0].leaf = "silver/nobody"
    config.interfaces[0].scheduler.classes[2].parent = "platinum"
    assert {e.item for e in check_config(config)} == {"silver/nobody", "gold/globex"}


def test_where_the_kernel_has_fq_codel_every_new_leaf_gets_it() -> None:
    plan, minors = kernel_plan(_config(), {}, leaf_qdisc="fq_codel")
    steps = htb_steps("eth1", plan.interfaces["eth1"].htb, None)
    with_queue = {op.cls.minor for op in steps.before if op.action == "leaf-qdisc" and op.cls}
    leaves = {minors["eth1"][n] for n in ("gold/globex", "silver/acme", "bronze/default")}
    assert with_queue == leaves
    assert "qdisc add dev eth1 parent 1:" in next(op.tc_line() for op in steps.before if op.action == "leaf-qdisc")
