"""Lab judgement: calcium judged with the rule's limits and the knowledge base's correction."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from knowledge import load_knowledge_base
from knowledge.engine.labs import CalciumLimits, Context
from knowledge.model import LabResult, PatientFacts
from knowledge.policy import Policy
from tests.builders import NOW


@pytest.fixture(scope="module")
def packaged_kb():
    return load_knowledge_base()


def _lab(analyte: str, value: float, unit: str, days: int = 2) -> LabResult:
    return LabResult(analyte, value, unit, value, unit, NOW - timedelta(days=days), "final",
                     reference=f"Observation/{analyte}")


TOTAL_AND_ALBUMIN = (_lab("calcium_total", 8.0, "mg/dL"), _lab("albumin", 2.0, "g/dL"))


def _context(kb, labs, age=40, overrides=None) -> Context:
    facts = PatientFacts(evaluated_at=NOW, age_years=age, labs=tuple(labs))
    return Context(facts, kb, Policy(kb.thresholds, overrides or {}))


def _r5_limits(kb) -> CalciumLimits:
    return CalciumLimits.of(kb.rule("R5").params)


def test_corrected_calcium_uses_the_knowledge_base_correction(packaged_kb):
    judged = _context(packaged_kb, TOTAL_AND_ALBUMIN).calcium(_r5_limits(packaged_kb))
    assert judged.value == pytest.approx(8.0 + 0.8 * (4.0 - 2.0))  # 9.6: not low
    assert not judged.low
    assert judged.calculation.startswith(
        "Corrected calcium = total calcium + 0.8 × (4.0 − albumin) = 8 + 0.8 × (4.0 − 2) = "
        "**9.6 mg/dL**"
    )
    weaker = dataclasses.replace(
        packaged_kb,
        calcium_correction=dataclasses.replace(packaged_kb.calcium_correction, factor=0.2),
    )
    judged = _context(weaker, TOTAL_AND_ALBUMIN).calcium(_r5_limits(weaker))
    assert judged.value == pytest.approx(8.4) and judged.low
    assert "8 + 0.2 × (4.0 − 2)" in judged.calculation


def test_calcium_is_judged_against_the_limits_the_rule_names(packaged_kb):
    labs = (_lab("calcium_total", 7.6, "mg/dL"), _lab("albumin", 4.0, "g/dL"))
    context = _context(packaged_kb, labs)
    assert context.calcium(_r5_limits(packaged_kb)).low  # 7.6 < 8.5
    lower = dataclasses.replace(
        _r5_limits(packaged_kb), corrected_low="calcium_corrected_critical_low"
    )
    assert not context.calcium(lower).low  # 7.6 is not below 7.0


def test_a_childs_calcium_without_a_range_is_not_judged_and_said_once(packaged_kb):
    context = _context(packaged_kb, TOTAL_AND_ALBUMIN, age=10)
    limits = _r5_limits(packaged_kb)
    assert context.calcium(limits) is None
    assert context.calcium(limits) is None
    notes = [i.message for i in context.issues]
    assert notes == [
        "Calcium 8.0 mg/dL on 2 Jul 2031 was not judged: the patient is under 18 and the lab "
        "gave no reference range."
    ]
    policy = {"adult_age_years": 16}
    at_seventeen = _context(packaged_kb, TOTAL_AND_ALBUMIN, age=17, overrides=policy)
    assert at_seventeen.calcium(limits) is not None  # an adult by this policy: judged


def test_no_paired_albumin_judges_the_total(packaged_kb):
    context = _context(packaged_kb, (_lab("calcium_total", 8.2, "mg/dL"),))
    judged = context.calcium(_r5_limits(packaged_kb))
    assert judged.label == "total calcium" and judged.low
    assert judged.calculation == (
        "No albumin within 7 days of this calcium: the uncorrected total calcium was judged."
    )
