"""Pictures and retrained model files as rows, used when the database is PostgreSQL, so that
every app instance and worker reads them without a shared disk (app/storage/images.py,
app/storage/model_versions.py). `flask storage move` copies what older versions kept as files.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "pictures",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False))
    op.create_table(
        "model_files",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False))


def downgrade():
    op.drop_table("model_files")
    op.drop_table("pictures")
