"""The store of issued cards and feedback (SQLAlchemy 2, Alembic migrations)."""

from cds_hooks.store.store import (
    FeedbackCounts,
    FeedbackItem,
    ReportRow,
    Store,
    StoreError,
    StoreUnavailable,
    UnknownCard,
)

__all__ = [
    "FeedbackCounts",
    "FeedbackItem",
    "ReportRow",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownCard",
]
