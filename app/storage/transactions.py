"""What a writer does inside its transaction: take turns with other writers, bump a version
counter. The low layer every store module uses (reports, gallery, jobs), below app/storage/db.py."""
from sqlalchemy import text

from app.storage.models import Counter


def serialise(s, key):
    """Hold a lock named by integer `key` until session `s`'s transaction ends: writers that read,
    then write (check a quota, then insert) take turns. PostgreSQL: a transaction-level advisory
    lock; SQLite: a write session already holds the database's one write lock (BEGIN IMMEDIATE)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def bump(s, key):
    """Increment counter `key` inside session `s` (the writer's transaction)."""
    row = s.get(Counter, key, with_for_update=True)
    if row is None:
        s.add(Counter(key=key, value=1))
    else:
        row.value += 1
