"""Electrolyte evaluators: missing work-up (R2), low potassium, magnesium, calcium (R3-R5),
known hypoparathyroidism (R6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from marshmallow import fields, validate

from knowledge.engine.core import all_suggestions, evaluator, make_finding, suggestion
from knowledge.engine.fields import Params, Ref, Template
from knowledge.engine.labs import (
    CalciumLimits,
    CalciumLimitsParams,
    Context,
    Judgement,
    analyte_word,
    has_fresh,
    lab_evidence,
    members,
    perioral_evidence,
)
from knowledge.engine.text import day, fmt, join_words, md, reported
from knowledge.kb import Rule
from knowledge.model import Evidence, Finding, Indicator, LabResult, Suggestion

ELECTROLYTES = ("potassium", "magnesium", "calcium")


class MissingLabsTexts(Params):
    # Notes on the evidence line of a result that was not used: "older than 90 days".
    stale = Template(fills=("days",), required=True)
    unusable = Template(fills=("reason",), required=True)
    unusable_value = Template(required=True)  # in place of a value the record did not give


class MissingLabsParams(Params):
    analytes = fields.List(
        fields.String(validate=validate.OneOf(ELECTROLYTES)),
        required=True,
        validate=validate.Length(min=1),
    )
    # electrolyte -> the orders that measure it
    orders_by_analyte = fields.Dict(
        keys=fields.String(validate=validate.OneOf(ELECTROLYTES)),
        values=fields.List(Ref("orders"), validate=validate.Length(min=1)),
        required=True,
    )
    # analyte -> the suggestion offered when it was not measured within the look-back
    optional_by_analyte = fields.Dict(
        keys=Ref("analytes"), values=fields.String(), load_default=dict
    )
    texts = fields.Nested(MissingLabsTexts, required=True)


def _check_missing_labs(
    rule: Mapping[str, Any], params: Mapping[str, Any]
) -> Iterable[tuple[str, str]]:
    """Optional suggestions are the rule's own; every electrolyte has its orders."""
    keys = {s["key"] for s in rule["suggestions"]}
    for analyte, key in params["optional_by_analyte"].items():
        if key not in keys:
            yield (
                f"params.optional_by_analyte.{analyte}",
                f"'{key}' is not a suggestion of this rule",
            )
    for analyte in params["analytes"]:
        if analyte not in params["orders_by_analyte"]:
            yield "params.orders_by_analyte", f"'{analyte}' has no orders"


@evaluator(
    "missing_labs",
    params=MissingLabsParams,
    fills=("missing", "freshness_days"),
    indicators=("info",),
    suggestions=("order-missing-labs",),
    check=_check_missing_labs,
)
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
    texts = rule.params["texts"]
    evidence: list[Evidence] = []
    days = ctx.policy.days("freshness_days")
    for analyte in missing:
        for key in members(analyte):
            display = ctx.kb.analytes[key].display
            for result in ctx.stale.get(key, [])[:1]:
                note = texts["stale"].format(days=days)
                evidence.append(lab_evidence(display, result, note=note))
            for unusable in ctx.unusable_labs:
                if unusable.analyte == key:
                    evidence.append(
                        Evidence(
                            label=display,
                            # the record's own words, when they say more than the name
                            value=md(unusable.text)
                            if unusable.text.strip().lower() != display.lower()
                            else texts["unusable_value"],
                            date=unusable.effective.date().isoformat()
                            if unusable.effective
                            else None,
                            reference=unusable.reference,
                            note=texts["unusable"].format(reason=md(unusable.reason)),
                        )
                    )
    names = [analyte_word(a) for a in missing]
    values = {
        "missing": join_words(names),
        "freshness_days": ctx.policy.days("freshness_days"),
    }
    return [
        make_finding(
            ctx,
            rule,
            Indicator.INFO,
            values,
            evidence=evidence,
            suggestions=suggestions,
            reasons=[c.reference for c in ctx.facts.complaints if c.reference],
        )
    ]



LOW_FILLS = (
    "value", "unit", "date", "limit", "limit_source", "measure", "measure_title", "calculation"
)


class LowAnalyteParams(Params):
    analyte = fields.String(required=True, validate=validate.OneOf(("potassium", "magnesium")))
    low = Ref("thresholds", required=True)
    critical = Ref("thresholds", required=True)
    critical_note = Template(load_default="")  # added to the detail of a critical card


@evaluator(
    "low_analyte",
    params=LowAnalyteParams,
    fills=LOW_FILLS,
    indicators=("warning", "critical"),
)
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


def _low_finding(
    ctx: Context, rule: Rule, judged: Judgement, extra_orders: Iterable[str] = ()
) -> Finding:
    result = judged.result
    indicator = Indicator.CRITICAL if judged.critical else Indicator.WARNING
    # Show the lab's own value and unit; a derived value (corrected calcium) in canonical units.
    derived = judged.value != result.value
    value = fmt(judged.value) if derived else reported(result.reported_value, result.reported_text)
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
    }
    note = rule.params.get("critical_note", "") if judged.critical else ""
    return make_finding(
        ctx,
        rule,
        indicator,
        values,
        evidence=judged.evidence,
        suggestions=_suggestions_for_low(rule, extra_orders),
        reasons=judged.reasons,
        lead=note,
    )


def _limit_in(judged: Judgement, unit: str, result: LabResult) -> float:
    """The limit shown in the unit the value is shown in (the lab's own, when unchanged)."""
    if unit == judged.unit or result.value == 0:
        return judged.limit
    return judged.limit * (result.reported_value / result.value)


def _suggestions_for_low(rule: Rule, extra_orders: Iterable[str] = ()) -> list[Suggestion]:
    out = []
    for template in rule.suggestions:
        orders = (*template.orders, *extra_orders)
        out.append(Suggestion(template.key, template.label, orders, template.recommended))
    return out


class LowCalciumParams(CalciumLimitsParams):
    critical_note = Template(load_default="")
    # added to every suggestion when the calcium judged was not an ionized one
    orders_unless_ionized = fields.List(Ref("orders"), load_default=list)


@evaluator(
    "low_calcium",
    params=LowCalciumParams,
    fills=LOW_FILLS,
    indicators=("warning", "critical"),
)
def low_calcium(ctx: Context, rule: Rule) -> list[Finding]:
    """R5: ionized calcium if fresh, else albumin-corrected total calcium."""
    if not ctx.labs_available:
        return []
    judged = ctx.calcium(CalciumLimits.of(rule.params))
    if judged is None or not judged.low:
        return []
    extra = rule.params["orders_unless_ionized"] if judged.analyte != "calcium_ionized" else ()
    finding = _low_finding(ctx, rule, judged, extra)
    if ctx.facts.perioral:
        # §7b T1: numbness or tingling of the lips only is a sign of low calcium
        finding = replace(finding, evidence=(*finding.evidence, *perioral_evidence(ctx)))
    return [finding]


CALCIUM_LINE = ("measure", "value", "unit", "date", "limit_source")


class HypoparathyroidismTexts(Params):
    low = Template(fills=CALCIUM_LINE, required=True)  # {calcium_line} for a low calcium
    normal = Template(fills=CALCIUM_LINE, required=True)
    missing = Template(fills=("days",), required=True)
    status_low = Template(fills=("value", "unit", "date"), required=True)  # {calcium_status}
    status_missing = Template(required=True)


class HypoparathyroidismParams(CalciumLimitsParams):
    texts = fields.Nested(HypoparathyroidismTexts, required=True)


@evaluator(
    "hypoparathyroidism",
    params=HypoparathyroidismParams,
    fills=("conditions", "calcium_line", "value", "unit", "date", "calcium_status"),
    indicators=("info", "warning"),
)
def hypoparathyroidism(ctx: Context, rule: Rule) -> list[Finding]:
    """R6: known hypoparathyroidism; warning unless a fresh calcium is normal."""
    conditions = ctx.facts.hypoparathyroidism
    if not conditions or not ctx.labs_available:
        return []
    judged = ctx.calcium(CalciumLimits.of(rule.params))
    texts = rule.params["texts"]
    names = join_words(sorted({md(c.text) for c in conditions}))
    evidence = [Evidence("Condition", md(c.text), None, c.reference) for c in conditions]
    reasons = [c.reference for c in conditions if c.reference]
    if judged is not None:
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        shown = {
            "value": fmt(judged.value),
            "unit": judged.unit,
            "date": day(judged.result.effective),
        }
        line = texts["low" if judged.low else "normal"].format(
            measure=judged.label, limit_source=judged.limit_source, **shown
        )
    else:
        shown = {"value": "", "unit": "", "date": ""}
        line = texts["missing"].format(days=ctx.policy.days("freshness_days"))
    status = (
        texts["status_low"].format(**shown)
        if judged and judged.low
        else texts["status_missing"].format()
    )
    values = {"conditions": names, "calcium_line": line, "calcium_status": status, **shown}
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

