"""Tables of the store: the cards each hook response carried, their suggestions, feedback,
and the JWT ids already seen (the replay guard's, when no Redis is configured).

The migrations in `cds_hooks/store/migrations` create exactly these tables; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so SQLite and PostgreSQL get the same names and later migrations
# can drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python, whatever the database keeps.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so naive UTC is stored
    and UTC is put back on the way out. Comparisons (the feedback duplicate key) then
    behave the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IssuedCard(Base):
    """One card of one hook response, live or computed in shadow mode."""

    __tablename__ = "issued_card"
    __table_args__ = (
        UniqueConstraint("service_id", "card_uuid", name="uq_issued_card_service_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    hook: Mapped[str] = mapped_column(String(64))
    hook_instance: Mapped[str] = mapped_column(String(128), index=True)
    card_uuid: Mapped[str] = mapped_column(String(64))
    card_kind: Mapped[str] = mapped_column(String(128))
    rule_id: Mapped[str | None] = mapped_column(String(32))
    kb_version: Mapped[str | None] = mapped_column(String(32))
    indicator: Mapped[str] = mapped_column(String(16))
    # HMAC-SHA256 of the patient id, hex; the raw id is never stored.
    patient_hash: Mapped[str | None] = mapped_column(String(64))
    issuer: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    shadow: Mapped[bool] = mapped_column(Boolean)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # order-sign does not repeat what order-select showed in the same encounter
    encounter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    concerns: Mapped[str | None] = mapped_column(String(255))  # e.g. "MedicationRequest/1"

    suggestions: Mapped[list[IssuedSuggestion]] = relationship(back_populates="card")
    feedback: Mapped[list[Feedback]] = relationship(back_populates="card")


class IssuedSuggestion(Base):
    """A suggestion uuid of an issued card: what `acceptedSuggestions` may name."""

    __tablename__ = "issued_suggestion"
    __table_args__ = (
        UniqueConstraint("card_id", "suggestion_uuid", name="uq_issued_suggestion_card_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("issued_card.id", ondelete="CASCADE"))
    suggestion_uuid: Mapped[str] = mapped_column(String(64))

    card: Mapped[IssuedCard] = relationship(back_populates="suggestions")


class Feedback(Base):
    """One feedback item (CDS Hooks 2.0 §feedback) on an issued card.

    Duplicate key: (card, outcome, outcomeTimestamp). A client that re-sends the same
    decision sends the same three values, so the second copy is ignored; a later,
    different decision on the same card (the spec allows several) has its own timestamp
    and is kept.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint(
            "card_id", "outcome", "outcome_timestamp", name="uq_feedback_card_outcome_time"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(
        ForeignKey("issued_card.id", ondelete="CASCADE"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | overridden
    # Space-separated suggestion uuids (uuids contain no spaces); NULL when none.
    accepted_suggestions: Mapped[str | None] = mapped_column(Text)
    reason_system: Mapped[str | None] = mapped_column(String(255))
    reason_code: Mapped[str | None] = mapped_column(String(128))
    reason_display: Mapped[str | None] = mapped_column(String(255))
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    card: Mapped[IssuedCard] = relationship(back_populates="feedback")


class JwtReplay(Base):
    """One (issuer, jti) already accepted, as a hash, until its token expires."""

    __tablename__ = "jwt_replay"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # Unix seconds, UTC
