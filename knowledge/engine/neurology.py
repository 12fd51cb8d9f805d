"""Neurology evaluators: red flags for a referral (R9) and known neurologic conditions (R10)."""

from __future__ import annotations

import re

from marshmallow import fields

from knowledge.engine.core import evaluator, make_finding, suggestion
from knowledge.engine.fields import Params, Ref
from knowledge.engine.labs import Context
from knowledge.engine.text import day, join_words, md
from knowledge.kb import Rule
from knowledge.model import Evidence, Finding, Indicator, RedFlag

_UNILATERAL = re.compile(r"\b(left|right|unilateral|one side|one-sided)\b", re.I)


class RedFlagsParams(Params):
    persistence = Ref("thresholds", required=True)  # days after which twitching is persistent
    critical_note = fields.String(load_default="")  # added to the detail of a critical card


@evaluator(
    "red_flags",
    params=RedFlagsParams,
    fills=("triggers", "trigger_list"),
    indicators=("warning", "critical"),
    suggestions=("neurology-referral", "nerve-conduction-study", "mri-brain"),
)
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


class KnownConditionsParams(Params):
    # known-condition id -> a sentence on what it means for the twitching
    notes = fields.Dict(keys=Ref("known conditions"), values=fields.String(), load_default=dict)


@evaluator(
    "known_conditions",
    params=KnownConditionsParams,
    fills=("conditions", "condition_notes"),
    indicators=("info",),
)
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
    values = {"conditions": join_words(labels), "condition_notes": "\n".join(notes)}
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

