"""Operator sessions kept on the server: sign-out deletes the row, so a copied cookie stops working.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_operator_sessions_expires", "operator_sessions", ["expires"])


def downgrade():
    op.drop_table("operator_sessions")
