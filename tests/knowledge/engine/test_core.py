"""The engine core: one loop for both hook families, rule roles, disabled rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from knowledge import load_knowledge_base
from knowledge.engine import evaluate, evaluate_orders
from knowledge.model import (
    ConditionFact,
    DataIssue,
    DataState,
    DraftMedication,
    LabResult,
    PatientFacts,
)
from knowledge.policy import Policy
from tests.builders import NOW


@pytest.fixture(scope="module")
def packaged_kb():
    return load_knowledge_base()


def _lab(analyte: str, value: float, unit: str, days: int = 2) -> LabResult:
    return LabResult(analyte, value, unit, value, unit, NOW - timedelta(days=days), "final",
                     reference=f"Observation/{analyte}")


COMPLAINT = ConditionFact("complaint", "Lip or facial twitching", "lip twitching", "Condition/1")
NORMAL_LABS = (
    _lab("potassium", 4.2, "mmol/L"),
    _lab("magnesium", 0.85, "mmol/L"),
    _lab("calcium_ionized", 1.2, "mmol/L"),
)
DRAFT = DraftMedication("MedicationRequest/d1", "prednisone", "prednisone",
                        "systemic-corticosteroid", "seed", "prednisone 20 MG Oral Tablet")


def _facts(**changes) -> PatientFacts:
    base = {"evaluated_at": NOW, "age_years": 40, "complaints": (COMPLAINT,),
            "labs": NORMAL_LABS, "draft_medications": (DRAFT,)}
    return PatientFacts(**{**base, **changes})


def _rules(evaluation) -> list[str]:
    return [f.rule_id for f in evaluation.findings]


def test_order_checks_run_only_at_order_time(packaged_kb):
    assert packaged_kb.rule("O1").role == "order-check"
    policy = Policy(packaged_kb.thresholds)
    assert "O1" not in _rules(evaluate(_facts(), packaged_kb, policy))
    at_order_time = _rules(evaluate_orders(_facts(), packaged_kb, policy))
    assert at_order_time[0] == "O1"  # the draft card first


def test_order_time_honours_disabled_rules(packaged_kb):
    policy = Policy(packaged_kb.thresholds)
    low_k = (_lab("potassium", 3.0, "mmol/L"), *NORMAL_LABS[1:])
    got = _rules(evaluate_orders(_facts(labs=low_k), packaged_kb, policy))
    assert {"O1", "R3"} <= set(got)
    got = _rules(evaluate_orders(_facts(labs=low_k), packaged_kb, policy,
                                 disabled_rules=("O1", "R3")))
    assert "O1" not in got and "R3" not in got


def test_the_work_up_rules_at_order_time_are_the_order_checks_with_rules(packaged_kb):
    policy = Policy(packaged_kb.thresholds)
    with_rules = set(packaged_kb.rule("O1").params["with_rules"])
    facts = _facts(labs=(), availability={"labs": DataState.EMPTY})
    got = set(_rules(evaluate_orders(facts, packaged_kb, policy)))
    assert got - {"O1"} <= with_rules and "R2" in got
    assert "R1" not in got  # lifestyle advice is a patient-view card


def test_a_data_report_carries_no_data_note_and_the_others_do(packaged_kb):
    assert packaged_kb.rule("D1").role == "data-report"
    facts = _facts(
        labs=(_lab("potassium", 3.0, "mmol/L"), *NORMAL_LABS[1:]),
        draft_medications=(),
        availability={"medications": DataState.UNAVAILABLE},
        issues=(DataIssue("medications", "the FHIR server did not answer"),),
    )
    findings = evaluate(facts, packaged_kb, Policy(packaged_kb.thresholds)).findings
    by_rule = {f.rule_id: f for f in findings}
    assert "**Data not used**" not in by_rule["D1"].detail
    assert "**Data not used**\n\n- the FHIR server did not answer" in by_rule["R3"].detail


@pytest.mark.parametrize(("age", "adult_age", "pediatric"), [(17, 18, True), (17, 16, False),
                                                            (18, 18, False), (None, 18, False)])
def test_pediatric_follows_the_policy_adult_age(packaged_kb, age, adult_age, pediatric):
    policy = Policy(packaged_kb.thresholds, {"adult_age_years": adult_age})
    assert evaluate(_facts(age_years=age), packaged_kb, policy).pediatric is pediatric
    assert evaluate_orders(_facts(age_years=age), packaged_kb, policy).pediatric is pediatric
