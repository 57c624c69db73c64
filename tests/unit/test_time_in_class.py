"""The SLS history gives the exact time spent in each class, split at changes and month ends."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from controller.domain.principal import Channel
from controller.domain.sls import SlsHistoryEntry, time_in_classes
from tests.unit.builders import BRONZE, GOLD, M, SILVER

UTC = timezone.utc


def entry(version: int, service_class, at: datetime) -> SlsHistoryEntry:  # type: ignore[no-untyped-def]
    return SlsHistoryEntry(1, version, service_class, M, at, "customer:acme", Channel.CLI, Decimal("0"))


def test_time_in_each_class_is_split_at_every_change_and_at_month_boundaries() -> None:
    history = [
        entry(1, SILVER, datetime(2026, 10, 20, tzinfo=UTC)),
        entry(2, GOLD, datetime(2026, 11, 3, 8, 0, tzinfo=UTC)),
        entry(3, SILVER, datetime(2026, 11, 3, 10, 30, tzinfo=UTC)),
        entry(4, BRONZE, datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),
        entry(5, GOLD, datetime(2026, 12, 1, 1, 0, tzinfo=UTC)),
    ]
    november = time_in_classes(history, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert november[GOLD] == timedelta(hours=2, minutes=30)
    assert november[BRONZE] == timedelta(hours=1)
    assert sum(november.values(), timedelta()) == timedelta(days=30)
    assert november[SILVER] == timedelta(days=30) - timedelta(hours=3, minutes=30)


def test_the_last_version_runs_until_the_given_end() -> None:
    history = [entry(1, GOLD, datetime(2026, 11, 1, tzinfo=UTC))]
    now = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    totals = time_in_classes(history, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), until=now)
    assert totals[GOLD] == timedelta(hours=5)
