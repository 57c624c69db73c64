"""Engines and transactions for the embedded SQLite default and for PostgreSQL.

Writers must never overbook a link or lose an update, on either backend:
* SQLite: write transactions start with BEGIN IMMEDIATE, so there is one writer at a time
  (WAL keeps readers going meanwhile).
* PostgreSQL: writers lock the SLS row and then the link rows they change, in a fixed order
  (SELECT ... FOR UPDATE); under READ COMMITTED each later statement sees what the previous
  lock holder committed. Writers on disjoint links run in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/csmm.sqlite3"  # relative to the working directory
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    """One database: a write engine and a read engine (distinct only on SQLite)."""

    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        if self.is_sqlite:
            self._writer = self._sqlite_engine(begin="BEGIN IMMEDIATE", echo=echo)
            self._reader = self._sqlite_engine(begin="BEGIN", echo=echo)
        else:
            self._writer = create_engine(self.url, echo=echo, pool_size=20, max_overflow=40, pool_pre_ping=True)
            self._reader = self._writer
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)

    def _sqlite_engine(self, *, begin: str, echo: bool) -> Engine:
        engine = create_engine(self.url, echo=echo, pool_size=20, max_overflow=40,
                               connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event, not pysqlite, start transactions.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction, committed on success and rolled back on any exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A read-only transaction. With `snapshot`, every statement in it sees the same committed
        state (PostgreSQL REPEATABLE READ; SQLite's WAL read transactions already do)."""
        with self._read_sessions() as session, session.begin():
            if snapshot and not self.is_sqlite:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
            yield session

    @property
    def engine(self) -> Engine:
        return self._writer

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pooled connections (without closing them, they
        are the parent's) so the child opens its own."""
        self._writer.dispose(close=False)
        if self._reader is not self._writer:
            self._reader.dispose(close=False)

    def dispose(self) -> None:
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)
