"""Input that once answered 500: each answers a JSON 4xx naming the field, or its cards.

One test per cause found by fuzzing the service, plus the near misses beside them (ids
with a trailing newline). The store-facing ones run on SQLite and on PostgreSQL, whose
columns and text type are the stricter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cds_hooks.runtime import runtime
from tests import builders as b

PATIENT_VIEW = f"/cds-services/{b.SERVICE}"
FEEDBACK = f"/cds-services/{b.SERVICE}/feedback"
ORDER_SELECT = "/cds-services/lip-twitch-order-select"
WHEN = "2031-07-04T15:00:00Z"


@pytest.fixture
def client(store, database_url):  # tests/cds_hooks/conftest.py: SQLite and PostgreSQL
    app = b.make_app(None, database_url=database_url, patient_id_key="k" * 32)
    yield app.test_client()
    runtime(app).store.dispose()


@pytest.fixture
def sqlite_client(tmp_path):
    return b.make_app(tmp_path, patient_id_key="k" * 32).test_client()


def post_raw(client, url: str, text: str):
    return client.post(
        url, data=text.encode("utf-8", "surrogatepass"), content_type="application/json"
    )


def problem(response) -> str:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["diagnostics"]


def issued_card(client) -> dict[str, Any]:
    request = b.hook_request(
        labs=b.normal_labs(skip=("potassium",)) + [b.observation("potassium", 3.1)]
    )
    response = client.post(PATIENT_VIEW, json=request)
    assert response.status_code == 200, response.get_json()
    return next(c for c in response.get_json()["cards"] if c.get("suggestions"))


def override(card: dict[str, Any], **reason: Any) -> dict[str, Any]:
    return {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": reason,
                "outcomeTimestamp": WHEN,
            }
        ]
    }


# -- 1. an integer of more than 4300 digits ------------------------------------------------


@pytest.mark.parametrize("url", [PATIENT_VIEW, FEEDBACK])
def test_an_integer_too_long_to_convert_is_a_400(sqlite_client, url):
    text = '{"hook": "patient-view", "hookInstance": ' + "9" * 5000 + "}"
    response = post_raw(sqlite_client, url, text)
    assert response.status_code == 400
    assert "not valid JSON" in problem(response)


# -- 2. a draft order whose status is an object --------------------------------------------


@pytest.mark.parametrize("status", [{"coding": []}, ["draft"], 7])
def test_a_draft_status_that_is_not_a_code_does_not_fail_the_call(sqlite_client, status):
    draft = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "medicationCodeableConcept": {"text": "citalopram 20 mg tablet"},
    }
    request = b.hook_request()
    request["hook"] = "order-select"
    request["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": draft}],
    }
    request["context"]["selections"] = ["MedicationRequest/draft-1"]
    response = sqlite_client.post(ORDER_SELECT, json=request)
    assert response.status_code == 200, response.get_json()
    assert "cards" in response.get_json()


# -- 3. feedback strings longer than the store's columns -----------------------------------


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        ({"reason": {"system": "http://x/" + "s" * 300, "code": "c"}}, "reason.system"),
        ({"reason": {"system": "http://x", "code": "c" * 200}}, "reason.code"),
        ({"reason": {"system": "http://x", "code": "c", "display": "d" * 300}}, "reason.display"),
        ({"userComment": "u" * 20_000}, "userComment"),
    ],
)
def test_feedback_longer_than_its_column_is_a_400_naming_the_field(client, reason, field):
    card = issued_card(client)
    response = client.post(FEEDBACK, json=override(card, **reason))
    assert response.status_code == 400, response.get_json()
    assert f"overrideReason.{field}" in problem(response)


# -- 4. lone surrogates and NUL -------------------------------------------------------------

BAD_CHARACTERS = [pytest.param("\ud800", id="lone-surrogate"), pytest.param("\x00", id="nul")]


@pytest.mark.parametrize("bad", BAD_CHARACTERS)
def test_bad_characters_in_feedback_are_a_400_naming_the_field(client, bad):
    card = issued_card(client)
    body = json.dumps(override(card, userComment=f"fine{bad}fine"))
    response = post_raw(client, FEEDBACK, body)
    assert response.status_code == 400, response.get_json()
    assert "overrideReason.userComment" in problem(response)


@pytest.mark.parametrize("bad", BAD_CHARACTERS)
def test_bad_characters_in_the_hook_instance_are_a_400(client, bad):
    request = b.hook_request(hook_instance=f"hi-{bad}-1")
    response = post_raw(client, PATIENT_VIEW, json.dumps(request))
    assert response.status_code == 400, response.get_json()
    assert "hookInstance" in problem(response)


@pytest.mark.parametrize("bad", BAD_CHARACTERS)
def test_bad_characters_in_prefetched_resources_do_not_fail_the_call(sqlite_client, bad):
    # The value reaches the R4 validator, whose error message would quote it.
    request = b.hook_request(pat={"resourceType": "Patient", "id": b.PATIENT_ID, "gender": bad})
    request["prefetch"]["conditions"]["entry"][0]["resource"]["note"] = [{"text": f"x{bad}"}]
    response = post_raw(sqlite_client, PATIENT_VIEW, json.dumps(request))
    assert response.status_code in (200, 400), response.get_json()
    assert response.get_json() is not None


# -- 5. a reference range value that overflows a float -------------------------------------


@pytest.mark.parametrize("where", ["ref_low", "ref_high", "value"])
@pytest.mark.parametrize("huge", [10**400, 1e308 * 10], ids=["int", "inf"])
def test_a_number_that_overflows_a_float_is_not_a_crash(sqlite_client, where, huge):
    kwargs = {where: huge} if where != "value" else {"value": huge}
    labs = b.normal_labs(skip=("potassium",)) + [b.observation("potassium", **kwargs)]
    text = json.dumps(b.hook_request(labs=labs)).replace("Infinity", "1e400")
    response = post_raw(sqlite_client, PATIENT_VIEW, text)
    # The body parser may refuse a number past 64 bits (400); read, it is no value (200).
    assert response.status_code in (200, 400), response.get_json()
    assert response.get_json() is not None


def test_numbers_that_overflow_a_float_are_no_value():
    from fhir_mapping.raw import finite_number

    assert finite_number(10**400) is None
    assert finite_number(float("inf")) is None and finite_number(float("nan")) is None
    assert finite_number(True) is None and finite_number("4.1") is None
    assert finite_number(4) == 4.0 and finite_number(-0.5) == -0.5


# -- ids anchored at the very end -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patientId", "p1\n"),
        ("encounterId", "e" * 64 + "\n"),
        ("userId", "Practitioner/dr-1\n"),
    ],
)
def test_an_id_with_a_trailing_newline_is_a_400(sqlite_client, field, value):
    request = b.hook_request()
    request["context"][field] = value
    response = sqlite_client.post(PATIENT_VIEW, json=request)
    assert response.status_code == 400, response.get_json()
    assert field in problem(response)
