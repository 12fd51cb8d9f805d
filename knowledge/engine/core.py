"""The engine core: the evaluator registry, the evaluation loop, suppression.

Rules are data (`rules.yaml`: texts, parameters, citations, suppression); what a rule may
*do* is one of the evaluators registered here by name. Both hook families run the same
loop: `evaluate` (patient-view) and `evaluate_orders` (order-select, order-sign) only
choose which rules take part and whether the patient is in scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from knowledge.engine.labs import Context
from knowledge.engine.text import md, without_ids
from knowledge.kb import KnowledgeBase, Rule
from knowledge.model import (
    Citation,
    DataIssue,
    Evaluation,
    Evidence,
    Finding,
    Indicator,
    PatientFacts,
    Suggestion,
)
from knowledge.policy import Policy

ORDER_CHECK = "order-check"  # rule roles (rules.yaml `role`)
DATA_REPORT = "data-report"
SUMMARY_LIMIT = 140  # CDS Hooks 2.0: summary SHALL be under 140 characters


class EngineError(RuntimeError):
    """A rule names an evaluator or a template field that does not exist."""


Evaluator = Callable[[Context, Rule], list[Finding]]
# Cross-checks an evaluator makes between its rule and its loaded params: (field, message).
RuleCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class EvaluatorSpec:
    """What an evaluator needs from its rule: the contract the loader checks."""

    name: str
    run: Evaluator
    params: type[Schema]  # the rule's `params`; unknown keys are refused
    fills: frozenset[str]  # placeholders it fills in the rule's summary and detail
    indicators: tuple[str, ...]  # indicators its cards may carry (each needs a summary)
    suggestions: tuple[str, ...] = ()  # suggestion keys it names
    check: RuleCheck | None = None


EVALUATORS: dict[str, EvaluatorSpec] = {}


def evaluator(
    name: str,
    *,
    params: type[Schema],
    fills: Iterable[str] = (),
    indicators: Iterable[str],
    suggestions: Iterable[str] = (),
    check: RuleCheck | None = None,
) -> Callable[[Evaluator], Evaluator]:
    """Register an evaluator under `name`, with the contract its rules must meet."""

    def register(fn: Evaluator) -> Evaluator:
        EVALUATORS[name] = EvaluatorSpec(
            name, fn, params, frozenset(fills), tuple(indicators), tuple(suggestions), check
        )
        return fn

    return register


def make_finding(
    ctx: Context,
    rule: Rule,
    indicator: Indicator,
    values: dict[str, object],
    *,
    kind: str | None = None,
    kind_display: str | None = None,
    evidence: Iterable[Evidence] = (),
    suggestions: Iterable[Suggestion] = (),
    reasons: Iterable[str] = (),
    extra_detail: str = "",
    lead: str = "",
    closing: str = "",
    concerns: str | None = None,
) -> Finding:
    """Fill the rule's templates and build the finding (one card).

    `lead` opens the detail (a critical card's action comes first); `extra_detail` ends it.
    """
    template = rule.summary.get(indicator.wire) or rule.summary.get("default")
    if template is None:
        raise EngineError(f"rule {rule.id} has no summary for indicator {indicator.wire}")
    try:
        summary = template.format_map(values)
        detail = rule.detail.format_map(values).strip()
    except (KeyError, IndexError) as exc:
        raise EngineError(f"rule {rule.id}: template field {exc} has no value") from None
    if len(summary) >= SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 2].rstrip() + "…"
    if extra_detail:
        detail = f"{detail}\n\n{extra_detail.strip()}"
    if lead.strip():
        detail = f"{lead.strip()}\n\n{detail}"
    return Finding(
        rule_id=rule.id,
        kind=kind or rule.kind,
        kind_display=kind_display or rule.title,
        indicator=indicator,
        summary=summary,
        detail=detail,
        evidence=tuple(evidence),
        suggestions=tuple(suggestions),
        reasons=tuple(dict.fromkeys(reasons)),
        citations=tuple(Citation(source, quote) for source, quote in rule.citations),
        concerns=concerns,
        closing=closing.strip(),
    )


def suggestion(rule: Rule, key: str, orders: Iterable[str] | None = None) -> Suggestion:
    template = next((s for s in rule.suggestions if s.key == key), None)
    if template is None:
        raise EngineError(f"rule {rule.id} has no suggestion {key!r}")
    return Suggestion(
        key=template.key,
        label=template.label,
        orders=tuple(orders) if orders is not None else template.orders,
        recommended=template.recommended,
    )


def all_suggestions(rule: Rule) -> list[Suggestion]:
    return [suggestion(rule, s.key) for s in rule.suggestions]



def complaint_evidence(condition: object) -> Evidence:
    onset = getattr(condition, "onset", None)
    return Evidence(
        label="Complaint",
        value=md(getattr(condition, "text", "")),
        date=onset.date().isoformat() if onset else None,
        reference=getattr(condition, "reference", None),
        note="onset" if onset else None,
    )



# --------------------------------------------------------------------------- evaluation


def evaluate(
    facts: PatientFacts,
    kb: KnowledgeBase,
    policy: Policy,
    *,
    disabled_rules: Iterable[str] = (),
) -> Evaluation:
    """Patient-view: the rules to one patient's facts (R0: no complaint, no findings)."""
    if not facts.complaints:
        return Evaluation(findings=(), knowledge_version=kb.version, in_scope=False)
    rules = [r for r in _active(kb, disabled_rules) if r.role != ORDER_CHECK]
    ctx = Context(facts, kb, policy)
    return Evaluation(
        findings=_run(ctx, rules),
        knowledge_version=kb.version,
        in_scope=True,
        pediatric=ctx.pediatric,
    )


def evaluate_orders(
    facts: PatientFacts,
    kb: KnowledgeBase,
    policy: Policy,
    *,
    disabled_rules: Iterable[str] = (),
) -> Evaluation:
    """Order-select and order-sign: the order checks on the drafts, plus their work-up rules.

    R0 does not gate the order checks (a low electrolyte alone can make a draft risky); it
    still gates the work-up rules, which only make sense for a patient who twitches.
    """
    active = _active(kb, disabled_rules)
    order_rules = [r for r in active if r.role == ORDER_CHECK]
    with_ids = {rid for r in order_rules for rid in r.params.get("with_rules", ())}
    rules = order_rules + ([r for r in active if r.id in with_ids] if facts.complaints else [])
    ctx = Context(facts, kb, policy)
    findings = _run(ctx, rules)
    return Evaluation(
        findings=findings,
        knowledge_version=kb.version,
        in_scope=bool(facts.complaints or findings),
        pediatric=ctx.pediatric,
    )


def _active(kb: KnowledgeBase, disabled_rules: Iterable[str]) -> list[Rule]:
    disabled = set(disabled_rules)
    return [r for r in kb.rules if r.enabled and r.id not in disabled]


def _run(ctx: Context, rules: list[Rule]) -> tuple[Finding, ...]:
    """The one evaluation loop: evaluate, suppress, add the data notes, order the cards."""
    findings: list[Finding] = []
    for rule in rules:
        spec = EVALUATORS.get(rule.evaluator)
        if spec is None:
            raise EngineError(f"rule {rule.id} names unknown evaluator {rule.evaluator!r}")
        findings.extend(spec.run(ctx, rule))
    findings = [f for f in findings if not _suppressed(ctx.kb.rule(f.rule_id), findings)]
    reports = {rule.id for rule in rules if rule.role == DATA_REPORT}
    findings = [
        f if f.rule_id in reports else _with_data_notes(f, ctx.issues, ctx.kb.texts)
        for f in findings
    ]
    order = {rule.id: i for i, rule in enumerate(ctx.kb.rules)}
    checks = {rule.id for rule in rules if rule.role == ORDER_CHECK}
    # Draft cards first: they are what the clinician is deciding on right now.
    findings.sort(key=lambda f: (-f.indicator, f.rule_id not in checks, order[f.rule_id], f.kind))
    return tuple(findings)


def _suppressed(rule: Rule, findings: list[Finding]) -> bool:
    """R1 and the like: hidden by any finding of a listed kind, or at a listed indicator."""
    for entry in rule.suppressed_by:
        if entry.startswith("indicator:"):
            level = Indicator.parse(entry.removeprefix("indicator:"))
            if any(f.indicator >= level and f.rule_id != rule.id for f in findings):
                return True
        elif any(f.kind == entry or f.kind.startswith(entry + ":") for f in findings):
            return True
    return False


def _with_data_notes(
    finding: Finding, issues: list[DataIssue], texts: Mapping[str, str]
) -> Finding:
    """Every card says which data could not be used (a skipped resource is never silent)."""
    if not issues:
        return finding
    lines = "\n".join(f"- {md(without_ids(i.message))}" for i in dict.fromkeys(issues))
    detail = f"{finding.detail}\n\n" + texts["data_notes"].format(issues=lines)
    refs = tuple(dict.fromkeys(i.reference for i in issues if i.reference))
    return Finding(**{**finding.__dict__, "detail": detail, "not_used": refs})

