"""The rule engine: facts → findings, by rules R1-R10 (and D1) of the knowledge base.

Rules are data (`rules.yaml`: texts, parameters, citations, suppression); what a rule may
*do* is one of the evaluators registered here by name. Thresholds come from the `Policy`,
so a deployment or a site can move them within the knowledge base's bounds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from knowledge.kb import KnowledgeBase, Rule
from knowledge.model import (
    Citation,
    DataIssue,
    DataState,
    DraftMedication,
    Evaluation,
    Evidence,
    Finding,
    Indicator,
    LabResult,
    MedicationUse,
    PatientFacts,
    RedFlag,
    Suggestion,
)
from knowledge.policy import Policy

SUMMARY_LIMIT = 140  # CDS Hooks 2.0: summary SHALL be under 140 characters
_STATUS_RANK = {"corrected": 3, "amended": 3, "final": 2, "preliminary": 1}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


class EngineError(RuntimeError):
    """A rule names an evaluator or a template field that does not exist."""


def md(text: object) -> str:
    """Record text made safe to place inside markdown: no raw HTML, no stray formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def fmt(value: float) -> str:
    """A lab value as a clinician writes it: 3.1, 0.7, 8.86."""
    return f"{round(value, 2):g}"


def day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "an unknown date"


@dataclass
class Judgement:
    """One analyte judged against its limit: the basis of R3-R6 and R8."""

    analyte: str
    label: str  # "potassium", "ionized calcium", "corrected calcium"
    value: float  # in `unit`
    unit: str
    result: LabResult
    limit: float
    limit_source: str  # "the lab's reference range" | "the default lower limit"
    low: bool
    critical: bool
    evidence: list[Evidence] = field(default_factory=list)
    calculation: str = ""  # markdown explaining a derived value
    reasons: tuple[str, ...] = ()


class Context:
    """One evaluation: facts, policy and the lab picture every rule shares."""

    def __init__(self, facts: PatientFacts, kb: KnowledgeBase, policy: Policy):
        self.facts = facts
        self.kb = kb
        self.policy = policy
        self.now = facts.evaluated_at
        self.issues: list[DataIssue] = list(facts.issues)
        self.labs_available = facts.state("labs") is not DataState.UNAVAILABLE
        self.meds_available = facts.state("medications") is not DataState.UNAVAILABLE
        fresh_after = self.now - timedelta(days=policy.days("freshness_days"))
        self.fresh: dict[str, list[LabResult]] = {}
        self.stale: dict[str, list[LabResult]] = {}
        for result in facts.labs:
            bucket = self.fresh if result.effective >= fresh_after else self.stale
            bucket.setdefault(result.analyte, []).append(result)
        for results in (*self.fresh.values(), *self.stale.values()):
            # P5: newest first; on equal timestamps amended/corrected beat final.
            results.sort(key=lambda r: (r.effective, _STATUS_RANK.get(r.status, 0)), reverse=True)
        self.pediatric = facts.age_years is not None and facts.age_years < policy["adult_age_years"]
        self._calcium: Judgement | None | bool = False  # False: not computed yet

    def latest(self, analyte: str) -> LabResult | None:
        results = self.fresh.get(analyte)
        return results[0] if results else None

    def judge(
        self, analyte: str, low_name: str, critical_name: str, label: str
    ) -> Judgement | None:
        """The latest fresh result of `analyte` against its low and critical limits."""
        result = self.latest(analyte)
        if result is None:
            return None
        return self._judge(result, result.value, low_name, critical_name, label)

    def _judge(
        self, result: LabResult, value: float, low_name: str, critical_name: str, label: str
    ) -> Judgement | None:
        if result.reference_low is not None:
            limit, source = result.reference_low, "the lab's reference range"
        elif self.pediatric and not analyte_judged_by_default_in_children(result.analyte):
            return None  # §1.3: no adult default for a child's calcium; said in the detail
        else:
            limit, source = self.policy[low_name], "the default lower limit"
        return Judgement(
            analyte=result.analyte,
            label=label,
            value=value,
            unit=result.unit,
            result=result,
            limit=limit,
            limit_source=source,
            low=_below(value, limit, converted=_converted(result) and result.reference_low is None),
            critical=_below(value, self.policy[critical_name], converted=_converted(result)),
            evidence=[lab_evidence(label.capitalize(), result)],
            reasons=tuple(r for r in (result.reference,) if r),
        )

    def calcium(self) -> Judgement | None:
        """R5's calcium: fresh ionized wins; else total corrected for a paired albumin."""
        if self._calcium is False:
            self._calcium = self._judge_calcium()
        return self._calcium  # type: ignore[return-value]

    def _judge_calcium(self) -> Judgement | None:
        ionized = self.latest("calcium_ionized")
        if ionized is not None:
            judged = self._judge(
                ionized,
                ionized.value,
                "calcium_ionized_low",
                "calcium_ionized_critical_low",
                "ionized calcium",
            )
            if judged is None:
                self._not_assessable(ionized)
            return judged
        total = self.latest("calcium_total")
        reported = self.latest("calcium_corrected")
        if reported is not None and (total is None or reported.effective >= total.effective):
            judged = self._judge(
                reported,
                reported.value,
                "calcium_corrected_low",
                "calcium_corrected_critical_low",
                "corrected calcium",
            )
            if judged is None:
                self._not_assessable(reported)
            return judged
        if total is None:
            return None
        albumin = self._paired_albumin(total)
        if albumin is None:
            judged = self._judge(
                total,
                total.value,
                "calcium_corrected_low",
                "calcium_corrected_critical_low",
                "total calcium",
            )
            if judged is not None:
                judged.calculation = (
                    "No albumin within "
                    f"{self.policy.days('albumin_pairing_days')} days of this calcium: the "
                    "uncorrected total calcium was judged."
                )
        else:
            corrected = total.value + 0.8 * (4.0 - albumin.value)
            judged = self._judge(
                total,
                corrected,
                "calcium_corrected_low",
                "calcium_corrected_critical_low",
                "corrected calcium",
            )
            if judged is not None:
                judged.evidence.append(lab_evidence("Albumin", albumin))
                judged.reasons += tuple(r for r in (albumin.reference,) if r)
                judged.calculation = (
                    "Corrected calcium = total calcium + 0.8 × (4.0 − albumin) = "
                    f"{fmt(total.value)} + 0.8 × (4.0 − {fmt(albumin.value)}) = "
                    f"**{fmt(corrected)} mg/dL** "
                    "(formula in mg/dL and g/dL; unreliable in critical illness, kidney disease "
                    "and very low albumin — an ionized calcium is better there)."
                )
        if judged is None:
            self._not_assessable(total)
        return judged

    def _paired_albumin(self, calcium: LabResult) -> LabResult | None:
        window = timedelta(days=self.policy.days("albumin_pairing_days"))
        candidates = [
            a
            for a in self.fresh.get("albumin", []) + self.stale.get("albumin", [])
            if abs(a.effective - calcium.effective) <= window
        ]
        return min(candidates, key=lambda a: abs(a.effective - calcium.effective), default=None)

    def _not_assessable(self, result: LabResult) -> None:
        self.issues.append(
            DataIssue(
                "labs",
                f"Calcium {fmt(result.reported_value)} {result.reported_unit} on "
                f"{day(result.effective)} was not judged: the patient is under "
                f"{int(self.policy['adult_age_years'])} and the lab gave no reference range.",
                result.reference,
            )
        )


# §1.3 states each default limit in every unit, rounded: Mg < 0.70 mmol/L = < 1.70 mg/dL,
# corrected Ca < 8.5 mg/dL = < 2.12 mmol/L, ionized Ca < 1.15 mmol/L = < 4.6 mg/dL. A value
# reported exactly at the stated limit of its own unit lands a hair under the canonical limit
# once converted (1.70 mg/dL x 0.4114 = 0.6994 mmol/L) and is not low. Only conversion
# artefacts are absorbed: the largest in §1.3 is 0.2 %; 1.69 mg/dL is 0.7 % under.
_CONVERSION_TOLERANCE = 0.003


def _converted(result: LabResult) -> bool:
    """The result was reported in another unit than the canonical one its limits use."""
    return abs(result.value - result.reported_value) > 1e-9


def _below(value: float, limit: float, *, converted: bool) -> bool:
    return value < limit * (1 - _CONVERSION_TOLERANCE) if converted else value < limit


def analyte_judged_by_default_in_children(analyte: str) -> bool:
    """§1.3: without a range, adult defaults apply to a child only for K and Mg."""
    return analyte in ("potassium", "magnesium")


def lab_evidence(label: str, result: LabResult) -> Evidence:
    notes = []
    if result.reference_low is not None or result.reference_high is not None:
        low = fmt(result.reference_low) if result.reference_low is not None else ""
        high = fmt(result.reference_high) if result.reference_high is not None else ""
        notes.append(f"reference range {low}–{high} {result.unit}")
    if result.reported_unit != result.unit:
        notes.append(f"= {fmt(result.value)} {result.unit}")
    if result.unit_inferred:
        notes.append("unit inferred")
    if result.matched_by_name:
        notes.append(f"matched by name ({md(result.display)})")
    if result.status == "preliminary":
        notes.append("preliminary result")
    elif result.status in ("amended", "corrected"):
        notes.append(f"{result.status} result")
    return Evidence(
        label=label,
        value=f"{fmt(result.reported_value)} {result.reported_unit}",
        date=result.effective.date().isoformat(),
        reference=result.reference,
        note="; ".join(notes) or None,
    )


# --------------------------------------------------------------------------- evaluators

Evaluator = Callable[[Context, Rule], list[Finding]]
EVALUATORS: dict[str, Evaluator] = {}


def evaluator(name: str) -> Callable[[Evaluator], Evaluator]:
    def register(fn: Evaluator) -> Evaluator:
        EVALUATORS[name] = fn
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
    concerns: str | None = None,
) -> Finding:
    """Fill the rule's templates and build the finding (one card)."""
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


@evaluator("lifestyle")
def lifestyle(ctx: Context, rule: Rule) -> list[Finding]:
    """R1; suppression by R9, R10 and critical cards is applied afterwards (`suppressed_by`)."""
    if not (ctx.labs_available and ctx.meds_available):
        return []  # §5.1: R1 needs labs and medications to say nothing serious was seen
    complaint = ctx.facts.complaints[0]
    return (
        [
            make_finding(
                ctx,
                rule,
                Indicator.INFO,
                {},
                evidence=[complaint_evidence(c) for c in ctx.facts.complaints],
                reasons=[r for c in ctx.facts.complaints for r in (c.reference,) if r],
            )
        ]
        if complaint
        else []
    )


def complaint_evidence(condition: object) -> Evidence:
    onset = getattr(condition, "onset", None)
    return Evidence(
        label="Complaint",
        value=md(getattr(condition, "text", "")),
        date=onset.date().isoformat() if onset else None,
        reference=getattr(condition, "reference", None),
        note="onset" if onset else None,
    )


@evaluator("missing_labs")
def missing_labs(ctx: Context, rule: Rule) -> list[Finding]:
    """R2: K, Mg or Ca without a usable fresh result; quotes stale and unusable values."""
    if not ctx.labs_available:
        return []  # unavailable is not missing: never propose a lab we could not look for
    analytes: list[str] = rule.params["analytes"]
    missing = [a for a in analytes if not _has_fresh(ctx, a)]
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
        for key in _members(analyte):
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
    names = [_analyte_word(a) for a in missing]
    values = {
        "missing": _join(names),
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


def _members(analyte: str) -> tuple[str, ...]:
    return (
        ("calcium_ionized", "calcium_total", "calcium_corrected")
        if analyte == "calcium"
        else (analyte,)
    )


def _has_fresh(ctx: Context, analyte: str) -> bool:
    return any(ctx.latest(member) for member in _members(analyte))


def _analyte_word(analyte: str) -> str:
    return {"potassium": "potassium", "magnesium": "magnesium", "calcium": "calcium"}.get(
        analyte, analyte.replace("_", " ")
    )


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


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
    names = _join(sorted({md(c.text) for c in conditions}))
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
    values["electrolytes"] = " and ".join(_analyte_word(a) for a in depletes)
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


_UNILATERAL = re.compile(r"\b(left|right|unilateral|one side|one-sided)\b", re.I)


@evaluator("red_flags")
def red_flags(ctx: Context, rule: Rule) -> list[Finding]:
    """R9: every red flag in one card, at the highest severity among them."""
    flags = list(ctx.facts.red_flags)
    onset = ctx.facts.onset
    persistence = ctx.policy.days(rule.params["persistence"])
    persistent = next((c for c in ctx.kb.red_flags if c.key == "persistent"), None)
    if onset is not None and persistent is not None:
        days = (ctx.now - onset).days
        if days > persistence and not any(f.flag == "persistent" for f in flags):
            flags.append(
                RedFlag(
                    "persistent",
                    persistent.label,
                    Indicator.parse(persistent.severity or "warning"),
                    f"twitching for {days} days (since {day(onset)}), over {persistence} days",
                    None,
                    "rule",
                )
            )
    if not flags:
        return []
    flags.sort(key=lambda f: f.severity, reverse=True)
    indicator = max(f.severity for f in flags)
    first = flags[0].label.lower()
    triggers = (
        first
        if len(flags) == 1
        else f"{first} and {len(flags) - 1} more red flag" + ("s" if len(flags) > 2 else "")
    )
    trigger_list = "\n".join(
        f"- **{f.label}** ({f.severity.wire}): {md(f.evidence)}"
        + (f" — {f.reference}" if f.reference else "")
        for f in flags
    )
    suggestions = [
        suggestion(rule, "neurology-referral"),
        suggestion(rule, "nerve-conduction-study"),
    ]
    texts = [c.text for c in ctx.facts.complaints] + [
        c.body_site or "" for c in ctx.facts.complaints
    ]
    if any(f.flag in ("spreading", "facial-weakness") for f in flags) or any(
        _UNILATERAL.search(t) for t in texts
    ):
        suggestions.append(suggestion(rule, "mri-brain"))
    values = {"triggers": triggers, "trigger_list": trigger_list}
    note = rule.params.get("critical_note", "") if indicator is Indicator.CRITICAL else ""
    evidence = [
        Evidence(
            f.label, md(f.evidence), None, f.reference, f"{f.severity.wire}; by {f.matched_by}"
        )
        for f in flags
    ]
    return [
        make_finding(
            ctx,
            rule,
            indicator,
            values,
            evidence=evidence,
            suggestions=suggestions,
            reasons=[f.reference for f in flags if f.reference],
            extra_detail=note,
        )
    ]


@evaluator("known_conditions")
def known_conditions(ctx: Context, rule: Rule) -> list[Finding]:
    """R10: one info card listing the known neurologic conditions."""
    known = ctx.facts.known_conditions
    if not known:
        return []
    labels = list(dict.fromkeys(c.label for c in known))
    notes_by_key: dict[str, str] = rule.params.get("notes", {})
    notes = [
        f"- {notes_by_key[k]}" for k in dict.fromkeys(c.concept for c in known) if k in notes_by_key
    ]
    values = {"conditions": _join(labels), "condition_notes": "\n".join(notes)}
    evidence = [Evidence("Condition", md(c.text), None, c.reference) for c in known]
    return [
        make_finding(
            ctx,
            rule,
            Indicator.INFO,
            values,
            evidence=evidence,
            reasons=[c.reference for c in known if c.reference],
        )
    ]


@evaluator("data_unavailable")
def data_unavailable(ctx: Context, rule: Rule) -> list[Finding]:
    """D1: say plainly which data could not be retrieved (never read as absent)."""
    labels: dict[str, str] = rule.params["areas"]
    missing = [a for a in labels if ctx.facts.state(a) is DataState.UNAVAILABLE]
    if not missing:
        return []
    problems = [f"- {md(i.message)}" for i in ctx.facts.issues if i.area in missing]
    values = {"areas": _join([labels[a] for a in missing]), "problems": "\n".join(problems)}
    return [make_finding(ctx, rule, Indicator.INFO, values)]


# --------------------------------------------------------------------------- evaluation


def evaluate(
    facts: PatientFacts,
    kb: KnowledgeBase,
    policy: Policy,
    *,
    disabled_rules: Iterable[str] = (),
) -> Evaluation:
    """Apply the rules to one patient's facts (R0: no complaint, no findings)."""
    if not facts.complaints:
        return Evaluation(findings=(), knowledge_version=kb.version, in_scope=False)
    ctx = Context(facts, kb, policy)
    disabled = set(disabled_rules)
    findings: list[Finding] = []
    for rule in kb.rules:
        if not rule.enabled or rule.id in disabled:
            continue
        fn = EVALUATORS.get(rule.evaluator)
        if fn is None:
            raise EngineError(f"rule {rule.id} names unknown evaluator {rule.evaluator!r}")
        findings.extend(fn(ctx, rule))
    findings = [f for f in findings if not _suppressed(kb.rule(f.rule_id), findings)]
    findings = [_with_data_notes(f, ctx.issues) for f in findings]
    order = {rule.id: i for i, rule in enumerate(kb.rules)}
    findings.sort(key=lambda f: (-f.indicator, order[f.rule_id], f.kind))
    return Evaluation(findings=tuple(findings), knowledge_version=kb.version, in_scope=True)


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


def _with_data_notes(finding: Finding, issues: list[DataIssue]) -> Finding:
    """Every card says which data could not be used (a skipped resource is never silent)."""
    if not issues or finding.rule_id == "D1":
        return finding
    lines = "\n".join(f"- {md(i.message)}" for i in dict.fromkeys(issues))
    detail = f"{finding.detail}\n\n**Data not used**\n\n{lines}"
    return Finding(**{**finding.__dict__, "detail": detail})


# --------------------------------------------------------------------------- issue #4
# Order-time checks: rule O1 judges the draft orders of order-select and order-sign.

_LOW_LIMITS = {
    "potassium": ("potassium_low", "potassium_critical_low"),
    "magnesium": ("magnesium_low", "magnesium_critical_low"),
}


def electrolyte_judgement(ctx: Context, analyte: str) -> Judgement | None:
    """The latest fresh potassium, magnesium or calcium judged as patient-view judges it."""
    if analyte == "calcium":
        return ctx.calcium()
    names = _LOW_LIMITS.get(analyte)
    return ctx.judge(analyte, *names, analyte) if names else None


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
            + " and ".join(map(_analyte_word, drug_class.depletes))
            + " can make it worse"
        )
        lines.append(f"- The patient already twitches: {effect}.")
    missing: list[str] = []
    for analyte in drug_class.depletes:
        word = _analyte_word(analyte)
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
    electrolytes = " and ".join(_analyte_word(a) for a in drug_class.depletes)
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
            label = params["order_label"].format(electrolyte=_analyte_word(analyte))
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
    stale = [r for key in _members(analyte) for r in ctx.stale.get(key, [])[:1]]
    if not stale:
        return f"- No {_analyte_word(analyte)} result in the record: worth checking."
    last = max(stale, key=lambda r: r.effective)
    return (
        f"- No {_analyte_word(analyte)} result from the last {days} days; the last, "
        f"{fmt(last.reported_value)} {last.reported_unit} on {day(last.effective)}, is stale."
    )


def evaluate_orders(
    facts: PatientFacts,
    kb: KnowledgeBase,
    policy: Policy,
    *,
    disabled_rules: Iterable[str] = (),
) -> Evaluation:
    """Order-select and order-sign: the O-rules on the drafts, plus their work-up rules.

    R0 does not gate the O-rules (a low electrolyte alone can make a draft risky); it
    still gates the work-up rules, which only make sense for a patient who twitches.
    """
    disabled = set(disabled_rules)
    active = [r for r in kb.rules if r.enabled and r.id not in disabled]
    order_rules = [r for r in active if r.id.startswith("O")]
    with_ids = {rid for r in order_rules for rid in r.params.get("with_rules", ())}
    rules = order_rules + ([r for r in active if r.id in with_ids] if facts.complaints else [])
    ctx = Context(facts, kb, policy)
    findings: list[Finding] = []
    for rule in rules:
        fn = EVALUATORS.get(rule.evaluator)
        if fn is None:
            raise EngineError(f"rule {rule.id} names unknown evaluator {rule.evaluator!r}")
        findings.extend(fn(ctx, rule))
    findings = [_with_data_notes(f, ctx.issues) for f in findings]
    order = {rule.id: i for i, rule in enumerate(kb.rules)}
    # The draft cards first: they are what the clinician is deciding on right now.
    findings.sort(
        key=lambda f: (-f.indicator, not f.rule_id.startswith("O"), order[f.rule_id], f.kind)
    )
    return Evaluation(
        findings=tuple(findings),
        knowledge_version=kb.version,
        in_scope=bool(facts.complaints or findings),
    )


# --------------------------------------------------------------------------- end issue #4
