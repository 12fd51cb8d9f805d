"""Code matchers indexed at load: a coding matches by set look-up, the same as one by one."""

from __future__ import annotations

import pytest

from fhir_mapping import raw
from knowledge import load_knowledge_base
from knowledge.codes import ICD10CM, SNOMED, matches
from knowledge.kb import CodeMatcher, CodeSet, ConditionConcept

MATCHERS = (
    CodeMatcher(SNOMED, "275948002"),
    CodeMatcher(ICD10CM, "R131", prefix=True),
    CodeMatcher(ICD10CM, "R253"),
)


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://snomed.info/sct/", " 275948002 ", True),
        ("urn:oid:2.16.840.1.113883.6.90", "r13.12", True),  # prefix R131
        (ICD10CM, "R13.1", True),
        (ICD10CM, "R13.2", False),
        (ICD10CM, "R25.3", True),
        (ICD10CM, "R25.30", False),  # exact, not a prefix
        (SNOMED, "R253", False),  # right code, wrong system
        ("http://example.org/local", "275948002", False),
    ],
)
def test_a_set_hit_is_what_matching_one_by_one_finds(system, code, expected):
    codings = raw.codings({"coding": [{"system": system, "code": code}]})
    by_set = CodeSet.of(MATCHERS).hit(codings)
    one_by_one = any(matches(m, s, c) for m in MATCHERS for s, c, _ in codings)
    assert by_set is one_by_one is expected


def test_no_codings_no_hit():
    assert CodeSet.of(MATCHERS).hit([]) is False
    assert CodeSet.of(()).hit(raw.codings({"coding": [{"system": SNOMED, "code": "1"}]})) is False


def test_every_concept_of_the_knowledge_base_is_indexed_once_at_load():
    kb = load_knowledge_base()
    concepts = [*kb.red_flags, *kb.known_conditions, kb.hypoparathyroidism]
    for concept in concepts:
        assert concept.code_set == CodeSet.of(concept.codes)
    assert kb.complaint.code_set == CodeSet.of(kb.complaint.codes)
    assert kb.complaint.text_code_set == CodeSet.of(kb.complaint.codes_needing_text)


def test_the_index_is_not_part_of_a_concepts_identity():
    a = ConditionConcept("k", "label", MATCHERS)
    assert a == ConditionConcept("k", "label", MATCHERS)
    assert "code_set" not in repr(a)
