"""Persistence: SQLAlchemy tables, engines for SQLite (embedded default) and PostgreSQL, migrations."""
