"""Store fixtures: every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL is at 127.0.0.1:5432 on development and CI machines; the session database
comes from `postgres_database` (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from cds_hooks.store import Store

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
KINDS = ["sqlite", POSTGRES]
PATIENT_KEY = "test-patient-key-0123456789abcdef"


@pytest.fixture(params=KINDS)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lipcds.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def store(database_url) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store(database_url)
    store.upgrade()
    if store.dialect == "postgresql":
        with store.engine.begin() as connection:
            connection.execute(
                text("TRUNCATE feedback, issued_suggestion, issued_card RESTART IDENTITY")
            )
    yield store
    store.dispose()


def count_rows(store: Store, table: str) -> int:
    with store.engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608


def make_card(
    kind: str = "hypokalemia-workup",
    rule_id: str = "R3",
    *,
    suggestions: int = 1,
    indicator: str = "warning",
) -> dict[str, Any]:
    """A card shaped like those fhir_mapping.cards builds."""
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": f"{kind} summary",
        "indicator": indicator,
        "source": {
            "label": "Lip Twitch CDS",
            "topic": {
                "system": "https://lip-twitch-cds.example.org/card-kind",
                "code": kind,
                "display": kind,
            },
        },
        "extension": {
            "org.lipcds.evidence": {"ruleId": rule_id, "knowledgeBaseVersion": "2026.11.0"}
        },
    }
    if suggestions:
        card["suggestions"] = [
            {"label": f"suggestion {i}", "uuid": str(uuid.uuid4()), "actions": []}
            for i in range(suggestions)
        ]
        card["selectionBehavior"] = "any"
    return card


def record(store: Store, cards: list[dict[str, Any]], **kwargs: Any) -> int:
    values: dict[str, Any] = {
        "service_id": "lip-twitch-patient-view",
        "hook": "patient-view",
        "hook_instance": str(uuid.uuid4()),
        "issued_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        "patient_hash": "0" * 64,
    }
    values.update(kwargs)
    return store.record_result(cards=cards, **values)
