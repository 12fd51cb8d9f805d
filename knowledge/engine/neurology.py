"""Neurology evaluators: red flags for a referral (R9) and known neurologic conditions (R10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from marshmallow import fields

from knowledge.engine.core import evaluator, make_finding, suggestion
from knowledge.engine.fields import Params, Pattern, Ref, Template
from knowledge.engine.labs import Context
from knowledge.engine.text import day, join_words, md
from knowledge.kb import Rule
from knowledge.model import Evidence, Finding, Indicator, RedFlag


class RedFlagsTexts(Params):
    persistent = Template(fills=("days", "since", "persistence"), required=True)  # evidence
    more_flag = Template(fills=("first",), required=True)  # {triggers} with two flags
    more_flags = Template(fills=("first", "count"), required=True)  # with three or more
    trigger = Template(fills=("label", "severity", "evidence"), required=True)  # {trigger_list}
    trigger_with_reference = Template(
        fills=("label", "severity", "evidence", "reference"), required=True
    )
    long_standing = Template(fills=("since",), required=True)  # §7b T2, after a trigger line


class RedFlagsParams(Params):
    persistence = Ref("thresholds", required=True)  # days after which twitching is persistent
    recent = Ref("thresholds", required=True)  # §7b T2: older findings are long-standing
    persistent_flag = Ref("red flags", required=True)  # the flag raised for it
    critical_note = Template(load_default="")  # opens the detail of a critical card
    treatments = Template(load_default="")  # what a neurologist may offer: said last
    # the MRI is suggested for these flags, or a complaint whose words match `mri_text`
    mri_flags = fields.List(Ref("red flags"), load_default=list)
    mri_text = Pattern(load_default=None)
    texts = fields.Nested(RedFlagsTexts, required=True)


@dataclass
class _Group:
    """One red flag, however many records show it."""

    label: str
    severity: Indicator
    flags: list[RedFlag] = field(default_factory=list)
    acute: bool = False
    since: datetime | None = None  # the earliest onset of a long-standing finding

    @property
    def counts_as(self) -> Indicator:
        """§7b T2: a long-standing finding makes the card warning at most."""
        return self.severity if self.acute else min(self.severity, Indicator.WARNING)


@evaluator(
    "red_flags",
    params=RedFlagsParams,
    fills=("triggers", "trigger_list"),
    indicators=("warning", "critical"),
    suggestions=("neurology-referral", "nerve-conduction-study", "mri-brain"),
)
def red_flags(ctx: Context, rule: Rule) -> list[Finding]:
    """R9: every red flag in one card, at the highest severity among the acute ones.

    §7b T2: a finding counts at full severity when its onset is unknown, or no more than
    `recent` days before the twitch began (the evaluation time when that is unknown), or
    later; an older, still-active finding is long-standing: listed with its date, and it
    makes the card warning at most.
    """
    flags = list(ctx.facts.red_flags)
    onset = ctx.facts.onset
    persistence = ctx.policy.days(rule.params["persistence"])
    texts = rule.params["texts"]
    key = rule.params["persistent_flag"]
    persistent = next((c for c in ctx.kb.red_flags if c.key == key), None)
    if onset is not None and persistent is not None:
        days = (ctx.now - onset).days
        if days > persistence and not any(f.flag == key for f in flags):
            flags.append(
                RedFlag(
                    key,
                    persistent.label,
                    Indicator.parse(persistent.severity or "warning"),
                    texts["persistent"].format(
                        days=days, since=day(onset), persistence=persistence
                    ),
                    None,
                    "rule",
                    source="rule",
                )
            )
    if not flags:
        return []
    recent_after = (onset or ctx.now) - timedelta(days=ctx.policy.days(rule.params["recent"]))
    groups: dict[str, _Group] = {}
    for flag in flags:
        group = groups.setdefault(flag.flag, _Group(flag.label, flag.severity))
        group.flags.append(flag)
        if flag.onset is None or flag.onset >= recent_after:
            group.acute = True
        elif group.since is None or flag.onset < group.since:
            group.since = flag.onset
    ordered = sorted(groups.values(), key=lambda g: (g.counts_as, g.acute), reverse=True)
    indicator = max(g.counts_as for g in ordered)
    first = ordered[0].label.lower()
    if len(ordered) == 1:
        triggers = first
    elif len(ordered) == 2:
        triggers = texts["more_flag"].format(first=first)
    else:
        triggers = texts["more_flags"].format(first=first, count=len(ordered) - 1)
    lines = []
    for group in ordered:
        shown = next((f for f in group.flags if _recent(f, recent_after)), group.flags[0])
        line = texts["trigger_with_reference" if shown.reference else "trigger"].format(
            label=group.label,
            severity=group.counts_as.wire,
            evidence=md(shown.evidence),
            reference=shown.reference,
        )
        if not group.acute and group.since is not None:
            line += f" ({texts['long_standing'].format(since=day(group.since))})"
        lines.append(line)
    suggestions = [
        suggestion(rule, "neurology-referral"),
        suggestion(rule, "nerve-conduction-study"),
    ]
    words = [c.text for c in ctx.facts.complaints] + [
        c.body_site or "" for c in ctx.facts.complaints
    ]
    mri_text = rule.params["mri_text"]
    if any(f.flag in rule.params["mri_flags"] for f in flags) or (
        mri_text is not None and any(mri_text.search(w) for w in words)
    ):
        suggestions.append(suggestion(rule, "mri-brain"))
    values = {"triggers": triggers, "trigger_list": "\n".join(lines)}
    note = rule.params["critical_note"] if indicator is Indicator.CRITICAL else ""
    # Each red-flag record, as a line of the record (its reference goes to the extension).
    evidence = []
    for group in ordered:
        for flag in group.flags:
            if _recent(flag, recent_after):
                when = group.counts_as.wire
            else:
                when = texts["long_standing"].format(since=day(flag.onset))
            evidence.append(
                Evidence(
                    flag.label,
                    md(flag.evidence),
                    flag.onset.date().isoformat() if flag.onset else None,
                    flag.reference,
                    when,
                )
            )
    return [
        make_finding(
            ctx,
            rule,
            indicator,
            values,
            evidence=evidence,
            suggestions=suggestions,
            reasons=list(dict.fromkeys(f.reference for f in flags if f.reference)),
            lead=note,
            closing=rule.params.get("treatments", ""),
        )
    ]


def _recent(flag: RedFlag, recent_after: datetime) -> bool:
    return flag.onset is None or flag.onset >= recent_after


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

