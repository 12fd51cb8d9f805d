"""What the record says about the patient, from any resource, in one shape (§4 P1/P7, §7b P9/P10).

A `Statement` is a Condition, the visit's reason (`Encounter.reasonCode`), a chief complaint
or an exam finding recorded as an Observation: its codes, the words to read (T1), its
onset, and which rules may read it. The complaint and red-flag readers then treat every
source alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_mapping import raw
from fhir_mapping.dates import parse_fhir_datetime
from knowledge.codes import ICD10CM, LOINC, SNOMED

ICD10_WHO = "http://hl7.org/fhir/sid/icd-10"
_ICD10_SYSTEMS = {ICD10CM, ICD10_WHO, "urn:oid:2.16.840.1.113883.6.3"}
# §7b T1.6: congenital conditions (Q00-Q99) and factors influencing health status (Z00-Z99)
_TEXT_BARRED_CHAPTERS = ("Q", "Z")

CHIEF_COMPLAINT_LOINC = frozenset({"8661-1", "10154-3"})
FINDING_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
PRESENT = frozenset({"52101004", "10828004", "373066001"})  # Present, Positive, Yes
ABSENT = frozenset({"2667000", "260385009", "373067005"})  # Absent, Negative, No
_POSITIVE_INTERPRETATION = frozenset({"POS", "A"})
_NEGATIVE_INTERPRETATION = frozenset({"NEG"})
_ENCOUNTER_NOT_HELD = frozenset({"entered-in-error", "cancelled"})

Coding = tuple[str, str, str]  # (normalised system, normalised code, display)


@dataclass(frozen=True)
class Statement:
    source: str  # "condition" | "visit-reason" | "chief-complaint" | "exam"
    reference: str | None
    codings: tuple[Coding, ...]  # codes that count (an exam finding: only when affirmed)
    texts: tuple[str, ...]  # the words T1 reads
    onset: datetime | None  # None: unknown
    complaint: bool = True  # P1 reads it
    red_flags: bool = True  # P7/R9 read it
    known: bool = True  # R10 / R6 read it
    text_barred: bool = False  # a Q/Z coding: the words are not read for complaints/red flags
    display: str = ""  # the record's own words, quoted in the cards

    @property
    def label(self) -> str:
        return self.display or (self.texts[0] if self.texts else "(no text)")


def text_barred(codings: tuple[Coding, ...] | list[Coding]) -> bool:
    """True when a coding is an ICD-10(-CM) code of the Q or Z chapter (§7b T1.6)."""
    return any(
        system in _ICD10_SYSTEMS and code[:1].upper() in _TEXT_BARRED_CHAPTERS
        for system, code, _ in codings
    )


def visit_reasons(encounter: Mapping[str, Any]) -> list[Statement]:
    """§7b P9: each `Encounter.reasonCode` as a complaint statement with an unknown onset."""
    status = encounter.get("status")
    if isinstance(status, str) and status in _ENCOUNTER_NOT_HELD:
        return []
    out = []
    for reason in raw.as_list(encounter.get("reasonCode")):
        codings = tuple(raw.codings(reason))
        words = tuple(raw.texts(reason))
        if not codings and not words:
            continue
        out.append(
            Statement(
                "visit-reason",
                raw.reference_of(encounter),
                codings,
                words,
                onset=None,  # the visit date is only the latest possible onset
                known=False,
                text_barred=text_barred(codings),
                display=words[0] if words else "",
            )
        )
    return out


def effective(resource: Mapping[str, Any]) -> datetime | None:
    """effectiveDateTime, else effectivePeriod.start, else issued."""
    period = resource.get("effectivePeriod")
    return (
        parse_fhir_datetime(resource.get("effectiveDateTime"))
        or (parse_fhir_datetime(period.get("start")) if isinstance(period, dict) else None)
        or parse_fhir_datetime(resource.get("effectiveInstant"))
        or parse_fhir_datetime(resource.get("issued"))
    )


def _loincs(concept: Any) -> set[str]:
    return {code for system, code, _ in raw.codings(concept) if system == LOINC}


def _categories(resource: Mapping[str, Any]) -> set[str]:
    return {code for c in raw.as_list(resource.get("category")) for _, code, _ in raw.codings(c)}


def value_state(observation: Mapping[str, Any]) -> str:
    """"affirmed", "negative" or "unknown", from the value or else the interpretation."""
    if "valueBoolean" in observation:
        value = observation["valueBoolean"]
        return "affirmed" if value is True else "negative" if value is False else "unknown"
    concept = observation.get("valueCodeableConcept")
    if isinstance(concept, dict):
        codes = {code for system, code, _ in raw.codings(concept) if system == SNOMED}
        if codes & PRESENT:
            return "affirmed"
        if codes & ABSENT:
            return "negative"
        return "coded"  # a finding named by the value: the code was the question
    if any(k.startswith("value") for k in observation) or "dataAbsentReason" in observation:
        return "unknown"
    interpretations = {
        code
        for concept in raw.as_list(observation.get("interpretation"))
        for _, code, _ in raw.codings(concept)
    }
    if interpretations & _NEGATIVE_INTERPRETATION:
        return "negative"
    if interpretations & _POSITIVE_INTERPRETATION:
        return "affirmed"
    return "unknown"


def observation_statement(
    observation: Mapping[str, Any], now: datetime, window_days: int
) -> Statement | None:
    """§7b P10: a chief complaint or an exam finding recorded as an Observation, or None.

    Only results with a usable status, dated within `window_days` before `now`, count: a
    finding is a moment, not a state.
    """
    status = observation.get("status")
    if not isinstance(status, str) or status not in FINDING_STATUS:
        return None
    when = effective(observation)
    if when is None or not now - timedelta(days=window_days) <= when <= now + timedelta(days=1):
        return None
    ref = raw.reference_of(observation)
    notes = tuple(raw.notes(observation))
    value_string = observation.get("valueString")
    value_text = value_string if isinstance(value_string, str) and value_string.strip() else None
    value_concept = observation.get("valueCodeableConcept")
    if _loincs(observation.get("code")) & CHIEF_COMPLAINT_LOINC:
        codings = tuple(raw.codings(value_concept))
        words = tuple(raw.texts(value_concept)) + ((value_text,) if value_text else ()) + notes
        if not codings and not words:
            return None
        return Statement(
            "chief-complaint", ref, codings, words, when, known=False,
            text_barred=text_barred(codings), display=words[0] if words else "",
        )
    if "exam" not in _categories(observation):
        return None
    question = tuple(raw.codings(observation.get("code")))
    question_words = raw.texts(observation.get("code"))
    state = value_state(observation)
    if state == "affirmed":
        codings = question
    elif state == "coded":
        codings = tuple(raw.codings(value_concept))
    else:
        codings = ()
    lead = question_words[0] if question_words else ""
    if state == "coded" and not value_text:
        value_text = (raw.texts(value_concept) or [None])[0]
    words: tuple[str, ...] = ()
    if value_text:
        # the answer read with its question: "Facial droop: none" is negated (T1 answers)
        words = (f"{lead}: {value_text}" if lead else value_text,)
    elif state == "affirmed" and lead:
        words = (lead,)  # "Facial droop" answered true
    words += notes
    if not codings and not words:
        return None
    label = question_words[0] if question_words else "Exam finding"
    if state == "coded":
        label = f"{label}: {(raw.texts(value_concept) or ['(coded)'])[0]}"
    elif value_text:
        label = f"{label}: {value_text}"
    return Statement(
        "exam", ref, codings, words, when, complaint=False, known=False, display=label,
    )


def condition_statement(condition: Mapping[str, Any], onset: datetime | None) -> Statement:
    codings = tuple(raw.codings(condition.get("code")))
    words = tuple(raw.texts(condition.get("code")))
    return Statement(
        "condition",
        raw.reference_of(condition),
        codings,
        words + tuple(raw.notes(condition)),
        onset,
        text_barred=text_barred(codings),
        display=words[0] if words else "",
    )
