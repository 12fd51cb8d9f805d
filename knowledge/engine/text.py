"""Text helpers for card templates: record text made safe for markdown, numbers, dates."""

from __future__ import annotations

import re
from datetime import datetime

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
