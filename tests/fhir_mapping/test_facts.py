"""FHIR resources -> facts by P1-P8 of the clinical reference (§4), at a fixed evaluation time."""

from __future__ import annotations

import pytest

from fhir_mapping.facts import extract_facts
from fhir_mapping.records import KeyData
from knowledge import load_knowledge_base
from knowledge.model import DataState
from tests.builders import ICD10, NOW, SNOMED, born_years_ago, condition, observation, patient

OID_SNOMED = "urn:oid:2.16.840.1.113883.6.96"
OID_ICD = "urn:oid:2.16.840.1.113883.6.90"


@pytest.fixture(scope="module")
def packaged_kb():
    return load_knowledge_base()


def facts(packaged_kb, conditions=(), labs=(), pat=None):
    data = {
        "conditions": KeyData("conditions", DataState.PRESENT, tuple(conditions)),
        "labs": KeyData("labs", DataState.PRESENT, tuple(labs)),
        "medRequests": KeyData("medRequests", DataState.EMPTY),
        "medStatements": KeyData("medStatements", DataState.EMPTY),
        "patient": KeyData("patient", DataState.PRESENT, (pat or patient(),)),
    }
    return extract_facts(data, packaged_kb, now=NOW)


@pytest.mark.parametrize(
    ("system", "code", "text"),
    [
        (SNOMED, "82470000", None),
        (SNOMED, "32402008", None),
        (SNOMED, "1070000", None),
        (SNOMED, "13753008", None),
        (SNOMED + "/", "82470000", None),
        (OID_SNOMED, "82470000", None),
        (ICD10, "R25.3", None),
        (ICD10, "R253", None),
        (OID_ICD, "R25.3", None),
        (ICD10, "G51.4", None),
        (ICD10, "G51.31", None),
        (ICD10, "G51.39", None),
        (None, None, "Lip twitching"),
        (None, None, "Fasciculation of the chin"),
        (None, None, "Perioral spasm"),
        (None, None, "Facial myokymia"),
        (SNOMED, "230335009", "Tic of the upper lip"),
        (ICD10, "F95.1", "Motor tic of the face"),
    ],
)
def test_p1_complaint_codes_and_text(packaged_kb, system, code, text):
    assert facts(packaged_kb, [condition(system, code, text)]).complaints


@pytest.mark.parametrize(
    ("system", "code", "text"),
    [
        (ICD10, "R25.2", "Cramp and spasm"),  # too broad
        (SNOMED, "230335009", "Motor tic"),  # facial tic code without lip/face words
        (ICD10, "F95.1", "Chronic motor tic disorder"),
        (None, None, "Eyelid twitching"),
        (None, None, "Leg twitching"),
        (None, None, "Hypertension"),
    ],
)
def test_p1_not_a_complaint(packaged_kb, system, code, text):
    assert not facts(packaged_kb, [condition(system, code, text, display=None)]).complaints


@pytest.mark.parametrize(
    ("clinical", "verification", "abatement", "counts"),
    [
        ("active", None, None, True),
        ("recurrence", None, None, True),
        ("relapse", None, None, True),
        ("inactive", None, None, False),
        ("resolved", None, None, False),
        ("remission", None, None, False),
        (None, None, None, True),
        (None, None, 2, False),
        ("active", "entered-in-error", None, False),
        ("active", "refuted", None, False),
        ("active", "confirmed", None, True),
        ("active", "unconfirmed", None, True),
    ],
)
def test_p1_statuses(packaged_kb, clinical, verification, abatement, counts):
    c = condition(clinical=clinical, verification=verification, abatement_days=abatement)
    assert bool(facts(packaged_kb, [c]).complaints) is counts


@pytest.mark.parametrize(
    ("status", "usable"),
    [
        ("final", True),
        ("amended", True),
        ("corrected", True),
        ("preliminary", True),
        ("entered-in-error", False),
        ("cancelled", False),
        ("registered", False),
        ("unknown", False),
    ],
)
def test_p2_statuses(packaged_kb, status, usable):
    f = facts(packaged_kb, labs=[observation("potassium", 3.1, status=status)])
    assert bool(f.labs) is usable


def test_p2_data_absent_reason_and_non_numeric_are_unusable(packaged_kb):
    f = facts(
        packaged_kb,
        labs=[
            observation("potassium", None, absent="error"),
            observation("magnesium", "low", None),
        ],
    )
    assert not f.labs
    reasons = {u.analyte: u.reason for u in f.unusable_labs}
    assert "no value" in reasons["potassium"]
    assert reasons["magnesium"] == "value given as text ('low')"  # §7b P11


@pytest.mark.parametrize(
    ("analyte", "value", "inferred"),
    [
        ("potassium", 3.1, "mmol/L"),
        ("magnesium_molar", 0.6, "mmol/L"),
        ("magnesium", 0.5, "mg/dL"),
        ("magnesium", 5, "mg/dL"),
        ("magnesium", 5.1, None),
        ("magnesium", 0.49, None),
        ("calcium", 4, "mg/dL"),
        ("calcium", 15, "mg/dL"),
        ("calcium", 3.9, None),
        ("calcium_molar", 2.2, "mmol/L"),
        ("calcium_molar", 4.1, None),
        ("ionized", 0.4, "mmol/L"),
        ("ionized", 2.0, "mmol/L"),
        ("ionized", 2.1, None),
        ("albumin", 3.5, "g/dL"),
        ("albumin", 35, "g/L"),
        ("albumin", 8, None),
    ],
)
def test_p2_missing_unit_inferred_at_the_edges(packaged_kb, analyte, value, inferred):
    f = facts(packaged_kb, labs=[observation(analyte, value, None)])
    if inferred:
        assert f.labs[0].unit_inferred and f.labs[0].reported_unit == inferred
    else:
        assert not f.labs and f.unusable_labs


def test_p2_missing_unit_taken_from_the_reference_range(packaged_kb):
    obs = observation("magnesium", 0.6, None, ref_low=0.7, ref_high=1.0, ref_unit="mmol/L")
    result = facts(packaged_kb, labs=[obs]).labs[0]
    assert result.reported_unit == "mmol/L" and result.value == pytest.approx(0.6)


def test_p2_unknown_unit_is_unusable(packaged_kb):
    f = facts(packaged_kb, labs=[observation("potassium", 4.0, "mmol/24h")])
    assert not f.labs and "mmol/24h" in f.unusable_labs[0].reason


def test_p2_oid_loinc_and_mEq_unit(packaged_kb):
    result = facts(packaged_kb, labs=[observation("potassium", 3.1, "mEq/L", oid=True)]).labs[0]
    assert result.analyte == "potassium" and result.value == pytest.approx(3.1)


@pytest.mark.parametrize(
    ("text", "unit", "analyte"),
    [
        ("Potassium, serum", "mmol/L", "potassium"),
        ("K", "mEq/L", "potassium"),
        ("Magnesium", "mg/dL", "magnesium"),
        ("Calcium", "mg/dL", "calcium_total"),
        ("Calcium, ionized", "mmol/L", "calcium_ionized"),
        ("Albumin", "g/L", "albumin"),
        ("Urine calcium", "mg/dL", None),
        ("Microalbumin", "mg/L", None),
    ],
)
def test_p3_by_name(packaged_kb, text, unit, analyte):
    f = facts(packaged_kb, labs=[observation(None, 3.0, unit, text=text)])
    if analyte is None:
        assert not f.labs and not f.unusable_labs
    else:
        assert f.labs[0].analyte == analyte and f.labs[0].matched_by_name


def test_p4_effective_falls_back_to_period_end_then_issued(packaged_kb):
    f = facts(
        packaged_kb,
        labs=[
            observation("potassium", 3.1, days=None, period_end_days=5),
            observation("magnesium", 2.0, "mg/dL", days=None, issued_days=6),
        ],
    )
    assert sorted((NOW - r.effective).days for r in f.labs) == [5, 6]


def test_p6_age(packaged_kb):
    assert facts(packaged_kb, pat=patient(born_years_ago(18, extra_days=1))).age_years == 17
    assert facts(packaged_kb, pat=patient(born_years_ago(18))).age_years == 18


@pytest.mark.parametrize(
    ("kwargs", "days"),
    [
        ({"onset_days": 12}, 12),
        ({"onset_days": None, "onset_period_days": 13}, 13),
        ({"onset_days": None, "recorded_days": 14}, 14),
        ({"onset_days": 15, "recorded_days": 2}, 15),
    ],
)
def test_p8_onset(packaged_kb, kwargs, days):
    f = facts(packaged_kb, [condition(**kwargs)])
    assert (NOW - f.onset).days == days


def test_p8_earliest_onset_among_complaints(packaged_kb):
    conditions = [condition(onset_days=5), condition(ICD10, "R25.3", None, onset_days=40)]
    f = facts(packaged_kb, conditions)
    assert (NOW - f.onset).days == 40


def test_p7_red_flag_status_filter(packaged_kb):
    gone = condition(ICD10, "R29.810", "Facial weakness", clinical="resolved")
    wrong = condition(ICD10, "R29.810", "Facial weakness", verification="entered-in-error")
    assert not facts(packaged_kb, [condition(), gone, wrong]).red_flags


def test_second_complaint_at_another_site_is_spreading(packaged_kb):
    f = facts(packaged_kb, [condition(body_site="Lower lip"), condition(body_site="Left eyelid")])
    assert [r.flag for r in f.red_flags] == ["spreading"]
