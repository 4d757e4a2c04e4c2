"""Alembic environment: migrations run on the connection app/storage/db.py hands over.

From a shell: `flask --app wsgi db upgrade` (the app also upgrades on its first database use).
"""
from alembic import context

from app.storage.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things, so later migrations copy tables instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
