"""The demo patients: valid FHIR R4, always fresh, and usable as hook requests."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from cds_hooks.cli import demo
from cds_hooks.hooks.pipeline import parse_request
from fhir_mapping.records import interpret_prefetch
from knowledge import load_knowledge_base
from knowledge.model import DataState
from tests.demo_cards import DEMO_CARDS

EXPECTED_DEMOS = set(DEMO_CARDS)
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
NOW = datetime(2031, 7, 4, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def _dates(bundle: dict) -> dict[str, str]:
    """Every shiftable date in the bundle, keyed by a path that survives shifting."""
    found = {"timestamp": bundle["timestamp"]}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in demo._DATE_FIELDS and isinstance(value, str):
                    found[f"{path}.{key}"] = value
                elif key in demo._PERIOD_FIELDS and isinstance(value, dict):
                    for end in ("start", "end"):
                        if end in value:
                            found[f"{path}.{key}.{end}"] = value[end]
                else:
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]")

    for resource in demo.bundle_resources(bundle):
        walk(resource, f"{resource['resourceType']}/{resource['id']}")
    return found


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_every_expected_demo_is_bundled():
    assert EXPECTED_DEMOS <= set(demo.list_demos())


@pytest.mark.parametrize("name", demo.list_demos())
def test_demo_is_a_valid_r4_collection(name):
    bundle = demo.load_demo(name)
    assert bundle["type"] == "collection"
    Bundle.model_validate(bundle)
    patients = []
    ids = set()
    for resource in demo.bundle_resources(bundle):
        # Bundle validation does not reach every nested field; validate each resource too.
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert KEBAB.match(resource["id"]), resource["id"]
        ids.add(f"{resource['resourceType']}/{resource['id']}")
        if resource["resourceType"] == "Patient":
            patients.append(resource["id"])
    assert patients == [name]
    for resource in demo.bundle_resources(bundle):
        subject = resource.get("subject", {}).get("reference")
        if subject is not None:
            assert subject in ids, f"{resource['id']}: {subject} is not in the bundle"


@pytest.mark.parametrize("name", demo.list_demos())
def test_labs_are_realistic_observations(name):
    for resource in demo.bundle_resources(demo.load_demo(name)):
        if resource["resourceType"] != "Observation":
            continue
        assert resource["status"] == "final"
        if resource["category"][0]["coding"][0]["code"] == "exam":
            continue  # an exam finding (§7b P10), not a lab
        assert resource["category"][0]["coding"][0]["code"] == "laboratory"
        coding = resource["code"]["coding"][0]
        assert coding["system"] == "http://loinc.org" and coding["display"]
        quantity = resource["valueQuantity"]
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert {"value", "unit", "code"} <= set(quantity)


def test_shifting_keeps_every_offset_and_time_of_day():
    name = "ssri-started-before-twitch"
    early = demo.load_demo(name, now=datetime(2027, 2, 1, 12, 0, tzinfo=UTC))
    late = demo.load_demo(name, now=datetime(2030, 9, 17, 12, 0, tzinfo=UTC))
    early_dates, late_dates = _dates(early), _dates(late)
    assert early_dates.keys() == late_dates.keys()
    assert any(".authoredOn" in path for path in early_dates)
    moved = None
    for path, before in early_dates.items():
        after = late_dates[path]
        assert len(after) == len(before), path  # a date stays a date
        if len(before) == 10:
            delta = date.fromisoformat(after) - date.fromisoformat(before)
        else:
            delta = _instant(after) - _instant(before)
            assert after[10:] == before[10:], f"{path}: time of day or offset changed"
        assert delta.seconds == 0 and delta.microseconds == 0, path  # whole days
        moved = moved or delta
        assert delta == moved, f"{path} moved by {delta}, others by {moved}"


@pytest.mark.parametrize("name", demo.list_demos())
def test_shifted_demo_is_fresh_and_never_in_the_future(name):
    bundle = demo.load_demo(name, now=NOW)
    anchor = _instant(bundle["timestamp"])
    assert NOW - timedelta(days=1) < anchor <= NOW
    for path, value in _dates(bundle).items():
        if len(value) > 10:
            assert _instant(value) <= NOW, f"{path} = {value} is after {NOW}"


def test_shifted_labs_keep_their_age():
    bundle = demo.load_demo("low-magnesium-mgdl", now=NOW)
    magnesium = next(r for r in demo.bundle_resources(bundle) if r["id"] == "low-magnesium-mgdl-mg")
    age = NOW - _instant(magnesium["effectiveDateTime"])
    # drawn 5 days before the anchor; the shifted anchor is up to a day before now
    assert timedelta(days=5) <= age < timedelta(days=7)
    stale = demo.load_demo("stale-labs", now=NOW)
    for resource in demo.bundle_resources(stale):
        if resource["resourceType"] == "Observation":
            assert NOW - _instant(resource["effectiveDateTime"]) > timedelta(days=199)


def test_naive_now_is_utc_and_default_now_is_today():
    naive = demo.load_demo("facial-droop", now=NOW.replace(tzinfo=None))
    assert naive == demo.load_demo("facial-droop", now=NOW)
    today = demo.load_demo("facial-droop")
    assert datetime.now(UTC) - _instant(today["timestamp"]) < timedelta(days=1)


def test_birth_date_keeps_the_age():
    bundle = demo.load_demo("pediatric-twitch", now=NOW)
    patient = next(demo.bundle_resources(bundle))
    born = date.fromisoformat(patient["birthDate"])
    age = NOW.year - born.year - ((NOW.month, NOW.day) < (born.month, born.day))
    assert age == 10


def test_offsets_other_than_utc_are_kept():
    shifted = demo.shift_dates(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": "2026-01-15T18:00:00Z",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Condition",
                        "id": "c",
                        "onsetPeriod": {"start": "2025-12-31T23:30:00+09:00"},
                        "recordedDate": "2026-01",
                    }
                }
            ],
        },
        3,
    )
    condition = shifted["entry"][0]["resource"]
    assert shifted["timestamp"] == "2026-01-18T18:00:00Z"
    assert condition["onsetPeriod"]["start"] == "2026-01-03T23:30:00+09:00"
    assert condition["recordedDate"] == "2026-01"  # month precision: left alone
    assert _instant(condition["onsetPeriod"]["start"]).utcoffset() == timezone(
        timedelta(hours=9)
    ).utcoffset(None)


def test_unknown_demo_names_the_known_ones():
    with pytest.raises(demo.DemoError, match="benign-twitch-normal-labs"):
        demo.load_demo("no-such-patient")


@pytest.mark.parametrize("name", demo.list_demos())
def test_transaction_puts_every_resource(name):
    bundle = demo.load_demo(name)
    transaction = demo.as_transaction(bundle)
    assert transaction["type"] == "transaction"
    Bundle.model_validate(transaction)
    resources = list(demo.bundle_resources(bundle))
    assert len(transaction["entry"]) == len(resources)
    for entry, resource in zip(transaction["entry"], resources, strict=True):
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }


def test_built_in_templates_are_the_services(kb):
    assert demo.PATIENT_VIEW_TEMPLATES == kb.services["lip-twitch-patient-view"].prefetch


@pytest.mark.parametrize("name", demo.list_demos())
def test_hook_request_is_a_valid_patient_view_request(name, kb):
    service = kb.services["lip-twitch-patient-view"]
    bundle = demo.load_demo(name)
    body = demo.hook_request(bundle, hook_instance="d2f4c3a8-0d7e-4a43-9d57-5a3b1c1b2a11")
    request, context = parse_request(service, body)  # the service's own validation
    assert request["hook_instance"] == "d2f4c3a8-0d7e-4a43-9d57-5a3b1c1b2a11"
    assert context["patient_id"] == name
    with_encounter = "encounterId" in body["context"]
    expected_keys = set(service.prefetch) - (set() if with_encounter else {"encounter"})
    assert body["prefetch"].keys() == expected_keys  # no encounter: the key is left out
    prefetch = body["prefetch"]
    assert prefetch["patient"]["resourceType"] == "Patient"
    expected_types = {
        "conditions": "Condition",
        "labs": "Observation",
        "medRequests": "MedicationRequest",
        "medStatements": "MedicationStatement",
        "findings": "Observation",
    }
    if with_encounter:
        assert prefetch["encounter"]["resourceType"] == "Encounter"
    for key, resource_type in expected_types.items():
        searchset = prefetch[key]
        assert searchset["type"] == "searchset"
        Bundle.model_validate(searchset)
        found = [entry["resource"] for entry in searchset.get("entry", [])]
        assert searchset["total"] == len(found)
        assert {r["resourceType"] for r in found} <= {resource_type}
        if key == "labs":
            assert all(r["category"][0]["coding"][0]["code"] == "laboratory" for r in found)
        if key == "findings":
            assert all(r["category"][0]["coding"][0]["code"] in ("exam", "survey") for r in found)
        state = interpret_prefetch(key, service.prefetch[key], searchset).state
        assert state is (DataState.PRESENT if found else DataState.EMPTY)


def test_hook_request_sends_only_laboratory_observations():
    bundle = demo.load_demo("benign-twitch-normal-labs")
    vital = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"text": "Blood pressure"},
        "subject": {"reference": "Patient/benign-twitch-normal-labs"},
    }
    bundle["entry"].append({"resource": vital})
    labs = demo.hook_request(bundle)["prefetch"]["labs"]
    assert "bp" not in {entry["resource"]["id"] for entry in labs["entry"]}
    assert labs["total"] == 4


def test_hook_request_accepts_a_transaction_and_needs_a_patient():
    transaction = demo.as_transaction(demo.load_demo("facial-droop"))
    body = demo.hook_request(transaction)
    assert body["context"]["patientId"] == "facial-droop"
    with pytest.raises(demo.DemoError, match="no Patient"):
        demo.hook_request({"resourceType": "Bundle", "type": "collection", "entry": []})
