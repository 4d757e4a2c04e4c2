"""Teach sessions (issue 30): a cast taught from an episode, its groups and its face crops.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "teach_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stats", sa.Text, nullable=False))
    op.create_table(
        "teach_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("teach_sessions.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.UniqueConstraint("session_id", "number"))
    op.create_table(
        "teach_faces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("teach_sessions.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("teach_groups.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("track", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("embedder", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("dropped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enrolled_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="SET NULL"), nullable=True))


def downgrade():
    op.drop_table("teach_faces")
    op.drop_table("teach_groups")
    op.drop_table("teach_sessions")
