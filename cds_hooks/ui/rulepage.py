"""What the public page of one rule shows: the rule in plain words, the thresholds in force
for the calling site, the codes and terms it matches, every citation with its quote, and
the knowledge-base version.

Pure functions of the knowledge base and a policy, so the page and its tests need no app.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from knowledge.codes import ATC, ICD10CM, LOINC, RXNORM, SNOMED
from knowledge.kb import CodeMatcher, ConditionConcept, KnowledgeBase, Rule
from knowledge.policy import Policy

SYSTEM_LABELS = {
    LOINC: "LOINC",
    SNOMED: "SNOMED CT",
    ICD10CM: "ICD-10-CM",
    RXNORM: "RxNorm",
    ATC: "ATC",
}

# Thresholds an evaluator reads besides the ones its rule names in `params`.
_IMPLIED_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "missing_labs": ("freshness_days", "optional_workup_lookback_days"),
    "low_analyte": ("freshness_days", "adult_age_years"),
    "low_calcium": ("freshness_days", "albumin_pairing_days", "adult_age_years"),
    "hypoparathyroidism": ("freshness_days", "albumin_pairing_days"),
    "depleting_medication": ("freshness_days",),
    "draft_medication": ("freshness_days",),
    "red_flags": ("adult_age_years",),
}
# The data an evaluator reads, for the "what it matches" part of the page.
_ANALYTES_READ: dict[str, tuple[str, ...]] = {
    "low_calcium": ("calcium_ionized", "calcium_total", "albumin"),
    "hypoparathyroidism": ("calcium_ionized", "calcium_total", "albumin"),
    "draft_medication": ("potassium", "magnesium", "calcium_total", "calcium_ionized"),
}
_DRUG_GROUPS = {"suspect_medication": "seed", "depleting_medication": "depleting"}
_GROUP_WORDS = {"seed": "may cause twitching", "depleting": "lower electrolytes"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class CodeRow:
    system: str
    code: str
    display: str
    prefix: bool = False


@dataclass(frozen=True)
class MatchGroup:
    """One thing the rule looks for in the record, with the codes and words that find it."""

    title: str
    codes: tuple[CodeRow, ...] = ()
    terms: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ThresholdRow:
    name: str
    label: str
    value: float
    unit: str
    default: float
    minimum: float
    maximum: float
    policy: bool
    source: str
    changed: bool  # the site's or deployment's value differs from the knowledge base's


@dataclass(frozen=True)
class CitationRow:
    source_id: str
    source: str
    kind: str
    quote: str
    note: str = ""


@dataclass(frozen=True)
class SuggestionRow:
    label: str
    creates: tuple[str, ...]
    recommended: bool


@dataclass
class RulePage:
    rule_id: str
    title: str
    kind: str
    evaluator: str
    about: str
    enabled: bool
    version: str
    site_label: str | None
    thresholds: list[ThresholdRow] = field(default_factory=list)
    matches: list[MatchGroup] = field(default_factory=list)
    citations: list[CitationRow] = field(default_factory=list)
    suggestions: list[SuggestionRow] = field(default_factory=list)
    indicators: tuple[str, ...] = ()


def rule_page(
    kb: KnowledgeBase,
    rule_id: str,
    policy: Policy,
    *,
    disabled_rules: Iterable[str] = (),
    site_label: str | None = None,
) -> RulePage:
    """The page of `rule_id`; KeyError when the knowledge base has no such rule."""
    rule = kb.rule(rule_id)
    page = RulePage(
        rule_id=rule.id,
        title=rule.title,
        kind=rule.kind,
        evaluator=rule.evaluator,
        about=_about(rule),
        enabled=rule.enabled and rule.id not in set(disabled_rules),
        version=kb.version,
        site_label=site_label,
        indicators=tuple(k for k in ("critical", "warning", "info") if k in rule.summary),
    )
    page.thresholds = [_threshold_row(kb, policy, name) for name in _thresholds_of(kb, rule)]
    page.matches = _matches(kb, rule)
    page.citations = [_citation_row(kb, source, quote) for source, quote in rule.citations]
    page.suggestions = [
        SuggestionRow(
            label=s.label,
            creates=tuple(kb.orders[o].text for o in s.orders if o in kb.orders),
            recommended=s.recommended,
        )
        for s in rule.suggestions
    ]
    return page


def _about(rule: Rule) -> str:
    """The rule in plain words, as the knowledge base states it."""
    about = getattr(rule, "about", None) or getattr(rule, "description", None)
    return str(about).strip() if about else rule.title


def _thresholds_of(kb: KnowledgeBase, rule: Rule) -> list[str]:
    names: list[str] = []

    def add(name: Any) -> None:
        if isinstance(name, str) and name in kb.thresholds and name not in names:
            names.append(name)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        else:
            add(value)

    walk(rule.params)
    for template in (rule.detail, *rule.summary.values()):
        for name in _PLACEHOLDER.findall(template):
            add(name)
    for name in _IMPLIED_THRESHOLDS.get(rule.evaluator, ()):
        add(name)
    return names


def _threshold_row(kb: KnowledgeBase, policy: Policy, name: str) -> ThresholdRow:
    threshold = kb.thresholds[name]
    source = kb.sources.get(threshold.source)
    value = policy[name]
    return ThresholdRow(
        name=name,
        label=name.replace("_", " ").capitalize(),
        value=value,
        unit=threshold.unit,
        default=threshold.default,
        minimum=threshold.minimum,
        maximum=threshold.maximum,
        policy=threshold.policy,
        source=source.title if source else threshold.source,
        changed=value != threshold.default,
    )


def _citation_row(kb: KnowledgeBase, source_id: str, quote: str) -> CitationRow:
    source = kb.sources.get(source_id)
    return CitationRow(
        source_id=source_id,
        source=source.title if source else source_id,
        kind=source.kind if source else "",
        quote=quote,
        note=source.note if source else "",
    )


def _code_rows(matchers: Iterable[CodeMatcher]) -> tuple[CodeRow, ...]:
    return tuple(
        CodeRow(SYSTEM_LABELS.get(m.system, m.system), _shown_code(m), m.display, m.prefix)
        for m in matchers
    )


def _shown_code(matcher: CodeMatcher) -> str:
    code = matcher.code
    if matcher.system == ICD10CM and len(code) > 3 and "." not in code:
        return f"{code[:3]}.{code[3:]}"  # stored without the dot; shown as clinicians write it
    return code


def _terms(pattern: Any) -> tuple[str, ...]:
    """The words a text matcher looks for, as the knowledge base lists them."""
    if pattern is None:
        return ()
    if isinstance(pattern, list | tuple | frozenset | set):
        return tuple(str(t) for t in pattern)
    terms = getattr(pattern, "terms", None)
    if terms:
        return tuple(str(t) for t in terms)
    text = getattr(pattern, "pattern", pattern)
    return (str(text),)


def _concept_group(concept: ConditionConcept, title: str) -> MatchGroup:
    terms = _terms(getattr(concept, "text", None))
    return MatchGroup(title=title, codes=_code_rows(concept.codes), terms=terms)


def _complaint_group(kb: KnowledgeBase) -> MatchGroup:
    complaint = kb.complaint
    codes = _code_rows(complaint.codes) + tuple(
        CodeRow(r.system, r.code, f"{r.display} (only when the words name the lip or face)",
                r.prefix)
        for r in _code_rows(complaint.codes_needing_text)
    )
    terms = (
        *(f"movement: {t}" for t in _terms(getattr(complaint, "movement", None))),
        *(f"site: {t}" for t in _terms(getattr(complaint, "site", None))),
        *(f"phrase: {t}" for t in _terms(getattr(complaint, "phrases", None))),
    )
    return MatchGroup(
        title="Lip or facial twitching on the problem list (every rule needs it)",
        codes=codes,
        terms=terms,
        note="An active complaint, not refuted or entered in error.",
    )


def _analyte_group(kb: KnowledgeBase, key: str) -> MatchGroup | None:
    analyte = kb.analytes.get(key)
    if analyte is None:
        return None
    codes = tuple(CodeRow("LOINC", code, name) for code, name in analyte.loinc.items())
    units = ", ".join(analyte.units)
    terms = _terms(getattr(analyte, "name_pattern", None))
    return MatchGroup(
        title=f"{analyte.display} results",
        codes=codes,
        terms=tuple(f"name: {t}" for t in terms),
        note=f"Units understood: {units}." if units else "",
    )


def _analyte_keys(rule: Rule) -> list[str]:
    keys: list[str] = []
    analyte = rule.params.get("analyte")
    if isinstance(analyte, str):
        keys.append(analyte)
    for key in rule.params.get("analytes", ()) or ():
        keys.extend(["calcium_total", "calcium_ionized", "albumin"] if key == "calcium" else [key])
    keys.extend(_ANALYTES_READ.get(rule.evaluator, ()))
    return list(dict.fromkeys(keys))


def _drug_groups(kb: KnowledgeBase, groups: Iterable[str]) -> list[MatchGroup]:
    found = []
    for group in groups:
        for drug_class in kb.drug_classes.values():
            if drug_class.group != group:
                continue
            ingredients = [i for i in kb.ingredients.values() if i.drug_class == drug_class.key]
            codes = tuple(
                CodeRow("RxNorm", i.rxnorm, i.name) for i in ingredients if i.rxnorm
            ) + tuple(CodeRow("ATC", i.atc, i.name) for i in ingredients if i.atc)
            names = sorted({n for i in ingredients for n in (i.name, *i.names)})
            note = f"Medicines that {_GROUP_WORDS.get(group, group)}."
            if drug_class.depletes:
                lowered = ", ".join(kb.analytes[a].display.lower() if a in kb.analytes else a
                                    for a in drug_class.depletes)
                note += f" Lowers: {lowered}."
            if drug_class.systemic_only:
                note += " Inhaled, nasal, topical and eye forms do not count."
            found.append(MatchGroup(drug_class.label, codes, tuple(names), note))
    return found


def _matches(kb: KnowledgeBase, rule: Rule) -> list[MatchGroup]:
    groups: list[MatchGroup] = []
    if rule.evaluator != "data_unavailable":
        groups.append(_complaint_group(kb))
    if rule.evaluator == "red_flags":
        for flag in kb.red_flags:
            groups.append(_concept_group(flag, f"Red flag ({flag.severity}): {flag.label}"))
    elif rule.evaluator == "known_conditions":
        groups.extend(_concept_group(c, c.label) for c in kb.known_conditions)
    elif rule.evaluator == "hypoparathyroidism":
        groups.append(_concept_group(kb.hypoparathyroidism, kb.hypoparathyroidism.label))
    if rule.evaluator in _DRUG_GROUPS:
        groups.extend(_drug_groups(kb, [_DRUG_GROUPS[rule.evaluator]]))
    elif rule.evaluator == "draft_medication":
        groups.extend(_drug_groups(kb, ["seed", "depleting"]))
    for key in _analyte_keys(rule):
        group = _analyte_group(kb, key)
        if group is not None:
            groups.append(group)
    return groups
