"""Electrolyte evaluators: missing work-up (R2), low potassium, magnesium, calcium (R3-R5),
known hypoparathyroidism (R6)."""

from __future__ import annotations

from datetime import timedelta

from knowledge.engine.core import all_suggestions, evaluator, make_finding, suggestion
from knowledge.engine.labs import Context, Judgement, analyte_word, has_fresh, lab_evidence, members
from knowledge.engine.text import day, fmt, join_words, md
from knowledge.kb import Rule
from knowledge.model import Evidence, Finding, Indicator, LabResult, Suggestion


@evaluator("missing_labs")
def missing_labs(ctx: Context, rule: Rule) -> list[Finding]:
    """R2: K, Mg or Ca without a usable fresh result; quotes stale and unusable values."""
    if not ctx.labs_available:
        return []  # unavailable is not missing: never propose a lab we could not look for
    analytes: list[str] = rule.params["analytes"]
    missing = [a for a in analytes if not has_fresh(ctx, a)]
    if not missing:
        return []
    orders: list[str] = []
    for analyte in missing:
        orders.extend(o for o in rule.params["orders_by_analyte"][analyte] if o not in orders)
    suggestions = [suggestion(rule, "order-missing-labs", orders)]
    lookback = ctx.now - timedelta(days=ctx.policy.days("optional_workup_lookback_days"))
    for analyte, key in rule.params.get("optional_by_analyte", {}).items():
        seen = ctx.fresh.get(analyte, []) + ctx.stale.get(analyte, [])
        if not any(r.effective >= lookback for r in seen):
            suggestions.append(suggestion(rule, key))
    evidence: list[Evidence] = []
    lines: list[str] = []
    for analyte in missing:
        for key in members(analyte):
            for result in ctx.stale.get(key, [])[:1]:
                evidence.append(lab_evidence(ctx.kb.analytes[key].display, result))
                lines.append(
                    f"- {ctx.kb.analytes[key].display} {fmt(result.reported_value)} "
                    f"{result.reported_unit} on {day(result.effective)} is older than "
                    f"{ctx.policy.days('freshness_days')} days (stale: not judged)."
                )
            for unusable in ctx.facts.unusable_labs:
                if unusable.analyte == key:
                    lines.append(
                        f"- {md(unusable.text)} on {day(unusable.effective)} "
                        f"({unusable.reference or 'no id'}) could not be used: "
                        f"{md(unusable.reason)}."
                    )
    names = [analyte_word(a) for a in missing]
    values = {
        "missing": join_words(names),
        "freshness_days": ctx.policy.days("freshness_days"),
    }
    extra = ("**Older or unusable results**\n\n" + "\n".join(lines)) if lines else ""
    return [
        make_finding(
            ctx,
            rule,
            Indicator.INFO,
            values,
            evidence=evidence,
            suggestions=suggestions,
            reasons=[c.reference for c in ctx.facts.complaints if c.reference],
            extra_detail=extra,
        )
    ]



@evaluator("low_analyte")
def low_analyte(ctx: Context, rule: Rule) -> list[Finding]:
    """R3 (potassium) and R4 (magnesium): the latest fresh value below its limit."""
    if not ctx.labs_available:
        return []
    params = rule.params
    analyte = params["analyte"]
    judged = ctx.judge(analyte, params["low"], params["critical"], ctx.kb.analytes[analyte].display)
    if judged is None or not judged.low:
        return []
    return [_low_finding(ctx, rule, judged)]


def _low_finding(ctx: Context, rule: Rule, judged: Judgement, **extra: object) -> Finding:
    result = judged.result
    indicator = Indicator.CRITICAL if judged.critical else Indicator.WARNING
    # Show the lab's own value and unit; a derived value (corrected calcium) in canonical units.
    derived = judged.value != result.value
    value = fmt(judged.value) if derived else fmt(result.reported_value)
    unit = judged.unit if derived else result.reported_unit
    values = {
        "value": value,
        "unit": unit,
        "date": day(result.effective),
        "limit": fmt(_limit_in(judged, unit, result)),
        "limit_source": judged.limit_source,
        "measure": judged.label,
        "measure_title": judged.label.capitalize(),
        "calculation": judged.calculation,
        **extra,
    }
    note = rule.params.get("critical_note", "") if judged.critical else ""
    return make_finding(
        ctx,
        rule,
        indicator,
        values,
        evidence=judged.evidence,
        suggestions=_suggestions_for_low(ctx, rule, judged),
        reasons=judged.reasons,
        extra_detail=note,
    )


def _limit_in(judged: Judgement, unit: str, result: LabResult) -> float:
    """The limit shown in the unit the value is shown in (the lab's own, when unchanged)."""
    if unit == judged.unit or result.value == 0:
        return judged.limit
    return judged.limit * (result.reported_value / result.value)


def _suggestions_for_low(ctx: Context, rule: Rule, judged: Judgement) -> list[Suggestion]:
    out = []
    for template in rule.suggestions:
        orders = list(template.orders)
        if rule.evaluator == "low_calcium" and judged.analyte != "calcium_ionized":
            orders.append("lab-calcium-ionized")  # R5: only total calcium is known
        out.append(Suggestion(template.key, template.label, tuple(orders), template.recommended))
    return out


@evaluator("low_calcium")
def low_calcium(ctx: Context, rule: Rule) -> list[Finding]:
    """R5: ionized calcium if fresh, else albumin-corrected total calcium."""
    if not ctx.labs_available:
        return []
    judged = ctx.calcium()
    if judged is None or not judged.low:
        return []
    return [_low_finding(ctx, rule, judged)]


@evaluator("hypoparathyroidism")
def hypoparathyroidism(ctx: Context, rule: Rule) -> list[Finding]:
    """R6: known hypoparathyroidism; warning unless a fresh calcium is normal."""
    conditions = ctx.facts.hypoparathyroidism
    if not conditions or not ctx.labs_available:
        return []
    judged = ctx.calcium()
    names = join_words(sorted({md(c.text) for c in conditions}))
    evidence = [Evidence("Condition", md(c.text), None, c.reference) for c in conditions]
    reasons = [c.reference for c in conditions if c.reference]
    if judged is not None:
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        line = (
            f"{judged.label} {fmt(judged.value)} {judged.unit} on {day(judged.result.effective)} "
            f"({'below' if judged.low else 'within'} {judged.limit_source})."
        )
    else:
        line = f"no usable result from the last {ctx.policy.days('freshness_days')} days."
    values = {
        "conditions": names,
        "calcium_line": line,
        "value": fmt(judged.value) if judged else "",
        "unit": judged.unit if judged else "",
        "date": day(judged.result.effective) if judged else "",
        "calcium_status": (
            f"calcium is low ({fmt(judged.value)} {judged.unit}, {day(judged.result.effective)})"
            if judged and judged.low
            else "no recent calcium result, check it now"
        ),
    }
    indicator = Indicator.INFO if judged is not None and not judged.low else Indicator.WARNING
    return [
        make_finding(
            ctx,
            rule,
            indicator,
            values,
            evidence=evidence,
            suggestions=all_suggestions(rule),
            reasons=reasons,
        )
    ]

