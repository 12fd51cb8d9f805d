"""Lab values as laboratories send them (§7b P11): comparators, text values, precision."""

from __future__ import annotations

import pytest

from knowledge.labvalue import (
    converted_text,
    judge_bound,
    number_text,
    parse_value_string,
    significant_digits,
)


def known(unit: str) -> bool:
    return unit.lower() in {"mmol/l", "meq/l"}


@pytest.mark.parametrize(
    ("text", "comparator", "number", "unit"),
    [
        ("3.1", None, "3.1", None),
        ("<2.5", "<", "2.5", None),
        (" <= 2.5 ", "<=", "2.5", None),
        (">=4", ">=", "4", None),
        ("> 5.0", ">", "5.0", None),
        ("3.1 mmol/L", None, "3.1", "mmol/L"),
        ("<2.5mEq/L", "<", "2.5", "mEq/L"),
        ("3.0", None, "3.0", None),
    ],
)
def test_value_strings_that_are_numbers(text, comparator, number, unit) -> None:
    value = parse_value_string(text, known)
    assert value is not None
    assert (value.comparator, value.text, value.unit, value.from_text) == (
        comparator, number, unit, True,
    )
    assert value.number == float(number)


@pytest.mark.parametrize(
    "text",
    ["3.1 L", "see comment", "hemolysed", "", "3,1", "3.", ".5", "-3.1", "3.1 mmol/L high",
     "approx 3", "<<2.5", "3.1\n4.0", "2.5-3.0"],
)
def test_value_strings_that_are_not(text) -> None:
    assert parse_value_string(text, known) is None


def test_a_value_string_of_another_type_is_not_a_value() -> None:
    assert parse_value_string(None, known) is None  # type: ignore[arg-type]
    assert parse_value_string(3.1, known) is None  # type: ignore[arg-type]


def test_numbers_keep_the_precision_reported() -> None:
    assert number_text(3.0) == "3.0"
    assert number_text(3) == "3"
    assert number_text(2.45) == "2.45"
    assert number_text(0.7) == "0.7"
    assert number_text(1e-7) == "0.0000001"
    with pytest.raises(TypeError):
        number_text(True)


def test_shown_with_the_comparator() -> None:
    assert parse_value_string("<2.5", known).shown == "<2.5"
    assert parse_value_string("3.0", known).shown == "3.0"


@pytest.mark.parametrize(
    ("text", "digits"), [("3.0", 2), ("0.58", 2), ("120", 3), ("1.40", 3), ("0.05", 1), ("0", 1)]
)
def test_significant_digits(text, digits) -> None:
    assert significant_digits(text) == digits


@pytest.mark.parametrize(
    ("value", "like", "shown"),
    [
        (0.57596, "1.4", "0.58"),  # Mg 1.4 mg/dL in mmol/L
        (2.0958, "8.4", "2.1"),
        (8.417, "2.10", "8.42"),
        (35.0, "3.5", "35"),
        (1.0, "4.0", "1.0"),
        (0.0, "3.0", "0.0"),
    ],
)
def test_converted_values_get_the_significant_digits_of_the_original(value, like, shown) -> None:
    assert converted_text(value, like) == shown


# potassium: low 3.5, critical 2.5
@pytest.mark.parametrize(
    ("comparator", "bound", "judgeable", "low", "critical"),
    [
        ("<", 2.5, True, True, True),  # "<2.5": at most 2.5 -> critical
        ("<", 2.4, True, True, True),
        ("<", 2.6, True, True, False),
        ("<", 3.5, True, True, False),  # at or below the low limit
        ("<", 3.6, False, False, False),
        ("<", 4.0, False, False, False),  # "<4.0" cannot be judged
        ("<=", 2.5, True, True, False),  # may be exactly 2.5: low, not critical
        ("<=", 2.49, True, True, True),
        ("<=", 3.5, False, False, False),  # may be exactly 3.5: normal
        ("<=", 3.49, True, True, False),
        (">", 3.5, True, False, False),  # not low
        (">=", 3.5, True, False, False),
        (">", 5.0, True, False, False),
        (">", 3.4, False, False, False),  # ">3.4" may be 3.45: cannot be judged
        (">=", 2.0, False, False, False),
    ],
)
def test_comparators_against_the_low_and_critical_limits(
    comparator, bound, judgeable, low, critical
) -> None:
    judged = judge_bound(comparator, bound, 3.5, 2.5)
    assert (judged.judgeable, judged.low, judged.critical) == (judgeable, low, critical)


def test_an_unknown_comparator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown comparator 'ad'"):
        judge_bound("ad", 2.5, 3.5, 2.5)
