"""The whole path as an EHR drives it: no prefetch, `fhirServer` pointing at the sandbox.

lipcds runs as a real server process and fetches every prefetch key from the sandbox
FHIR server loaded with the demo patients (see conftest.py).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests

from cds_hooks.cli.demo import bundle_resources, hook_request, list_demos, load_demo
from tests.demo_cards import DEMO_CARDS

from .conftest import FhirSandbox, Lipcds

pytestmark = pytest.mark.integration

SERVICE = "lip-twitch-patient-view"
LAB_LOINCS = {"2823-3", "19123-9", "17861-6", "1751-7", "24323-8", "1995-0", "2601-3"}

# The demo patients with cards (tests/demo_cards.py holds what each must produce).
EXPECTED = {name: cards for name, cards in DEMO_CARDS.items() if cards}


def patient_view(
    patient_id: str, fhir_server: str | None, token: str | None = None, prefetch: dict | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": "patient-view",
        "context": {"userId": "Practitioner/integration-test", "patientId": patient_id},
    }
    # the demo patient's visit, if it has one (the EHR names it in the context)
    encounter = next(
        (r["id"] for r in bundle_resources(load_demo(patient_id))
         if r.get("resourceType") == "Encounter"),
        None,
    ) if patient_id in list_demos() else None
    if encounter:
        body["context"]["encounterId"] = encounter
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "lipcds",
            "patient": patient_id,
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def call(lipcds: Lipcds, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{lipcds.url}/cds-services/{SERVICE}", json=body, timeout=30)


def cards_of(lipcds: Lipcds, response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, (
        f"{response.status_code} {response.text[:1000]}\n"
        f"--- lipcds log ---\n{lipcds.log.read_text(errors='replace')[-3000:]}"
    )
    return response.json()["cards"]


def kinds(cards: list[dict[str, Any]]) -> dict[str, str]:
    return {card["source"]["topic"]["code"]: card["indicator"] for card in cards}


def test_discovery(lipcds: Lipcds):
    services = requests.get(f"{lipcds.url}/cds-services", timeout=10).json()["services"]
    assert SERVICE in {s["id"] for s in services}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cards_from_fetched_data(name, lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients):
    body = patient_view(demo_patients[name], fhir_sandbox.base, fhir_sandbox.token)
    found = kinds(cards_of(lipcds, call(lipcds, body)))
    assert found == EXPECTED[name], f"{name}: expected {EXPECTED[name]}, got {found}"


def test_no_complaint_gives_no_cards(lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients):
    body = patient_view(demo_patients["no-complaint"], fhir_sandbox.base, fhir_sandbox.token)
    response = call(lipcds, body)
    cards_of(lipcds, response)
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("name", sorted(DEMO_CARDS))
def test_fetched_equals_prefetched(name, lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients):
    """Fetch-on-miss sees what a full prefetch shows: the same cards, kind for kind."""
    prefetched = hook_request(load_demo(name))
    patient_id = demo_patients[name]
    with_prefetch = cards_of(
        lipcds, call(lipcds, patient_view(patient_id, None, prefetch=prefetched["prefetch"]))
    )
    fetched = cards_of(
        lipcds, call(lipcds, patient_view(patient_id, fhir_sandbox.base, fhir_sandbox.token))
    )
    assert kinds(fetched) == kinds(with_prefetch)
    assert [c["summary"] for c in fetched] == [c["summary"] for c in with_prefetch]


def test_paged_prefetch_is_completed_from_the_server(
    lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients
):
    """The EHR sends the first page of labs only; lipcds follows the server's next link."""
    name = "low-calcium-low-albumin"
    patient_id = demo_patients[name]
    headers = {"Accept": "application/fhir+json"}
    if fhir_sandbox.token:
        headers["Authorization"] = f"Bearer {fhir_sandbox.token}"
    first_page = requests.get(
        f"{fhir_sandbox.base}/Observation",
        params={"patient": patient_id, "category": "laboratory", "_sort": "-date", "_count": "1"},
        headers=headers,
        timeout=10,
    ).json()
    assert any(link["relation"] == "next" for link in first_page.get("link", []))
    prefetch = dict(hook_request(load_demo(name))["prefetch"])
    full = kinds(cards_of(lipcds, call(lipcds, patient_view(patient_id, None, prefetch=prefetch))))
    prefetch["labs"] = first_page
    paged = cards_of(
        lipcds,
        call(lipcds, patient_view(patient_id, fhir_sandbox.base, fhir_sandbox.token, prefetch)),
    )
    assert kinds(paged) == full


def test_required_data_unreachable_is_412(lipcds: Lipcds, demo_patients):
    """Nothing prefetched and the FHIR server down: conditions are required, so 412."""
    response = call(
        lipcds, patient_view(demo_patients["low-magnesium-mgdl"], lipcds.dead_fhir_base)
    )
    assert response.status_code == 412, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "prefetch.conditions" in outcome["issue"][0]["expression"]
    assert "conditions" in outcome["issue"][0]["diagnostics"]


def test_server_not_on_the_allow_list_is_412(
    lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients
):
    stranger = "https://fhir.not-allowed.example.org/r4"
    body = patient_view(demo_patients["low-magnesium-mgdl"], stranger, token="tok-never-logged-1")
    response = call(lipcds, body)
    assert response.status_code == 412, response.text
    assert "refused" in response.json()["issue"][0]["diagnostics"]
    log = lipcds.log.read_text(errors="replace")
    assert "fhir.not-allowed.example.org" in log  # the refusal is logged ...
    assert "tok-never-logged-1" not in log  # ... without the token


def test_unavailable_labs_are_said_and_not_ordered(lipcds: Lipcds, demo_patients):
    """Labs could not be fetched: no lab card is guessed, no lab is ordered for that reason."""
    name = "low-magnesium-mgdl"
    prefetch = dict(hook_request(load_demo(name))["prefetch"])
    del prefetch["labs"]  # not prefetched, and the FHIR server cannot be reached
    body = patient_view(demo_patients[name], lipcds.dead_fhir_base, prefetch=prefetch)
    cards = cards_of(lipcds, call(lipcds, body))
    found = kinds(cards)
    assert "hypomagnesemia-workup" not in found
    assert "lab-workup-missing" not in found
    ordered = {
        coding.get("code")
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion.get("actions", [])
        for coding in (action.get("resource") or {}).get("code", {}).get("coding", [])
    }
    assert not ordered & LAB_LOINCS, f"labs proposed although they could not be fetched: {ordered}"
    text = " ".join(f"{c['summary']} {c.get('detail', '')}" for c in cards).lower()
    assert re.search(r"could not (be )?retrieve[d]? \**laboratory results", text), text


def test_the_visit_and_the_findings_are_fetched_on_miss(
    lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients
):
    """§7b P9/P10: `Encounter/{id}` and `Observation?category=exam,survey` from the server."""
    sandbox = (fhir_sandbox.base, fhir_sandbox.token)
    visit = patient_view(demo_patients["visit-reason-twitch"], *sandbox)
    assert visit["context"]["encounterId"] == "visit-reason-twitch-visit"
    assert kinds(cards_of(lipcds, call(lipcds, visit))) == {"lifestyle-advice": "info"}
    exam = patient_view(demo_patients["exam-facial-droop"], *sandbox)
    red = cards_of(lipcds, call(lipcds, exam))
    assert kinds(red) == {"neurology-referral-red-flag": "critical"}
    assert "Facial droop" in red[0]["detail"]


def test_a_missing_encounter_degrades_and_is_said(
    lipcds: Lipcds, fhir_sandbox: FhirSandbox, demo_patients
):
    body = patient_view(demo_patients["benign-twitch-normal-labs"], fhir_sandbox.base,
                        fhir_sandbox.token)
    body["context"]["encounterId"] = "no-such-visit"
    cards = cards_of(lipcds, call(lipcds, body))
    found = kinds(cards)
    assert found["lifestyle-advice"] == "info"
    unavailable = next(c for c in cards if c["source"]["topic"]["code"] == "data-unavailable")
    assert "the reason for this visit" in unavailable["detail"]


def test_a_referenced_medication_is_read_on_miss(lipcds: Lipcds, fhir_sandbox: FhirSandbox):
    """§7b P12: `medicationReference` to a Medication that no prefetch holds is read by id."""
    pid = "p12-referenced-medication"
    subject = {"reference": f"Patient/{pid}"}
    resources = [
        {"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01"},
        {"resourceType": "Condition", "id": f"{pid}-twitch", "subject": subject,
         "clinicalStatus": {"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
             "code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "82470000"}],
                  "text": "Lower lip twitching"}},
        {"resourceType": "Medication", "id": f"{pid}-med",
         "code": {"coding": [
             {"system": "http://hl7.org/fhir/sid/ndc", "code": "0000-0000-00"},
             {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312941",
              "display": "sertraline 50 MG Oral Tablet"}]}},
        {"resourceType": "MedicationRequest", "id": f"{pid}-mr", "status": "active",
         "intent": "order", "subject": subject,
         "medicationReference": {"reference": f"Medication/{pid}-med"}},
    ]
    headers = {"Content-Type": "application/fhir+json"}
    if fhir_sandbox.token:
        headers["Authorization"] = f"Bearer {fhir_sandbox.token}"
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}
    loaded = requests.post(fhir_sandbox.base, json=transaction, headers=headers, timeout=30)
    assert loaded.status_code == 200, loaded.text[:500]
    body = patient_view(pid, fhir_sandbox.base, fhir_sandbox.token)
    found = kinds(cards_of(lipcds, call(lipcds, body)))
    assert found.get("medication-side-effect:sertraline") in ("warning", "info"), found
