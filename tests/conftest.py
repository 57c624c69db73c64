"""Shared fixtures: databases (SQLite always, PostgreSQL from the throwaway server), a settable
clock, the shipped catalog, and service layers with or without the demo provisioning."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.accounting.service import Accounting
from controller.domain.catalog import Catalog, load_catalog
from controller.domain.principal import DOMAIN_MANAGER
from controller.provisioning.apply import apply
from controller.provisioning.model import load_provisioning
from controller.service.layer import ServiceLayer
from controller.store import migrate
from controller.store.database import Database
from tests.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILE = ROOT / "labs" / "containerlab" / "gsb-provisioning.yaml"


class Clock:
    """A clock the tests move by hand (SLS change intervals, history timing)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def migrate_url(url: str) -> None:
    database = Database(url)
    migrate.upgrade(database)
    database.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/csmm.sqlite3"
    migrate_url(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.fresh_database(migrate_url)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc))


@pytest.fixture
def service(sqlite_url: str, catalog: Catalog, clock: Clock) -> Iterator[ServiceLayer]:
    layer = ServiceLayer(Database(sqlite_url), catalog, clock=clock)
    yield layer
    layer.database.dispose()


@pytest.fixture
def demo(service: ServiceLayer) -> ServiceLayer:
    """The service layer with the demo provisioning (lab topology, 4 customers, 1 peer) applied."""
    apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    return service


@pytest.fixture
def demo_any_db(database_url: str, catalog: Catalog, clock: Clock) -> Iterator[ServiceLayer]:
    """The demo on SQLite and on PostgreSQL."""
    layer = ServiceLayer(Database(database_url), catalog, clock=clock)
    apply(layer, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    yield layer
    layer.database.dispose()


@pytest.fixture
def billing(database_url: str, catalog: Catalog) -> Iterator[tuple[ServiceLayer, Accounting, Clock]]:
    """The demo customers, operational since 20 October 2026 (so November is a whole month), with
    the accounting part, on SQLite and on PostgreSQL."""
    clock = Clock(datetime(2026, 10, 20, tzinfo=timezone.utc))
    service = ServiceLayer(Database(database_url), catalog, clock=clock)
    apply(service, DOMAIN_MANAGER, load_provisioning(DEMO_FILE))
    yield service, Accounting(service), clock
    service.database.dispose()
