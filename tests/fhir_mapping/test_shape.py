"""The R4 shape check of input resources, against the R4B models it replaces on input."""

from __future__ import annotations

import copy
import random

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from bench.workload import full_prefetch_request
from cds_hooks.cli import demo
from fhir_mapping import shape

READ_TYPES = ("Condition", "Observation", "MedicationRequest", "MedicationStatement", "Patient")


def _resources() -> list[dict]:
    """Every resource of the demo patients and of the benchmark workload the facts read."""
    found = []
    for name in demo.list_demos():
        found.extend(demo.bundle_resources(demo.load_demo(name)))
    for value in full_prefetch_request()["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found.extend(e["resource"] for e in value.get("entry", []))
        elif isinstance(value, dict):
            found.append(value)
    return [r for r in found if r.get("resourceType") in READ_TYPES]


RESOURCES = _resources()


def model_accepts(resource: dict) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def test_every_demo_and_workload_resource_has_the_r4_shape():
    assert len(RESOURCES) > 250
    assert [shape.problem(r) for r in RESOURCES if shape.problem(r)] == []


def test_a_minimal_observation():
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Mg"}}
    assert shape.problem(observation) is None
    assert shape.problem(observation, "Observation") is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"subject": "Patient/p1"}, "subject: not an object"),
        ({"effectiveDateTime": "not a date"}, "effectiveDateTime: not a valid dateTime"),
        ({"effectiveDateTime": "2026-02-30"}, "effectiveDateTime: not a valid dateTime"),
        ({"effectiveDateTime": "2026-03-01T10:00"}, "effectiveDateTime: not a valid dateTime"),
        ({"effectiveDateTime": 1700000000}, "effectiveDateTime: not a string (dateTime)"),
        ({"issued": "2026-03-01"}, "issued: not a valid instant"),
        ({"id": "has space"}, "id: not a valid id"),
        ({"status": "final", "code": {"coding": {"code": "x"}}}, "code.coding: not an array"),
        ({"code": {"coding": [None]}}, "code.coding.0: null in an array"),
        ({"code": {"text": 5}}, "code.text: not a string (string)"),
        ({"code": {"text": ""}}, "code.text: an empty string"),
        ({"valueQuantity": {"value": "1.5"}}, "valueQuantity.value: not a number"),
        ({"valueQuantity": {"value": True}}, "valueQuantity.value: not a number"),
        ({"valueInteger": 1.5}, "valueInteger: not an integer"),
        ({"valueInteger": 2**31}, "valueInteger: out of range for integer"),
        ({"valueString": "a", "valueInteger": 1}, "more than one value[x]"),
        ({"colour": "red"}, "colour: not an element of Observation"),
        ({"code": {"text": "Mg", "colour": None}}, "code.colour: not an element of"),
        ({"referenceRange": [{"low": {"value": "x"}}]}, "referenceRange.0.low.value: not a"),
        ({"contained": [{"resourceType": "Nonsense"}]}, "contained.0.resourceType: not a FHIR"),
        ({"contained": [{"resourceType": "Medication", "code": 1}]}, "contained.0.code: not an"),
    ],
)
def test_what_is_wrong_is_named_with_its_path(change, where):
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Mg"}}
    observation.update(change)
    found = shape.problem(observation)
    assert found is not None and found.startswith("not a valid FHIR R4 Observation: ")
    assert where in found


def test_required_elements_must_be_there():
    assert "status: missing" in shape.problem({"resourceType": "Observation", "code": {}})
    assert "code: missing" in shape.problem({"resourceType": "Observation", "status": "final"})
    # a required primitive given by its extension alone is there
    observation = {"resourceType": "Observation", "_status": {"id": "s"}, "code": {"text": "x"}}
    assert shape.problem(observation) is None


@pytest.mark.parametrize("value", [None, 3, "Observation", ["x"]])
def test_anything_else_than_an_object_is_named(value):
    assert shape.problem(value, "Observation") == (
        "not a valid FHIR R4 Observation: resource: not an object"
    )


def test_the_wrong_resource_type_is_named():
    found = shape.problem({"resourceType": "Patient"}, "Observation")
    assert found == "not a valid FHIR R4 Observation: resourceType: not Observation"


def test_null_members_count_as_absent_and_primitive_arrays_may_hold_null():
    patient = {"resourceType": "Patient", "gender": None, "name": [{"given": ["A", None]}]}
    assert shape.problem(patient) is None


def test_no_value_is_ever_quoted():
    secret = "Jane Q. Secret 1970-01-01"
    patient = {"resourceType": "Patient", "birthDate": secret, "name": [{"text": 5}]}
    assert secret not in shape.problem(patient)


_ODD = [
    None,
    "",
    "x",
    0,
    -1,
    1.5,
    1e308,
    True,
    [],
    {},
    [None],
    {"a": None},
    "2031-13-45",
    "2024-02-30",
    "2024-01-01T10:00",
    " a",
    [{}],
    [1],
]


def _sites(node, out):
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _sites(node[key], out)
    elif isinstance(node, list):
        for index in range(len(node)):
            out.append((node, index))
            _sites(node[index], out)
    return out


def _deliberate(resource: dict) -> bool:
    """Where the check is stricter than the R4B models on purpose (R4 JSON, not pydantic)."""
    problem = shape.problem(resource) or ""
    return (
        "not a string (" in problem  # pydantic reads a number as a Unix time for a dateTime
        or problem.endswith(": missing")  # the models let a null stand for a required element
    )


def test_the_check_agrees_with_the_r4b_models_on_mutated_resources():
    rng = random.Random(20261201)
    disagreements = []
    rejected = 0
    for _ in range(600):
        resource = copy.deepcopy(rng.choice(RESOURCES))
        for _ in range(rng.randint(1, 3)):
            parent, key = rng.choice(_sites(resource, []))
            if key == "resourceType":
                continue
            if isinstance(parent, dict) and rng.random() < 0.2:
                del parent[key]
            else:
                parent[key] = copy.deepcopy(rng.choice(_ODD))
        ours = shape.problem(resource) is None
        rejected += not ours
        if ours != model_accepts(resource) and not (not ours and _deliberate(resource)):
            disagreements.append((resource.get("id"), shape.problem(resource)))
    assert rejected > 100  # the mutations do break resources
    assert disagreements == []
