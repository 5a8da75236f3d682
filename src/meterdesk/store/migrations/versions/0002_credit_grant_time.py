"""Credit grants carry when the top-up was granted (e.g. when the payment arrived), besides when it was recorded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, and never back-filled: credit_grants is append-only (its triggers refuse UPDATE), and a
    # grant written before this revision was granted when it was recorded.
    op.add_column("credit_grants", sa.Column("granted_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credit_grants") as batch_op:
        batch_op.drop_column("granted_at")
