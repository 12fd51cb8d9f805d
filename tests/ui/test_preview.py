"""The card preview through the test client: demos, pasted input, refusals, feedback."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cds_hooks.cli.demo import hook_request, list_demos, load_demo
from cds_hooks.ui.preview import PreviewProblem, card_view, parse_json, run_preview
from tests.browser.server import build_app

PV = "lip-twitch-patient-view"
SAME_ORIGIN = {"Origin": "http://localhost"}

CREDENTIAL = "ui-credential-0123456789"


def run(client: Any, **form: str) -> str:
    data = {"service": PV, "source": "demo", **form}
    response = client.post("/ui/", data=data, headers=SAME_ORIGIN)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("demo", list_demos())
def test_every_demo_patient_renders(client: Any, demo: str) -> None:
    html = run(client, demo=f"patient:{demo}")
    assert "call-error" not in html
    if demo == "no-complaint":
        assert "answered with no cards" in html
    else:
        assert html.count('<article class="card') >= 1
        assert "**" not in re.sub(r"<pre>.*?</pre>", "", html, flags=re.S)


def test_pasted_request_and_bundle(client: Any) -> None:
    bundle = load_demo("low-potassium-meq")
    html = run(client, source="bundle", payload=json.dumps(bundle))
    assert 'data-kind="hypokalemia-workup"' in html
    html = run(client, source="request", payload=json.dumps(hook_request(bundle)))
    assert 'data-kind="hypokalemia-workup"' in html


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"source": "request", "payload": "{"}, "not valid JSON"),
        ({"source": "request", "payload": "   "}, "is empty"),
        ({"source": "request", "payload": "[1, 2]"}, "must be a JSON object"),
        ({"source": "request", "payload": '{"a": NaN}'}, "NaN is not valid JSON"),
        ({"source": "bundle", "payload": '{"resourceType": "Patient"}'}, "not a FHIR Bundle"),
        ({"source": "bundle", "payload": '{"resourceType": "Bundle"}'}, "no Patient"),
        ({"source": "demo", "demo": "patient:nobody"}, "no demo patient"),
        ({"source": "other"}, "choose a demo patient"),
        ({"service": "no-such-service"}, "no CDS service"),
    ],
)
def test_refusals_are_errors_never_no_cards(client: Any, form: dict, message: str) -> None:
    html = run(client, **form)
    assert 'class="call-error" role="alert"' in html
    assert message in html.replace("&#39;", "'").replace("&#34;", '"')
    assert "answered with no cards" not in html
    assert '<article class="card' not in html


def test_a_service_failure_is_an_error_too() -> None:
    class Refused(Exception):
        pass

    def broken(service_id: str, body: Any) -> dict:
        raise ZeroDivisionError

    result = run_preview(broken, PV, {}, refusal=Refused)
    assert result.error is not None and result.error.status == 500
    assert result.cards == []
    result = run_preview(lambda s, b: {"nope": 1}, PV, {}, refusal=Refused)
    assert result.error is not None and "without a cards array" in result.error.message


def test_parse_json_names_the_position() -> None:
    with pytest.raises(PreviewProblem, match="line 2 column 1"):
        parse_json('{"a": 1,\n}', "hook request")


def test_card_view_puts_actions_into_words() -> None:
    card = {
        "uuid": "u1", "summary": "S", "indicator": "warning", "detail": "**bold**",
        "source": {"label": "L", "topic": {"code": "k"}},
        "suggestions": [{"label": "Order it", "uuid": "s1", "isRecommended": True, "actions": [
            {"type": "create", "description": "Order: Serum potassium", "resource": {
                "resourceType": "ServiceRequest", "status": "draft",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}],
                         "text": "Serum potassium"}}},
            {"type": "delete", "description": "Remove", "resourceId": "MedicationRequest/m1"},
        ]}],
        "links": [{"label": "Why this card?", "url": "https://x/rules/R3", "type": "absolute"}],
    }
    view = card_view(card)
    assert "<strong>bold</strong>" in view.detail_html
    creates = [a.creates for a in view.suggestions[0].actions]
    assert creates == ["creates a draft ServiceRequest: Serum potassium (code 2823-3)",
                       "removes MedicationRequest/m1"]
    assert view.links[0].label == "Why this card?"


def test_card_text_cannot_inject_markup(client: Any) -> None:
    bundle = load_demo("low-potassium-meq")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["code"]["text"] = "lip twitch <script>alert(1)</script>"
    html = run(client, source="bundle", payload=json.dumps(bundle))
    assert "<script>" not in html


def test_feedback_from_the_preview_is_recorded_and_counted(client: Any) -> None:
    html = run(client, demo="patient:low-potassium-meq")
    card = re.search(r'name="card" value="([^"]+)"', html).group(1)
    suggestion = re.search(r'name="suggestion" value="([^"]+)"', html).group(1)
    form = {"service": PV, "card": card, "outcome": "accepted", "suggestion": suggestion}
    done = client.post("/ui/feedback", data=form, headers=SAME_ORIGIN)
    assert done.status_code == 200 and "recorded as <strong>accepted</strong>" in done.text
    again = client.post("/ui/feedback", data=form, headers=SAME_ORIGIN)
    assert again.status_code == 200  # a second answer: the card still counts once
    governance = client.get("/ui/governance").text
    row = re.search(r'<tr data-kind="hypokalemia-workup".*?</tr>', governance, re.S).group(0)
    assert re.search(r'data-col="accepted">1<', row)


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"service": "nope", "card": "c", "outcome": "accepted", "suggestion": "s"}, 400,
         "no CDS service"),
        ({"service": PV, "card": "", "outcome": "accepted"}, 400, "no card named"),
        ({"service": PV, "card": "c", "outcome": "maybe"}, 400, "accepted or overridden"),
        ({"service": PV, "card": "c", "outcome": "accepted"}, 400, "name the suggestion"),
        ({"service": PV, "card": "c", "outcome": "overridden"}, 503, "was not issued"),
    ],
)
def test_bad_feedback_is_refused(client: Any, form: dict, status: int, message: str) -> None:
    response = client.post("/ui/feedback", data=form, headers=SAME_ORIGIN)
    assert response.status_code == status
    assert message in response.text


def test_cross_site_posts_are_refused(client: Any) -> None:
    response = client.post("/ui/", data={"service": PV, "source": "demo"},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_pages_off_answer_404(tmp_path: Path) -> None:
    client = build_app(tmp_path, ui_pages=False).test_client()
    assert client.get("/ui/").status_code == 404
    assert client.get("/ui/governance").status_code == 404
    assert client.get("/rules/R1").status_code == 200


def test_pages_with_a_credential_ask_for_it(tmp_path: Path) -> None:
    client = build_app(tmp_path, ui_pages=True, ui_credential=CREDENTIAL).test_client()
    refused = client.get("/ui/governance")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    basic = "Basic " + base64.b64encode(f"x:{CREDENTIAL}".encode()).decode()
    ok = client.get("/ui/governance", headers={"Authorization": basic})
    assert ok.status_code == 200


def test_pages_carry_a_strict_content_security_policy(client: Any) -> None:
    response = client.get("/ui/")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
