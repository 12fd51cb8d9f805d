"""Lab judgement: the evaluation context every rule shares, and each analyte against its limit.

Results are split into fresh and stale (P4), newest first (P5); a value is judged against
the lab's own reference range, else the default limit of the policy (§1.3). Calcium is
judged once per evaluation and set of limits: ionized if fresh, else the reported corrected
calcium, else the total corrected for a paired albumin (the correction is in rules.yaml).
The words the judgement writes into cards are the shared `texts` of rules.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from knowledge.engine.fields import Params, Ref
from knowledge.engine.text import converted, day, fmt, like, md, reported
from knowledge.kb import KnowledgeBase
from knowledge.labvalue import judge_bound
from knowledge.model import DataIssue, DataState, Evidence, LabResult, PatientFacts, UnusableLab
from knowledge.policy import Policy

_STATUS_RANK = {"corrected": 3, "amended": 3, "final": 2, "preliminary": 1}


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


class LowLimits(Params):
    """The thresholds one analyte is judged against."""

    low = Ref("thresholds", required=True)
    critical = Ref("thresholds", required=True)


class CalciumLimitsParams(Params):
    ionized_low = Ref("thresholds", required=True)
    ionized_critical = Ref("thresholds", required=True)
    corrected_low = Ref("thresholds", required=True)
    corrected_critical = Ref("thresholds", required=True)


@dataclass(frozen=True)
class CalciumLimits:
    """The thresholds calcium is judged against: ionized, and corrected (or total)."""

    ionized_low: str
    ionized_critical: str
    corrected_low: str
    corrected_critical: str

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> CalciumLimits:
        return cls(
            params["ionized_low"],
            params["ionized_critical"],
            params["corrected_low"],
            params["corrected_critical"],
        )


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
        self._calcium: dict[CalciumLimits, Judgement | None] = {}
        self.unusable_labs: list[UnusableLab] = list(facts.unusable_labs)
        self._screen_bounds()

    def _screen_bounds(self) -> None:
        """§7b P11: a result given as a bound ("<4.0") that passes neither the low nor the
        critical test cannot be judged: it is unusable (said), and the analyte counts as
        missing. Albumin given as a bound cannot correct a calcium."""
        limits = _limit_names(self.kb)
        for bucket in (self.fresh, self.stale):
            for analyte, results in bucket.items():
                kept = []
                for result in results:
                    reason = self._bound_problem(result, limits.get(analyte))
                    if reason is None:
                        kept.append(result)
                    else:
                        self.unusable_labs.append(
                            UnusableLab(analyte, reason, result.reference, result.effective,
                                        result.display)
                        )
                results[:] = kept
        for bucket in (self.fresh, self.stale):
            for analyte in [a for a, results in bucket.items() if not results]:
                del bucket[analyte]

    def _bound_problem(self, result: LabResult, names: tuple[str, str] | None) -> str | None:
        if result.comparator is None:
            return None
        shown = f"{result.reported_text} {result.reported_unit}".strip()
        if names is None:
            return self.kb.texts["bound_not_usable"].format(value=md(shown))
        low = result.reference_low if result.reference_low is not None else self.policy[names[0]]
        if judge_bound(result.comparator, result.value, low, self.policy[names[1]]).judgeable:
            return None
        return self.kb.texts["bound_not_judged"].format(
            value=md(shown), limit=fmt(low), unit=result.unit
        )

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
            limit, source = result.reference_low, self.kb.texts["reference_range"]
        elif self.pediatric and not analyte_judged_by_default_in_children(result.analyte):
            return None  # §1.3: no adult default for a child's calcium; said in the detail
        else:
            limit, source = self.policy[low_name], self.kb.texts["default_limit"]
        if result.comparator is not None:
            # a bound: "<2.5" is at most 2.5 (screened as judgeable in _screen_bounds)
            bound = judge_bound(result.comparator, value, limit, self.policy[critical_name])
            low, critical = bound.low, bound.critical
        else:
            by_default = result.reference_low is None
            low = _below(value, limit, converted=_converted(result) and by_default)
            critical = _below(value, self.policy[critical_name], converted=_converted(result))
        # The value judged is the one the lab reported (not a total calcium corrected).
        corrected_label = self.kb.texts["corrected_calcium"]
        corrected = result.analyte == "calcium_total" and label == corrected_label
        direct = value == result.value and not corrected
        word = ("critically low" if critical else "low" if low else "not low") if direct else None
        shown_label = label if direct else self.kb.analytes[result.analyte].display
        return Judgement(
            analyte=result.analyte,
            label=label,
            value=value,
            unit=result.unit,
            result=result,
            limit=limit,
            limit_source=source,
            low=low,
            critical=critical,
            evidence=[
                lab_evidence(
                    shown_label[:1].upper() + shown_label[1:],
                    result,
                    judged=word,
                    limit=limit if result.reference_low is None else None,
                    limit_unit=result.unit,
                )
            ],
            reasons=tuple(r for r in (result.reference,) if r),
        )

    def calcium(self, limits: CalciumLimits) -> Judgement | None:
        """Calcium: fresh ionized wins; else total corrected for a paired albumin.

        Judged once per set of limits, so a calcium that cannot be judged is said once.
        """
        if limits not in self._calcium:
            self._calcium[limits] = self._judge_calcium(limits)
        return self._calcium[limits]

    def _judge_calcium(self, limits: CalciumLimits) -> Judgement | None:
        texts = self.kb.texts
        ionized = self.latest("calcium_ionized")
        if ionized is not None:
            judged = self._judge(
                ionized,
                ionized.value,
                limits.ionized_low,
                limits.ionized_critical,
                texts["ionized_calcium"],
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
                limits.corrected_low,
                limits.corrected_critical,
                texts["corrected_calcium"],
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
                limits.corrected_low,
                limits.corrected_critical,
                texts["total_calcium"],
            )
            if judged is not None:
                judged.calculation = texts["no_albumin"].format(
                    days=self.policy.days("albumin_pairing_days")
                )
        else:
            correction = self.kb.calcium_correction
            corrected = total.value + correction.factor * (
                correction.albumin_reference - albumin.value
            )
            judged = self._judge(
                total,
                corrected,
                limits.corrected_low,
                limits.corrected_critical,
                texts["corrected_calcium"],
            )
            if judged is not None:
                judged.evidence.append(lab_evidence(self.kb.analytes["albumin"].display, albumin))
                judged.reasons += tuple(r for r in (albumin.reference,) if r)
                judged.calculation = texts["corrected_calcium_formula"].format(
                    factor=correction.factor,
                    albumin_reference=correction.albumin_reference,
                    total=fmt(total.value),
                    albumin=fmt(albumin.value),
                    corrected=fmt(corrected),
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
        message = self.kb.texts["calcium_not_judged"].format(
            value=shown_value(result),
            unit=result.reported_unit,
            date=day(result.effective),
            adult_age=int(self.policy["adult_age_years"]),
        )
        self.issues.append(DataIssue("labs", message, result.reference))


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


def perioral_evidence(ctx: Context) -> list[Evidence]:
    """§7b T1: numbness or tingling whose clause names only the lips or mouth."""
    return [
        Evidence(
            "Perioral tingling",
            md(p.text),
            p.when.date().isoformat() if p.when else None,
            p.reference,
            "check calcium",
        )
        for p in ctx.facts.perioral
    ]


def shown_value(result: LabResult) -> str:
    """§7b P11: the value as the laboratory reported it, with its comparator ("<2.5", "3.0")."""
    return reported(result.reported_value, result.reported_text)


def _limit_names(kb: KnowledgeBase) -> dict[str, tuple[str, str]]:
    """Analyte -> (low, critical) threshold names, from the rules that judge it."""
    names: dict[str, tuple[str, str]] = {}
    for rule in kb.rules:
        params = rule.params
        if isinstance(params.get("analyte"), str) and "low" in params and "critical" in params:
            names.setdefault(params["analyte"], (params["low"], params["critical"]))
        if "ionized_low" in params and "corrected_low" in params:
            names.setdefault("calcium_ionized", (params["ionized_low"], params["ionized_critical"]))
            corrected = (params["corrected_low"], params["corrected_critical"])
            names.setdefault("calcium_total", corrected)
            names.setdefault("calcium_corrected", corrected)
    return names


def lab_evidence(
    label: str,
    result: LabResult,
    *,
    judged: str | None = None,
    limit: float | None = None,
    limit_unit: str | None = None,
    note: str | None = None,
) -> Evidence:
    """One result in clinical words: "Magnesium 1.4 mg/dL (low; lab range 1.7–2.2 mg/dL)".

    The value and its range in the laboratory's own unit, as reported. A conversion only
    when the deciding limit is in another unit (`limit` in `limit_unit`), once. `judged`:
    "low", "critically low", "not low"; `note`: anything else said of it (e.g. its age).
    """
    shown = reported(result.reported_value, result.reported_text)
    notes = [judged] if judged else []
    factor = (result.reported_value / result.value) if result.value else 1.0

    if result.reference_low is not None or result.reference_high is not None:
        low = "" if result.reference_low is None else like(result.reference_low * factor, shown)
        high = "" if result.reference_high is None else like(result.reference_high * factor, shown)
        notes.append(f"lab range {low}–{high} {result.reported_unit}")
    elif limit is not None and limit_unit:
        if limit_unit != result.reported_unit:
            value = converted(result.value, shown)
            notes.append(f"{value} {limit_unit}; default limit {fmt(limit)} {limit_unit}")
        else:
            notes.append(f"default limit {fmt(limit)} {limit_unit}")
    if result.unit_inferred:
        notes.append("unit not given by the lab")
    if result.matched_by_name:
        notes.append(f"reported as {md(result.display)}")
    if result.status == "preliminary":
        notes.append("preliminary result")
    elif result.status in ("amended", "corrected"):
        notes.append(f"{result.status} result")
    if result.from_text:
        notes.append("value given as text")
    if note:
        notes.append(note)
    return Evidence(
        label=label,
        value=f"{shown} {result.reported_unit}",
        date=result.effective.date().isoformat(),
        reference=result.reference,
        note="; ".join(notes) or None,
    )


def electrolyte_judgement(
    ctx: Context, analyte: str, limits: Mapping[str, Any], calcium: CalciumLimits | None
) -> Judgement | None:
    """The latest fresh potassium, magnesium or calcium judged as patient-view judges it."""
    if analyte == "calcium":
        return ctx.calcium(calcium) if calcium is not None else None
    named = limits.get(analyte)
    return ctx.judge(analyte, named["low"], named["critical"], analyte) if named else None


def members(analyte: str) -> tuple[str, ...]:
    """The analytes that answer for `analyte`: calcium is ionized, total or corrected."""
    return (
        ("calcium_ionized", "calcium_total", "calcium_corrected")
        if analyte == "calcium"
        else (analyte,)
    )


def has_fresh(ctx: Context, analyte: str) -> bool:
    """A fresh result of `analyte`, or of one that answers for it."""
    return any(ctx.latest(member) for member in members(analyte))


def analyte_word(analyte: str) -> str:
    """How a card names an analyte in a sentence."""
    return {"potassium": "potassium", "magnesium": "magnesium", "calcium": "calcium"}.get(
        analyte, analyte.replace("_", " ")
    )

