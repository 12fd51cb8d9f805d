"""The store on SQLite and PostgreSQL: schema, cards, feedback, failure."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from cds_hooks.store import FeedbackItem, Store, StoreUnavailable, UnknownCard, migrate
from cds_hooks.store.models import Base, Feedback, IssuedCard, IssuedSuggestion
from tests.cds_hooks.conftest import count_rows, make_card, record

SERVICE = "lip-twitch-patient-view"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def accepted(card, at=T0, n=1) -> FeedbackItem:
    ids = tuple(s["uuid"] for s in card["suggestions"][:n])
    return FeedbackItem(
        card=card["uuid"], outcome="accepted", outcome_timestamp=at, accepted_suggestions=ids
    )


def overridden(card, at=T0, code="cds-not-applicable", display="Not applicable") -> FeedbackItem:
    return FeedbackItem(
        card=card["uuid"],
        outcome="overridden",
        outcome_timestamp=at,
        reason_system="http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        reason_code=code,
        reason_display=display,
    )


def test_migrations_create_exactly_the_models(store):
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert store.schema_is_current()


def test_downgrade_to_base_and_back(store):
    migrate.downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    store.upgrade()
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert {"issued_card", "issued_suggestion", "feedback", "jwt_replay"} <= set(
        inspect(store.engine).get_table_names()
    )


def test_a_replay_table_made_outside_the_migrations_is_kept(store):
    migrate.downgrade(store.engine, "0002")
    assert "jwt_replay" not in inspect(store.engine).get_table_names()
    with store.engine.begin() as connection:  # as releases before revision 0003 made it
        connection.execute(text("CREATE TABLE jwt_replay (key_hash VARCHAR(64) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO jwt_replay (key_hash) VALUES ('kept')"))
    try:
        store.upgrade()
        assert store.schema_is_current()
        with store.engine.connect() as connection:
            kept = connection.execute(text("SELECT key_hash FROM jwt_replay")).scalars().all()
        assert kept == ["kept"]
    finally:  # the PostgreSQL database is the session's: leave it as the migrations make it
        migrate.downgrade(store.engine, "0002")
        with store.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS jwt_replay"))
        store.upgrade()


def test_cards_are_recorded_with_their_evidence_and_suggestions(store):
    card = make_card(suggestions=2)
    info = make_card("lifestyle-advice", "R1", suggestions=0, indicator="info")
    assert record(store, [card, info], hook_instance="hi-1", issuer="https://ehr", tenant="t1") == 2
    with store.engine.connect() as connection:
        rows = connection.execute(select(IssuedCard).order_by(IssuedCard.id)).all()
        suggestions = connection.scalars(select(IssuedSuggestion.suggestion_uuid)).all()
    first = rows[0]
    assert (first.card_uuid, first.card_kind, first.rule_id, first.kb_version) == (
        card["uuid"],
        "hypokalemia-workup",
        "R3",
        "2026.11.0",
    )
    assert (first.service_id, first.hook, first.hook_instance) == (SERVICE, "patient-view", "hi-1")
    assert (first.indicator, first.issuer, first.tenant, first.shadow) == (
        "warning",
        "https://ehr",
        "t1",
        False,
    )
    assert first.issued_at == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    assert rows[1].card_kind == "lifestyle-advice"
    assert sorted(suggestions) == sorted(s["uuid"] for s in card["suggestions"])


def test_a_card_is_recorded_once_when_its_hook_instance_is_resent(store):
    card = make_card()
    assert record(store, [card], hook_instance="same") == 1
    assert record(store, [card], hook_instance="same") == 0
    assert count_rows(store, "issued_card") == 1
    assert count_rows(store, "issued_suggestion") == 1


def test_cards_without_uuid_are_not_recorded(store):
    card = make_card()
    del card["uuid"]
    assert record(store, [card]) == 0


def test_duplicate_feedback_is_recorded_once(store):
    card = make_card()
    record(store, [card])
    first = store.record_feedback(SERVICE, [accepted(card), accepted(card)])
    again = store.record_feedback(SERVICE, [accepted(card)])
    assert (first.received, first.recorded, first.duplicates) == (2, 1, 1)
    assert (again.recorded, again.duplicates) == (0, 1)
    assert count_rows(store, "feedback") == 1


def test_the_same_instant_in_another_offset_is_a_duplicate(store):
    card = make_card()
    record(store, [card])
    store.record_feedback(SERVICE, [overridden(card, at=T0)])
    plus_one = T0.astimezone(timezone(timedelta(hours=1)))
    assert store.record_feedback(SERVICE, [overridden(card, at=plus_one)]).duplicates == 1


def test_a_later_decision_on_the_same_card_is_kept(store):
    card = make_card()
    record(store, [card])
    store.record_feedback(SERVICE, [accepted(card, at=T0)])
    store.record_feedback(SERVICE, [overridden(card, at=T0 + timedelta(minutes=5))])
    with store.engine.connect() as connection:
        rows = connection.execute(select(Feedback).order_by(Feedback.outcome_timestamp)).all()
    assert [r.outcome for r in rows] == ["accepted", "overridden"]
    assert rows[0].accepted_suggestions == card["suggestions"][0]["uuid"]
    assert rows[1].reason_code == "cds-not-applicable"
    assert rows[1].outcome_timestamp == T0 + timedelta(minutes=5)


def test_feedback_on_an_unknown_card_writes_nothing(store):
    card = make_card()
    record(store, [card])
    stranger = make_card()
    with pytest.raises(UnknownCard) as caught:
        store.record_feedback(SERVICE, [accepted(card), overridden(stranger)])
    assert (caught.value.index, caught.value.field_name) == (1, "card")
    assert count_rows(store, "feedback") == 0


def test_feedback_for_another_services_card_is_refused(store):
    card = make_card()
    record(store, [card])
    with pytest.raises(UnknownCard):
        store.record_feedback("lip-twitch-order-sign", [overridden(card)])


def test_a_suggestion_that_was_not_on_the_card_is_refused(store):
    card, other = make_card(), make_card()
    record(store, [card, other])
    item = FeedbackItem(
        card=card["uuid"],
        outcome="accepted",
        outcome_timestamp=T0,
        accepted_suggestions=(other["suggestions"][0]["uuid"],),
    )
    with pytest.raises(UnknownCard) as caught:
        store.record_feedback(SERVICE, [item])
    assert caught.value.field_name == "acceptedSuggestions"
    assert count_rows(store, "feedback") == 0


def test_shadow_cards_were_never_shown_so_take_no_feedback(store):
    card = make_card()
    record(store, [card], shadow=True)
    with pytest.raises(UnknownCard):
        store.record_feedback(SERVICE, [overridden(card)])


def test_an_unreachable_database_is_unavailable_and_fails_fast():
    # Port 1 on localhost: connection refused at once.
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/none", cooldown_seconds=30)
    with pytest.raises(StoreUnavailable, match="database unavailable"):
        store.record_feedback(SERVICE, [overridden(make_card())])
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="moments ago"):
        store.ping()
    assert time.monotonic() - started < 0.1
    store.dispose()


def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.dispose()
