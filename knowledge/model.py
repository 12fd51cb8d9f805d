"""The domain model: facts about one patient go in, findings come out.

Every value here is plain, immutable and free of FHIR types, so the rule engine can be
tested with hand-made facts and the FHIR layer can change without touching the rules.
Datetimes are timezone-aware (UTC when the source gave no offset).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class DataState(enum.Enum):
    """What we know about one area of the record (conditions, labs, medications, patient).

    `EMPTY` means the patient has none; `UNAVAILABLE` means nobody could tell us. The two
    are never confused: unavailable labs do not produce "order this lab".
    """

    PRESENT = "present"
    EMPTY = "empty"
    UNAVAILABLE = "unavailable"


class Indicator(enum.IntEnum):
    """CDS Hooks card indicator, ordered by urgency."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def wire(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Indicator:
        return cls[value.upper()]


@dataclass(frozen=True)
class DataIssue:
    """A piece of the record we could not use, said plainly in the card detail."""

    area: str  # "conditions", "labs", "medications", "patient"
    message: str  # e.g. "Observation/obs-3: value is not a number"
    reference: str | None = None


@dataclass(frozen=True)
class LabResult:
    """One usable laboratory result (P2), already converted to the analyte's canonical unit."""

    analyte: str  # key of the analytes file, e.g. "potassium", "calcium_ionized"
    value: float  # canonical unit
    unit: str  # canonical unit, e.g. "mmol/L"
    reported_value: float
    reported_unit: str  # the unit as the source gave it (or as inferred)
    effective: datetime
    status: str  # final | amended | corrected | preliminary
    reference: str | None = None  # "Observation/123"
    loinc: str | None = None
    reference_low: float | None = None  # canonical unit, from Observation.referenceRange
    reference_high: float | None = None
    matched_by_name: bool = False  # P3 fallback
    unit_inferred: bool = False  # §1.2 "missing unit" policy
    display: str = ""  # the lab's own name for the test
    comparator: str | None = None  # §7b P11: "<", "<=", ">", ">=": the value is a bound
    reported_text: str = ""  # the value as the lab wrote it, with its comparator: "<2.5", "3.0"
    from_text: bool = False  # read from valueString


@dataclass(frozen=True)
class UnusableLab:
    """A result for a known analyte that failed P2: quoted, never judged."""

    analyte: str
    reason: str
    reference: str | None = None
    effective: datetime | None = None
    text: str = ""  # what the record says, e.g. "Magnesium 1.1 (no unit)"


@dataclass(frozen=True)
class ConditionFact:
    """An active, not-refuted Condition that matched a concept of the knowledge base."""

    concept: str  # "complaint", a known-condition id, "hypoparathyroidism"
    label: str  # the knowledge base's name for the concept
    text: str  # the record's own words (code.text or the first display)
    reference: str | None = None
    onset: datetime | None = None  # P8: onsetDateTime | onsetPeriod.start | recordedDate
    body_site: str | None = None


@dataclass(frozen=True)
class RedFlag:
    """A red-flag finding (R9 trigger) found in the record."""

    flag: str  # red-flag id, e.g. "facial-weakness"
    label: str
    severity: Indicator
    evidence: str  # the words or code that matched
    reference: str | None = None
    matched_by: str = "code"  # "code" | "text" | "rule"
    onset: datetime | None = None  # §7b T2: when the finding began (None: unknown)
    source: str = "condition"  # condition | visit-reason | chief-complaint | exam | rule


@dataclass(frozen=True)
class PerioralSensation:
    """Numbness or tingling whose clause names only the lips, mouth or perioral area."""

    text: str  # the record's words
    reference: str | None = None
    when: datetime | None = None


@dataclass(frozen=True)
class MedicationUse:
    """One active drug ingredient of interest, however many records mention it."""

    slug: str  # ingredient slug, e.g. "sertraline"
    ingredient: str  # display name, e.g. "sertraline"
    drug_class: str  # class id, e.g. "antidepressant"
    group: str  # "seed" (R7) or "depleting" (R8)
    text: str  # the record's own words, e.g. "Zoloft 50 mg tablet"
    start: datetime | None = None
    references: tuple[str, ...] = ()
    matched_by: str = "ingredient-code"  # ingredient-code | product-code | text


@dataclass(frozen=True)
class DraftMedication:
    """A drug of interest in a draft MedicationRequest of `context.draftOrders`."""

    reference: str  # "MedicationRequest/<id>": what a delete action names
    slug: str
    ingredient: str
    drug_class: str
    group: str  # "seed" | "depleting"
    text: str  # the draft's own words, e.g. "prednisone 20 MG Oral Tablet"
    matched_by: str = "ingredient-code"  # ingredient-code | product-code | text


@dataclass(frozen=True)
class PatientFacts:
    """Everything the rules may look at, for one patient at one evaluation time."""

    evaluated_at: datetime
    patient_id: str | None = None
    age_years: int | None = None
    complaints: tuple[ConditionFact, ...] = ()
    red_flags: tuple[RedFlag, ...] = ()
    known_conditions: tuple[ConditionFact, ...] = ()
    hypoparathyroidism: tuple[ConditionFact, ...] = ()
    labs: tuple[LabResult, ...] = ()  # every usable result, any age, any order
    unusable_labs: tuple[UnusableLab, ...] = ()
    medications: tuple[MedicationUse, ...] = ()
    issues: tuple[DataIssue, ...] = ()
    availability: dict[str, DataState] = field(default_factory=dict)
    draft_medications: tuple[DraftMedication, ...] = ()  # order-select/-sign: drafts to judge
    # numbness or tingling of the lips or mouth only (a low-calcium sign, not a red flag)
    perioral: tuple[PerioralSensation, ...] = ()

    @property
    def onset(self) -> datetime | None:
        """P8: the earliest onset among qualifying complaints."""
        onsets = [c.onset for c in self.complaints if c.onset is not None]
        return min(onsets) if onsets else None

    def state(self, area: str) -> DataState:
        return self.availability.get(area, DataState.PRESENT)


@dataclass(frozen=True)
class Evidence:
    """One line of the evidence trace: what was seen, with its value, unit and date."""

    label: str  # "Potassium"
    value: str  # "3.1 mmol/L" or the record's text
    date: str | None = None  # ISO date
    reference: str | None = None  # "Observation/123"
    note: str | None = None  # "reference range 3.5-5.1 mmol/L", "matched by name"


@dataclass(frozen=True)
class Suggestion:
    """A proposed set of orders, keys into the knowledge base's order catalogue."""

    key: str  # stable within the rule, e.g. "order-missing-labs"
    label: str
    orders: tuple[str, ...]  # order catalogue keys, e.g. ("lab-potassium",)
    recommended: bool = True
    removes: tuple[str, ...] = ()  # context resources to delete, e.g. "MedicationRequest/1"


@dataclass(frozen=True)
class Citation:
    source: str  # source id, e.g. "seed-000"
    quote: str


@dataclass(frozen=True)
class Finding:
    """What a rule concluded: becomes exactly one card."""

    rule_id: str  # "R3"
    kind: str  # card kind, e.g. "hypokalemia-workup" or "medication-side-effect:sertraline"
    kind_display: str
    indicator: Indicator
    summary: str  # < 140 characters
    detail: str  # GitHub-flavoured markdown, no raw HTML
    evidence: tuple[Evidence, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    reasons: tuple[str, ...] = ()  # references that triggered it ("Observation/1", "Condition/2")
    citations: tuple[Citation, ...] = ()
    concerns: str | None = None  # the context resource it is about, e.g. a draft order
    closing: str = ""  # markdown after the evidence: what comes last (treatment options)
    not_used: tuple[str, ...] = ()  # references of records that could not be used (data notes)


@dataclass(frozen=True)
class Evaluation:
    """The engine's answer for one patient."""

    findings: tuple[Finding, ...]
    knowledge_version: str
    in_scope: bool  # False: no qualifying complaint (R0), answer {"cards": []}
    pediatric: bool = False  # under the policy's adult age: referrals use their pediatric text
