"""`csmm apply` semantics: declarative, idempotent, all-or-nothing, and never reverting an SLS."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from controller.domain.errors import CapacityExceeded, Conflict, InvalidValue
from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.domain.sla import LifecycleState
from controller.provisioning.apply import apply, plan
from controller.provisioning.model import load_provisioning
from controller.service.layer import ServiceLayer
from tests.conftest import DEMO_FILE

M = 1_000_000


def demo_data() -> dict:
    return yaml.safe_load(DEMO_FILE.read_text())


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "provisioning.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_applying_the_demo_twice_changes_nothing_the_second_time(service: ServiceLayer) -> None:
    first = apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    assert (first.topology_changed, first.customers_added, first.slas_created) == (True, 5, 5)
    events = len(service.recent_events(DOMAIN_MANAGER, 1000))
    second = apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    assert not second.changed
    assert second.summary() == "no changes: the database already matches the file"
    assert len(service.recent_events(DOMAIN_MANAGER, 1000)) == events


def test_reapply_never_reverts_a_customers_sls(demo: ServiceLayer) -> None:
    demo.change_sls(Principal(Role.CUSTOMER, "acme"), "acme-hq", "gold", 2 * M, Channel.WEB)
    assert not apply(demo, DOMAIN_MANAGER, load_provisioning(DEMO_FILE)).changed
    assert demo.get_sls(DOMAIN_MANAGER, "acme-hq").service_class.value == "gold"


def test_an_edited_file_changes_just_what_was_edited(demo: ServiceLayer, tmp_path: Path) -> None:
    data = demo_data()
    data["customers"][0]["display_name"] = "ACME Corp."
    data["customers"][0]["slas"][0]["prefixes"].append("198.19.21.0/24")
    data["customers"].append({"name": "hooli", "slas": [{
        "name": "hooli-1", "offering": "gsb-economy", "router": "edge2", "interface": "eth2", "access_speed": "10M",
        "prefixes": ["198.19.30.0/24"], "bounds": {"bronze": {"min": "1M", "max": "10M"}}}]})
    report = apply(demo, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data)))
    assert (report.topology_changed, report.customers_added, report.customers_changed,
            report.slas_created, report.slas_changed) == (False, 1, 1, 1, 1)
    assert demo.get_sla(DOMAIN_MANAGER, "acme-hq").terms.attachment.prefixes == ("198.19.1.0/24", "198.19.21.0/24")
    assert demo.get_customer(DOMAIN_MANAGER, "acme").display_name == "ACME Corp."
    assert demo.get_sls(DOMAIN_MANAGER, "hooli-1").service_class.value == "bronze"
    assert not apply(demo, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data))).changed


def test_a_refused_sla_leaves_the_whole_file_unapplied(service: ServiceLayer, tmp_path: Path) -> None:
    data = demo_data()
    data["customers"][1]["slas"][0]["bounds"]["gold"]["max"] = "10M"  # globex: 3+10 M of gold > 30 % of 40M
    with pytest.raises(CapacityExceeded) as refused:
        apply(service, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data)))
    assert refused.value.message.startswith("SLA globex-main: link core-egress")
    assert service.list_customers(DOMAIN_MANAGER) == []
    assert service.topology(DOMAIN_MANAGER).routers == ()


def test_state_moves_forward_and_a_file_behind_the_database_is_reported(demo: ServiceLayer, tmp_path: Path) -> None:
    demo.set_sla_state(DOMAIN_MANAGER, "umbrella-lab", LifecycleState.DEINSTALLED)
    report = apply(demo, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    assert not report.changed
    assert report.warnings == ["SLA umbrella-lab is deinstalled; the file says operational "
                               "(states only move forward; left as it is)"]


def test_a_topology_change_recomputes_paths_and_is_refused_if_it_breaks_an_sla(demo: ServiceLayer, tmp_path: Path) -> None:
    data = demo_data()
    # Take edge1's acme interface away: acme-hq would lose its attachment.
    data["topology"]["routers"][0]["interfaces"] = [i for i in data["topology"]["routers"][0]["interfaces"] if i["name"] != "eth2"]
    with pytest.raises(Conflict, match="acme-hq"):
        apply(demo, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data)))
    # A direct edge2-egress link shortens edge2's path.
    data = demo_data()
    data["topology"]["routers"][1]["interfaces"].append({"name": "eth4", "role": "core", "capacity": "40M"})
    data["topology"]["routers"][3]["interfaces"].append({"name": "eth4", "role": "core", "capacity": "40M"})
    data["topology"]["links"].append({"name": "edge2-egress", "a": "edge2:eth4", "b": "egress:eth4"})
    assert apply(demo, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data))).topology_changed
    assert demo.get_sla(DOMAIN_MANAGER, "initech-office").path == ("edge2-egress", "internet")
    assert demo.audit(DOMAIN_MANAGER) == []


def test_json_files_load_like_yaml_with_dates_in_utc(service: ServiceLayer, tmp_path: Path) -> None:
    path = tmp_path / "provisioning.json"
    path.write_text(json.dumps(demo_data(), default=str))
    desired = load_provisioning(path)
    assert desired == load_provisioning(DEMO_FILE)
    assert desired.customers[0].slas[0].valid_from == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert apply(service, DOMAIN_MANAGER, desired).slas_created == 5
    assert not apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE)).changed


def test_changing_terms_and_deinstalling_in_one_apply_releases_exactly_the_old_reservation(
        demo: ServiceLayer, tmp_path: Path) -> None:
    data = demo_data()
    entry = data["customers"][0]["slas"][0]
    entry["bounds"]["gold"]["max"] = "2M"
    entry["state"] = "deinstalled"
    apply(demo, DOMAIN_MANAGER, load_provisioning(write(tmp_path, data)))
    assert demo.get_sla(DOMAIN_MANAGER, "acme-hq").state == LifecycleState.DEINSTALLED
    assert demo.audit(DOMAIN_MANAGER) == []
    assert demo.sls_history(DOMAIN_MANAGER, "acme-hq")[0].channel == Channel.PROVISIONING


def test_dry_run_plans_without_changing(service: ServiceLayer) -> None:
    work, report = plan(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    assert report.slas_created == 5 and len(work.new_slas) == 5
    assert service.list_slas(DOMAIN_MANAGER) == []


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["customers"][0]["slas"][0].update(access_speed="fast"), "customers.0.slas.0.access_speed"),
    (lambda d: d["customers"][0]["slas"][0].update(state="signed"), "customers.0.slas.0.state"),
    (lambda d: d["customers"][0].update(kind="reseller"), "customers.0.kind"),
    (lambda d: d["topology"]["links"][0].update(a="edge1"), "topology.links.0.a"),
])
def test_invalid_files_are_refused_naming_the_path(tmp_path: Path, edit, where: str) -> None:  # type: ignore[no-untyped-def]
    data = demo_data()
    edit(data)
    with pytest.raises(InvalidValue) as refused:
        load_provisioning(write(tmp_path, data))
    assert where in refused.value.message
