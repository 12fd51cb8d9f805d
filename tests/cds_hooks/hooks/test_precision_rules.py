"""patient-view end to end at the edges of §7b: T1 on real records, T2, P9, P10, P11.

Each test posts a prefetch built with `tests.builders` to the real app (clock fixed at
`NOW`) and checks the cards: kind, indicator and the words that say why.
"""

from __future__ import annotations

import json

import pytest

from fhir_mapping.cards import EVIDENCE_EXTENSION
from tests import builders as b
from tests.builders import (
    ICD10,
    LOINC,
    SNOMED,
    call,
    card,
    complaint,
    days_ago,
    finding,
    hook_request,
    kinds,
    normal_labs,
    observation,
)

EXAM = [b.concept("http://terminology.hl7.org/CodeSystem/observation-category", "exam")]
SURVEY = [b.concept("http://terminology.hl7.org/CodeSystem/observation-category", "survey")]
R9 = "neurology-referral-red-flag"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return b.make_app(tmp_path_factory.mktemp("precision-rules")).test_client()


def exam(code: dict, *, days: float = 1, status: str = "final", **value) -> dict:
    return {
        "resourceType": "Observation", "id": b.next_id("exam"), "status": status,
        "category": EXAM, "code": code, "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "effectiveDateTime": days_ago(days), **value,
    }


DROOP = b.concept(SNOMED, "280816001", "Facial droop", "Facial palsy")


# -- T1 on real records ------------------------------------------------------------------


@pytest.mark.parametrize(
    "note",
    [
        "No facial droop; lip twitching",
        "Denies facial weakness, slurred speech, dysphagia",
        "Facial droop: none",
        "r/o Bell's palsy",
        "Family history of Parkinson's disease",
        "Screening for vision loss: normal",
    ],
)
def test_negated_or_uncertain_words_raise_no_red_flag(client, note):
    cards = call(client, hook_request([complaint(note=note)]))
    assert kinds(cards) == {"lifestyle-advice": "info"}


def test_a_negation_does_not_reach_past_but(client):
    note = "Denies dysphagia but reports slurred speech"
    cards = call(client, hook_request([complaint(note=note)]))
    red = card(cards, R9)
    assert red["indicator"] == "critical"
    assert "- Slurred speech or dysarthria:" in red["detail"]
    assert "- Difficulty swallowing:" not in red["detail"]


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("D22.0", "Melanocytic nevi of lip"),
        ("O09.90", "Supervision of high risk pregnancy, unspecified trimester"),
        ("D81.1", "Severe combined immunodeficiency with low T- and B-cell numbers"),
        ("F17.220", "Nicotine dependence, chewing tobacco, uncomplicated"),
        ("M26.12", "Other jaw asymmetry"),
        ("H53.001", "Unspecified amblyopia, right eye"),
        ("R20.3", "Hyperesthesia"),
    ],
)
def test_problem_list_entries_that_used_to_count_do_not(client, code, text):
    cards = call(client, hook_request([complaint(), finding(ICD10, code, text)]))
    assert R9 not in kinds(cards)
    alone = call(client, hook_request([finding(ICD10, code, text)]))
    assert alone == []  # and none of them is a twitching complaint


def test_congenital_and_z_codes_are_not_read_by_their_words(client):
    conditions = [
        complaint(),
        finding(ICD10, "Q67.0", "Congenital facial asymmetry, new facial asymmetry"),
        finding(ICD10, "Z86.73", "Personal history of TIA with facial droop"),
        finding(ICD10, "Z82.0", "Family history of lip twitching"),
    ]
    assert kinds(call(client, hook_request(conditions))) == {"lifestyle-advice": "info"}
    assert call(client, hook_request(conditions[1:])) == []


def test_a_listed_code_counts_whatever_its_words(client):
    red = card(call(client, hook_request([complaint(), finding(ICD10, "R29.810", "no droop")])),
               R9)
    assert red["indicator"] == "critical" and "no droop" in red["detail"]


def test_perioral_tingling_is_no_red_flag_and_says_check_calcium(client):
    cards = call(client, hook_request([complaint(note="Tingling around the mouth")]))
    assert kinds(cards) == {"lifestyle-advice": "info"}
    assert "check calcium" in cards[0]["detail"].lower()
    mixed = call(client, hook_request([complaint(note="Tingling of the lips and fingers")]))
    assert kinds(mixed)[R9] == "warning"


def test_perioral_tingling_is_evidence_of_a_low_calcium(client):
    labs = [*normal_labs(skip=("calcium",)), observation("calcium", 7.6, "mg/dL")]
    cards = call(client, hook_request([complaint(note="numb lips")], labs))
    calcium = card(cards, "hypocalcemia-workup")
    items = calcium["extension"][EVIDENCE_EXTENSION]["evidence"]
    assert any(i["label"] == "Perioral tingling" for i in items)


# -- T2 red flags have a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag_days", "indicator", "long_standing"),
    [
        (10, "critical", False),  # the twitch began 10 days ago: same time
        (40, "critical", False),  # 30 days before the twitch: still recent
        (41, "warning", True),  # 31 days before: long-standing
        (730, "warning", True),  # two years before
        (None, "critical", False),  # unknown onset: full severity
    ],
)
def test_red_flags_against_the_twitch_onset(client, flag_days, indicator, long_standing):
    droop = finding(ICD10, "R29.810", "Facial weakness", onset_days=flag_days)
    cards = call(client, hook_request([complaint(onset_days=10), droop]))
    red = card(cards, R9)
    assert red["indicator"] == indicator
    assert ("long-standing since" in red["detail"]) is long_standing


def test_an_acute_finding_keeps_the_card_critical_beside_a_long_standing_one(client):
    conditions = [
        complaint(onset_days=5),
        finding(ICD10, "R29.810", "Facial weakness", onset_days=900),
        finding(ICD10, "R47.81", "Slurred speech", onset_days=2),
    ]
    red = card(call(client, hook_request(conditions)), R9)
    assert red["indicator"] == "critical"
    assert "long-standing since" in red["detail"]


def test_the_recent_window_is_policy_within_bounds(tmp_path):
    from knowledge.policy import PolicyError

    app = b.make_app(tmp_path, threshold_overrides={"red_flag_recent_days": 365})
    droop = finding(ICD10, "R29.810", "Facial weakness", onset_days=300)
    red = card(call(app.test_client(), hook_request([complaint(onset_days=10), droop])), R9)
    assert red["indicator"] == "critical"
    for wrong in (6, 366):
        with pytest.raises((PolicyError, ValueError)):
            b.make_app(tmp_path, threshold_overrides={"red_flag_recent_days": wrong})


# -- P9 the visit's reason -------------------------------------------------------------------


def encounter(reason: str, status: str = "in-progress") -> dict:
    return {"resourceType": "Encounter", "id": "enc-1", "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
            "reasonCode": [{"text": reason}]}


def test_the_visit_reason_is_a_complaint_with_unknown_onset(client):
    request = hook_request([], encounter=encounter("Twitching of the upper lip"))
    cards = call(client, request)
    assert kinds(cards) == {"lifestyle-advice": "info"}
    assert "Twitching of the upper lip" in cards[0]["detail"]


@pytest.mark.parametrize(
    ("reason", "status"),
    [("No lip twitching", "in-progress"), ("Twitching of the upper lip", "entered-in-error"),
     ("Twitching of the upper lip", "cancelled"), ("Annual check-up", "finished")],
)
def test_visit_reasons_that_are_no_complaint(client, reason, status):
    assert call(client, hook_request([], encounter=encounter(reason, status))) == []


def test_no_encounter_is_not_missing_data(client):
    cards = call(client, hook_request())
    assert "data-unavailable" not in kinds(cards)


def test_an_encounter_that_could_not_be_read_is_said(client):
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "exception", "diagnostics": "timeout"}]}
    request = hook_request(prefetch={"encounter": outcome})
    request["context"]["encounterId"] = "enc-1"
    cards = call(client, request)
    assert "the reason for this visit" in card(cards, "data-unavailable")["detail"]


# -- P10 findings recorded as Observations ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "flagged"),
    [
        ({"valueBoolean": True}, True),
        ({"valueBoolean": False}, False),
        ({"valueCodeableConcept": b.concept(SNOMED, "52101004", "Present")}, True),
        ({"valueCodeableConcept": b.concept(SNOMED, "2667000", "Absent")}, False),
        ({"interpretation": [b.concept(
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "POS")]}, True),
        ({"interpretation": [b.concept(
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG")]}, False),
        ({}, False),
    ],
)
def test_exam_findings_affirmed_and_negative(client, value, flagged):
    cards = call(client, hook_request(findings=[exam(DROOP, **value)]))
    assert (R9 in kinds(cards)) is flagged
    if flagged:
        assert kinds(cards)[R9] == "critical"


@pytest.mark.parametrize(("days", "flagged"), [(30, True), (31, False)])
def test_an_exam_finding_counts_for_thirty_days(client, days, flagged):
    cards = call(client, hook_request(findings=[exam(DROOP, days=days, valueBoolean=True)]))
    assert (R9 in kinds(cards)) is flagged


def test_an_exam_question_whose_answer_is_the_finding(client):
    question = exam(b.concept(text="Cranial nerve examination"), valueCodeableConcept=DROOP)
    assert kinds(call(client, hook_request(findings=[question])))[R9] == "critical"


def test_exam_text_is_read_with_negation(client):
    words = exam(b.concept(text="Neurological exam"),
                 valueString="Right facial droop. No dysarthria")
    red = card(call(client, hook_request(findings=[words])), R9)
    assert red["indicator"] == "critical"
    assert "- Facial weakness or droop:" in red["detail"]
    assert "- Slurred speech or dysarthria:" not in red["detail"]
    none = exam(b.concept(text="Facial droop"), valueString="none")
    assert R9 not in kinds(call(client, hook_request(findings=[none])))


@pytest.mark.parametrize("loinc", ["8661-1", "10154-3"])
def test_a_chief_complaint_is_a_complaint(client, loinc):
    chief = {"resourceType": "Observation", "id": b.next_id("cc"), "status": "final",
             "category": SURVEY, "code": b.concept(LOINC, loinc),
             "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
             "effectiveDateTime": days_ago(2), "valueString": "My lower lip keeps twitching"}
    cards = call(client, hook_request([], findings=[chief]))
    assert kinds(cards) == {"lifestyle-advice": "info"}


def test_findings_that_could_not_be_read_are_said(client):
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "exception", "diagnostics": "timeout"}]}
    cards = call(client, hook_request(prefetch={"findings": outcome}))
    assert "exam findings" in card(cards, "data-unavailable")["detail"]


# -- P11 lab values as laboratories send them ------------------------------------------------


def potassium(**value) -> dict:
    lab = observation("potassium", 3.0, "mmol/L")
    lab.pop("valueQuantity", None)
    lab.update(value)
    return lab


def quantity(value: float, comparator: str | None = None) -> dict:
    q = {"value": value, "unit": "mmol/L", "system": b.UCUM, "code": "mmol/L"}
    if comparator:
        q["comparator"] = comparator
    return q


@pytest.mark.parametrize(
    ("value", "indicator"),
    [
        (quantity(2.5, "<"), "critical"),
        (quantity(2.5, "<="), "warning"),
        (quantity(3.5, "<"), "warning"),
        (quantity(2.4), "critical"),
    ],
)
def test_comparators_are_judged(client, value, indicator):
    labs = [*normal_labs(skip=("potassium",)), potassium(valueQuantity=value)]
    cards = call(client, hook_request(labs=labs))
    hypo = card(cards, "hypokalemia-workup")
    assert hypo["indicator"] == indicator
    if "comparator" in value:
        assert f"{value['comparator']}{value['value']} mmol/L" in hypo["summary"] + hypo["detail"]
    assert ("lifestyle-advice" in kinds(cards)) is (indicator != "critical")


@pytest.mark.parametrize("value", [quantity(4.0, "<"), quantity(3.4, ">")])
def test_a_bound_that_cannot_be_judged_counts_as_missing(client, value):
    labs = [*normal_labs(skip=("potassium",)), potassium(valueQuantity=value)]
    cards = call(client, hook_request(labs=labs))
    assert "hypokalemia-workup" not in kinds(cards)
    missing = card(cards, "lab-workup-missing")
    assert "cannot be judged" in missing["detail"]


def test_a_bound_above_the_limit_is_not_low(client):
    labs = [*normal_labs(skip=("potassium",)), potassium(valueQuantity=quantity(3.5, ">"))]
    assert kinds(call(client, hook_request(labs=labs))) == {"lifestyle-advice": "info"}


@pytest.mark.parametrize(("text", "low"), [("3.1", True), ("<2.5", True), ("3.1 mmol/L", True),
                                           ("4.2 mEq/L", False)])
def test_value_strings_that_are_numbers(client, text, low):
    labs = [*normal_labs(skip=("potassium",)), potassium(valueString=text)]
    cards = call(client, hook_request(labs=labs))
    assert ("hypokalemia-workup" in kinds(cards)) is low


@pytest.mark.parametrize("text", ["3.1 L", "see comment", "hemolysed"])
def test_value_strings_that_are_not_numbers_are_said(client, text):
    labs = [*normal_labs(skip=("potassium",)), potassium(valueString=text)]
    missing = card(call(client, hook_request(labs=labs)), "lab-workup-missing")
    assert "value given as text" in missing["detail"]


def test_a_panel_component_is_a_result(client):
    panel = observation("potassium", 3.0, "mmol/L", loinc="24323-8")
    panel["code"] = b.concept(LOINC, "24323-8", "Comprehensive metabolic panel")
    panel.pop("valueQuantity", None)
    panel["component"] = [
        {"code": b.concept(LOINC, "2823-3", "Potassium"), "valueQuantity": quantity(3.0),
         "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}}]},
        {"code": b.concept(LOINC, "2951-2", "Sodium"),
         "valueQuantity": {"value": 140, "unit": "mmol/L"}},
    ]
    labs = [*normal_labs(skip=("potassium",)), panel]
    hypo = card(call(client, hook_request(labs=labs)), "hypokalemia-workup")
    assert hypo["indicator"] == "warning"
    assert "3.0 mmol/L" in hypo["summary"] + hypo["detail"]  # as reported, not "3"


def test_a_panel_member_missing_from_the_prefetch_is_said(client):
    panel = {"resourceType": "Observation", "id": "panel-1", "status": "final",
             "category": normal_labs()[0]["category"],
             "code": b.concept(LOINC, "51990-0", "Basic metabolic panel"),
             "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
             "effectiveDateTime": days_ago(3),
             "hasMember": [{"reference": "Observation/not-here"}]}
    cards = call(client, hook_request(labs=[*normal_labs(), panel]))
    assert "Observation/not-here" in json.dumps(cards)  # named to the EHR, not in the prose


# -- P12 medications as pharmacies send them ---------------------------------------------------


def test_a_combination_product_matches_each_listed_ingredient(client):
    medication = {
        "resourceType": "Medication", "id": "combo",
        "code": {"coding": [{"system": b.RXNORM, "code": "36437"}], "text": "Combination tablet"},
        "ingredient": [
            {"itemCodeableConcept": {"coding": [{"system": b.RXNORM, "code": "36437"}]}},
            {"itemCodeableConcept": {"coding": [{"system": b.RXNORM, "code": "5487"}]}},
        ],
    }
    found = kinds(call(client, hook_request(med_requests=[b.med_request(medication=medication)])))
    assert "medication-side-effect:sertraline" in found
    assert "electrolyte-depleting-medication:hydrochlorothiazide" in found


def test_a_medication_with_several_codings_matches_by_any(client):
    coded = b.med_request(code=None, text=None)
    coded["medicationCodeableConcept"] = {"coding": [
        {"system": "http://hl7.org/fhir/sid/ndc", "code": "0000-0000-00"},
        {"system": b.RXNORM, "code": "312941", "display": "sertraline 50 MG Oral Tablet"},
    ]}
    assert "medication-side-effect:sertraline" in kinds(call(client, hook_request(
        med_requests=[coded])))


def test_a_medication_of_the_same_searchset_resolves(client):
    medication = {"resourceType": "Medication", "id": "med-9",
                  "code": {"coding": [{"system": b.RXNORM, "code": "312941"}]}}
    request = b.med_request(reference="Medication/med-9")
    bundle = b.searchset([request])
    bundle["entry"].append({"resource": medication, "search": {"mode": "include"}})
    found = kinds(call(client, hook_request(prefetch={"medRequests": bundle})))
    assert "medication-side-effect:sertraline" in found


# -- malformed new inputs never answer 500 ----------------------------------------------------

_ODD = [None, "", "x", 0, -1, 1e308, True, [], {}, [None], {"a": None}, "2031-13-45", "<", ["<"]]


def _places(node, depth=0):
    if depth > 8:
        return
    if isinstance(node, dict):
        for key in list(node):
            yield node, key
            yield from _places(node[key], depth + 1)
    elif isinstance(node, list):
        for index in range(len(node)):
            yield node, index
            yield from _places(node[index], depth + 1)


def test_mutated_visits_findings_and_lab_values_never_answer_500(client):
    import copy
    import random

    panel = observation("potassium", 3.0, "mmol/L")
    panel["component"] = [{"code": b.concept(LOINC, "2823-3"), "valueQuantity": quantity(2.5, "<")}]
    panel["hasMember"] = [{"reference": "Observation/x"}]
    base = hook_request(
        [complaint(note="No facial droop; tingling around the mouth")],
        [*normal_labs(skip=("potassium",)), panel, potassium(valueString="<2.5 mmol/L")],
        [b.med_request(reference="Medication/m1")],
        findings=[exam(DROOP, valueBoolean=True),
                  exam(b.concept(text="Facial droop"), valueString="none",
                       interpretation=[b.concept(text="x")])],
        encounter=encounter("Twitching of the upper lip"),
    )
    rng = random.Random(20261201)
    for _ in range(250):
        request = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            parent, key = rng.choice(list(_places(request["prefetch"])))
            if rng.random() < 0.25 and isinstance(parent, dict):
                del parent[key]
            else:
                parent[key] = copy.deepcopy(rng.choice(_ODD))
        response = client.post(f"/cds-services/{b.SERVICE}", json=request)
        assert response.status_code in (200, 400, 412), response.get_data(as_text=True)
