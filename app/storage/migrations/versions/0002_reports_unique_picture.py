"""One report per picture from the API: a unique index on reports.image_sha256 where source = 'api'.

Before it, PostgreSQL writers racing on one picture each stored a row (check, then insert). Rows
that race left behind are kept for the operator but marked source = 'duplicate' (the earliest of
each picture stays 'api'), so the index can be built. Imported report files (source 'file') may
still share a picture, as they always could.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHERE = "source = 'api'"


def upgrade():
    op.execute("UPDATE reports SET source = 'duplicate' WHERE source = 'api' AND id NOT IN "
               "(SELECT MIN(id) FROM reports WHERE source = 'api' GROUP BY image_sha256)")
    op.create_index("uq_reports_api_image", "reports", ["image_sha256"], unique=True,
                    sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade():
    op.drop_index("uq_reports_api_image", "reports")
    op.execute("UPDATE reports SET source = 'api' WHERE source = 'duplicate'")
