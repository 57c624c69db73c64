"""The store on SQLite and PostgreSQL: migrations build exactly the declared schema, and the
SLS history cannot be rewritten."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from controller.domain.principal import DOMAIN_MANAGER, Channel, Principal, Role
from controller.service.layer import ServiceLayer
from controller.store import migrate
from controller.store.database import Database
from controller.store.schema import Base


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    database = Database(database_url)
    assert migrate.is_up_to_date(database)
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.dispose()
    assert differences == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    database = Database(database_url)
    migrate.upgrade(database)
    assert migrate.current_revision(database) == migrate.head_revision(database)
    database.dispose()


@pytest.mark.parametrize("statement", ["UPDATE sls_history SET bandwidth_bps = 1", "DELETE FROM sls_history"])
def test_sls_history_is_append_only(demo_any_db: ServiceLayer, statement: str) -> None:
    demo_any_db.change_sls(DOMAIN_MANAGER, "acme-hq", "gold", 2_000_000, Channel.CLI)
    with pytest.raises((DBAPIError, IntegrityError), match="append-only"):
        with demo_any_db.database.write() as session:
            session.execute(text(statement))
    assert len(demo_any_db.sls_history(DOMAIN_MANAGER, "acme-hq")) == 2


def test_demo_provisioning_loads_and_audits_clean_on_both_databases(demo_any_db: ServiceLayer) -> None:
    assert len(demo_any_db.list_slas(DOMAIN_MANAGER)) == 5
    assert demo_any_db.audit(DOMAIN_MANAGER) == []


@pytest.mark.postgres
def test_sls_history_cannot_be_truncated_on_postgresql(postgres) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import migrate_url

    database = Database(postgres.fresh_database(migrate_url))
    with pytest.raises(DBAPIError, match="append-only"):
        with database.write() as session:
            session.execute(text("TRUNCATE sls_history"))
    database.dispose()


def test_feedback_is_recorded_again_in_place_and_a_penalty_credit_once(demo_any_db: ServiceLayer) -> None:
    """Conformance rows are upserts (thousands every few seconds), on both databases; a month's
    penalty credit is recorded once however often its violation is reported."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from controller.domain.catalog import ServiceClassName
    from controller.domain.conformance import Conformance
    from controller.store.records import FeedbackRecord

    service = demo_any_db
    sla_id = service.get_sla(DOMAIN_MANAGER, "globex-main").id
    month = datetime(2026, 12, 1, tzinfo=timezone.utc)
    breach = {"customer": "globex", "service_class": "gold", "metric": "availability", "measured": 9980,
              "bound": 9990, "penalty_credit": "15.00", "month": month.isoformat()}
    for loss, down in ((0, 0.0), (250_000, 3000.0)):
        measured = Conformance(sla_id, month.replace(day=3), 3.0, ServiceClassName.GOLD, 2_000_000, 1_000_000,
                               1_000_000, loss, month, Decimal("99.80000"), int(down), ("availability",))
        service.record_feedback(DOMAIN_MANAGER, [FeedbackRecord(measured, month, down, down)],
                                [(sla_id, "sla.violation", breach)])
    [(found_id, found)] = service.conformance(DOMAIN_MANAGER).items()
    assert found_id == sla_id and found.loss_ppm == 250_000 and found.violations == ("availability",)
    assert service.feedback_records(DOMAIN_MANAGER)[sla_id].down_s == 3000.0
    assert [(i, amount) for i, _, amount, _ in service.penalty_credits(DOMAIN_MANAGER)] == [(sla_id, Decimal("15.00"))]
    assert service.conformance(Principal(Role.CUSTOMER, "acme")) == {}
