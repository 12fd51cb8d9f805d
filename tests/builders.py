"""Readable FHIR R4 builders for tests, dated relative to one fixed evaluation time.

`days_ago(n)` is `NOW - n days` as a FHIR dateTime; every builder takes such offsets so a
test reads like the clinical reference: "potassium 3.49 mmol/L, drawn 3 days ago".
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2031, 7, 4, 15, 30, tzinfo=UTC)
PATIENT_ID = "p1"
SERVICE = "lip-twitch-patient-view"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

_ids = itertools.count(1)

# analyte -> (LOINC, display) of the usual single test
LABS = {
    "potassium": ("2823-3", "Potassium"),
    "magnesium": ("19123-9", "Magnesium"),
    "magnesium_molar": ("2601-3", "Magnesium"),
    "calcium": ("17861-6", "Calcium"),
    "calcium_molar": ("2000-8", "Calcium"),
    "ionized": ("1995-0", "Calcium, ionized"),
    "albumin": ("1751-7", "Albumin"),
    "tsh": ("3016-3", "TSH"),
    "b12": ("2132-9", "Vitamin B12"),
    "vitamin_d": ("62292-8", "25-OH vitamin D"),
}


def days_ago(days: float, now: datetime = NOW) -> str:
    return (now - timedelta(days=days)).isoformat()


def next_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def patient(birth: str = "1980-01-01", pid: str = PATIENT_ID) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth}


def born_years_ago(years: int, extra_days: int = 0) -> str:
    """A birthDate so that the patient is `years` old at NOW (minus `extra_days`)."""
    day = NOW.date().replace(year=NOW.year - years) + timedelta(days=extra_days)
    return day.isoformat()


def concept(
    system: str | None = None,
    code: str | None = None,
    text: str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if system and code:
        coding = {"system": system, "code": code}
        if display:
            coding["display"] = display
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


def condition(
    system: str | None = SNOMED,
    code: str | None = "82470000",
    text: str | None = "Lower lip twitching",
    *,
    clinical: str | None = "active",
    verification: str | None = None,
    onset_days: float | None = 10,
    onset_period_days: float | None = None,
    recorded_days: float | None = None,
    abatement_days: float | None = None,
    note: str | None = None,
    body_site: str | None = None,
    display: str | None = None,
    cid: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": cid or next_id("cond")}
    if clinical:
        resource["clinicalStatus"] = concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical
        )
    if verification:
        resource["verificationStatus"] = concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", verification
        )
    resource["code"] = concept(system, code, text, display)
    if body_site:
        resource["bodySite"] = [{"text": body_site}]
    resource["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    if onset_days is not None:
        resource["onsetDateTime"] = days_ago(onset_days)
    if onset_period_days is not None:
        resource["onsetPeriod"] = {"start": days_ago(onset_period_days)}
    if recorded_days is not None:
        resource["recordedDate"] = days_ago(recorded_days)
    if abatement_days is not None:
        resource["abatementDateTime"] = days_ago(abatement_days)
    if note:
        resource["note"] = [{"text": note}]
    return resource


def complaint(**kwargs: Any) -> dict[str, Any]:
    return condition(**kwargs)


def finding(system: str | None, code: str | None, text: str | None = None, **kw: Any) -> dict:
    """A Condition that is not the complaint (red flag, known condition)."""
    return condition(system, code, text, **kw)


def observation(
    analyte: str | None = "potassium",
    value: Any = 4.2,
    unit: str | None = "mmol/L",
    *,
    days: float | None = 3,
    status: str = "final",
    loinc: str | None = None,
    text: str | None = None,
    unit_code: str | None = "same",
    ref_low: float | None = None,
    ref_high: float | None = None,
    ref_unit: str | None = None,
    absent: str | None = None,
    issued_days: float | None = None,
    period_end_days: float | None = None,
    oid: bool = False,
) -> dict[str, Any]:
    """A laboratory Observation. `unit=None` leaves the unit out; `value=None` no value."""
    code, display = LABS.get(analyte or "", (None, None))
    code = loinc or code
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": next_id("obs"),
        "status": status,
        "category": [
            concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")
        ],
    }
    system = "urn:oid:2.16.840.1.113883.6.1" if oid else LOINC
    resource["code"] = concept(system if code else None, code, text or display, display)
    if text and not code:
        resource["code"] = {"text": text}
    resource["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    if days is not None:
        resource["effectiveDateTime"] = days_ago(days)
    if period_end_days is not None:
        resource["effectivePeriod"] = {"end": days_ago(period_end_days)}
    if issued_days is not None:
        resource["issued"] = days_ago(issued_days)
    if absent:
        resource["dataAbsentReason"] = concept(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", absent, absent
        )
    elif isinstance(value, str):
        resource["valueString"] = value
    elif value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit:
            quantity["unit"] = unit
            code_value = unit if unit_code == "same" else unit_code
            if code_value:
                quantity["system"] = UCUM
                quantity["code"] = code_value
        resource["valueQuantity"] = quantity
    if ref_low is not None or ref_high is not None:
        rng: dict[str, Any] = {}
        for key, bound in (("low", ref_low), ("high", ref_high)):
            if bound is not None:
                rng[key] = {"value": bound}
                if ref_unit or unit:
                    rng[key]["unit"] = ref_unit or unit
        resource["referenceRange"] = [rng]
    return resource


def med_request(
    code: str | None = "36437",
    text: str | None = "sertraline 50 mg tablet",
    *,
    status: str = "active",
    authored_days: float | None = 20,
    system: str = RXNORM,
    display: str | None = None,
    route: str | None = None,
    medication: dict[str, Any] | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": next_id("mr"),
        "status": status,
        "intent": "order",
    }
    if medication is not None:  # contained
        resource["contained"] = [medication]
        resource["medicationReference"] = {"reference": f"#{medication['id']}"}
    elif reference is not None:
        resource["medicationReference"] = {"reference": reference}
    else:
        resource["medicationCodeableConcept"] = concept(
            system if code else None, code, text, display
        )
    resource["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    if authored_days is not None:
        resource["authoredOn"] = days_ago(authored_days)
    if route:
        resource["dosageInstruction"] = [{"route": {"text": route}}]
    return resource


def med_statement(
    code: str | None = "36437",
    text: str | None = "sertraline",
    *,
    status: str = "active",
    start_days: float | None = 20,
    system: str = RXNORM,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": next_id("ms"),
        "status": status,
        "medicationCodeableConcept": concept(system if code else None, code, text),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if start_days is not None:
        resource["effectivePeriod"] = {"start": days_ago(start_days)}
    return resource


def medication(code: str | None, text: str | None, mid: str = "med1") -> dict[str, Any]:
    return {
        "resourceType": "Medication",
        "id": mid,
        "code": concept(RXNORM if code else None, code, text),
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if resources:
        bundle["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return bundle


def normal_labs(days: float = 3, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Fresh normal K, Mg, Ca and albumin, plus TSH, B12 and vitamin D (no R2 at all)."""
    labs = {
        "potassium": observation("potassium", 4.2, "mmol/L", days=days),
        "magnesium": observation("magnesium", 2.0, "mg/dL", days=days),
        "calcium": observation("calcium", 9.4, "mg/dL", days=days),
        "albumin": observation("albumin", 4.1, "g/dL", days=days),
        "tsh": observation("tsh", 1.5, "m[IU]/L", days=days),
        "b12": observation("b12", 400, "pg/mL", days=days),
        "vitamin_d": observation("vitamin_d", 30, "ng/mL", days=days),
    }
    return [r for k, r in labs.items() if k not in skip]


def hook_request(
    conditions: list[dict[str, Any]] | None = None,
    labs: list[dict[str, Any]] | None = None,
    med_requests: list[dict[str, Any]] | None = None,
    med_statements: list[dict[str, Any]] | None = None,
    *,
    pat: dict[str, Any] | None = None,
    prefetch: dict[str, Any] | None = None,
    hook_instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    findings: list[dict[str, Any]] | None = None,
    encounter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A patient-view request, fully prefetched. `prefetch` entries override the defaults.

    Without `encounter` the context has no encounterId and the key is left out, as an EHR
    does when there is no encounter.
    """
    full: dict[str, Any] = {
        "patient": pat if pat is not None else patient(),
        "conditions": searchset(conditions if conditions is not None else [complaint()]),
        "labs": searchset(labs if labs is not None else normal_labs()),
        "medRequests": searchset(med_requests or []),
        "medStatements": searchset(med_statements or []),
        "findings": searchset(findings or []),
    }
    context = {"userId": "Practitioner/dr-1", "patientId": PATIENT_ID}
    if encounter is not None:
        full["encounter"] = encounter
        context["encounterId"] = encounter.get("id", "enc-1")
    full.update(prefetch or {})
    return {
        "hook": "patient-view",
        "hookInstance": hook_instance,
        "context": context,
        "prefetch": {k: v for k, v in full.items() if v != "omit"},
    }


def kinds(cards: list[dict[str, Any]]) -> dict[str, str]:
    """card kind (source.topic.code) -> indicator."""
    return {c["source"]["topic"]["code"]: c["indicator"] for c in cards}


def make_app(db_dir: Any, **overrides: Any) -> Any:
    """The real app, authentication off (env test), its clock fixed at NOW."""
    from cds_hooks.app import create_app

    config = {
        "env": "test",
        "auth_mode": "disabled",
        "database_url": f"sqlite:///{db_dir}/t.db",
        "clock": lambda: NOW,
    }
    config.update(overrides)
    return create_app(config)


def call(client: Any, request: dict[str, Any], service: str = SERVICE) -> list[dict[str, Any]]:
    """POST a hook request; assert 200 and return the cards."""
    response = client.post(f"/cds-services/{service}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def card(cards: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [c for c in cards if c["source"]["topic"]["code"] == kind]
    assert len(found) == 1, f"expected one {kind} card, got {kinds(cards)}"
    return found[0]


def ordered_codes(card_: dict[str, Any]) -> list[str]:
    """Codes (or texts) of every ServiceRequest a card proposes."""
    out = []
    for suggestion in card_.get("suggestions", []):
        for action in suggestion.get("actions", []):
            code = action["resource"]["code"]
            out.append(code["coding"][0]["code"] if "coding" in code else code["text"])
    return out
