"""Card text: the shared sentences of rules.yaml, and record text, numbers and dates for them."""

from __future__ import annotations

import math
import re
from datetime import datetime

from marshmallow import fields

from knowledge.engine.fields import Params, Template

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md(text: object) -> str:
    """Record text made safe to place inside markdown: no raw HTML, no stray formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def fmt(value: float) -> str:
    """A lab value as a clinician writes it: 3.1, 0.7, 8.86."""
    return f"{round(value, 2):g}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(moment: datetime | None) -> str:
    """A date as a clinician writes it: "15 Nov 2026"."""
    if moment is None:
        return "an unknown date"
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def reported(value: float, text: str | None = None) -> str:
    """A value as the laboratory reported it: "3.0" stays "3.0" (a JSON number read as a
    float keeps its written decimals in repr); `text`, when the reader kept it, wins."""
    if text:
        return text
    if float(value).is_integer() and not isinstance(value, float):
        return str(int(value))
    shown = repr(float(value))
    return shown if "e" not in shown else fmt(value)


def converted(value: float, example: str) -> str:
    """A converted value with the significant digits of the reported `example`:
    1.4 mg/dL is 0.58 mmol/L, not 0.576 or 0.6."""
    digits = max(len(example.lstrip("<>=").replace(".", "").lstrip("0")), 1)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{round(value, decimals):.{decimals}f}"


def like(value: float, example: str) -> str:
    """`value` (e.g. a converted limit) with as many decimals as the reported `example`."""
    decimals = len(example.split(".", 1)[1]) if "." in example else 0
    return f"{value:.{decimals}f}"



_RECORDS = {
    "Observation": "a result",
    "Condition": "a problem-list entry",
    "MedicationRequest": "a prescription",
    "MedicationStatement": "a medication statement",
    "Medication": "a medication",
    "Encounter": "the visit",
    "Patient": "the patient record",
}
_REFERENCE = re.compile(r"\b(" + "|".join(_RECORDS) + r")/[A-Za-z0-9\-.]{1,64}")


def without_ids(text: str) -> str:
    """A message about the record with its resource ids put into words ("Observation/x:
    no value" -> "A result: no value"); the ids themselves belong in the evidence trace."""
    worded = _REFERENCE.sub(lambda m: _RECORDS[m.group(1)], text)
    starts = _REFERENCE.match(text) is not None
    return worded[:1].upper() + worded[1:] if starts else worded


def join_words(words: list[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


class SharedTexts(Params):
    """rules.yaml `texts`: sentences the shared lab judgement and every card may carry."""

    reference_range = Template(required=True)  # the limit a value was judged against
    default_limit = Template(required=True)
    ionized_calcium = Template(required=True)  # how a card names the calcium it judged
    corrected_calcium = Template(required=True)
    total_calcium = Template(required=True)
    no_albumin = Template(fills=("days",), required=True)
    corrected_calcium_formula = Template(
        fills=("factor", "albumin_reference", "total", "albumin", "corrected"), required=True
    )
    calcium_not_judged = Template(fills=("value", "unit", "date", "adult_age"), required=True)
    data_notes = Template(fills=("issues",), required=True)  # appended to a card's detail
    # a result given as a bound (§7b P11) that cannot be judged
    bound_not_judged = Template(fills=("value", "limit", "unit"), required=True)
    bound_not_usable = Template(fills=("value",), required=True)


class CalciumCorrectionSchema(Params):
    """Corrected calcium = total + factor × (albumin_reference − albumin), in mg/dL and g/dL."""

    factor = fields.Float(required=True)
    albumin_reference = fields.Float(required=True)
