"""Engine rules at their policy edges: P4 freshness, P5 latest wins, threshold overrides."""

from __future__ import annotations

import pytest

from fhir_mapping.facts import extract_facts
from fhir_mapping.records import KeyData
from knowledge import load_knowledge_base
from knowledge.engine import evaluate
from knowledge.model import DataState
from knowledge.policy import Policy, PolicyError
from tests.builders import NOW, condition, normal_labs, observation, patient


@pytest.fixture(scope="module")
def packaged_kb():
    return load_knowledge_base()


def kinds_of(packaged_kb, labs, overrides=None, conditions=None):
    data = {
        "conditions": KeyData("conditions", DataState.PRESENT, tuple(conditions or [condition()])),
        "labs": KeyData("labs", DataState.PRESENT, tuple(labs)),
        "medRequests": KeyData("medRequests", DataState.EMPTY),
        "medStatements": KeyData("medStatements", DataState.EMPTY),
        "patient": KeyData("patient", DataState.PRESENT, (patient(),)),
    }
    facts = extract_facts(data, packaged_kb, now=NOW)
    evaluation = evaluate(facts, packaged_kb, Policy(packaged_kb.thresholds, overrides or {}))
    return {f.kind: f.indicator.wire for f in evaluation.findings}


@pytest.mark.parametrize(("days", "fresh"), [(89, True), (90, True), (91, False)])
def test_p4_freshness_at_90_days(packaged_kb, days, fresh):
    labs = [*normal_labs(skip=("potassium",)), observation("potassium", 3.0, days=days)]
    got = kinds_of(packaged_kb, labs)
    assert ("hypokalemia-workup" in got) is fresh
    assert ("lab-workup-missing" in got) is not fresh


def test_p4_threshold_override(packaged_kb):
    labs = [*normal_labs(skip=("potassium",)), observation("potassium", 3.0, days=100)]
    assert "hypokalemia-workup" in kinds_of(packaged_kb, labs, {"freshness_days": 120})
    with pytest.raises(PolicyError):
        Policy(packaged_kb.thresholds, {"freshness_days": 1000})


def test_p5_latest_wins(packaged_kb):
    labs = [
        *normal_labs(skip=("potassium",)),
        observation("potassium", 3.0, days=10),
        observation("potassium", 4.0, days=2),
    ]
    assert "hypokalemia-workup" not in kinds_of(packaged_kb, labs)


def test_p5_equal_timestamps_corrected_beats_final(packaged_kb):
    labs = [
        *normal_labs(skip=("potassium",)),
        observation("potassium", 3.0, days=2, status="final"),
        observation("potassium", 4.0, days=2, status="corrected"),
    ]
    assert "hypokalemia-workup" not in kinds_of(packaged_kb, labs)
    labs[-1]["status"] = "final"
    labs[-2]["status"] = "amended"
    assert kinds_of(packaged_kb, labs)["hypokalemia-workup"] == "warning"


def test_no_complaint_means_no_findings(packaged_kb):
    other = [condition(None, None, "Hypertension")]
    assert kinds_of(packaged_kb, normal_labs(), conditions=other) == {}
