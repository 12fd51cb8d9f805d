"""Issued cards, their suggestions, and feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_card",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("hook", sa.String(length=64), nullable=False),
        sa.Column("hook_instance", sa.String(length=128), nullable=False),
        sa.Column("card_uuid", sa.String(length=64), nullable=False),
        sa.Column("card_kind", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("kb_version", sa.String(length=32), nullable=True),
        sa.Column("indicator", sa.String(length=16), nullable=False),
        sa.Column("patient_hash", sa.String(length=64), nullable=True),
        sa.Column("issuer", sa.String(length=255), nullable=True),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_card")),
        sa.UniqueConstraint("service_id", "card_uuid", name="uq_issued_card_service_uuid"),
    )
    op.create_index(op.f("ix_issued_card_hook_instance"), "issued_card", ["hook_instance"])
    op.create_index(op.f("ix_issued_card_issued_at"), "issued_card", ["issued_at"])

    op.create_table(
        "issued_suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("suggestion_uuid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["issued_card.id"],
            name=op.f("fk_issued_suggestion_card_id_issued_card"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_suggestion")),
        sa.UniqueConstraint("card_id", "suggestion_uuid", name="uq_issued_suggestion_card_uuid"),
    )

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("accepted_suggestions", sa.Text(), nullable=True),
        sa.Column("reason_system", sa.String(length=255), nullable=True),
        sa.Column("reason_code", sa.String(length=128), nullable=True),
        sa.Column("reason_display", sa.String(length=255), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["issued_card.id"],
            name=op.f("fk_feedback_card_id_issued_card"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint(
            "card_id", "outcome", "outcome_timestamp", name="uq_feedback_card_outcome_time"
        ),
    )
    op.create_index(op.f("ix_feedback_card_id"), "feedback", ["card_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_card_id"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("issued_suggestion")
    op.drop_index(op.f("ix_issued_card_issued_at"), table_name="issued_card")
    op.drop_index(op.f("ix_issued_card_hook_instance"), table_name="issued_card")
    op.drop_table("issued_card")
