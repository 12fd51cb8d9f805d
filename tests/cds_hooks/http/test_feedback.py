"""POST /cds-services/{id}/feedback over HTTP, and the record of hook responses."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from cds_hooks import create_app
from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.hooks.pipeline import run_hook
from tests.cds_hooks.conftest import PATIENT_KEY, count_rows

SERVICE = "lip-twitch-patient-view"
FEEDBACK_URL = f"/cds-services/{SERVICE}/feedback"
WHEN = "2026-11-21T10:15:00Z"


def make_app(database_url: str, **settings: Any):
    config = {
        "env": "test",
        "auth_mode": "disabled",
        "database_url": database_url,
        "patient_id_key": PATIENT_KEY,
    }
    config.update(settings)
    return create_app(config)


@pytest.fixture
def app(store, database_url):
    app = make_app(database_url)
    yield app
    app.extensions["lipcds"].store.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cards(client) -> list[dict[str, Any]]:
    """The cards of a low-potassium patient: R3 (with a suggestion) and R1 (without)."""
    response = client.post(
        f"/cds-services/{SERVICE}", json=hook_request(load_demo("low-potassium-meq"))
    )
    assert response.status_code == 200
    return response.json["cards"]


def card_with_suggestions(cards):
    return next(c for c in cards if c.get("suggestions"))


def accept(card, *, when=WHEN) -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": when,
    }


def override(card, *, when=WHEN, reason=None) -> dict[str, Any]:
    if reason is None:
        reason = {
            "reason": {
                "system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
                "code": "cds-not-applicable",
                "display": "Not applicable to this patient",
            },
            "userComment": "twitching resolved",
        }
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": reason,
        "outcomeTimestamp": when,
    }


def test_hook_responses_are_recorded_with_a_keyed_patient_hash(app, client, cards, store):
    assert app.extensions["lipcds"].writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == len(cards) >= 2
    with store.engine.connect() as connection:
        hashes = {
            row[0] for row in connection.exec_driver_sql("SELECT patient_hash FROM issued_card")
        }
    (only,) = hashes
    assert len(only) == 64 and "low-potassium" not in only


def test_accepted_and_overridden_feedback_is_recorded(client, cards, store):
    with_suggestion = card_with_suggestions(cards)
    other = next(c for c in cards if c is not with_suggestion)
    response = client.post(
        FEEDBACK_URL, json={"feedback": [accept(with_suggestion), override(other)]}
    )
    assert response.status_code == 200
    assert response.json == {"received": 2, "recorded": 2, "duplicates": 0}
    assert count_rows(store, "feedback") == 2


def test_duplicate_feedback_is_idempotent(client, cards, store):
    body = {"feedback": [accept(card_with_suggestions(cards))]}
    assert client.post(FEEDBACK_URL, json=body).json["recorded"] == 1
    again = client.post(FEEDBACK_URL, json=body)
    assert again.status_code == 200
    assert again.json == {"received": 1, "recorded": 0, "duplicates": 1}
    assert count_rows(store, "feedback") == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda f: f.update(outcome="ignored"), "feedback[0].outcome", id="cds-fb-1"),
        pytest.param(lambda f: f.pop("outcome"), "feedback[0].outcome", id="outcome-missing"),
        pytest.param(
            lambda f: f.pop("acceptedSuggestions"), "feedback[0].acceptedSuggestions", id="cds-fb-2"
        ),
        pytest.param(
            lambda f: f.update(acceptedSuggestions=[]),
            "feedback[0].acceptedSuggestions",
            id="empty-accepted",
        ),
        pytest.param(
            lambda f: f.update(acceptedSuggestions=[{}]),
            "feedback[0].acceptedSuggestions[0].id",
            id="suggestion-without-id",
        ),
        pytest.param(
            lambda f: f.update(outcome="overridden", overrideReason={"userComment": "x"}),
            "feedback[0].acceptedSuggestions",
            id="overridden-with-accepted",
        ),
        pytest.param(lambda f: f.pop("card"), "feedback[0].card", id="card-missing"),
        pytest.param(
            lambda f: f.update(outcomeTimestamp="2026-11-21 10:15"),
            "feedback[0].outcomeTimestamp",
            id="not-rfc3339",
        ),
        pytest.param(
            lambda f: f.update(outcomeTimestamp="2026-11-21T10:15:00"),
            "feedback[0].outcomeTimestamp",
            id="no-offset",
        ),
        pytest.param(
            lambda f: f.update(outcomeTimestamp="2026-13-40T10:15:00Z"),
            "feedback[0].outcomeTimestamp",
            id="impossible-date",
        ),
        pytest.param(
            lambda f: f.pop("outcomeTimestamp"),
            "feedback[0].outcomeTimestamp",
            id="timestamp-missing",
        ),
    ],
)
def test_invalid_accepted_feedback_is_400_naming_the_field(client, cards, store, change, field):
    item = accept(card_with_suggestions(cards))
    change(item)
    response = client.post(FEEDBACK_URL, json={"feedback": [item]})
    assert response.status_code == 400
    issue = response.json["issue"][0]
    assert response.json["resourceType"] == "OperationOutcome"
    assert field in issue["expression"], issue
    assert count_rows(store, "feedback") == 0


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        pytest.param({}, "feedback[0].overrideReason", id="cds-fb-3"),
        pytest.param(
            {"reason": {"code": "x", "display": "X"}},
            "feedback[0].overrideReason.reason.system",
            id="coding-without-system",
        ),
        pytest.param(
            {"reason": {"system": "http://s"}},
            "feedback[0].overrideReason.reason.code",
            id="coding-without-code",
        ),
        pytest.param(
            {"userComment": ""}, "feedback[0].overrideReason.userComment", id="blank-comment"
        ),
    ],
)
def test_invalid_override_reason_is_400(client, cards, reason, field):
    response = client.post(FEEDBACK_URL, json={"feedback": [override(cards[0], reason=reason)]})
    assert response.status_code == 400
    assert any(field in e for e in response.json["issue"][0]["expression"]), response.json


def test_an_override_with_only_a_comment_is_accepted(client, cards):
    item = override(cards[0], reason={"userComment": "patient declines"})
    assert client.post(FEEDBACK_URL, json={"feedback": [item]}).status_code == 200


@pytest.mark.parametrize(
    "body", [{}, {"feedback": []}, {"feedback": {}}, [], {"feedback": [None]}], ids=str
)
def test_malformed_bodies_are_400(client, body):
    response = client.post(FEEDBACK_URL, json=body)
    assert response.status_code == 400
    assert response.json["resourceType"] == "OperationOutcome"


def test_a_body_that_is_not_json_is_415(client):
    response = client.post(FEEDBACK_URL, data="feedback", content_type="text/plain")
    assert response.status_code == 415


def test_unknown_service_is_404(client, cards):
    response = client.post(
        "/cds-services/no-such-service/feedback", json={"feedback": [override(cards[0])]}
    )
    assert response.status_code == 404


def test_a_card_this_service_did_not_issue_is_422_and_nothing_is_written(client, cards, store):
    stranger = {"uuid": str(uuid.uuid4())}
    body = {"feedback": [override(cards[0]), override(stranger)]}
    response = client.post(FEEDBACK_URL, json=body)
    assert response.status_code == 422
    issue = response.json["issue"][0]
    assert issue["code"] == "not-found"
    assert issue["expression"] == ["feedback[1].card"]
    assert stranger["uuid"] in issue["diagnostics"]
    assert count_rows(store, "feedback") == 0


def test_a_card_of_another_service_is_422(client, cards):
    response = client.post(
        "/cds-services/lip-twitch-order-sign/feedback", json={"feedback": [override(cards[0])]}
    )
    assert response.status_code in (404, 422)  # 404 only if order-sign is not a service


def test_a_suggestion_not_on_the_card_is_422(client, cards):
    item = accept(card_with_suggestions(cards))
    item["acceptedSuggestions"] = [{"id": str(uuid.uuid4())}]
    response = client.post(FEEDBACK_URL, json={"feedback": [item]})
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["feedback[0].acceptedSuggestions"]


def test_with_the_database_down_feedback_is_503_and_hooks_still_answer(caplog, tmp_path):
    app = make_app("postgresql+psycopg://postgres@127.0.0.1:1/lipcds", spool_dir=str(tmp_path))
    client = app.test_client()
    rt = app.extensions["lipcds"]
    store = rt.store
    store.cooldown_seconds = 0  # try the database on every call in this test
    with caplog.at_level(logging.ERROR, logger="lipcds"):
        hook = client.post(
            f"/cds-services/{SERVICE}",
            json=hook_request(load_demo("low-potassium-meq"), hook_instance="hi-down"),
        )
        assert hook.status_code == 200
        assert hook.json["cards"]
        assert not rt.writer.flush(timeout=1)
    assert rt.writer.pending == 1  # waits for the database, on disk
    assert "card records not written" in caplog.text and "are retried" in caplog.text
    response = client.post(FEEDBACK_URL, json={"feedback": [override(hook.json["cards"][0])]})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json["issue"][0]["code"] == "transient"
    assert "127.0.0.1" not in response.json["issue"][0]["diagnostics"]
    store.dispose()


SITE_FILE = """
sites:
  - issuer: https://ehr.shadow.example.org
    shadow: true
  - issuer: https://ehr.live.example.org
    tenant: north
    rules_disabled: [R1]
    thresholds: {freshness_days: 60}
"""


def test_shadow_mode_records_the_cards_but_returns_none(store, database_url, tmp_path):
    site_file = tmp_path / "sites.yaml"
    site_file.write_text(SITE_FILE)
    app = make_app(database_url, site_policy_file=str(site_file))
    rt = app.extensions["lipcds"]
    body = hook_request(load_demo("low-potassium-meq"))
    with app.app_context():
        shadowed = run_hook(rt, SERVICE, body, issuer="https://ehr.shadow.example.org")
        live = run_hook(
            rt,
            SERVICE,
            hook_request(load_demo("low-potassium-meq")),
            issuer="https://ehr.live.example.org",
            tenant="north",
        )
    assert shadowed == {"cards": []}
    assert live["cards"]
    assert rt.writer.flush(timeout=20)
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT shadow, issuer, tenant FROM issued_card").all()
    assert {(bool(r[0]), r[1], r[2]) for r in rows} == {
        (True, "https://ehr.shadow.example.org", None),
        (False, "https://ehr.live.example.org", "north"),
    }
    # A shadow card never reached a clinician, so feedback on it is refused.
    shadow_uuid = next(iter(_uuids(store, shadow=True)))
    response = app.test_client().post(
        FEEDBACK_URL, json={"feedback": [override({"uuid": shadow_uuid})]}
    )
    assert response.status_code == 422
    rt.store.dispose()


def _uuids(store, *, shadow: bool) -> set[str]:
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT card_uuid, shadow FROM issued_card").all()
    return {uuid_ for uuid_, flag in rows if bool(flag) is shadow}


def test_feedback_counts_only_for_the_site_the_card_was_issued_to(store, database_url):
    app = make_app(database_url)
    rt = app.extensions["lipcds"]
    with app.app_context():
        issued = run_hook(
            rt,
            SERVICE,
            hook_request(load_demo("low-potassium-meq")),
            issuer="https://ehr.a.example.org",
            tenant="a",
        )
    # Authentication is disabled here, so the caller is anonymous: not site a.
    response = app.test_client().post(
        FEEDBACK_URL, json={"feedback": [override(issued["cards"][0])]}
    )
    assert response.status_code == 422
    assert count_rows(store, "feedback") == 0
    rt.store.dispose()


def test_feedback_on_a_card_whose_record_still_waits_is_recorded(store, database_url):
    app = make_app(database_url)
    rt = app.extensions["lipcds"]
    rt.writer.flush_interval = 3600  # the writer thread will not write it on its own
    client = app.test_client()
    hook = client.post(
        f"/cds-services/{SERVICE}", json=hook_request(load_demo("low-potassium-meq"))
    )
    assert hook.status_code == 200
    assert count_rows(store, "issued_card") == 0  # still waiting
    response = client.post(FEEDBACK_URL, json={"feedback": [override(hook.json["cards"][0])]})
    assert response.status_code == 200, response.json
    assert response.json["recorded"] == 1
    assert count_rows(store, "issued_card") == len(hook.json["cards"])
    rt.store.dispose()


def test_feedback_on_a_card_another_worker_has_not_written_yet_is_recorded(
    store, database_url, tmp_path
):
    spool = str(tmp_path / "spool")
    first, second = make_app(database_url, spool_dir=spool), make_app(database_url, spool_dir=spool)
    first.extensions["lipcds"].writer.flush_interval = 3600
    hook = first.test_client().post(
        f"/cds-services/{SERVICE}", json=hook_request(load_demo("low-potassium-meq"))
    )
    response = second.test_client().post(
        FEEDBACK_URL, json={"feedback": [override(hook.json["cards"][0])]}
    )
    assert response.status_code == 200, response.json
    assert count_rows(store, "feedback") == 1
    for app in (first, second):
        app.extensions["lipcds"].store.dispose()
