"""The loaded knowledge base: the YAML files of `knowledge/data`, validated and indexed.

`knowledge.loader.load_knowledge_base()` builds a `KnowledgeBase`; nothing else does.
Codes are stored normalised (see `knowledge.codes`): canonical system URIs, ICD-10-CM
without the dot and upper-cased, so look-ups are plain dictionary hits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from knowledge.textmatch import TermMatcher


@dataclass(frozen=True)
class Coding:
    system: str  # canonical URI
    code: str  # normalised (ICD-10-CM: "R253")
    display: str = ""


@dataclass(frozen=True)
class CodeMatcher:
    """A code, or a code prefix (ICD-10-CM "R131" matches R13.10 ... R13.19), in one system."""

    system: str
    code: str
    prefix: bool = False
    display: str = ""


@dataclass(frozen=True)
class CodeSet:
    """Code matchers indexed once for look-up: exact (system, code) pairs, and prefixes.

    Both sides are normalised (`knowledge.codes`): the matchers when the knowledge base is
    loaded, the codings of a resource as they are read. A hit is then a set membership
    test, or a `startswith` for the few prefix matchers of the same system.
    """

    exact: frozenset[tuple[str, str]] = frozenset()
    prefixes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, matchers: Iterable[CodeMatcher]) -> CodeSet:
        matchers = tuple(matchers)
        return cls(
            frozenset((m.system, m.code) for m in matchers if not m.prefix),
            tuple((m.system, m.code) for m in matchers if m.prefix),
        )

    def hit(self, codings: Iterable[tuple[str, str, str]]) -> bool:
        """Whether any normalised (system, code, display) coding is one of these codes."""
        for system, code, _ in codings:
            if (system, code) in self.exact:
                return True
            for prefix_system, prefix in self.prefixes:
                if system == prefix_system and code.startswith(prefix):
                    return True
        return False


@dataclass(frozen=True)
class Threshold:
    """A number the rules use, with the bounds a deployment or site may move it within."""

    name: str  # e.g. "magnesium_critical_low"
    default: float
    minimum: float
    maximum: float
    unit: str  # "mmol/L", "days", "years"
    policy: bool  # True: the clinical reference marks it as policy, not evidence
    source: str  # where the default comes from


@dataclass(frozen=True)
class UnitInference:
    """§1.2 missing-unit policy: infer `unit` for these LOINC codes when the value is in range."""

    loinc: tuple[str, ...]
    unit: str
    low: float | None = None  # inclusive; None = any value
    high: float | None = None


@dataclass(frozen=True)
class Analyte:
    key: str  # "potassium", "magnesium", "calcium_total", "calcium_ionized", "albumin", ...
    display: str
    canonical_unit: str
    loinc: dict[str, str]  # LOINC code -> long common name (all codes recognised on input)
    units: dict[str, float]  # UCUM code -> factor; canonical = reported * factor
    name_pattern: tuple[str, ...] | None  # P3 fallback terms (terms.yaml), for people to read
    name_exclude: tuple[str, ...] = ()
    inference: tuple[UnitInference, ...] = ()


@dataclass(frozen=True)
class ConditionConcept:
    """A concept matched against Conditions: complaint, red flag, known condition, hypopara."""

    key: str
    label: str
    codes: tuple[CodeMatcher, ...] = ()
    text: tuple[str, ...] = ()  # its terms (terms.yaml), for people to read; kb.terms matches
    severity: str | None = None  # red flags only: "warning" | "critical"
    citations: tuple[tuple[str, str], ...] = ()  # (source id, quote)
    code_set: CodeSet = field(init=False, repr=False, compare=False)  # `codes`, indexed

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_set", CodeSet.of(self.codes))


@dataclass(frozen=True)
class ComplaintDefinition:
    """P1: what counts as a lip or facial twitching complaint."""

    codes: tuple[CodeMatcher, ...]
    codes_needing_text: tuple[CodeMatcher, ...]  # e.g. facial tics: only with lip/face text
    movement: tuple[str, ...]  # terms (terms.yaml) for people to read; kb.terms matches
    site: tuple[str, ...]
    phrases: tuple[str, ...]  # "lip twitch*": enough on its own
    spreading_flag: str  # red flag of a complaint that spreads or sits at two body sites
    code_set: CodeSet = field(init=False, repr=False, compare=False)  # `codes`, indexed
    text_code_set: CodeSet = field(init=False, repr=False, compare=False)  # codes_needing_text

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_set", CodeSet.of(self.codes))
        object.__setattr__(self, "text_code_set", CodeSet.of(self.codes_needing_text))


@dataclass(frozen=True)
class DrugClass:
    key: str  # "antidepressant", "loop-diuretic", ...
    label: str
    group: str  # "seed" (R7) | "depleting" (R8)
    depletes: tuple[str, ...] = ()  # analyte keys, R8 only
    systemic_only: bool = False  # exclude inhaled/nasal/topical/ophthalmic forms
    citations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Ingredient:
    slug: str
    name: str
    drug_class: str  # DrugClass.key
    rxnorm: str | None  # ingredient (TTY=IN) RxCUI, None when matched by text only
    atc: str | None
    names: tuple[str, ...]  # generic name, synonyms and brand names for the text fallback


@dataclass(frozen=True)
class Product:
    """An SCD/SBD or a combination brand mapped to its ingredients."""

    rxnorm: str | None
    name: str
    ingredients: tuple[str, ...]  # ingredient slugs


@dataclass(frozen=True)
class Order:
    """An orderable the cards may propose, becomes a ServiceRequest."""

    key: str  # "lab-potassium", "referral-neurology", ...
    category: str  # "lab" | "referral" | "procedure" | "imaging"
    text: str  # code.text and the action description
    coding: Coding | None = None
    pediatric_text: str | None = None  # wording for a patient under the policy's adult age


@dataclass(frozen=True)
class SuggestionTemplate:
    key: str
    label: str
    orders: tuple[str, ...]
    recommended: bool = True


@dataclass(frozen=True)
class Rule:
    id: str  # "R1" ... "R10", "O1", "D1"
    kind: str  # card kind; per-drug cards get ":<slug>" appended
    title: str  # card-kind display
    evaluator: str  # name in knowledge.engine's evaluator registry
    params: dict[str, Any]  # loaded by the evaluator's params schema
    summary: dict[str, str]  # indicator (or "default") -> template
    detail: str  # markdown template
    citations: tuple[tuple[str, str], ...]  # (source id, verbatim seed fragment or source)
    suggestions: tuple[SuggestionTemplate, ...] = ()
    suppressed_by: tuple[str, ...] = ()  # card kinds, or "indicator:critical"
    enabled: bool = True
    about: str = ""  # the rule in plain words, for its public page
    role: str = "finding"  # "finding" | "order-check" (draft orders) | "data-report"


@dataclass(frozen=True)
class CalciumCorrection:
    """Corrected calcium = total + factor × (albumin_reference − albumin), mg/dL and g/dL."""

    factor: float
    albumin_reference: float


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    kind: str  # "seed" | "clinical" | "standard"
    note: str = ""
    reader: str = ""  # the card's name for it: "patient-education articles on lip twitching"


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    required_prefetch: tuple[str, ...]
    usage_requirements: str | None = None


@dataclass(frozen=True)
class KnowledgeBase:
    version: str
    label: str  # card source label
    topic_system: str  # source.topic.system for card kinds
    override_reasons: tuple[Coding, ...]
    analytes: dict[str, Analyte]
    unit_aliases: dict[str, str]  # lower-cased unit string -> UCUM code ("meq/l" -> "meq/L")
    thresholds: dict[str, Threshold]
    complaint: ComplaintDefinition
    red_flags: tuple[ConditionConcept, ...]
    known_conditions: tuple[ConditionConcept, ...]
    hypoparathyroidism: ConditionConcept
    drug_classes: dict[str, DrugClass]
    ingredients: dict[str, Ingredient]  # by slug
    products: tuple[Product, ...]
    route_exclusions: re.Pattern[str]  # inhal|nasal|topical|cream|ophthalmic
    orders: dict[str, Order]
    rules: tuple[Rule, ...]
    texts: dict[str, str]  # shared card sentences (rules.yaml `texts`)
    calcium_correction: CalciumCorrection
    sources: dict[str, Source]
    services: dict[str, ServiceDefinition]
    # derived indexes, built by the loader
    loinc_index: dict[str, str] = field(default_factory=dict)  # LOINC -> analyte key
    rxnorm_index: dict[str, tuple[str, ...]] = field(default_factory=dict)  # RxCUI -> slugs
    # the record's free text is read by these compiled term lists (terms.yaml, §7b T1)
    terms: TermMatcher | None = None

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)
