"""Code systems: OIDs, trailing slashes, ICD-10-CM dots and prefixes."""

from __future__ import annotations

import pytest

from knowledge.codes import (
    ATC,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    UCUM,
    matches,
    normalise_code,
    normalise_system,
)
from knowledge.kb import CodeMatcher


def test_canonical_uris():
    assert (LOINC, SNOMED, ICD10CM, RXNORM, UCUM, ATC) == (
        "http://loinc.org",
        "http://snomed.info/sct",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://unitsofmeasure.org",
        "http://www.whocc.no/atc",
    )


@pytest.mark.parametrize(("raw", "expected"), [
    ("urn:oid:2.16.840.1.113883.6.1", LOINC),
    ("urn:oid:2.16.840.1.113883.6.96", SNOMED),
    ("urn:oid:2.16.840.1.113883.6.90", ICD10CM),
    ("urn:oid:2.16.840.1.113883.6.88", RXNORM),
    ("URN:OID:2.16.840.1.113883.6.1", LOINC),
    ("http://snomed.info/sct/", SNOMED),
    ("http://snomed.info/sct", SNOMED),
    ("HTTP://LOINC.ORG", LOINC),
    ("http://hl7.org/fhir/sid/ICD-10-CM", ICD10CM),
    (" http://www.nlm.nih.gov/research/umls/rxnorm ", RXNORM),
    ("http://unitsofmeasure.org", UCUM),
    ("http://example.org/local-labs/", "http://example.org/local-labs/"),
    (None, None),
])
def test_normalise_system(raw, expected):
    assert normalise_system(raw) == expected


@pytest.mark.parametrize(("system", "code", "expected"), [
    (ICD10CM, "R25.3", "R253"),
    (ICD10CM, "r25.3", "R253"),
    (ICD10CM, "R253", "R253"),
    (ICD10CM, " G51.31 ", "G5131"),
    (ICD10CM, "G20.A1", "G20A1"),
    ("urn:oid:2.16.840.1.113883.6.90", "e20.810", "E20810"),
    (LOINC, " 2823-3 ", "2823-3"),
    (SNOMED, "82470000\n", "82470000"),
    (RXNORM, "312941", "312941"),
])
def test_normalise_code(system, code, expected):
    assert normalise_code(system, code) == expected


R253 = CodeMatcher(system=ICD10CM, code="R253")
G513 = CodeMatcher(system=ICD10CM, code="G513", prefix=True)
FASCICULATION = CodeMatcher(system=SNOMED, code="82470000")


@pytest.mark.parametrize(("matcher", "system", "code", "expected"), [
    (R253, ICD10CM, "R25.3", True),
    (R253, ICD10CM, "R253", True),
    (R253, "urn:oid:2.16.840.1.113883.6.90", "r25.3", True),
    (R253, ICD10CM, "R25.30", False),  # exact matcher: no prefix
    (R253, ICD10CM, "R25.2", False),
    (R253, SNOMED, "R25.3", False),
    (G513, ICD10CM, "G51.31", True),
    (G513, ICD10CM, "G51.39", True),
    (G513, ICD10CM, "G5133", True),
    (G513, ICD10CM, "G51.4", False),
    (G513, ICD10CM, "G52.3", False),
    (FASCICULATION, "http://snomed.info/sct/", "82470000", True),
    (FASCICULATION, "urn:oid:2.16.840.1.113883.6.96", "82470000", True),
    (FASCICULATION, SNOMED, "824700001", False),
    (FASCICULATION, LOINC, "82470000", False),
])
def test_matches(matcher, system, code, expected):
    assert matches(matcher, system, code) is expected
