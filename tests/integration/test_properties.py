"""Property tests (hypothesis): no sequence of accepted changes — SLS changes by any principal,
SLA creations, modifications and deinstallations, as time passes — leaves an SLS outside its SLA
or a link above its class shares; and a refused change changes nothing."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from controller.domain.catalog import ClassBounds, ServiceClassName, load_catalog
from controller.domain.checks import Demand, LinkLoad, admit
from controller.domain.errors import CapacityExceeded, CsmmError
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.provisioning.apply import apply
from controller.provisioning.model import ProvisioningFile
from controller.service.layer import ServiceLayer, SlaSpec
from controller.store.database import Database
from tests.conftest import Clock, migrate_url
from tests.unit.builders import lab_topology

M = 1_000_000
CLASSES = [c.value for c in ServiceClassName] + ["platinum"]
_TEMPLATE = Path(tempfile.mkdtemp(prefix="csmm-hyp-")) / "template.sqlite3"


def _small_network() -> ProvisioningFile:
    """Two edges sharing one 10 Mbit/s core link (Gold <= 3M, Gold+Silver <= 8M in effect), four
    customers and a peer, reserved at overbooking 2: small enough that random changes keep running
    into the shares."""
    def sla(name: str, router: str, interface: str, index: int, offering: str = "gsb-business") -> dict:
        return {"name": name, "offering": offering, "router": router, "interface": interface, "access_speed": "10M",
                "prefixes": [f"198.19.{index}.0/24"], "state": "operational",
                "bounds": {"gold": {"min": "1M", "max": "3M"}, "silver": {"min": "1M", "max": "6M"},
                           "bronze": {"min": "1M", "max": "10M"}},
                "change_policy": {"min_interval": "10m", "fee_per_change": "0.10"},
                "sls": {"class": "bronze", "bandwidth": "1M"}}
    return ProvisioningFile.model_validate({
        "topology": {
            "routers": [
                {"id": "edge1", "mgmt_address": "198.18.0.31", "interfaces": [
                    {"name": "up", "role": "core", "capacity": "10M"}, {"name": "a1", "role": "access", "capacity": "10M"},
                    {"name": "a2", "role": "access", "capacity": "10M"}]},
                {"id": "edge2", "mgmt_address": "198.18.0.32", "interfaces": [
                    {"name": "up", "role": "core", "capacity": "10M"}, {"name": "a1", "role": "access", "capacity": "10M"}]},
                {"id": "core", "mgmt_address": "198.18.0.33", "interfaces": [
                    {"name": "e1", "role": "core", "capacity": "10M"}, {"name": "e2", "role": "core", "capacity": "10M"},
                    {"name": "out", "role": "peering", "capacity": "100M"}, {"name": "peer", "role": "peering", "capacity": "10M"}]}],
            "links": [{"name": "edge1-core", "a": "edge1:up", "b": "core:e1"},
                      {"name": "edge2-core", "a": "edge2:up", "b": "core:e2"}],
            "egress": [{"name": "internet", "at": "core:out"}]},
        "customers": [
            {"name": "acme", "slas": [sla("acme-1", "edge1", "a1", 1)]},
            {"name": "globex", "slas": [sla("globex-1", "edge1", "a2", 2)]},
            {"name": "initech", "slas": [sla("initech-1", "edge2", "a1", 3)]},
            {"name": "as64500", "kind": "peer", "slas": [sla("as64500-1", "core", "peer", 4, "gsb-peering")]}]})


def _template() -> Path:
    """Migrate and provision once; every example starts from a copy of it."""
    if not _TEMPLATE.exists():
        migrate_url(f"sqlite:///{_TEMPLATE}")
        layer = ServiceLayer(Database(f"sqlite:///{_TEMPLATE}"), load_catalog(), overbooking=Decimal(2),
                             clock=Clock(datetime(2026, 11, 2, tzinfo=timezone.utc)))
        apply(layer, DOMAIN_MANAGER, _small_network())
        layer.database.dispose()
    return _TEMPLATE


class CsmmMachine(RuleBasedStateMachine):
    @initialize(overbooking=st.sampled_from([Decimal(2), Decimal(4)]))  # the template needs 2
    def start(self, overbooking: Decimal) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="csmm-hyp-ex-"))
        shutil.copy(_template(), self.workdir / "db.sqlite3")
        self.clock = Clock(datetime(2026, 11, 2, 12, tzinfo=timezone.utc))
        self.service = ServiceLayer(Database(f"sqlite:///{self.workdir / 'db.sqlite3'}"), load_catalog(),
                                    overbooking=overbooking, clock=self.clock)
        self.slas = [s.name for s in self.service.list_slas(DOMAIN_MANAGER)]
        self.created = 0

    def teardown(self) -> None:
        if hasattr(self, "service"):
            self.service.database.dispose()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _owner(self, sla_name: str) -> Principal:
        sla = self.service.get_sla(DOMAIN_MANAGER, sla_name)
        return Principal(Role.PEER if sla.customer_kind == CustomerKind.PEER else Role.CUSTOMER, sla.customer)

    @rule(index=st.one_of(st.integers(0, 100), st.just(-1)), service_class=st.sampled_from(CLASSES),
          bandwidth=st.one_of(st.integers(0, 14).map(lambda n: n * M // 2), st.just("class maximum")),
          who=st.sampled_from(["owner", "manager", "stranger"]))
    def change_sls(self, index: int, service_class: str, bandwidth: int | str, who: str) -> None:
        name = self.slas[index % len(self.slas)]  # -1: the newest SLA, often the one that overbooks
        if bandwidth == "class maximum":  # aim at the bounds, where links fill up
            bounds = self.service.get_sla(DOMAIN_MANAGER, name).terms.bounds
            chosen = bounds.get(ServiceClassName(service_class)) if service_class != "platinum" else None
            bandwidth = chosen.max if chosen else M
        assert isinstance(bandwidth, int)
        principal = {"owner": self._owner(name), "manager": DOMAIN_MANAGER,
                     "stranger": Principal(Role.CUSTOMER, "globex" if name.startswith("acme") else "acme")}[who]
        before = self.service.get_sls(DOMAIN_MANAGER, name), self.service.link_loads(DOMAIN_MANAGER)
        try:
            result = self.service.change_sls(principal, name, service_class, bandwidth, Channel.CLI)
        except CsmmError:
            assert (self.service.get_sls(DOMAIN_MANAGER, name), self.service.link_loads(DOMAIN_MANAGER)) == before
            return
        assert who != "stranger", "another customer changed an SLS that is not theirs"
        assert (result.sls.service_class.value, result.sls.bandwidth_bps) == (service_class, bandwidth)

    @rule(router=st.sampled_from([("edge1", "a1"), ("edge2", "a1"), ("core", "peer")]),
          gold=st.integers(0, 4), silver=st.integers(1, 8),
          state=st.sampled_from([LifecycleState.OPERATIONAL, LifecycleState.OPERATIONAL, LifecycleState.INSTALLED_TESTED,
                                 LifecycleState.OFFERED, LifecycleState.IMPLEMENTING]))
    def create_sla(self, router: tuple[str, str], gold: int, silver: int, state: LifecycleState) -> None:
        self.created += 1
        name = f"new{self.created}"
        peer = router[0] == "core"
        bounds = {ServiceClassName.SILVER: ClassBounds(min=M, max=silver * M)}
        if gold:
            bounds[ServiceClassName.GOLD] = ClassBounds(min=M, max=gold * M)
        self.service.add_customer(DOMAIN_MANAGER, name, CustomerKind.PEER if peer else CustomerKind.CUSTOMER)
        try:
            self.service.create_sla(DOMAIN_MANAGER, SlaSpec(
                name=name, customer=name, offering="gsb-peering" if peer else "gsb-business", bounds=bounds, state=state,
                attachment=Attachment(*router, 10 * M, (f"198.19.{120 + self.created}.0/24",)),
                initial_class=ServiceClassName.SILVER, initial_bandwidth_bps=M))
        except CsmmError:
            return
        self.slas.append(name)

    @rule(index=st.integers(0, 100), silver=st.integers(1, 8))
    def modify_sla(self, index: int, silver: int) -> None:
        name = self.slas[index % len(self.slas)]
        sla = self.service.get_sla(DOMAIN_MANAGER, name)
        bounds = {**sla.terms.bounds, ServiceClassName.SILVER: ClassBounds(min=M, max=silver * M)}
        spec = SlaSpec(name=name, customer=sla.customer, offering=sla.terms.offering, attachment=sla.terms.attachment,
                       bounds=bounds, state=sla.state)
        try:
            self.service.modify_sla(DOMAIN_MANAGER, name, spec)
        except CsmmError:
            assert self.service.get_sla(DOMAIN_MANAGER, name) == sla

    @rule(index=st.integers(0, 100))
    def deinstall(self, index: int) -> None:
        name = self.slas[index % len(self.slas)]
        try:
            self.service.set_sla_state(DOMAIN_MANAGER, name, LifecycleState.DEINSTALLED)
        except CsmmError:
            pass

    @rule(minutes=st.integers(0, 30))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @invariant()
    def every_sls_within_its_sla_and_every_link_within_its_shares(self) -> None:
        if hasattr(self, "service"):
            assert self.service.audit(DOMAIN_MANAGER) == []


CsmmMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestCsmmMachine = CsmmMachine.TestCase


@given(st.lists(st.tuples(st.integers(-15, 15), st.integers(-15, 15)), max_size=60))
def test_admission_never_lets_a_link_exceed_its_shares(deltas: list[tuple[int, int]]) -> None:
    link = lab_topology().link("edge1-core")
    load = LinkLoad(link, Demand(), Demand())
    for gold, silver in deltas:
        delta = Demand(gold * M, (gold + silver) * M)
        after = load.in_use + delta
        if after.gold < 0 or after.gold_silver < after.gold:
            continue  # not a reachable state: loads are sums of non-negative demands
        try:
            admit([load], delta, measure="in_use")
        except CapacityExceeded:
            continue
        load = replace(load, in_use=after)
        assert load.in_use.gold <= link.gold_limit()
        assert load.in_use.gold_silver <= link.gold_silver_limit()
