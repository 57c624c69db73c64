"""Controller settings: command-line options, falling back to CSMM_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from controller.domain.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from controller.domain.errors import Conflict
from controller.service.layer import ServiceLayer
from controller.store import migrate
from controller.store.database import DEFAULT_URL, Database


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    catalog_path: Path = DEFAULT_CATALOG
    overbooking: Decimal = Decimal(1)
    now: datetime | None = None   # a fixed time to act at (replaying a scenario); None: the real clock


def open_service(settings: Settings, *, require_schema: bool = True) -> ServiceLayer:
    """Open the database, load and validate the catalog, and return the service layer."""
    catalog: Catalog = load_catalog(settings.catalog_path)
    database = Database(settings.database_url)
    if require_schema and not migrate.is_up_to_date(database):
        current, head = migrate.current_revision(database), migrate.head_revision(database)
        database.dispose()
        raise Conflict(f"database {database.describe()} is at schema revision {current or 'none'}, "
                       f"the controller needs {head}: run `csmm db upgrade`",
                       field="database", bound=head, value=current)
    if settings.now is None:
        return ServiceLayer(database, catalog, overbooking=settings.overbooking)
    fixed = settings.now
    return ServiceLayer(database, catalog, overbooking=settings.overbooking, clock=lambda: fixed)
