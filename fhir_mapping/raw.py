"""Reading raw FHIR JSON before any validation.

Resources arrive as plain JSON objects; any field may hold any JSON type. These helpers
read the few shapes the mapping needs (arrays, objects, CodeableConcepts, notes,
OperationOutcomes) and answer an empty value for a shape they do not expect, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from knowledge.codes import normalise_code, normalise_system


def as_list(value: Any) -> list:
    """A JSON array, or an empty list for anything else."""
    return value if isinstance(value, list) else []


def as_object(value: Any) -> dict:
    """A JSON object, or an empty dict for anything else."""
    return value if isinstance(value, dict) else {}


def reference_of(resource: Mapping[str, Any]) -> str | None:
    """`"<resourceType>/<id>"`, or None when the resource has no usable id."""
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else None


def codings(concept: Any) -> list[tuple[str, str, str]]:
    """(normalised system, normalised code, display) of a CodeableConcept's codings."""
    out = []
    if isinstance(concept, dict):
        for coding in as_list(concept.get("coding")):
            if not isinstance(coding, dict):
                continue
            raw_system, code = coding.get("system"), coding.get("code")
            system = normalise_system(raw_system) if isinstance(raw_system, str) else None
            if system and isinstance(code, str):
                out.append((system, normalise_code(system, code), str(coding.get("display") or "")))
    return out


def texts(concept: Any) -> list[str]:
    """A CodeableConcept's words: its `text` first, then the displays of its codings."""
    out = []
    if isinstance(concept, dict):
        if isinstance(concept.get("text"), str):
            out.append(concept["text"])
        out.extend(d for _, _, d in codings(concept) if d)
    return out


def notes(resource: Mapping[str, Any]) -> list[str]:
    """The texts of a resource's `note` annotations."""
    return [
        n["text"]
        for n in as_list(resource.get("note"))
        if isinstance(n, dict) and isinstance(n.get("text"), str)
    ]


def finite_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (a bool, a string, an
    integer too large for a float, 1e400 read as infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def status_code(concept: Any) -> str | None:
    """The first code of a status CodeableConcept, else its lower-cased text."""
    for _, code, _ in codings(concept):
        return code
    if isinstance(concept, dict) and isinstance(concept.get("text"), str):
        return concept["text"].strip().lower()
    return None


def outcome_text(outcome: Mapping[str, Any]) -> str:
    """What an OperationOutcome says, each issue cut to 200 characters."""
    found = []
    for issue in as_list(outcome.get("issue")):
        if isinstance(issue, dict):
            detail = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            found.append(str(detail or issue.get("code") or "error")[:200])
    return "; ".join(found) or "no detail given"
