"""Units: alias normalisation, conversion with the reference's worked numbers, inference."""

from __future__ import annotations

import pytest

from knowledge.units import infer_unit, normalise_unit, to_canonical

# Clinical reference §1.2 alias list, plus UCUM codes as EHRs spell them.
ALIASES = [
    ("meq/L", "meq/L"), ("mEq/L", "meq/L"), ("MEQ/L", "meq/L"), ("meq/l", "meq/L"),
    ("mmol/L", "mmol/L"), ("mmol/l", "mmol/L"), ("MMOL/L", "mmol/L"),
    ("mg/dL", "mg/dL"), ("mg/dl", "mg/dL"), ("MG/DL", "mg/dL"),
    ("g/dL", "g/dL"), ("g/dl", "g/dL"), ("G/DL", "g/dL"),
    ("g/L", "g/L"), ("g/l", "g/L"),
    ("pg/mL", "pg/mL"), ("pg/ml", "pg/mL"),
    ("ng/mL", "ng/mL"), ("ng/ml", "ng/mL"),
    ("ng/L", "ng/L"), ("pmol/L", "pmol/L"), ("nmol/L", "nmol/L"),
    ("m[IU]/L", "m[IU]/L"), ("mIU/L", "m[IU]/L"), ("miu/l", "m[IU]/L"),
    ("u[IU]/mL", "u[IU]/mL"), ("uIU/mL", "u[IU]/mL"),
    ("\u00b5IU/mL", "u[IU]/mL"), ("\u03bcIU/mL", "u[IU]/mL"),  # micro sign, Greek mu
    ("U/L", "U/L"), ("u/l", "U/L"), ("IU/L", "U/L"), ("iu/l", "U/L"),
    ("ukat/L", "ukat/L"), ("\u00b5kat/L", "ukat/L"),
    ("  mEq/L ", "meq/L"),
]


@pytest.mark.parametrize(("raw", "expected"), ALIASES)
def test_normalise_unit(kb_with_test_rules, raw, expected):
    assert normalise_unit(raw, kb_with_test_rules) == expected


def test_every_alias_in_the_table(kb_with_test_rules):
    for alias, code in kb_with_test_rules.unit_aliases.items():
        assert normalise_unit(alias, kb_with_test_rules) == code
        assert normalise_unit(alias.upper(), kb_with_test_rules) == code


def test_every_analyte_unit_is_its_own_normal_form(kb_with_test_rules):
    for analyte in kb_with_test_rules.analytes.values():
        for unit in analyte.units:
            assert normalise_unit(unit, kb_with_test_rules) == unit


@pytest.mark.parametrize("raw", [None, "", "   ", "furlongs", "mg", "mIU/mL", "%"])
def test_unknown_units(kb_with_test_rules, raw):
    assert normalise_unit(raw, kb_with_test_rules) is None


@pytest.mark.parametrize(("analyte", "value", "unit", "expected", "tolerance"), [
    # worked numbers of the clinical reference §1.2/§1.3
    ("magnesium", 1.70, "mg/dL", 0.70, 0.005),
    ("magnesium", 1.22, "mg/dL", 0.50, 0.005),
    ("magnesium", 1.40, "meq/L", 0.70, 0),
    ("magnesium", 0.70, "mmol/L", 0.70, 0),
    ("calcium_total", 2.12, "mmol/L", 8.5, 0.01),
    ("calcium_total", 1.75, "mmol/L", 7.0, 0.02),
    ("calcium_total", 8.5, "mg/dL", 8.5, 0),
    ("calcium_total", 4.24, "meq/L", 8.5, 0.01),
    ("calcium_corrected", 2.12, "mmol/L", 8.5, 0.01),
    ("calcium_ionized", 4.6, "mg/dL", 1.15, 0.005),
    ("calcium_ionized", 3.2, "mg/dL", 0.80, 0.005),
    ("calcium_ionized", 2.30, "meq/L", 1.15, 0),
    ("potassium", 3.1, "meq/L", 3.1, 0),
    ("potassium", 3.1, "mmol/L", 3.1, 0),
    ("potassium", 13.69, "mg/dL", 3.5, 0.005),
    ("albumin", 35, "g/L", 3.5, 0),
    ("albumin", 2.8, "g/dL", 2.8, 0),
    ("pth", 6.9, "pmol/L", 65, 0.1),
    ("b12", 148, "pmol/L", 200, 0.6),
    ("vitamin_d", 50, "nmol/L", 20, 0.05),
    ("tsh", 2.0, "u[IU]/mL", 2.0, 0),
    ("ck", 1.0, "ukat/L", 60, 0),
])
def test_to_canonical(kb_with_test_rules, analyte, value, unit, expected, tolerance):
    converted = to_canonical(kb_with_test_rules.analytes[analyte], value, unit)
    assert converted == pytest.approx(expected, abs=tolerance)


def test_to_canonical_is_exact_at_threshold_edges(kb_with_test_rules):
    # rounding keeps 35 g/L from becoming 3.5000000000000004 g/dL
    assert to_canonical(kb_with_test_rules.analytes["albumin"], 35, "g/L") == 3.5
    assert to_canonical(kb_with_test_rules.analytes["magnesium"], 1.4, "meq/L") == 0.7


@pytest.mark.parametrize(("analyte", "unit"), [
    ("potassium", "g/dL"), ("albumin", "mmol/L"), ("calcium_ionized", "g/L"), ("tsh", "U/L"),
    ("magnesium", "mEq/L"),  # not normalised: callers normalise first
])
def test_to_canonical_refuses_foreign_units(kb_with_test_rules, analyte, unit):
    assert to_canonical(kb_with_test_rules.analytes[analyte], 1.0, unit) is None


@pytest.mark.parametrize(("analyte", "loinc", "value", "expected"), [
    ("potassium", "2823-3", 0.1, "mmol/L"),
    ("potassium", "2823-3", 40.0, "mmol/L"),
    ("potassium", "6298-4", 3.0, "mmol/L"),
    ("magnesium", "2601-3", 0.7, "mmol/L"),
    ("magnesium", "19123-9", 0.49, None),
    ("magnesium", "19123-9", 0.5, "mg/dL"),
    ("magnesium", "19123-9", 1.7, "mg/dL"),
    ("magnesium", "19123-9", 5.0, "mg/dL"),
    ("magnesium", "19123-9", 5.01, None),
    ("calcium_total", "17861-6", 3.99, None),
    ("calcium_total", "17861-6", 4.0, "mg/dL"),
    ("calcium_total", "17861-6", 15.0, "mg/dL"),
    ("calcium_total", "17861-6", 15.01, None),
    ("calcium_total", "2000-8", 0.99, None),
    ("calcium_total", "2000-8", 1.0, "mmol/L"),
    ("calcium_total", "2000-8", 4.0, "mmol/L"),
    ("calcium_total", "2000-8", 4.01, None),
    ("calcium_ionized", "1994-3", 0.39, None),
    ("calcium_ionized", "1994-3", 0.4, "mmol/L"),
    ("calcium_ionized", "1995-0", 2.0, "mmol/L"),
    ("calcium_ionized", "1995-0", 2.01, None),
    ("calcium_ionized", "17864-0", 1.1, None),  # mass-property code: no inference
    ("albumin", "1751-7", 0.99, None),
    ("albumin", "1751-7", 1.0, "g/dL"),
    ("albumin", "1751-7", 7.0, "g/dL"),
    ("albumin", "1751-7", 7.01, None),
    ("albumin", "1751-7", 9.99, None),
    ("albumin", "1751-7", 10.0, "g/L"),
    ("albumin", "1751-7", 70.0, "g/L"),
    ("albumin", "1751-7", 70.01, None),
    ("magnesium", "2823-3", 0.7, None),  # another analyte's code
    ("magnesium", None, 0.7, None),
    ("pth", "2731-8", 40.0, None),  # no inference row
])
def test_infer_unit(kb_with_test_rules, analyte, loinc, value, expected):
    assert infer_unit(kb_with_test_rules.analytes[analyte], loinc, value) == expected
