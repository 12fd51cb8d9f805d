"""The knowledge/code contract: every rule is checked against the evaluator it names.

Each fault stops loading with a KnowledgeError that names the file, the rule (index and
id) and the field; `lipcds knowledge check` exits 1 with the same line, and start-up
refuses the directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge import KnowledgeError, load_knowledge_base
from knowledge.engine import EVALUATORS
from knowledge.engine.fields import placeholders, unknown_placeholders

PACKAGED = Path(str(resources.files("knowledge") / "data"))
LIPCDS = Path(sys.executable).with_name("lipcds")


@pytest.fixture
def packaged_dir(tmp_path: Path) -> Path:
    """A writable copy of the packaged knowledge files (with the packaged rules.yaml)."""
    target = tmp_path / "knowledge"
    shutil.copytree(PACKAGED, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def _rule(rules: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in rules["rules"] if r["id"] == rule_id)


def _edit_rule(directory: Path, rule_id: str, change) -> None:
    path = directory / "rules.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(_rule(data, rule_id))
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _problems(directory: Path) -> tuple[str, ...]:
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge_base(directory)
    return caught.value.problems


def _set_evaluator(rule):
    rule["evaluator"] = "red_flag"


def _wrong_param_type(rule):
    rule["params"]["recent"] = 30  # a threshold name was expected


def _missing_param(rule):
    del rule["params"]["persistence"]


def _unused_param(rule):
    rule["params"]["analyte_typo"] = "potassium"


def _unknown_placeholder(rule):
    rule["summary"]["warning"] = "Low potassium ({valu} {unit}, {date}) may explain it"


def _unknown_text_placeholder(rule):
    rule["params"]["texts"]["after"] = "It was started {days} days after {onset}."


CONTRACT_FAULTS = [
    pytest.param(
        "R9", _set_evaluator,
        "rules.yaml: rules[8] (R9).evaluator: unknown evaluator 'red_flag'",
        id="unknown-evaluator",
    ),
    pytest.param(
        "R7", _wrong_param_type,
        "rules.yaml: rules[6] (R7).params.recent: must name a threshold",
        id="wrong-param-type",
    ),
    pytest.param(
        "R9", _missing_param,
        "rules.yaml: rules[8] (R9).params.persistence: missing data for required field",
        id="missing-param",
    ),
    pytest.param(
        "R3", _unused_param,
        "rules.yaml: rules[2] (R3).params.analyte_typo: unknown field",
        id="unused-param",
    ),
    pytest.param(
        "R3", _unknown_placeholder,
        "rules.yaml: rules[2] (R3).summary.warning: placeholder {valu} is not filled here",
        id="unknown-placeholder",
    ),
    pytest.param(
        "R7", _unknown_text_placeholder,
        "rules.yaml: rules[6] (R7).params.texts.after: placeholder {onset} is not filled here",
        id="unknown-placeholder-in-a-param-text",
    ),
]


@pytest.mark.parametrize(("rule_id", "change", "expected"), CONTRACT_FAULTS)
def test_contract_fault_names_file_rule_and_field(packaged_dir, rule_id, change, expected):
    _edit_rule(packaged_dir, rule_id, change)
    problems = _problems(packaged_dir)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


@pytest.mark.parametrize(
    ("rule_id", "change", "expected"),
    [CONTRACT_FAULTS[0], CONTRACT_FAULTS[4]],
)
def test_knowledge_check_exits_1_naming_file_and_rule(packaged_dir, rule_id, change, expected):
    _edit_rule(packaged_dir, rule_id, change)
    done = subprocess.run(  # noqa: S603 - our own entry point, fixed arguments
        [str(LIPCDS), "knowledge", "check", "--dir", str(packaged_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert "knowledge base OK" not in done.stdout


def test_knowledge_check_passes_the_packaged_rules(packaged_dir):
    done = subprocess.run(  # noqa: S603 - our own entry point, fixed arguments
        [str(LIPCDS), "knowledge", "check", "--dir", str(packaged_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "knowledge base OK" in done.stdout


def test_start_up_refuses_a_broken_contract(packaged_dir, tmp_path):
    from cds_hooks import create_app

    _edit_rule(packaged_dir, "R3", _unknown_placeholder)
    with pytest.raises(KnowledgeError, match=r"rules\.yaml: rules\[2\] \(R3\)\.summary\.warning"):
        create_app({
            "env": "development",
            "auth_mode": "disabled",
            "log_level": "ERROR",
            "database_url": f"sqlite:///{tmp_path / 'lipcds.db'}",
            "patient_id_key": "contract-test-key-0123456789abcdef",
            "knowledge_dir": str(packaged_dir),
        })


def test_missing_summary_for_an_indicator_the_evaluator_raises(packaged_dir):
    _edit_rule(packaged_dir, "R3", lambda rule: rule["summary"].pop("critical"))
    (problem,) = _problems(packaged_dir)
    assert problem.startswith("rules.yaml: rules[2] (R3).summary: evaluator 'low_analyte' may "
                              "raise a critical card")


def test_suggestion_the_evaluator_names_must_exist(packaged_dir):
    def drop_mri(rule):
        rule["suggestions"] = [s for s in rule["suggestions"] if s["key"] != "mri-brain"]

    _edit_rule(packaged_dir, "R9", drop_mri)
    (problem,) = _problems(packaged_dir)
    assert problem.startswith("rules.yaml: rules[8] (R9).suggestions: evaluator 'red_flags' "
                              "offers suggestion 'mri-brain'")


def test_a_reference_to_an_unknown_order(packaged_dir):
    _edit_rule(packaged_dir, "R5", lambda r: r["params"].update(orders_unless_ionized=["lab-x"]))
    (problem,) = _problems(packaged_dir)
    assert problem == (
        "rules.yaml: rules[4] (R5).params.orders_unless_ionized[0]: unknown order 'lab-x'"
    )


def test_a_shared_text_with_an_unknown_placeholder(packaged_dir):
    path = packaged_dir / "rules.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["texts"]["no_albumin"] = "No albumin within {window} days."
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (problem,) = _problems(packaged_dir)
    assert problem.startswith("rules.yaml: texts.no_albumin: placeholder {window} is not filled")


def test_every_packaged_rule_meets_its_evaluator():
    kb = load_knowledge_base()
    for rule in kb.rules:
        spec = EVALUATORS[rule.evaluator]
        for template in (*rule.summary.values(), rule.detail):
            assert placeholders(template) <= spec.fills, rule.id


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{a} and {b}", None),
        ("{a} and {c}", "placeholder {c} is not filled here (filled: {a}, {b})"),
        ("{0}", "not a valid template: {0} is not a plain named placeholder"),
        ("{a.__class__}", "not a valid template: {a.__class__} is not a plain named placeholder"),
        ("{a", "not a valid template: "),
    ],
)
def test_placeholder_check(template, problem):
    found = unknown_placeholders(template, {"a", "b"})
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found
