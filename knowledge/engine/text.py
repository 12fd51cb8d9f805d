"""Card text: the shared sentences of rules.yaml, and record text, numbers and dates for them."""

from __future__ import annotations

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


def day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "an unknown date"




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


class CalciumCorrectionSchema(Params):
    """Corrected calcium = total + factor × (albumin_reference − albumin), in mg/dL and g/dL."""

    factor = fields.Float(required=True)
    albumin_reference = fields.Float(required=True)
