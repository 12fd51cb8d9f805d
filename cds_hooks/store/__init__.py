"""The store of issued cards and feedback (SQLAlchemy 2, Alembic migrations)."""

from cds_hooks.store.recording import CardRecorder, install_store
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
    "CardRecorder",
    "FeedbackCounts",
    "FeedbackItem",
    "ReportRow",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownCard",
    "install_store",
]
