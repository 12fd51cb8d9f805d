"""Error answers: JSON OperationOutcomes with the right status, naming the problem.

Malformed JSON 400, wrong content type 415, missing fields 400, hook mismatch 400, unknown
service 404, oversized body 413, wrong method 405, required prefetch unavailable 412. A
malformed resource inside the prefetch is skipped and said; nothing answers 500.
"""

from __future__ import annotations

import copy
import json
import random

import pytest

from tests import builders as b
from tests.builders import SERVICE, complaint, hook_request, kinds, observation

URL = f"/cds-services/{SERVICE}"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return b.make_app(tmp_path_factory.mktemp("err")).test_client()


EVIDENCE = "org.lipcds.evidence"


def outcome(response, status: int) -> str:
    """Assert an OperationOutcome answer with `status`; return its diagnostics."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    return issue["diagnostics"]


def test_malformed_json_is_400(client):
    response = client.post(URL, data='{"hook": ', content_type="application/json")
    assert "not valid JSON" in outcome(response, 400)


def test_nan_is_not_json(client):
    response = client.post(URL, data='{"hook": NaN}', content_type="application/json")
    assert "NaN" in outcome(response, 400)


def test_body_that_is_not_an_object_is_400(client):
    response = client.post(URL, data="[1, 2]", content_type="application/json")
    assert "JSON object" in outcome(response, 400)


def test_wrong_content_type_is_415(client):
    response = client.post(URL, data=json.dumps(hook_request()), content_type="text/plain")
    assert "application/json" in outcome(response, 415)


def test_no_content_type_is_415(client):
    response = client.post(URL, data=json.dumps(hook_request()))
    outcome(response, 415)


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_and_named(client, field):
    request = hook_request()
    del request[field]
    assert field in outcome(client.post(URL, json=request), 400)


@pytest.mark.parametrize("field", ["patientId", "userId"])
def test_missing_context_field_is_400_and_named(client, field):
    request = hook_request()
    del request["context"][field]
    assert field in outcome(client.post(URL, json=request), 400)


def test_hook_mismatch_is_400(client):
    request = hook_request()
    request["hook"] = "order-sign"
    diagnostics = outcome(client.post(URL, json=request), 400)
    assert "patient-view" in diagnostics and "order-sign" in diagnostics


def test_unknown_service_is_404(client):
    response = client.post("/cds-services/no-such-service", json=hook_request())
    assert "no-such-service" in outcome(response, 404)


def test_oversized_body_is_413(tmp_path):
    small = b.make_app(tmp_path, max_body_bytes=2048).test_client()
    request = hook_request()
    request["padding"] = "x" * 5000
    assert "larger than 2048 bytes" in outcome(small.post(URL, json=request), 413)


def test_wrong_method_is_405(client):
    outcome(client.get(URL), 405)


def test_required_prefetch_missing_without_fhir_server_is_412(client):
    request = hook_request(prefetch={"conditions": "omit"})
    diagnostics = outcome(client.post(URL, json=request), 412)
    assert "conditions" in diagnostics


def test_empty_cards_are_answered_without_complaint(client):
    request = hook_request([b.finding(b.SNOMED, "38341003", "Hypertension")])
    response = client.post(URL, json=request)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("value", ["Bundle", 42, [], {"resourceType": "Patient", "id": "x"}])
def test_malformed_required_prefetch_is_412_not_500(client, value):
    request = hook_request(prefetch={"conditions": value})
    assert "conditions" in outcome(client.post(URL, json=request), 412)


@pytest.mark.parametrize(
    "value",
    ["labs", 3.5, {"resourceType": "Condition", "id": "c"}, {"resourceType": "Bundle", "entry": 7}],
)
def test_malformed_optional_prefetch_degrades_to_a_data_card(client, value):
    response = client.post(URL, json=hook_request(prefetch={"labs": value}))
    assert response.status_code == 200
    assert "data-unavailable" in kinds(response.get_json()["cards"])


def test_malformed_observation_is_skipped_and_named(client):
    bad = observation("potassium", 3.0, "mmol/L")
    bad["id"] = "bad-k"
    bad["status"] = "final"
    bad["effectiveDateTime"] = "not a date"
    bad["valueQuantity"]["value"] = 3.0
    bad["subject"] = "Patient/p1"  # a string where a Reference object belongs
    request = hook_request(labs=[*b.normal_labs(skip=("potassium",)), bad])
    response = client.post(URL, json=request)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert "hypokalemia-workup" not in kinds(cards)
    # Said in words in the detail; the id is in the evidence extension.
    assert any("A result: " in c["detail"] for c in cards)
    assert not any("Observation/bad-k" in c["detail"] for c in cards)
    assert any("Observation/bad-k" in c["extension"][EVIDENCE].get("notUsed", []) for c in cards)


def test_malformed_condition_is_skipped_and_named(client):
    bad = complaint(cid="bad-c", text="Facial droop")
    bad["onsetDateTime"] = {"not": "a date"}
    request = hook_request([complaint(), bad])
    response = client.post(URL, json=request)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert "neurology-referral-red-flag" not in kinds(cards)
    assert any("A problem-list entry: " in c["detail"] for c in cards)
    assert not any("Condition/bad-c" in c["detail"] for c in cards)
    assert any("Condition/bad-c" in c["extension"][EVIDENCE].get("notUsed", []) for c in cards)


def test_bundle_entry_without_resource_is_said(client):
    labs = b.searchset(b.normal_labs())
    labs["entry"].append({"fullUrl": "urn:uuid:1"})
    response = client.post(URL, json=hook_request(prefetch={"labs": labs}))
    assert response.status_code == 200
    assert any("entry" in c["detail"] for c in response.get_json()["cards"])


# --------------------------------------------------------------------------- fuzz


def _mutations(rng: random.Random, node, depth=0):
    """Yield (path, replacement-maker) pairs over a JSON tree."""
    if isinstance(node, dict):
        for key in list(node):
            yield node, key
            yield from _mutations(rng, node[key], depth + 1)
    elif isinstance(node, list):
        for index in range(len(node)):
            yield node, index
            yield from _mutations(rng, node[index], depth + 1)


_ODD_VALUES = [None, "", "x", 0, -1, 1e308, True, [], {}, [None], {"a": None}, "2031-13-45"]


def test_mutated_requests_never_answer_500(client):
    rng = random.Random(20260425)
    base = hook_request(
        [complaint(), b.finding(b.ICD10, "R47.81", "Slurred speech")],
        [*b.normal_labs(), observation("ionized", 1.0, "mmol/L")],
        [b.med_request(), b.med_request(medication=b.medication("8640", "prednisone"))],
        [b.med_statement()],
    )
    statuses = set()
    for _ in range(300):
        request = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            sites = list(_mutations(rng, request))
            parent, key = rng.choice(sites)
            if rng.random() < 0.25 and isinstance(parent, dict):
                del parent[key]
            else:
                parent[key] = copy.deepcopy(rng.choice(_ODD_VALUES))
        response = client.post(URL, json=request)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400, 412), response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)
    assert 200 in statuses
