"""Raw FHIR JSON readers: the shapes they read, and wrong JSON types read as nothing."""

from __future__ import annotations

import pytest

from fhir_mapping import raw
from knowledge.codes import ICD10CM, SNOMED


def test_codings_normalise_system_and_code():
    concept = {
        "coding": [
            {"system": "urn:oid:2.16.840.1.113883.6.90", "code": "r25.3",
             "display": "Fasciculation"},
            {"system": "http://snomed.info/sct/", "code": " 275948002 "},
            {"system": "http://snomed.info/sct", "code": 42},
            "not a coding",
        ],
        "text": "Lip twitching",
    }
    assert raw.codings(concept) == [
        (ICD10CM, "R253", "Fasciculation"),
        (SNOMED, "275948002", ""),
    ]
    assert raw.texts(concept) == ["Lip twitching", "Fasciculation"]


@pytest.mark.parametrize("value", [None, 3, "text", ["a"], {"coding": "x", "text": 5}])
def test_wrong_shapes_read_as_nothing(value):
    assert raw.codings(value) == []
    assert raw.texts(value) == []
    assert raw.status_code(value) is None


def test_status_code_prefers_the_code_then_the_text():
    assert raw.status_code({"coding": [{"system": "http://x", "code": "active"}]}) == "active"
    assert raw.status_code({"text": " Resolved "}) == "resolved"


def test_notes_and_references():
    resource = {"resourceType": "Condition", "id": "c1", "note": [{"text": "spreading"}, 3]}
    assert raw.notes(resource) == ["spreading"]
    assert raw.reference_of(resource) == "Condition/c1"
    assert raw.reference_of({"resourceType": "Condition", "id": ""}) is None
    assert raw.as_list({"a": 1}) == [] and raw.as_object([1]) == {}


def test_outcome_text():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"diagnostics": "x" * 300}, {"details": {"text": "gone"}}, {"code": "timeout"}],
    }
    assert raw.outcome_text(outcome) == "x" * 200 + "; gone; timeout"
    assert raw.outcome_text({"issue": "broken"}) == "no detail given"
