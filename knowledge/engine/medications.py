"""Medication evaluators: drugs that may cause twitching (R7), drugs that lower electrolytes
(R8), and draft orders at order time (O1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from knowledge.engine.core import complaint_evidence, evaluator, make_finding
from knowledge.engine.labs import (
    Context,
    Judgement,
    analyte_word,
    electrolyte_judgement,
    members,
)
from knowledge.engine.text import day, fmt, md
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


@evaluator("medication_class")
def medication_class(ctx: Context, rule: Rule) -> list[Finding]:
    """R7 (seed classes) and R8 (electrolyte-depleting): one card per ingredient slug."""
    if not ctx.meds_available:
        return []
    group = rule.params["group"]
    findings = []
    for use in sorted(ctx.facts.medications, key=lambda u: u.slug):
        if use.group != group:
            continue
        if group == "seed":
            findings.append(_seed_medication(ctx, rule, use))
        else:
            findings.append(_depleting_medication(ctx, rule, use))
    return findings


def _medication_values(ctx: Context, use: MedicationUse) -> dict[str, object]:
    drug_class = ctx.kb.drug_classes[use.drug_class]
    return {
        "drug": use.ingredient.capitalize(),
        "drug_class": drug_class.label.lower(),
        "drug_class_title": drug_class.label,
        "record_text": md(use.text),
        "start": day(use.start) if use.start else "on an unknown date",
    }


def _medication_evidence(use: MedicationUse) -> list[Evidence]:
    matched = {
        "ingredient-code": "RxNorm ingredient code",
        "product-code": "RxNorm product code",
        "text": "matched by name",
    }[use.matched_by]
    return [
        Evidence(
            label="Medication",
            value=md(use.text),
            date=use.start.date().isoformat() if use.start else None,
            reference=use.references[0] if use.references else None,
            note=f"started; {matched}" if use.start else matched,
        )
    ]


def _seed_medication(ctx: Context, rule: Rule, use: MedicationUse) -> Finding:
    values = _medication_values(ctx, use)
    onset = ctx.facts.onset
    anchor = onset or ctx.now
    indicator = Indicator.INFO
    timing = "The start date is not recorded, so its timing against the twitching is unknown."
    if use.start is not None:
        days_before = (anchor.date() - use.start.date()).days
        values["days_before"] = days_before
        recent = ctx.policy.days(rule.params["recent"])
        if 0 <= days_before <= recent:
            indicator = Indicator.WARNING
            timing = (
                f"It was started {days_before} days before the twitching began"
                if onset
                else f"It was started {days_before} days ago (the onset is not recorded)"
            ) + f", within the {recent}-day window in which a new drug is a likely cause."
        elif days_before < 0:
            timing = f"It was started {-days_before} days after the twitching began."
        else:
            timing = f"It was started {days_before} days before the twitching began."
    values.setdefault("days_before", "")
    values["timing"] = timing
    evidence = _medication_evidence(use)
    if onset:
        evidence.append(Evidence("Twitching onset", onset.date().isoformat()))
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
    values = _medication_values(ctx, use)
    depletes = ctx.kb.drug_classes[use.drug_class].depletes
    values["electrolytes"] = " and ".join(analyte_word(a) for a in depletes)
    evidence = _medication_evidence(use)
    reasons = list(use.references)
    lows: list[Judgement] = []
    status: list[str] = []
    for analyte in depletes:
        names = {
            "potassium": ("potassium_low", "potassium_critical_low"),
            "magnesium": ("magnesium_low", "magnesium_critical_low"),
        }.get(analyte)
        judged = ctx.judge(analyte, *names, analyte) if names and ctx.labs_available else None
        if judged is None:
            state = (
                "could not be retrieved"
                if not ctx.labs_available
                else (
                    f"has no usable result from the last {ctx.policy.days('freshness_days')} days "
                    "(see the electrolyte work-up card)"
                )
            )
            status.append(f"- {analyte.capitalize()} {state}.")
            continue
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        word = "low" if judged.low else "within range"
        status.append(
            f"- {analyte.capitalize()} {fmt(judged.result.reported_value)} "
            f"{judged.result.reported_unit} on {day(judged.result.effective)}: {word}."
        )
        if judged.low:
            lows.append(judged)
    values["electrolyte_status"] = "\n".join(status)
    if lows:
        values["low_finding"] = " and ".join(
            f"{j.analyte} is low ({fmt(j.result.reported_value)} {j.result.reported_unit})"
            for j in lows
        )
    indicator = Indicator.WARNING if lows else Indicator.INFO
    return _medication_finding(ctx, rule, use, indicator, values, evidence, reasons)



@evaluator("draft_medication")
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
    matched = {
        "ingredient-code": "RxNorm ingredient code",
        "product-code": "RxNorm product code",
        "text": "matched by name",
    }[draft.matched_by]
    evidence = [Evidence("Draft order", md(draft.text), None, draft.reference, matched)]
    reasons: list[str] = []
    why: list[str] = []
    lines: list[str] = []
    for complaint in ctx.facts.complaints:
        onset = f"onset {day(complaint.onset)}" if complaint.onset else "onset not recorded"
        lines.append(f"- Active complaint: {md(complaint.text)} ({onset}).")
        evidence.append(complaint_evidence(complaint))
        reasons.extend(r for r in (complaint.reference,) if r)
    if ctx.facts.complaints:
        why.append("lip twitching")
        effect = (
            "a drug that can cause twitching may be behind it or make it worse"
            if draft.group == "seed"
            else "a drug that lowers "
            + " and ".join(map(analyte_word, drug_class.depletes))
            + " can make it worse"
        )
        lines.append(f"- The patient already twitches: {effect}.")
    missing: list[str] = []
    for analyte in drug_class.depletes:
        word = analyte_word(analyte)
        if not ctx.labs_available:
            lines.append(f"- {word.capitalize()} could not be retrieved: its level is unknown.")
            continue
        judged = electrolyte_judgement(ctx, analyte)
        if judged is None:
            missing.append(analyte)
            lines.append(_no_fresh_line(ctx, analyte))
            continue
        result = judged.result
        evidence.extend(judged.evidence)
        reasons.extend(judged.reasons)
        shown = f"{fmt(result.reported_value)} {result.reported_unit}"
        if judged.low:
            why.append(f"low {word} ({shown}, {day(result.effective)})")
            lines.append(
                f"- {word.capitalize()} **{shown}** on {day(result.effective)} is below "
                f"{judged.limit_source}: this drug can lower it further."
            )
        else:
            lines.append(f"- {word.capitalize()} {shown} on {day(result.effective)}: within range.")
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


def _no_fresh_line(ctx: Context, analyte: str) -> str:
    days = ctx.policy.days("freshness_days")
    stale = [r for key in members(analyte) for r in ctx.stale.get(key, [])[:1]]
    if not stale:
        return f"- No {analyte_word(analyte)} result in the record: worth checking."
    last = max(stale, key=lambda r: r.effective)
    return (
        f"- No {analyte_word(analyte)} result from the last {days} days; the last, "
        f"{fmt(last.reported_value)} {last.reported_unit} on {day(last.effective)}, is stale."
    )

