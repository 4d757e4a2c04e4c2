"""Jobs on a queue (app/jobs/): a public key, the client, attempts, the worker and its heartbeat,
options, picture counts, when results expire, and a failure's code and translatable reason.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = [
    sa.Column("key", sa.String(40), nullable=True),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("options", sa.Text, nullable=True),
    sa.Column("pictures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("code", sa.String(40), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
]


def upgrade():
    with op.batch_alter_table("jobs") as batch:
        for column in COLUMNS:
            batch.add_column(column)
    op.create_index("uq_jobs_key", "jobs", ["key"], unique=True)
    op.create_index("ix_jobs_status_client", "jobs", ["status", "client"])


def downgrade():
    op.drop_index("ix_jobs_status_client", "jobs")
    op.drop_index("uq_jobs_key", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in COLUMNS:
            batch.drop_column(column.name)
