"""Precision over a whole terminology, through the real service (clinical reference §7b, Measure).

Every ICD-10-CM code goes to the patient-view service as an active Condition (its code
and its official description as text), in a few large requests. Each request also holds
one plain "lip twitching" complaint so that it is in scope; the cards then say what the
service made of every other Condition: the missing-labs card lists every complaint, the
red-flag card every red-flag record, the known-condition and hypoparathyroidism cards
theirs. A complaint, red flag, known condition or hypoparathyroidism whose description
does not name that finding is a false match; there must be none.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from cds_hooks.runtime import runtime
from fhir_mapping.cards import EVIDENCE_EXTENSION
from tests import builders as b
from tests.precision_corpus import NAMES, icd10cm, names

BATCH = 12_500
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ACTIVE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                      "code": "active"}]}
ANCHOR = "anchor-lip-twitch"


def as_condition(index: int, code: str, description: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": f"icd-{index}",
        "clinicalStatus": ACTIVE,
        "code": {"coding": [{"system": ICD10CM, "code": code, "display": description}],
                 "text": description},
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
    }


def searchset(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


def request_for(conditions: list[dict]) -> dict:
    anchor = b.condition(b.SNOMED, "82470000", "Lip twitching", cid=ANCHOR)
    return {
        "hookInstance": "precision-corpus",
        "hook": "patient-view",
        "context": {"userId": "Practitioner/1", "patientId": b.PATIENT_ID},
        "prefetch": {
            "patient": b.patient(),
            "conditions": searchset([anchor, *conditions]),
            "labs": searchset([]),
            "medRequests": searchset([]),
            "medStatements": searchset([]),
        },
    }


def evidence_of(card: dict) -> dict:
    return card.get("extension", {}).get(EVIDENCE_EXTENSION, {})


@pytest.fixture(scope="module")
def matched(tmp_path_factory) -> dict[str, set[str]]:
    """Finding -> the corpus codes the service counted as that finding."""
    app = b.make_app(tmp_path_factory.mktemp("precision"), max_body_bytes=64 * 1024 * 1024)
    client = app.test_client()
    kb = runtime(app).kb
    corpus = icd10cm()
    by_id = {f"Condition/icd-{i}": code for i, (code, _) in enumerate(corpus)}
    flag_keys = {c.label: c.key for c in kb.red_flags}
    found: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(corpus), BATCH):
        chunk = [as_condition(start + i, code, text)
                 for i, (code, text) in enumerate(corpus[start : start + BATCH])]
        cards = b.call(client, request_for(chunk))
        for card in cards:
            kind = card["source"]["topic"]["code"]
            ext = evidence_of(card)
            if kind == "lab-workup-missing":
                for ref in ext.get("reasons", []):
                    if ref in by_id:
                        found["complaint"].add(by_id[ref])
            for item in ext.get("evidence", []):
                ref = item.get("reference")
                if ref not in by_id:
                    continue
                if kind == "neurology-referral-red-flag" and item.get("label") in flag_keys:
                    found[f"red-flag:{flag_keys[item['label']]}"].add(by_id[ref])
                elif kind == "known-neurologic-condition":
                    found["known"].add(by_id[ref])
                elif kind == "hypoparathyroidism-calcium-check":
                    found["hypoparathyroidism"].add(by_id[ref])
    return found


def false_matches(found: dict[str, set[str]], prefix: str) -> dict[str, list[tuple[str, str]]]:
    corpus = dict(icd10cm())
    out = {}
    for key, codes in found.items():
        if key.startswith(prefix):
            wrong = sorted((c, corpus[c]) for c in codes if not names(key, corpus[c]))
            if wrong:
                out[key] = wrong
    return out


def test_no_false_complaint(matched) -> None:
    assert false_matches(matched, "complaint") == {}
    assert {"R25.3", "G51.4", "G51.31", "G51.39"} <= matched["complaint"]


def test_no_false_red_flag(matched) -> None:
    assert false_matches(matched, "red-flag:") == {}
    assert {"R29.810", "R47.81", "R13.10", "M62.81", "R20.2", "H53.2", "H53.9", "G50.1"} <= {
        c for key, codes in matched.items() if key.startswith("red-flag:") for c in codes
    }


def test_narrowed_code_ranges_hold(matched) -> None:
    flagged = {c for key, codes in matched.items() if key.startswith("red-flag:") for c in codes}
    assert not {c for c in flagged if c.startswith(("H53.0", "H53.3", "H53.5", "H53.6"))}
    assert not {c for c in flagged if c.startswith(("R20.3", "R20.8"))}
    assert {"R20.0", "R20.1", "R20.9", "H53.10", "H53.40"} <= flagged


def test_congenital_and_z_codes_never_count_by_text(matched) -> None:
    counted = {c for codes in matched.values() for c in codes}
    assert not {c for c in counted if c.startswith(("Q", "Z"))}


def test_no_false_known_condition(matched) -> None:
    corpus = dict(icd10cm())
    keys = [k for k in NAMES if k.startswith("known:")]
    wrong = sorted(c for c in matched["known"] if not any(names(k, corpus[c]) for k in keys))
    assert wrong == []
    assert {"G12.21", "G20.A1", "F95.2", "G51.0", "G51.31"} <= matched["known"]
    assert false_matches(matched, "hypoparathyroidism") == {}
    assert {"E20.0", "E89.2", "E20.810"} <= matched["hypoparathyroidism"]
