"""Medication evaluators: drugs that may cause twitching (R7), drugs that lower electrolytes
(R8), and draft orders at order time (O1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from marshmallow import fields, validate

from knowledge.engine.core import complaint_evidence, evaluator, make_finding
from knowledge.engine.fields import Params, Ref, Template
from knowledge.engine.labs import (
    CalciumLimits,
    CalciumLimitsParams,
    Context,
    Judgement,
    LowLimits,
    analyte_word,
    electrolyte_judgement,
    members,
)
from knowledge.engine.text import day, md, reported
from knowledge.kb import Rule
from knowledge.model import (
    Citation,
    DraftMedication,
    Evidence,
    Finding,
    Indicator,
    MedicationUse,
    Suggestion,
)

DRAFT_FILLS = (
    "drug", "drug_class", "drug_class_title", "record_text", "draft", "electrolytes", "why",
    "why_lines",
)
MEDICATION_FILLS = ("drug", "drug_class", "drug_class_title", "record_text", "start")


class SuspectMedicationTexts(Params):
    unknown_start = Template(required=True)  # {start} when the record has no start date
    no_start = Template(required=True)  # {timing} when the record has no start date
    recent = Template(fills=("days", "window"), required=True)  # within the window
    recent_no_onset = Template(fills=("days", "window"), required=True)
    after = Template(fills=("days",), required=True)  # started after the twitching began
    before = Template(fills=("days",), required=True)


class SuspectMedicationParams(Params):
    recent = Ref("thresholds", required=True)  # a drug started within it is a likely cause
    texts = fields.Nested(SuspectMedicationTexts, required=True)


@evaluator(
    "suspect_medication",
    params=SuspectMedicationParams,
    fills=(*MEDICATION_FILLS, "days_before", "timing"),
    indicators=("info", "warning"),
)
def suspect_medication(ctx: Context, rule: Rule) -> list[Finding]:
    """R7: one card per ingredient of a class that can cause twitching ("seed" classes)."""
    if not ctx.meds_available:
        return []
    return [
        _seed_medication(ctx, rule, use)
        for use in sorted(ctx.facts.medications, key=lambda u: u.slug)
        if use.group == "seed"
    ]


class DepletingMedicationTexts(Params):
    unavailable = Template(fills=("analyte",), required=True)  # lines of {electrolyte_status}
    missing = Template(fills=("analyte", "days"), required=True)
    low = Template(fills=("analyte", "value", "unit", "date"), required=True)
    normal = Template(fills=("analyte", "value", "unit", "date"), required=True)
    low_finding = Template(fills=("analyte", "value", "unit"), required=True)  # {low_finding}
    unknown_start = Template(required=True)  # {start} when the record has no start date


class DepletingMedicationParams(Params):
    # electrolyte -> the thresholds it is judged against
    limits = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("potassium", "magnesium"))),
        values=fields.Nested(LowLimits),
        required=True,
    )
    texts = fields.Nested(DepletingMedicationTexts, required=True)


@evaluator(
    "depleting_medication",
    params=DepletingMedicationParams,
    fills=(*MEDICATION_FILLS, "electrolytes", "electrolyte_status", "low_finding"),
    indicators=("info", "warning"),
)
def depleting_medication(ctx: Context, rule: Rule) -> list[Finding]:
    """R8: one card per ingredient of a class that lowers an electrolyte."""
    if not ctx.meds_available:
        return []
    return [
        _depleting_medication(ctx, rule, use)
        for use in sorted(ctx.facts.medications, key=lambda u: u.slug)
        if use.group == "depleting"
    ]


def _medication_values(ctx: Context, use: MedicationUse, unknown_start: str) -> dict[str, object]:
    drug_class = ctx.kb.drug_classes[use.drug_class]
    return {
        "drug": use.ingredient.capitalize(),
        "drug_class": drug_class.label.lower(),
        "drug_class_title": drug_class.label,
        "record_text": md(use.text),
        "start": day(use.start) if use.start else unknown_start,
    }


def _medication_evidence(use: MedicationUse) -> list[Evidence]:
    return [
        Evidence(
            label="Medication",
            value=md(use.text),
            date=use.start.date().isoformat() if use.start else None,
            reference=use.references[0] if use.references else None,
            note="started" if use.start else None,
        )
    ]


def _seed_medication(ctx: Context, rule: Rule, use: MedicationUse) -> Finding:
    texts = rule.params["texts"]
    values = _medication_values(ctx, use, texts["unknown_start"])
    onset = ctx.facts.onset
    anchor = onset or ctx.now
    indicator = Indicator.INFO
    timing = texts["no_start"].format()
    if use.start is not None:
        days_before = (anchor.date() - use.start.date()).days
        values["days_before"] = days_before
        recent = ctx.policy.days(rule.params["recent"])
        if 0 <= days_before <= recent:
            indicator = Indicator.WARNING
            which = "recent" if onset else "recent_no_onset"
            timing = texts[which].format(days=days_before, window=recent)
        elif days_before < 0:
            timing = texts["after"].format(days=-days_before)
        else:
            timing = texts["before"].format(days=days_before)
    values.setdefault("days_before", "")
    values["timing"] = timing
    evidence = _medication_evidence(use)
    if onset:
        evidence.append(Evidence("Twitching onset", day(onset)))
    return _medication_finding(ctx, rule, use, indicator, values, evidence, use.references)


def _medication_finding(
    ctx: Context,
    rule: Rule,
    use: MedicationUse,
    indicator: Indicator,
    values: dict[str, object],
    evidence: list[Evidence],
    reasons: Iterable[str],
) -> Finding:
    """R7 and R8 cards are per ingredient: the kind carries the slug (§6)."""
    return make_finding(
        ctx,
        rule,
        indicator,
        values,
        kind=f"{rule.kind}:{use.slug}",
        kind_display=f"{rule.title}: {use.ingredient}",
        evidence=evidence,
        reasons=reasons,
    )


def _depleting_medication(ctx: Context, rule: Rule, use: MedicationUse) -> Finding:
    texts = rule.params["texts"]
    values = _medication_values(ctx, use, texts["unknown_start"])
    depletes = ctx.kb.drug_classes[use.drug_class].depletes
    values["electrolytes"] = " and ".join(analyte_word(a) for a in depletes)
    evidence = _medication_evidence(use)
    reasons = list(use.references)
    lows: list[Judgement] = []
    status: list[str] = []
    for analyte in depletes:
        title = analyte.capitalize()
        if not ctx.labs_available:
            status.append(texts["unavailable"].format(analyte=title))
            continue
        judged = electrolyte_judgement(ctx, analyte, rule.params["limits"], None)
        if judged is None:
            days = ctx.policy.days("freshness_days")
            status.append(texts["missing"].format(analyte=title, days=days))
            continue
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        result = judged.result
        status.append(
            texts["low" if judged.low else "normal"].format(
                analyte=title,
                value=reported(result.reported_value, result.reported_text),
                unit=result.reported_unit,
                date=day(result.effective),
            )
        )
        if judged.low:
            lows.append(judged)
    values["electrolyte_status"] = "\n".join(status)
    if lows:
        values["low_finding"] = " and ".join(
            texts["low_finding"].format(
                analyte=j.analyte,
                value=reported(j.result.reported_value, j.result.reported_text),
                unit=j.result.reported_unit,
            )
            for j in lows
        )
    indicator = Indicator.WARNING if lows else Indicator.INFO
    return _medication_finding(ctx, rule, use, indicator, values, evidence, reasons)



class ClassReasons(Params):
    seed = Template(fills=DRAFT_FILLS, required=True)
    depleting = Template(fills=DRAFT_FILLS, required=True)


class DraftMedicationTexts(Params):
    complaint = Template(fills=("text", "onset"), required=True)  # lines of {why_lines}
    onset = Template(fills=("date",), required=True)
    no_onset = Template(required=True)
    twitching = Template(required=True)  # a reason in {why}
    seed_effect = Template(required=True)
    depleting_effect = Template(fills=("electrolytes",), required=True)
    already_twitches = Template(fills=("effect",), required=True)
    unavailable = Template(fills=("analyte",), required=True)
    no_result = Template(fills=("analyte",), required=True)
    stale = Template(fills=("analyte", "days", "value", "unit", "date"), required=True)
    low_reason = Template(fills=("analyte", "value", "date"), required=True)  # in {why}
    low = Template(fills=("analyte", "value", "date", "limit_source"), required=True)
    normal = Template(fills=("analyte", "value", "date"), required=True)


class DraftMedicationParams(Params):
    # the rules order-select and order-sign also run (R0 applies to them)
    with_rules = fields.List(Ref("rules"), load_default=list)
    # rules whose card only orders labs: it goes when the basket holds all of them
    drop_when_satisfied = fields.List(Ref("rules"), load_default=list)
    remove_label = fields.String(required=True, validate=validate.Length(min=1))
    remove_recommended = fields.Boolean(load_default=False)
    order_label = Template(fills=("electrolyte",), required=True)
    orders_by_analyte = fields.Dict(
        keys=Ref("analytes"), values=fields.List(Ref("orders")), load_default=dict
    )
    # a lab analyte in the basket stands for these too (an ionized calcium covers total)
    basket_covers = fields.Dict(
        keys=Ref("analytes"), values=fields.List(Ref("analytes")), load_default=dict
    )
    # panel LOINC code -> the analytes it measures
    panels = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^\d{1,7}-\d$", error="not a LOINC code")),
        values=fields.List(Ref("analytes")),
        load_default=dict,
    )
    class_reasons = fields.Nested(ClassReasons, required=True)
    # electrolyte -> the thresholds it is judged against; calcium by `calcium`, if given
    limits = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("potassium", "magnesium"))),
        values=fields.Nested(LowLimits),
        required=True,
    )
    calcium = fields.Nested(CalciumLimitsParams, load_default=None)
    texts = fields.Nested(DraftMedicationTexts, required=True)


@evaluator(
    "draft_medication",
    params=DraftMedicationParams,
    fills=(*DRAFT_FILLS, "class_reason"),
    indicators=("warning",),
)
def draft_medication(ctx: Context, rule: Rule) -> list[Finding]:
    """O1: one card per draft of a seed-class or electrolyte-depleting drug that matters here.

    Seed-class drugs matter when the patient has the complaint (the sources name them as
    causes of twitching); depleting drugs also when an electrolyte they lower is low.
    """
    findings = []
    for draft in ctx.facts.draft_medications:
        finding = _draft_finding(ctx, rule, draft)
        if finding is not None:
            findings.append(finding)
    return findings


def _draft_finding(ctx: Context, rule: Rule, draft: DraftMedication) -> Finding | None:
    params = rule.params
    drug_class = ctx.kb.drug_classes[draft.drug_class]
    texts = params["texts"]
    evidence = [Evidence("Draft order", md(draft.text), None, draft.reference)]
    reasons: list[str] = []
    why: list[str] = []
    lines: list[str] = []
    for complaint in ctx.facts.complaints:
        onset = (
            texts["onset"].format(date=day(complaint.onset))
            if complaint.onset
            else texts["no_onset"].format()
        )
        lines.append(texts["complaint"].format(text=md(complaint.text), onset=onset))
        evidence.append(complaint_evidence(complaint))
        reasons.extend(r for r in (complaint.reference,) if r)
    if ctx.facts.complaints:
        why.append(texts["twitching"].format())
        effect = (
            texts["seed_effect"].format()
            if draft.group == "seed"
            else texts["depleting_effect"].format(
                electrolytes=" and ".join(map(analyte_word, drug_class.depletes))
            )
        )
        lines.append(texts["already_twitches"].format(effect=effect))
    calcium = CalciumLimits.of(params["calcium"]) if params["calcium"] else None
    missing: list[str] = []
    for analyte in drug_class.depletes:
        word = analyte_word(analyte)
        if not ctx.labs_available:
            lines.append(texts["unavailable"].format(analyte=word.capitalize()))
            continue
        judged = electrolyte_judgement(ctx, analyte, params["limits"], calcium)
        if judged is None:
            missing.append(analyte)
            lines.append(_no_fresh_line(ctx, texts, analyte))
            continue
        result = judged.result
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        shown = f"{reported(result.reported_value, result.reported_text)} {result.reported_unit}"
        when = day(result.effective)
        if judged.low:
            why.append(texts["low_reason"].format(analyte=word, value=shown, date=when))
            lines.append(
                texts["low"].format(
                    analyte=word.capitalize(),
                    value=shown,
                    date=when,
                    limit_source=judged.limit_source,
                )
            )
        else:
            lines.append(texts["normal"].format(analyte=word.capitalize(), value=shown, date=when))
    if not why:
        return None  # no complaint and nothing low that this drug lowers: no card
    electrolytes = " and ".join(analyte_word(a) for a in drug_class.depletes)
    values: dict[str, object] = {
        "drug": draft.ingredient.capitalize(),
        "drug_class": drug_class.label.lower(),
        "drug_class_title": drug_class.label,
        "record_text": md(draft.text),
        "draft": draft.reference,
        "electrolytes": electrolytes,
        "why": " and ".join(why),
        "why_lines": "\n".join(lines),
    }
    values["class_reason"] = params["class_reasons"][draft.group].format_map(values).strip()
    suggestions = [
        Suggestion(
            key="remove-draft",
            label=params["remove_label"],
            orders=(),
            recommended=bool(params.get("remove_recommended", False)),
            removes=(draft.reference,),
        )
    ]
    for analyte in missing:  # unavailable labs are not missing: never ordered blind
        orders = params["orders_by_analyte"].get(analyte)
        if orders:
            label = params["order_label"].format(electrolyte=analyte_word(analyte))
            suggestions.append(Suggestion(f"order-{analyte}", label, tuple(orders)))
    finding = make_finding(
        ctx,
        rule,
        Indicator.WARNING,
        values,
        kind=f"{rule.kind}:{draft.slug}",
        kind_display=f"{rule.title}: {draft.ingredient}",
        evidence=evidence,
        suggestions=suggestions,
        reasons=reasons,
        concerns=draft.reference,
    )
    # The class's own sources, rather than every class the rule covers.
    if drug_class.citations:
        finding = replace(finding, citations=tuple(Citation(s, q) for s, q in drug_class.citations))
    return finding


def _no_fresh_line(ctx: Context, texts: Mapping[str, str], analyte: str) -> str:
    stale = [r for key in members(analyte) for r in ctx.stale.get(key, [])[:1]]
    if not stale:
        return texts["no_result"].format(analyte=analyte_word(analyte))
    last = max(stale, key=lambda r: r.effective)
    return texts["stale"].format(
        analyte=analyte_word(analyte),
        days=ctx.policy.days("freshness_days"),
        value=reported(last.reported_value, last.reported_text),
        unit=last.reported_unit,
        date=day(last.effective),
    )

