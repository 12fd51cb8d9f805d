"""The JWT ids already seen, for the replay guard on the store's database.

A database where an older release created the table outside the migrations keeps it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("jwt_replay"):
        return
    op.create_table(
        "jwt_replay",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_jwt_replay")),
    )
    op.create_index(op.f("ix_jwt_replay_expires_at"), "jwt_replay", ["expires_at"])


def downgrade() -> None:
    op.drop_table("jwt_replay")  # and its index, whoever made the table
