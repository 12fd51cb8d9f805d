"""What the endpoints add to the metrics: 401 reasons, feedback outcomes, fetch outcomes."""

from __future__ import annotations

import logging

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from cds_hooks.app import create_app
from tests.cds_hooks.security.jwt_helpers import (
    JWKS_URL,
    SERVICE_AUD,
    SERVICE_PATH,
    FakeEhr,
    app_config,
    bearer,
    close_app,
    hook_body,
)


def samples(app) -> dict:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture(autouse=True)
def _keep_log_level():
    logger = logging.getLogger("lipcds")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def ehr_app(tmp_path):
    ehr = FakeEhr()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        app = create_app(app_config(f"sqlite:///{tmp_path / 'db.sqlite'}"))
        try:
            yield ehr, app
        finally:
            close_app(app)


def test_refusals_are_counted_by_reason(ehr_app):
    ehr, app = ehr_app
    client = app.test_client()
    assert client.post(SERVICE_PATH, json=hook_body()).status_code == 401
    wrong_aud = ehr.token("https://cds.example.org/cds-services/other")
    assert client.post(SERVICE_PATH, json=hook_body(), headers=bearer(wrong_aud)).status_code == 401
    token = ehr.token(SERVICE_AUD)
    assert client.post(SERVICE_PATH, json=hook_body(), headers=bearer(token)).status_code == 200
    assert client.post(SERVICE_PATH, json=hook_body(), headers=bearer(token)).status_code == 401
    found = samples(app)
    assert found[("lipcds_auth_rejections_total", (("reason", "no_token"),))] == 1
    assert found[("lipcds_auth_rejections_total", (("reason", "audience"),))] == 1
    assert found[("lipcds_auth_rejections_total", (("reason", "replay"),))] == 1
    status = (("service", "lip-twitch-patient-view"), ("status", "401"))
    assert found[("lipcds_hook_requests_total", status)] == 3


def test_feedback_is_counted_by_outcome_and_refusal(ehr_app):
    ehr, app = ehr_app
    client = app.test_client()
    body = hook_body()
    body["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "c1",
                    "subject": {"reference": "Patient/p1"},
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "code": {"text": "lip twitching"},
                    "onsetDateTime": "2026-02-20",
                }
            }
        ],
    }
    answer = client.post(SERVICE_PATH, json=body, headers=bearer(ehr.token(SERVICE_AUD)))
    cards = answer.get_json()["cards"]
    assert cards, answer.get_json()
    path = f"{SERVICE_PATH}/feedback"
    item = {
        "card": cards[0]["uuid"],
        "outcome": "overridden",
        "overrideReason": {"userComment": "not now"},
        "outcomeTimestamp": "2026-03-02T09:31:00Z",
    }
    aud = SERVICE_AUD + "/feedback"
    ok = client.post(path, json={"feedback": [item]}, headers=bearer(ehr.token(aud)))
    assert ok.status_code == 200, ok.get_json()
    bad = client.post(
        path, json={"feedback": [dict(item, outcome="x")]}, headers=bearer(ehr.token(aud))
    )
    assert bad.status_code == 400
    unknown = dict(item, card="00000000-0000-4000-8000-000000000000")
    assert (
        client.post(path, json={"feedback": [unknown]}, headers=bearer(ehr.token(aud))).status_code
        == 422
    )
    found = samples(app)
    assert found[("lipcds_feedback_total", (("outcome", "overridden"),))] == 1
    assert found[("lipcds_feedback_total", (("outcome", "invalid"),))] == 1
    assert found[("lipcds_feedback_total", (("outcome", "unknown_card"),))] == 1


def test_fetches_without_a_fhir_server_are_counted_as_not_attempted(ehr_app):
    ehr, app = ehr_app
    body = hook_body()
    del body["prefetch"]["labs"]
    answer = app.test_client().post(SERVICE_PATH, json=body, headers=bearer(ehr.token(SERVICE_AUD)))
    assert answer.status_code in (200, 412)
    found = samples(app)
    assert found[("lipcds_fhir_fetch_total", (("outcome", "not_attempted"),))] == 1
