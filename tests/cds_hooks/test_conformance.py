"""The card conformance checker: every demo card passes; each rule fires on a broken card."""

from __future__ import annotations

import copy

import pytest

from cds_hooks.cli import demo
from cds_hooks.conformance import card_problems, response_problems
from tests import builders as b

SR = {
    "resourceType": "ServiceRequest",
    "status": "draft",
    "intent": "proposal",
    "code": {"text": "Serum potassium"},
    "subject": {"reference": "Patient/p1"},
}
GOOD = {
    "uuid": "0b9a0b7e-3a4c-4c55-9d3f-6f3b8c1e2d11",
    "summary": "Low potassium (3.1 mmol/L) may explain lip twitching",
    "indicator": "warning",
    "detail": "markdown",
    "source": {"label": "Lip Twitch CDS", "topic": {"system": "https://x.org/k", "code": "k"}},
    "suggestions": [
        {
            "label": "Order potassium",
            "uuid": "5e0f5c0e-6f5a-4f5e-9d55-6c1a2b7d0a12",
            "isRecommended": True,
            "actions": [{"type": "create", "description": "Serum potassium", "resource": SR}],
        }
    ],
    "selectionBehavior": "any",
    "overrideReasons": [{"system": "https://x.org/o", "code": "n", "display": "Not applicable"}],
    "links": [
        {"label": "App", "url": "https://app.example.org", "type": "smart", "appContext": "a"}
    ],
    "extension": {"org.lipcds.evidence": {"ruleId": "R3"}},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return b.make_app(tmp_path_factory.mktemp("conf")).test_client()


def test_a_good_card_has_no_problems():
    assert card_problems(GOOD) == []
    assert response_problems({"cards": [GOOD]}) == []


def test_empty_card_list_is_fine():
    assert response_problems({"cards": []}) == []


@pytest.mark.parametrize("name", demo.list_demos())
def test_every_demo_card_conforms(client, name):
    request = demo.hook_request(demo.load_demo(name, b.NOW))
    body = client.post(f"/cds-services/{b.SERVICE}", json=request).get_json()
    assert response_problems(body) == []


def test_every_card_of_a_busy_patient_conforms(client):
    request = b.hook_request(
        [
            b.complaint(onset_days=40),
            b.finding(b.ICD10, "R47.81", "Slurred speech"),
            b.finding(b.ICD10, "E20.9", "Hypoparathyroidism"),
            b.finding(b.ICD10, "G20", "PD"),
        ],
        [b.observation("potassium", 2.4), b.observation("ionized", 0.7)],
        [b.med_request(), b.med_request("4603", "furosemide"), b.med_request(None, "Adderall")],
        prefetch={"patient": b.patient(b.born_years_ago(12))},
    )
    body = client.post(f"/cds-services/{b.SERVICE}", json=request).get_json()
    assert len(body["cards"]) >= 7
    assert response_problems(body) == []


def broken(path: str, value, delete: bool = False) -> dict:
    card = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = card
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return card


CASES = [
    ("summary", None, False, "summary"),
    ("summary", "x" * 140, False, "under 140"),
    ("summary", 5, False, "summary: must be a string"),
    ("summary", None, True, "summary: required"),
    ("indicator", "hard-stop", False, "indicator"),
    ("indicator", None, True, "indicator: required"),
    ("detail", 3, False, "detail: must be a string"),
    ("detail", "", False, "empty string"),
    ("uuid", "not-a-uuid", False, "uuid: must be a UUID"),
    ("source", None, True, "source: required"),
    ("source.label", None, True, "source.label: required"),
    ("source.topic", "kind", False, "topic: must be a Coding"),
    ("source.topic.system", None, True, "topic.system: required"),
    ("source.topic.code", None, True, "topic.code: required"),
    ("source.url", "relative/path", False, "absolute URL"),
    ("selectionBehavior", None, True, "selectionBehavior: required"),  # cds-resp-6
    ("selectionBehavior", "all", False, "selectionBehavior"),
    ("suggestions", [], False, "empty array"),
    ("suggestions.0.label", None, True, "label: required"),
    ("suggestions.0.uuid", 7, False, "UUID"),
    ("suggestions.0.isRecommended", "yes", False, "boolean"),
    ("suggestions.0.actionSelectionBehavior", "some", False, "actionSelectionBehavior"),  # 7
    ("suggestions.0.actions.0.description", None, True, "description: required"),  # cds-resp-5
    ("suggestions.0.actions.0.type", "upsert", False, "type"),
    ("suggestions.0.actions.0.resource", None, True, "required for a create"),
    ("suggestions.0.actions.0.resource", {"resourceType": "Nope"}, False, "not a FHIR R4"),
    ("suggestions.0.actions.0.resource.subject", "Patient/p1", False, "not a valid FHIR R4"),
    ("overrideReasons.0.display", None, True, "display: required"),  # cds-resp-4
    ("overrideReasons.0.system", None, True, "system: required"),
    ("overrideReasons.0.code", None, True, "code: required"),
    ("links.0.type", "absolute", False, "appContext: allowed only on a smart link"),  # resp-3
    ("links.0.type", "web", False, "type"),
    ("links.0.url", None, True, "url: required"),
    ("links.0.label", None, True, "label: required"),
    ("extension", {"org.x": "a string"}, False, "must be a JSON object"),
    ("extension", [], False, "extension"),
    ("extension.org.lipcds.evidence", None, False, "null"),
]


@pytest.mark.parametrize(("path", "value", "delete", "expected"), CASES)
def test_each_check_fires(path, value, delete, expected):
    if path.startswith("extension.org."):
        card = copy.deepcopy(GOOD)
        card["extension"]["org.lipcds.evidence"] = value
    else:
        card = broken(path, value, delete)
    problems = card_problems(card)
    assert any(expected in p for p in problems), problems


def test_at_most_one_allows_only_one_recommended():  # cds-resp-1
    card = copy.deepcopy(GOOD)
    card["selectionBehavior"] = "at-most-one"
    card["suggestions"].append(copy.deepcopy(card["suggestions"][0]))
    assert any("recommended" in p for p in card_problems(card))
    card["suggestions"][1]["isRecommended"] = False
    assert card_problems(card) == []


def test_delete_needs_resource_id_and_no_resource():  # cds-resp-2
    card = copy.deepcopy(GOOD)
    action = card["suggestions"][0]["actions"][0]
    action["type"] = "delete"
    problems = card_problems(card)
    assert any("resourceId: required" in p for p in problems)
    assert any("delete action carries resourceId, not resource" in p for p in problems)
    del action["resource"]
    action["resourceId"] = "ServiceRequest/123"
    assert card_problems(card) == []
    action["resourceId"] = "http://x/ServiceRequest/123"
    assert any("relative reference" in p for p in card_problems(card))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "JSON object"),
        ({}, "cards: required"),
        ({"cards": None}, "cards: must be an array"),
        ({"cards": [], "systemActions": []}, "systemActions"),
        ({"cards": [], "systemActions": [{"type": "create"}]}, "description: required"),
        ({"cards": [None]}, "cards[0]: must be a JSON object"),
    ],
)
def test_response_level_checks(body, expected):
    assert any(expected in p for p in response_problems(body)), response_problems(body)


def test_nested_nulls_are_found_with_their_path():
    card = copy.deepcopy(GOOD)
    card["suggestions"][0]["actions"][0]["resource"]["note"] = None
    assert any("suggestions[0].actions[0].resource.note" in p for p in card_problems(card))
