"""Lab values as laboratories send them (clinical reference §7b P11).

A value may carry a comparator ("<2.5 mmol/L": the true value is at most 2.5), may come as
text ("3.1 mmol/L" in `valueString`), and is shown with the precision the laboratory
reported ("3.0" stays "3.0"). Pure functions: no FHIR, no policy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

COMPARATORS = ("<", "<=", ">", ">=")
_NUMBER_TEXT = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*(.*?)\s*$")


@dataclass(frozen=True)
class ReportedValue:
    """A number as the laboratory wrote it, with its comparator and unit text."""

    number: float
    text: str  # the number as reported: "3.0", "2.5", "120"
    comparator: str | None = None  # "<" | "<=" | ">" | ">=" | None
    unit: str | None = None  # as written, not yet normalised
    from_text: bool = False  # read from valueString

    @property
    def shown(self) -> str:
        """The value with its comparator: "<2.5", "3.0"."""
        return f"{self.comparator or ''}{self.text}"


def number_text(value: int | float) -> str:
    """A JSON number as the laboratory sent it: 3.0 stays "3.0", 4 stays "4"."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a lab value")
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    if "e" not in text:
        return text
    return format(Decimal(text), "f")  # 1e-07 -> "0.0000001", never scientific


def parse_value_string(
    text: str, unit_known: Callable[[str], bool]
) -> ReportedValue | None:
    """A `valueString` that is exactly a number, an optional comparator and a known unit.

    `unit_known(unit_text)` says whether a unit written after the number is one the
    analyte knows (§1.2). Anything else ("3.1 L", "see comment", "hemolysed") is None.
    """
    if not isinstance(text, str):
        return None
    found = _NUMBER_TEXT.match(text)
    if found is None:
        return None
    comparator, number, unit = found.group(1), found.group(2), found.group(3)
    if unit and not unit_known(unit):
        return None
    return ReportedValue(float(number), number, comparator, unit or None, from_text=True)


def significant_digits(text: str) -> int:
    """Significant digits of a reported number: "3.0" -> 2, "0.58" -> 2, "120" -> 3."""
    digits = text.strip().lstrip("+-").replace(".", "")
    digits = digits.lstrip("0")
    return max(len(digits), 1)


def converted_text(value: float, like: str) -> str:
    """`value` (a converted number) with the significant digits of the reported `like`."""
    if value == 0 or not math.isfinite(value):
        return number_text(float(value))
    digits = significant_digits(like)
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{round(value, decimals):.{decimals}f}"


@dataclass(frozen=True)
class Bound:
    """A comparator value judged against a low and a critical limit.

    `judgeable` False: the bound says nothing about the limit ("<4.0" against a low of 3.5:
    the true value may be 3.9 or 1.0), so the result cannot be used.
    """

    judgeable: bool
    low: bool = False
    critical: bool = False


def judge_bound(comparator: str, bound: float, low_limit: float, critical_limit: float) -> Bound:
    """§7b P11: `<X` is low when X <= the low limit, `<=X` when X < it; the same test
    against the critical limit makes it critical. `>X` / `>=X` are never low: "not low"
    when X >= the low limit, else they cannot be judged."""
    if comparator == "<":
        low, critical = bound <= low_limit, bound <= critical_limit
    elif comparator == "<=":
        low, critical = bound < low_limit, bound < critical_limit
    elif comparator in (">", ">="):
        return Bound(judgeable=bound >= low_limit)
    else:
        raise ValueError(f"unknown comparator {comparator!r}")
    if not low:
        return Bound(judgeable=False)
    return Bound(judgeable=True, low=True, critical=critical)
