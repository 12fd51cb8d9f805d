"""Issued cards remember their encounter and the context resource they concern.

order-sign skips a finding order-select already showed on the same draft in the same
encounter; these two columns are what it looks up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER most things in place; on PostgreSQL it is plain ALTER.
    with op.batch_alter_table("issued_card") as batch:
        batch.add_column(sa.Column("encounter_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("concerns", sa.String(length=255), nullable=True))
        batch.create_index(batch.f("ix_issued_card_encounter_id"), ["encounter_id"])


def downgrade() -> None:
    with op.batch_alter_table("issued_card") as batch:
        batch.drop_index(batch.f("ix_issued_card_encounter_id"))
        batch.drop_column("concerns")
        batch.drop_column("encounter_id")
