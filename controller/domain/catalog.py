"""The service catalog: the GSB service classes and the offerings sold on them.

Loaded from YAML (controller/catalog/gsb.yaml by default) and validated at start; every
refusal names the path of the offending entry in the file.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.domain.errors import InvalidValue, NotFound
from controller.domain.units import format_bandwidth, parse_bandwidth, parse_duration_seconds, parse_money

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "gsb.yaml"


class ServiceClassName(StrEnum):
    GOLD = "gold"
    SILVER = "silver"
    BRONZE = "bronze"


# The classes whose bandwidth is guaranteed, and so counted by admission control.
GUARANTEED_CLASSES = (ServiceClassName.GOLD, ServiceClassName.SILVER)

Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth)]
Money = Annotated[Decimal, BeforeValidator(parse_money)]
Seconds = Annotated[int, BeforeValidator(parse_duration_seconds)]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ServiceClass(_Value):
    """A DiffServ class of the GSB service (PHB, DSCP, and the quality it promises)."""

    name: ServiceClassName = ServiceClassName.BRONZE
    phb: str
    dscp: int = Field(ge=0, le=63)
    guaranteed: bool
    description: str = ""
    one_way_delay_ms: int | None = Field(default=None, ge=0)
    delay_variation_ms: int | None = Field(default=None, ge=0)
    loss_ratio: float | None = Field(default=None, ge=0, le=1)


class ClassBounds(_Value):
    """Minimum and maximum SLS bandwidth for one class, in bit/s."""

    min: Bandwidth = 0
    max: Bandwidth

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "ClassBounds":
        if self.min > self.max:
            raise ValueError(f"min {format_bandwidth(self.min)} is above max {format_bandwidth(self.max)}")
        return self


class PriceTier(_Value):
    """One step of a graduated price: the hours beyond the included ones, up to `up_to_hours` of
    them in all (None: every further hour), cost `price_per_hour` each."""

    up_to_hours: Decimal | None = None
    price_per_hour: Money


class ClassTariff(_Value):
    """Hours per month included in the monthly fee (None: unlimited) and the price of each further
    hour: one price (`price_per_hour`), or graduated (`tiers`, cheaper as more hours are used)."""

    included_hours: Decimal | None = None
    price_per_hour: Money = Decimal("0.00")
    tiers: tuple[PriceTier, ...] = ()

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[PriceTier, ...]) -> tuple[PriceTier, ...]:
        ends = [tier.up_to_hours for tier in tiers]
        if any(end is None for end in ends[:-1]):
            raise ValueError("only the last tier may be open-ended (no up_to_hours)")
        bounded = [end for end in ends if end is not None]
        if any(end <= 0 for end in bounded) or bounded != sorted(set(bounded)):
            raise ValueError("tiers' up_to_hours must be positive and ascending")
        return tiers

    def price_steps(self) -> tuple[PriceTier, ...]:
        """The graduated steps in force: the tiers, or one open step at `price_per_hour`; an hour
        past a bounded last tier costs the last tier's price."""
        if not self.tiers:
            return (PriceTier(price_per_hour=self.price_per_hour),)
        if self.tiers[-1].up_to_hours is not None:
            return (*self.tiers, PriceTier(price_per_hour=self.tiers[-1].price_per_hour))
        return self.tiers

    @field_validator("included_hours", mode="before")
    @classmethod
    def _unlimited(cls, value: object) -> object:
        if value == "unlimited":
            return None
        if isinstance(value, float):
            raise ValueError("write hours as an integer or a quoted decimal")
        return value


class Tariff(_Value):
    monthly_fee: Money
    classes: dict[ServiceClassName, ClassTariff]


class ChangePolicy(_Value):
    """How often a customer may change its SLS, and what each change costs."""

    min_interval_s: Seconds = Field(alias="min_interval")
    fee_per_change: Money = Decimal("0.00")

    @property
    def min_interval(self) -> timedelta:
        return timedelta(seconds=self.min_interval_s)


class AvailabilityObjective(_Value):
    """The SLA's availability promise per month and the credit owed when it is broken."""

    objective_percent: Decimal = Field(gt=0, le=100)
    max_outage_s: Seconds = Field(alias="max_outage")
    penalty_percent_of_monthly_fee: Decimal = Field(default=Decimal("0"), ge=0, le=100)


class Offering(_Value):
    """A sellable variant of the GSB service ("GSB business", "GSB economy", ...)."""

    name: str = ""
    title: str
    for_kind: Literal["customer", "peer"] = Field(alias="for")
    default_class: ServiceClassName
    tariff: Tariff
    bounds: dict[ServiceClassName, ClassBounds]
    change_policy: ChangePolicy
    availability: AvailabilityObjective

    @model_validator(mode="after")
    def _consistent(self) -> "Offering":
        if self.default_class not in self.bounds:
            raise ValueError(f"default_class {self.default_class} has no bounds")
        missing = set(self.bounds) - set(self.tariff.classes)
        if missing:
            raise ValueError(f"tariff has no price for class(es) {sorted(missing)}")
        return self


class Taxation(_Value):
    """The tax added to every invoice (a rate of 0: none)."""

    name: str = "VAT"
    rate_percent: Decimal = Field(default=Decimal("0"), ge=0, le=100)


class Catalog(_Value):
    service: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    tax: Taxation = Taxation()
    classes: dict[ServiceClassName, ServiceClass]
    offerings: dict[str, Offering]

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: object) -> object:
        # Entries are keyed by name in the file; copy the key into the value.
        if isinstance(data, dict):
            for key in ("classes", "offerings"):
                table = data.get(key)
                if isinstance(table, dict):
                    data[key] = {name: {**entry, "name": name} if isinstance(entry, dict) else entry
                                 for name, entry in table.items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Catalog":
        missing = set(ServiceClassName) - set(self.classes)
        if missing:
            raise ValueError(f"classes: the GSB service needs {sorted(missing)}")
        dscps = [c.dscp for c in self.classes.values()]
        if len(set(dscps)) != len(dscps):
            raise ValueError("classes: two classes share a DSCP")
        for name in GUARANTEED_CLASSES:
            if not self.classes[name].guaranteed:
                raise ValueError(f"classes.{name}: must be guaranteed")
        if self.classes[ServiceClassName.BRONZE].guaranteed:
            raise ValueError("classes.bronze: best effort cannot be guaranteed")
        return self

    def offering(self, name: str) -> Offering:
        try:
            return self.offerings[name]
        except KeyError:
            raise NotFound(f"offering {name!r} is not in the catalog (known: {', '.join(sorted(self.offerings))})",
                           field="offering", value=name) from None


def load_catalog(path: Path | str = DEFAULT_CATALOG) -> Catalog:
    """Read and validate a catalog file; raise InvalidValue naming the file path of each problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidValue(f"cannot read catalog {path}: {exc}", field="catalog", value=str(path)) from exc
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise InvalidValue(f"catalog {path} is invalid:\n{describe_validation_error(exc)}",
                           field="catalog", value=str(path)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: dotted path in the file, then what is wrong."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
