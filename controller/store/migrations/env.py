"""Alembic environment: runs against the Database handed over in config.attributes."""

from alembic import context

from controller.store.schema import Base

config = context.config
database = config.attributes["database"]

with database.engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=database.is_sqlite)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
