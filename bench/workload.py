"""The benchmark workload: a patient-view request with a full prefetch of about 250 resources.

A demo patient with a low magnesium (so the service has cards to build) is buried in two
years of history an EHR would really send: ~200 older laboratory Observations of related
and unrelated LOINC codes, ~30 Conditions and ~20 MedicationRequests. Everything is
synthetic and generated deterministically (seeded), so runs compare like with like.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from cds_hooks.cli.demo import DEMO_FHIR_BASE, hook_request, load_demo

DEMO = "low-magnesium-mgdl"
SERVICE = "lip-twitch-patient-view"

# (LOINC, display, UCUM unit, normal low, normal high). The first four are analytes the
# rules read; the others are the routine chemistry and blood counts around them.
LABS = [
    ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", 1.7, 2.4),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.0),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 11.0),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400),
    (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        7,
        56,
    ),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200),
]

# (SNOMED CT, display): chronic and past problems unrelated to twitching.
CONDITIONS = [
    ("38341003", "Hypertensive disorder"),
    ("44054006", "Diabetes mellitus type 2"),
    ("55822004", "Hyperlipidemia"),
    ("195967001", "Asthma"),
    ("235595009", "Gastroesophageal reflux disease"),
    ("40055000", "Chronic sinusitis"),
    ("239873007", "Osteoarthritis of knee"),
    ("68566005", "Urinary tract infectious disease"),
    ("195662009", "Acute viral pharyngitis"),
    ("10509002", "Acute bronchitis"),
    ("62315008", "Diarrhea"),
    ("271737000", "Anemia"),
    ("35489007", "Depressive disorder"),
    ("197480006", "Anxiety disorder"),
    ("40930008", "Hypothyroidism"),
]

# (RxNorm SCD, display): common outpatient prescriptions.
MEDICATIONS = [
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet"),
    ("617312", "atorvastatin 10 MG Oral Tablet"),
    ("197361", "amlodipine 5 MG Oral Tablet"),
    ("966247", "levothyroxine sodium 0.05 MG Oral Tablet"),
    ("308136", "amlodipine 2.5 MG Oral Tablet"),
    ("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
    ("745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ("198211", "simvastatin 40 MG Oral Tablet"),
    ("313782", "acetaminophen 325 MG Oral Tablet"),
]


def _fhir_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"{DEMO_FHIR_BASE}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": "match"},
    }


def _observation(n: int, patient: str, when: datetime, rng: random.Random) -> dict[str, Any]:
    code, display, unit, low, high = LABS[n % len(LABS)]
    value = round(rng.uniform(low, high), 1)  # history is normal: it must not add cards
    return {
        "resourceType": "Observation",
        "id": f"bench-obs-{n}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": _fhir_time(when),
        "issued": _fhir_time(when + timedelta(hours=2)),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        "referenceRange": [
            {
                "low": {"value": low, "unit": unit, "system": "http://unitsofmeasure.org"},
                "high": {"value": high, "unit": unit, "system": "http://unitsofmeasure.org"},
            }
        ],
    }


def _condition(n: int, patient: str, onset: datetime) -> dict[str, Any]:
    code, display = CONDITIONS[n % len(CONDITIONS)]
    resolved = n % 3 == 0
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"bench-cond-{n}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "resolved" if resolved else "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item" if not resolved else "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": _fhir_time(onset),
        "recordedDate": _fhir_time(onset + timedelta(days=1)),
    }
    if resolved:
        condition["abatementDateTime"] = _fhir_time(onset + timedelta(days=21))
    return condition


def _medication_request(n: int, patient: str, authored: datetime) -> dict[str, Any]:
    code, display = MEDICATIONS[n % len(MEDICATIONS)]
    return {
        "resourceType": "MedicationRequest",
        "id": f"bench-medreq-{n}",
        "status": ("active", "completed", "stopped")[n % 3],
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": code,
                    "display": display,
                }
            ],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": _fhir_time(authored),
        "dosageInstruction": [{"text": "Take 1 tablet by mouth once daily"}],
    }


def full_prefetch_request(
    *,
    observations: int = 200,
    conditions: int = 30,
    medication_requests: int = 20,
    now: datetime | None = None,
    seed: int = 250,
) -> dict[str, Any]:
    """A patient-view hook request for DEMO whose prefetch holds ~250 resources."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    request = hook_request(load_demo(DEMO, now=now))
    patient = request["context"]["patientId"]
    prefetch = request["prefetch"]
    # Older than the demo's own labs (at most weeks old): two years of routine history,
    # newest first, as `_sort=-date` in the prefetch template asks.
    start = now - timedelta(days=40)
    step = timedelta(days=2 * 365) / max(1, observations)
    labs = [_observation(n, patient, start - n * step, rng) for n in range(observations)]
    _extend(prefetch["labs"], labs)
    problems = [
        _condition(n, patient, now - timedelta(days=60 + 23 * n)) for n in range(conditions)
    ]
    _extend(prefetch["conditions"], problems)
    meds = [
        _medication_request(n, patient, now - timedelta(days=50 + 31 * n))
        for n in range(medication_requests)
    ]
    _extend(prefetch["medRequests"], meds)
    return request


def sized_request(total: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The workload with exactly `total` prefetch resources, in the proportions above.

    The demo's own resources stay; the rest is history, 80 % laboratory Observations,
    12 % Conditions and 8 % MedicationRequests (200/30/20 of the default 250).
    """
    base = count_resources(
        full_prefetch_request(observations=0, conditions=0, medication_requests=0, now=now)
    )
    extra = total - base
    if extra < 0:
        raise ValueError(f"at least {base} resources: the demo patient alone has that many")
    observations = round(extra * 0.80)
    conditions = round(extra * 0.12)
    request = full_prefetch_request(
        observations=observations,
        conditions=conditions,
        medication_requests=extra - observations - conditions,
        now=now,
    )
    assert count_resources(request) == total
    return request


def _extend(bundle: dict[str, Any], resources: list[dict[str, Any]]) -> None:
    entries = bundle.setdefault("entry", [])
    entries.extend(_entry(r) for r in resources)
    bundle["total"] = len(entries)


def count_resources(request: dict[str, Any]) -> int:
    """Resources in the prefetch: a bare resource counts one, a Bundle its entries."""
    total = 0
    for value in request["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry", []))
        elif value is not None:
            total += 1
    return total
