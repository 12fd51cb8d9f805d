"""/metrics in one process: the counters, the histogram, bounded labels, the info metric."""

from __future__ import annotations

import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.ops.metrics import Metrics, auth_reason, metrics_blueprint
from cds_hooks.runtime import runtime

SERVICE = "lip-twitch-patient-view"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_hook_calls_are_counted_timed_and_their_cards_counted(app):
    client = app.test_client()
    request = hook_request(load_demo("low-potassium-meq"))
    cards = []
    for _ in range(3):
        answer = client.post(f"/cds-services/{SERVICE}", json=request)
        assert answer.status_code == 200
        cards = answer.get_json()["cards"]
    assert cards, "the demo patient should get cards"
    client.post(f"/cds-services/{SERVICE}", json={"hook": "patient-view"})  # 400
    client.post("/cds-services/no-such-service", json={})  # 404, an unknown id

    found = samples(client.get("/metrics").get_data(as_text=True))
    assert value(found, "lipcds_hook_requests_total", service=SERVICE, status="200") == 3
    assert value(found, "lipcds_hook_requests_total", service=SERVICE, status="400") == 1
    # The unknown id never becomes a label: a caller cannot create time series.
    assert value(found, "lipcds_hook_requests_total", service="other", status="404") == 1
    assert not any("no-such-service" in str(key) for key in found)
    assert value(found, "lipcds_hook_duration_seconds_count", service=SERVICE) == 4
    assert value(found, "lipcds_hook_duration_seconds_bucket", service=SERVICE, le="+Inf") == 4
    assert value(found, "lipcds_hook_duration_seconds_sum", service=SERVICE) > 0
    for card in cards:
        kind = card["source"]["topic"]["code"]
        indicator = card["indicator"]
        assert value(
            found, "lipcds_cards_total", service=SERVICE, kind=kind, indicator=indicator
        ) == 3 * sum(
            1 for c in cards if c["source"]["topic"]["code"] == kind and c["indicator"] == indicator
        )
    version = runtime(app).kb.version
    assert value(found, "lipcds_knowledge_base_info", version=str(version)) == 1


def test_no_patient_data_or_ids_in_the_exposition(app):
    client = app.test_client()
    request = hook_request(load_demo("low-potassium-meq"))
    hook_instance = str(uuid.uuid4())
    request["hookInstance"] = hook_instance
    client.post(f"/cds-services/{SERVICE}", json=request)
    text = client.get("/metrics").get_data(as_text=True)
    patient = request["context"]["patientId"]
    assert patient not in text and hook_instance not in text
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        labels = line[line.index("{") + 1 : line.rindex("}")]
        for name, _ in re.findall(r'(\w+)="([^"]*)"', labels):
            assert name in {
                "service",
                "status",
                "kind",
                "indicator",
                "le",
                "version",
                "reason",
                "outcome",
            }, line


def test_label_values_outside_their_sets_become_other():
    metrics = Metrics(["svc"], "1")
    metrics.hook_call("attacker-chosen", 999, 0.1)
    metrics.auth_rejected("free text from a token")
    metrics.fhir_fetch("something-else")
    metrics.feedback("maybe")
    metrics.cards_returned(
        "svc", [{"indicator": "hard-stop", "source": {"topic": {"code": "a b"}}}]
    )
    found = samples(metrics.exposition()[0].decode())
    assert value(found, "lipcds_hook_requests_total", service="other", status="other") == 1
    assert value(found, "lipcds_auth_rejections_total", reason="other") == 1
    assert value(found, "lipcds_fhir_fetch_total", outcome="other") == 1
    assert value(found, "lipcds_feedback_total", outcome="other") == 1
    assert value(found, "lipcds_cards_total", service="svc", kind="other", indicator="other") == 1


def test_store_pending_gauge():
    metrics = Metrics(["svc"], "1")
    metrics.set_store_pending(7)
    found = samples(metrics.exposition()[0].decode())
    assert value(found, "lipcds_store_pending_records") == 7
    metrics.set_store_pending(-3)
    assert value(samples(metrics.exposition()[0].decode()), "lipcds_store_pending_records") == 0


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("no Authorization header", "no_token"),
        ("Authorization header is not a bearer token", "no_token"),
        ("malformed token (DecodeError)", "malformed"),
        ("algorithm 'HS256' not allowed", "algorithm"),
        ("issuer 'https://evil' is not trusted", "issuer"),
        ("issuer 'x': jku 'https://evil/k' is not on its allow-list", "jku"),
        ("issuer 'x': no usable key 'k1' for ES384 at https://x/jwks", "key"),
        ("issuer 'x': signature refused (InvalidSignatureError)", "signature"),
        ("issuer 'x' jti 'j': aud 'https://other' is not 'https://us'", "audience"),
        ("issuer 'x' jti 'j': expired 30 s ago", "time"),
        ("issuer 'x' jti 'j': tenant 't9' not allowed", "tenant"),
        ("issuer 'x' jti 'j': jti already used (replay)", "replay"),
        ("issuer 'x': jti missing or invalid", "jti"),
        ("something new", "other"),
        (None, "other"),
    ],
)
def test_auth_reasons(reason, label):
    assert auth_reason(reason) == label


def test_metrics_behind_a_token():
    from flask import Flask

    metrics = Metrics(["svc"], "1")
    app = Flask("t")
    app.register_blueprint(metrics_blueprint(metrics, token="s3cret-metrics-token"))
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret-metrics-token"}
    answer = client.get("/metrics", headers=right)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
