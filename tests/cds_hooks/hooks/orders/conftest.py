"""Fixtures and builders for the order-select and order-sign services.

Patients are built by hand, dated against a fixed clock, so each test shows the few
resources its case rests on.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_hooks import create_app
from cds_hooks.runtime import runtime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PATIENT = "pt-1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
KIND_SYSTEM = "https://lip-twitch-cds.example.org/card-kind"


@pytest.fixture
def app(tmp_path):
    """The service with a SQLite store of its own and a fixed clock, authentication off."""
    return create_app(
        {
            "env": "development",
            "auth_mode": "disabled",
            "log_level": "ERROR",
            "database_url": f"sqlite:///{tmp_path / 'lipcds.db'}",
            "patient_id_key": "order-services-test-key-0123456789abcdef",
            "clock": lambda: NOW,
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def kb(app):
    return runtime(app).kb


def _date(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT, "birthDate": "1980-05-01"}


def twitching(onset_days_ago: int = 10, cid: str = "c-twitch") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"text": "Lower lip twitching"},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "onsetDateTime": _date(onset_days_ago),
    }


def hypertension() -> dict[str, Any]:
    return {**twitching(cid="c-htn"), "code": {"text": "Hypertension"}}


_LABS = {
    "potassium": ("2823-3", "Potassium", "mmol/L", 3.5, 5.1),
    "magnesium": ("19123-9", "Magnesium", "mg/dL", 1.7, 2.4),
    "calcium": ("17861-6", "Calcium", "mg/dL", 8.5, 10.5),
    "albumin": ("1751-7", "Albumin", "g/dL", 3.5, 5.0),
}


def lab(analyte: str, value: float, days_ago: int = 3) -> dict[str, Any]:
    loinc, text, unit, low, high = _LABS[analyte]
    return {
        "resourceType": "Observation",
        "id": f"obs-{analyte}-{days_ago}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}], "text": text},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": _date(days_ago),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        "referenceRange": [
            {"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}
        ],
    }


def normal_labs() -> list[dict[str, Any]]:
    return [lab("potassium", 4.2), lab("magnesium", 2.0), lab("calcium", 9.4), lab("albumin", 4.1)]


def med_draft(
    draft_id: str = "draft-1",
    code: str | None = None,
    text: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A draft MedicationRequest coded by RxNorm `code`, or named by `text` only."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": draft_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": NOW.date().isoformat(),
    }
    concept: dict[str, Any] = {}
    if code is not None:
        concept["coding"] = [{"system": RXNORM, "code": code}]
    if text is not None:
        concept["text"] = text
    if concept:
        resource["medicationCodeableConcept"] = concept
    resource.update(extra)
    return resource


def lab_draft(draft_id: str, loinc: str | None = None, text: str | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {}
    if loinc:
        code["coding"] = [{"system": LOINC, "code": loinc}]
    if text:
        code["text"] = text
    return {
        "resourceType": "ServiceRequest",
        "id": draft_id,
        "status": "draft",
        "intent": "order",
        "code": code,
        "subject": {"reference": f"Patient/{PATIENT}"},
    }


def _searchset(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    found = list(resources)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
    if found:
        bundle["entry"] = [{"resource": r} for r in found]
    return bundle


def order_request(
    hook: str,
    record: Iterable[dict[str, Any]],
    drafts: Iterable[Any],
    *,
    selections: list[str] | None = None,
    encounter: str | None = "enc-1",
    hook_instance: str = "hi-1",
) -> dict[str, Any]:
    """An order-select or order-sign request with the patient's record fully prefetched.

    For order-select, `selections` defaults to every MedicationRequest draft.
    """
    record = list(record)
    drafts = list(drafts)
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-1",
        "patientId": PATIENT,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} if isinstance(d, dict) else d for d in drafts],
        },
    }
    if encounter:
        context["encounterId"] = encounter
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [
                f"MedicationRequest/{d['id']}"
                for d in drafts
                if isinstance(d, dict) and d.get("resourceType") == "MedicationRequest"
            ]
        )
    patients = [r for r in record if r["resourceType"] == "Patient"]
    return {
        "hookInstance": hook_instance,
        "hook": hook,
        "context": context,
        "prefetch": {
            "patient": patients[0] if patients else None,
            "conditions": _searchset(r for r in record if r["resourceType"] == "Condition"),
            "labs": _searchset(r for r in record if r["resourceType"] == "Observation"),
        },
    }


def call(client, hook: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    """POST to the hook's service; assert 200 and CDS Hooks card invariants; the cards."""
    response = client.post(f"/cds-services/lip-twitch-{hook}", json=request)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"cards"}
    for card in body["cards"]:
        check_card(card)
    return body["cards"]


def check_card(card: dict[str, Any]) -> None:
    """CDS Hooks 2.0 card rules (cds-resp-1..6) and R4 validity of created resources."""
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("any", "at-most-one")
        for suggestion in card["suggestions"]:
            assert suggestion["label"] and suggestion["uuid"]
            assert suggestion["actions"], "a suggestion without actions does nothing"
            for action in suggestion["actions"]:
                assert action["description"]
                if action["type"] == "delete":
                    assert "resource" not in action
                    assert action["resourceId"].startswith("MedicationRequest/")
                else:
                    assert action["type"] == "create"
                    ServiceRequest.model_validate(action["resource"])
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["code"] and reason["system"]
    for value in card.values():
        assert value not in (None, [], {}, "")


def kinds(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def draft_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"].startswith("draft-medication-risk:")]


def concerns(card: dict[str, Any]) -> str | None:
    return card["extension"]["org.lipcds.evidence"].get("concerns")


def ordered_loincs(card: dict[str, Any]) -> set[str]:
    return {
        coding["code"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "create"
        for coding in action["resource"]["code"].get("coding", [])
    }


def deleted(card: dict[str, Any]) -> list[str]:
    return [
        action["resourceId"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "delete"
    ]
