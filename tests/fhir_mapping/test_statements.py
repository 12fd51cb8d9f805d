"""Visit reasons, chief complaints and exam findings as statements (§7b P9, P10, T1.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_mapping.statements import (
    condition_statement,
    observation_statement,
    text_barred,
    value_state,
    visit_reasons,
)

NOW = datetime(2031, 7, 4, 15, 30, tzinfo=UTC)
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
EXAM = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                     "code": "exam"}]}]
SURVEY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "survey"}]}]


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def obs(code=None, *, category=EXAM, status="final", days=1, **value) -> dict:
    resource = {"resourceType": "Observation", "id": "o1", "status": status,
                "category": category, "code": code or {"text": "Exam"},
                "subject": {"reference": "Patient/p1"}}
    if days is not None:
        resource["effectiveDateTime"] = ago(days)
    resource.update(value)
    return resource


def coded(system, code, display=None, text=None) -> dict:
    concept = {"coding": [{"system": system, "code": code, **({"display": display} if display
                                                            else {})}]}
    if text:
        concept["text"] = text
    return concept


DROOP = coded(SNOMED, "280816001", "Facial palsy")


# -- P9 the visit's reason ---------------------------------------------------------------


def test_each_reason_code_is_a_complaint_statement_with_unknown_onset() -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
                 "reasonCode": [{"text": "Lip twitching"},
                                coded(ICD10CM, "R25.3", "Fasciculation")]}
    first, second = visit_reasons(encounter)
    assert (first.source, first.reference, first.onset) == ("visit-reason", "Encounter/e1", None)
    assert first.texts == ("Lip twitching",) and first.complaint and not first.known
    assert second.codings == ((ICD10CM, "R253", "Fasciculation"),)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_an_encounter_that_did_not_take_place_says_nothing(status) -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": status,
                 "reasonCode": [{"text": "Lip twitching"}]}
    assert visit_reasons(encounter) == []


def test_an_encounter_without_reasons_or_with_malformed_ones() -> None:
    assert visit_reasons({"resourceType": "Encounter", "id": "e1"}) == []
    assert visit_reasons({"resourceType": "Encounter", "reasonCode": "twitch"}) == []
    assert visit_reasons({"resourceType": "Encounter", "reasonCode": [{}, 3]}) == []


# -- T1.6 codings decide before text -------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "barred"),
    [(ICD10CM, "Q67.0", True), (ICD10CM, "Z86.73", True), (ICD10CM, "z8673", True),
     ("http://hl7.org/fhir/sid/icd-10", "Q35.9", True),
     ("urn:oid:2.16.840.1.113883.6.90", "Z82.0", True),
     (ICD10CM, "R29.810", False), (SNOMED, "Q123", False)],
)
def test_congenital_and_z_chapter_codings_bar_the_text(system, code, barred) -> None:
    condition = {"resourceType": "Condition", "id": "c1",
                 "code": {"coding": [{"system": system, "code": code}], "text": "facial droop"}}
    statement = condition_statement(condition, None)
    assert statement.text_barred is barred
    assert text_barred(list(statement.codings)) is barred


# -- P10 chief complaints --------------------------------------------------------------------


@pytest.mark.parametrize("loinc", ["8661-1", "10154-3"])
def test_a_chief_complaint_value_is_read_with_its_date(loinc) -> None:
    statement = observation_statement(
        obs(coded(LOINC, loinc), category=SURVEY, days=2, valueString="twitching lower lip"),
        NOW, 30)
    assert statement.source == "chief-complaint"
    assert statement.texts == ("twitching lower lip",)
    assert statement.onset == NOW - timedelta(days=2)
    assert statement.complaint and statement.red_flags and not statement.known


def test_a_coded_chief_complaint() -> None:
    statement = observation_statement(
        obs(coded(LOINC, "8661-1"), category=[],
            valueCodeableConcept=coded(SNOMED, "82470000", "Fasciculation", "Lip twitch")),
        NOW, 30)
    assert statement.codings == ((SNOMED, "82470000", "Fasciculation"),)
    assert statement.texts[0] == "Lip twitch"


# -- P10 exam findings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ({"valueBoolean": True}, "affirmed"),
        ({"valueBoolean": False}, "negative"),
        ({"valueCodeableConcept": coded(SNOMED, "52101004", "Present")}, "affirmed"),
        ({"valueCodeableConcept": coded(SNOMED, "10828004", "Positive")}, "affirmed"),
        ({"valueCodeableConcept": coded(SNOMED, "373066001", "Yes")}, "affirmed"),
        ({"valueCodeableConcept": coded(SNOMED, "2667000", "Absent")}, "negative"),
        ({"valueCodeableConcept": coded(SNOMED, "260385009", "Negative")}, "negative"),
        ({"valueCodeableConcept": coded(SNOMED, "373067005", "No")}, "negative"),
        ({"interpretation": [coded("http://terminology.hl7.org/CodeSystem/"
                                   "v3-ObservationInterpretation", "POS")]}, "affirmed"),
        ({"interpretation": [coded("http://terminology.hl7.org/CodeSystem/"
                                   "v3-ObservationInterpretation", "A")]}, "affirmed"),
        ({"interpretation": [coded("http://terminology.hl7.org/CodeSystem/"
                                   "v3-ObservationInterpretation", "NEG")]}, "negative"),
        ({}, "unknown"),
        ({"dataAbsentReason": {"text": "not asked"}}, "unknown"),
    ],
)
def test_value_states(value, state) -> None:
    assert value_state(obs(DROOP, **value)) == state


def test_an_affirmed_coded_exam_finding_carries_its_code() -> None:
    statement = observation_statement(obs(DROOP, valueBoolean=True), NOW, 30)
    assert statement.source == "exam" and statement.codings == ((SNOMED, "280816001",
                                                                 "Facial palsy"),)
    assert not statement.complaint and statement.red_flags


@pytest.mark.parametrize("value", [{"valueBoolean": False}, {},
                                   {"valueCodeableConcept": coded(SNOMED, "2667000")}])
def test_negative_and_unknown_exam_findings_carry_no_code(value) -> None:
    statement = observation_statement(obs(DROOP, **value), NOW, 30)
    assert statement is None or statement.codings == ()


def test_an_exam_question_whose_answer_is_the_finding() -> None:
    statement = observation_statement(
        obs({"text": "Cranial nerve exam"}, valueCodeableConcept=DROOP), NOW, 30)
    assert statement.codings == ((SNOMED, "280816001", "Facial palsy"),)
    assert statement.display == "Cranial nerve exam: Facial palsy"


def test_exam_text_is_read_with_its_question() -> None:
    statement = observation_statement(
        obs({"text": "Facial droop"}, valueString="none", note=[{"text": "no dysarthria"}]),
        NOW, 30)
    assert statement.codings == ()
    assert statement.texts == ("Facial droop: none", "no dysarthria")


@pytest.mark.parametrize(
    ("changes", "counts"),
    [
        ({"days": 30}, True), ({"days": 31}, False), ({"days": 0}, True), ({"days": None}, False),
        ({"status": "preliminary"}, True), ({"status": "amended"}, True),
        ({"status": "entered-in-error"}, False), ({"status": "cancelled"}, False),
        ({"status": "registered"}, False), ({"category": SURVEY}, False),
        ({"category": "exam"}, False),
    ],
)
def test_only_recent_usable_exam_findings_count(changes, counts) -> None:
    statement = observation_statement(obs(DROOP, valueBoolean=True, **changes), NOW, 30)
    assert (statement is not None) is counts


def test_effective_period_start_dates_a_finding() -> None:
    finding = obs(DROOP, days=None, valueBoolean=True,
                  effectivePeriod={"start": ago(3), "end": ago(2)})
    assert observation_statement(finding, NOW, 30).onset == NOW - timedelta(days=3)
