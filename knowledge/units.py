"""Unit handling: UCUM normalisation, conversion to canonical units, missing-unit inference."""

from __future__ import annotations

from knowledge.kb import Analyte, KnowledgeBase


def normalise_unit(raw: str | None, kb: KnowledgeBase) -> str | None:
    """Return the UCUM code for a reported unit string, or None when it is unknown.

    An exact UCUM code wins; otherwise the alias table is consulted after lower-casing
    (clinical reference §1.2: EHRs send "mEq/L" even though UCUM is case-sensitive).
    """
    if not isinstance(raw, str):  # absent, or malformed JSON (a number, a list)
        return None
    text = raw.strip()
    if not text:
        return None
    # The loader guarantees every UCUM code's lower-cased form maps back to itself, so a
    # single look-up gives the exact-match-first behaviour without scanning the codes.
    return kb.unit_aliases.get(text.lower())


def to_canonical(analyte: Analyte, value: float, unit: str) -> float | None:
    """Convert a value in `unit` (a UCUM code) to the analyte's canonical unit.

    Returns None when the analyte has no factor for that unit. The result is rounded to
    six decimals so that, e.g., 35 g/L becomes exactly 3.5 g/dL at a threshold edge.
    """
    factor = analyte.units.get(unit)
    if factor is None:
        return None
    return round(value * factor, 6)


def infer_unit(analyte: Analyte, loinc: str | None, value: float) -> str | None:
    """Infer a missing unit from the LOINC property when the value is unambiguous (§1.2 rule 2).

    Rule 1 (the unit of the Observation's own referenceRange) is the caller's business.
    """
    if loinc is None:
        return None
    code = loinc.strip()
    for row in analyte.inference:
        if code not in row.loinc:
            continue
        if row.low is not None and value < row.low:
            continue
        if row.high is not None and value > row.high:
            continue
        return row.unit
    return None
