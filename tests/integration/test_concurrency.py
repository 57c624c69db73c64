"""50 concurrent writers for 10 s, on SQLite and on PostgreSQL: SLS changes racing on the same
SLSs and the same link, SLA creations racing for the same reservations, and the domain manager
tightening and widening SLAs under the customers' feet. Afterwards no link
is overbooked, every acknowledged change is in the history exactly once (no lost update), and
the history agrees with the SLS in effect."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

import pytest

from controller.domain.catalog import Catalog, ClassBounds, ServiceClassName
from controller.domain.errors import CapacityExceeded, Conflict, CsmmError
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import Attachment, CustomerKind, LifecycleState
from controller.provisioning.apply import apply
from controller.provisioning.model import ProvisioningFile
from controller.service.layer import ServiceLayer, SlaSpec
from controller.store.database import Database

WRITERS = 50
CREATORS = 5
MODIFIERS = 2
SECONDS = 10.0
CUSTOMERS = 20
M = 1_000_000


def _contended_network() -> ProvisioningFile:
    """One 100 Mbit/s edge-core link that every customer crosses: Gold <= 30M, Gold+Silver <= 80M
    in effect. Reservations are overbooked 10x so that many SLAs exist and their SLSs compete."""
    sla = {"offering": "gsb-business", "router": "edge", "interface": "acc", "access_speed": "20M",
           "bounds": {"gold": {"min": "1M", "max": "10M"}, "silver": {"min": "1M", "max": "20M"},
                      "bronze": {"min": "1M", "max": "20M"}},
           "change_policy": {"min_interval": "0s", "fee_per_change": "0.10"},
           "state": "operational", "sls": {"class": "bronze", "bandwidth": "1M"}}
    return ProvisioningFile.model_validate({
        "topology": {
            "routers": [
                {"id": "edge", "mgmt_address": "198.18.0.21", "interfaces": [
                    {"name": "up", "role": "core", "capacity": "100M"}, {"name": "acc", "role": "access", "capacity": "1G"}]},
                {"id": "core", "mgmt_address": "198.18.0.22", "interfaces": [
                    {"name": "down", "role": "core", "capacity": "100M"}, {"name": "out", "role": "peering", "capacity": "10G"}]}],
            "links": [{"name": "edge-core", "a": "edge:up", "b": "core:down"}],
            "egress": [{"name": "internet", "at": "core:out"}]},
        "customers": [{"name": f"c{i:02d}", "slas": [{**sla, "name": f"c{i:02d}-sla", "prefixes": [f"198.19.{i}.0/24"]}]}
                      for i in range(CUSTOMERS)]})


@pytest.fixture
def contended(database_url: str, catalog: Catalog) -> Iterator[ServiceLayer]:
    service = ServiceLayer(Database(database_url), catalog, overbooking=Decimal(10))
    apply(service, DOMAIN_MANAGER, _contended_network())
    yield service
    service.database.dispose()


def test_fifty_concurrent_writers_never_overbook_or_lose_an_update(contended: ServiceLayer) -> None:
    service = contended
    acknowledged: dict[str, list[tuple[int, str, int]]] = defaultdict(list)  # sla -> (version, class, bw)
    created: list[str] = []
    outcomes: dict[str, int] = defaultdict(int)
    failures: list[BaseException] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS
    start = threading.Barrier(WRITERS)

    def change_sls(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        while time.monotonic() < deadline:
            customer = f"c{rng.randrange(CUSTOMERS):02d}"
            service_class = rng.choice(["gold", "gold", "silver", "bronze"])
            bandwidth = rng.randint(1, 10) * M
            try:
                result = service.change_sls(Principal(Role.CUSTOMER, customer), f"{customer}-sla",
                                            service_class, bandwidth, Channel.CLI)
            except CapacityExceeded:
                outcome = "refused: capacity"
            except CsmmError as exc:
                outcome = f"refused: {exc.code}"
            else:
                outcome = "changed" if result.changed else "unchanged"
                if result.changed:
                    with lock:
                        acknowledged[f"{customer}-sla"].append((result.sls.version, service_class, bandwidth))
            with lock:
                outcomes[outcome] += 1

    def create_slas(seed: int) -> None:
        start.wait()
        index = 0
        while time.monotonic() < deadline:
            name = f"n{seed}-{index}"
            index += 1
            try:
                service.add_customer(DOMAIN_MANAGER, name, CustomerKind.CUSTOMER)
                service.create_sla(DOMAIN_MANAGER, SlaSpec(
                    name=name, customer=name, offering="gsb-business", state=LifecycleState.OPERATIONAL,
                    attachment=Attachment("edge", "acc", 20 * M, (f"198.18.{100 + seed}.{index}/32",)),
                    initial_class=None, initial_bandwidth_bps=M))
            except CapacityExceeded:
                outcome = "sla refused: capacity"
            else:
                outcome = "sla created"
                with lock:
                    created.append(name)
            with lock:
                outcomes[outcome] += 1

    def modify_slas(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        while time.monotonic() < deadline:
            name = f"c{rng.randrange(CUSTOMERS):02d}-sla"
            sla = service.get_sla(DOMAIN_MANAGER, name)
            top = rng.choice([5, 10]) * M
            bounds = {**sla.terms.bounds, ServiceClassName.GOLD: ClassBounds(min=M, max=top)}
            try:
                service.modify_sla(DOMAIN_MANAGER, name, SlaSpec(
                    name=name, customer=sla.customer, offering=sla.terms.offering, attachment=sla.terms.attachment,
                    bounds=bounds, change_policy=sla.terms.change_policy, state=sla.state))
            except Conflict:
                outcome = "modify refused: SLS outside"
            except CapacityExceeded:
                outcome = "modify refused: capacity"
            else:
                outcome = "sla modified"
            with lock:
                outcomes[outcome] += 1

    def guarded(target, seed: int) -> None:  # type: ignore[no-untyped-def]
        try:
            target(seed)
        except BaseException as exc:  # noqa: BLE001 - any crash fails the test below
            failures.append(exc)

    def role(i: int):  # type: ignore[no-untyped-def]
        return create_slas if i < CREATORS else modify_slas if i < CREATORS + MODIFIERS else change_sls
    threads = [threading.Thread(target=guarded, args=(role(i), i)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == [], failures[:3]
    print(dict(outcomes))
    # The race was really run: many changes went through, and both shares were hit.
    assert outcomes["changed"] >= 200
    assert outcomes["refused: capacity"] >= 10
    assert outcomes["sla created"] >= 1 and outcomes["sla refused: capacity"] >= 1
    assert outcomes["sla modified"] >= 5  # and customers met the tightened bounds:
    assert outcomes["refused: out-of-bounds"] >= 1

    # No link above its shares, loads equal the sums, every SLS within its SLA, history contiguous.
    assert service.audit(DOMAIN_MANAGER) == []
    for load in service.link_loads(DOMAIN_MANAGER):
        assert load.in_use.gold <= load.link.gold_limit()
        assert load.in_use.gold_silver <= load.link.gold_silver_limit()
        assert load.reserved.gold <= load.link.gold_limit(Decimal(10))

    # No lost update: each acknowledged change is in the history once, at the version returned.
    for sla_name, changes in acknowledged.items():
        history = service.sls_history(DOMAIN_MANAGER, sla_name)
        assert [entry.version for entry in history] == list(range(1, len(history) + 1))
        assert sorted(version for version, _, _ in changes) == list(range(2, len(history) + 1))
        by_version = {entry.version: (entry.service_class.value, entry.bandwidth_bps) for entry in history}
        for version, service_class, bandwidth in changes:
            assert by_version[version] == (service_class, bandwidth)
        current = service.get_sls(DOMAIN_MANAGER, sla_name)
        assert (current.version, current.service_class, current.bandwidth_bps) == (
            history[-1].version, history[-1].service_class, history[-1].bandwidth_bps)
    assert {s.name for s in service.list_slas(DOMAIN_MANAGER)} >= set(created)


@pytest.mark.postgres
def test_an_apply_that_modifies_slas_never_deadlocks_with_customers_sls_changes(postgres, catalog: Catalog,
                                                                                tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The apply modifies several SLAs (locking SLS rows one after another); meanwhile a customer's
    change holds another SLS row and wants the links. Found by review: this used to deadlock."""
    import psycopg
    import yaml

    from controller.provisioning.model import load_provisioning
    from tests.conftest import DEMO_FILE, migrate_url

    url = postgres.fresh_database(migrate_url)
    service = ServiceLayer(Database(url), catalog)
    apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    ids = {s.name: s.id for s in service.list_slas(DOMAIN_MANAGER)}
    data = yaml.safe_load(DEMO_FILE.read_text())
    for customer in data["customers"]:
        for sla in customer["slas"]:
            if sla["name"] in ("acme-hq", "globex-main", "initech-office"):
                sla["prefixes"].append(sla["prefixes"][0].replace("198.19.", "198.18.2"))
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    dsn = f"host=127.0.0.1 port={postgres.port} user={postgres.user} dbname={url.rsplit('/', 1)[1]}"
    holder, customer = psycopg.connect(dsn), psycopg.connect(dsn)
    holder.execute("SELECT 1 FROM sls WHERE sla_id = %s FOR UPDATE", (ids["globex-main"],))
    results: dict[str, str] = {}

    def run_apply() -> None:
        try:
            results["apply"] = apply(service, DOMAIN_MANAGER, load_provisioning(edited)).summary()
        except Exception as exc:  # noqa: BLE001 - reported below
            results["apply"] = f"{type(exc).__name__}: {exc}"

    def customer_change() -> None:  # what change_sls does: its SLS row, then the links in name order
        try:
            customer.execute("SELECT 1 FROM sls WHERE sla_id = %s FOR UPDATE", (ids["initech-office"],))
            customer.execute("SELECT 1 FROM links WHERE name IN ('core-egress', 'edge2-core', 'internet') "
                             "ORDER BY name FOR UPDATE")
            customer.commit()
            results["customer"] = "ok"
        except Exception as exc:  # noqa: BLE001
            results["customer"] = f"{type(exc).__name__}: {exc}"

    applier = threading.Thread(target=run_apply)
    applier.start()
    time.sleep(0.5)
    changer = threading.Thread(target=customer_change)
    changer.start()
    time.sleep(1.0)
    holder.commit()
    applier.join(60)
    changer.join(60)
    holder.close()
    customer.close()
    assert results == {"apply": "topology unchanged; customers: 0 added, 0 changed; SLAs: 0 created, 3 changed",
                       "customer": "ok"}
    assert service.audit(DOMAIN_MANAGER) == []
    service.database.dispose()
