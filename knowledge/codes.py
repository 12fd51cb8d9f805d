"""Code systems: canonical URIs, system and code normalisation, code matching."""

from __future__ import annotations

from functools import lru_cache

from knowledge.kb import CodeMatcher

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"

# Short names the knowledge files use in place of the full URIs.
SYSTEM_NAMES: dict[str, str] = {
    "loinc": LOINC,
    "snomed": SNOMED,
    "icd10cm": ICD10CM,
    "rxnorm": RXNORM,
    "ucum": UCUM,
    "atc": ATC,
}

# Clinical reference §0: HL7 OIDs that EHRs still send in Coding.system.
_OIDS: dict[str, str] = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
}

_KNOWN = {uri.lower(): uri for uri in SYSTEM_NAMES.values()}


def normalise_system(system: str | None) -> str | None:
    """Return the canonical URI for a Coding.system (OIDs, case, trailing slash); None stays None.

    Systems we do not know are returned stripped but otherwise untouched.
    """
    if not isinstance(system, str):  # absent, or malformed JSON (a number, a list)
        return None
    return _canonical_system(system)


@lru_cache(maxsize=1024)  # a request repeats a handful of systems thousands of times
def _canonical_system(system: str) -> str:
    stripped = system.strip()
    lowered = stripped.lower()
    if lowered in _OIDS:
        return _OIDS[lowered]
    # "http://snomed.info/sct/" is common; other systems keep a trailing slash as sent
    if lowered.rstrip("/") == SNOMED:
        return SNOMED
    return _KNOWN.get(lowered, stripped)


def normalise_code(system: str, code: str) -> str:
    """Normalise a code for comparison: ICD-10-CM loses dot and spaces and is upper-cased."""
    if normalise_system(system) == ICD10CM:
        return "".join(code.split()).replace(".", "").upper()
    return code.strip()


def matches(matcher: CodeMatcher, system: str, code: str) -> bool:
    """True when (system, code) is the matcher's code, or starts with it for a prefix matcher."""
    canonical = normalise_system(system)
    if canonical != matcher.system:
        return False
    normalised = normalise_code(canonical, code)
    if matcher.prefix:
        return normalised.startswith(matcher.code)
    return normalised == matcher.code
