"""The shipped catalog holds the seed's GSB service and offerings; bad catalogs are refused by path."""

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from controller.domain.catalog import DEFAULT_CATALOG, ServiceClassName, load_catalog
from controller.domain.errors import InvalidValue, NotFound

GOLD, SILVER, BRONZE = ServiceClassName.GOLD, ServiceClassName.SILVER, ServiceClassName.BRONZE


def test_gsb_classes_have_their_phb_and_dscp() -> None:
    classes = load_catalog().classes
    assert (classes[GOLD].phb, classes[GOLD].dscp) == ("EF", 46)
    assert (classes[SILVER].phb, classes[SILVER].dscp) == ("AF41", 34)
    assert (classes[BRONZE].phb, classes[BRONZE].dscp) == ("BE", 0)
    assert classes[GOLD].one_way_delay_ms < classes[SILVER].one_way_delay_ms
    assert classes[GOLD].loss_ratio is not None and classes[BRONZE].loss_ratio is None


def test_business_offering_is_silver_with_ten_gold_hours_then_two_dollars() -> None:
    business = load_catalog().offering("gsb-business")
    assert business.title == "GSB business"
    assert business.default_class == SILVER
    assert business.tariff.classes[GOLD].included_hours == 10
    assert business.tariff.classes[GOLD].price_per_hour == Decimal("2.00")


def test_economy_offering_is_bronze_with_five_silver_hours_and_paid_gold() -> None:
    catalog = load_catalog()
    economy = catalog.offering("gsb-economy")
    assert economy.default_class == BRONZE
    assert economy.tariff.classes[SILVER].included_hours == 5
    assert economy.tariff.classes[SILVER].price_per_hour == Decimal("1.00")
    assert economy.tariff.classes[GOLD].included_hours == 0
    assert economy.tariff.classes[GOLD].price_per_hour == Decimal("5.00")
    # "the business variant will have a higher monthly standard charge than the economy variant"
    assert catalog.offering("gsb-business").tariff.monthly_fee > economy.tariff.monthly_fee


def test_every_offering_has_bounds_and_a_change_policy() -> None:
    for offering in load_catalog().offerings.values():
        assert offering.bounds and all(b.min <= b.max for b in offering.bounds.values())
        assert offering.change_policy.fee_per_change >= 0
        assert offering.availability.objective_percent <= 100


def test_unknown_offering_is_not_found_and_lists_known_ones() -> None:
    with pytest.raises(NotFound, match="gsb-business"):
        load_catalog().offering("gsb-platinum")


def _edited(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_CATALOG.read_text())
    edit(data)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_operator_adds_an_offering_by_editing_data(tmp_path: Path) -> None:
    def add(data: dict) -> None:
        data["offerings"]["gsb-premium"] = {**data["offerings"]["gsb-business"], "title": "GSB premium"}
    catalog = load_catalog(_edited(tmp_path, add))
    assert catalog.offering("gsb-premium").title == "GSB premium"


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["offerings"]["gsb-economy"]["bounds"]["gold"].update(min="9M", max="1M"), "offerings.gsb-economy.bounds.gold"),
    (lambda d: d["offerings"]["gsb-economy"].update(default_class="platinum"), "offerings.gsb-economy.default_class"),
    (lambda d: d["offerings"]["gsb-economy"]["tariff"].update(monthly_fee=40.5), "offerings.gsb-economy.tariff.monthly_fee"),
    (lambda d: d["classes"]["silver"].update(dscp=46), "classes"),
    (lambda d: d["classes"]["gold"].update(dscp=64), "classes.gold.dscp"),
    (lambda d: d["offerings"]["gsb-economy"].update(surprise=1), "offerings.gsb-economy.surprise"),
])
def test_invalid_catalog_is_refused_naming_the_path(tmp_path: Path, edit, where: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidValue) as refused:
        load_catalog(_edited(tmp_path, edit))
    assert where in refused.value.message
