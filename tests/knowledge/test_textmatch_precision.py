"""Precision of the term lists over a whole terminology (clinical reference §7b T1, Measure).

Every ICD-10-CM description outside the barred chapters goes through the matcher; an
affirmed complaint, red flag, known condition or hypoparathyroidism whose description does
not name that finding is a false match, and there must be none.
"""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest
import yaml

from knowledge.textmatch import TermMatcher, compile_terms
from tests.precision_corpus import NAMES, barred, icd10cm, names


@pytest.fixture(scope="module")
def m() -> TermMatcher:
    text = (resources.files("knowledge") / "data" / "terms.yaml").read_text(encoding="utf-8")
    return compile_terms(yaml.safe_load(text))


@pytest.fixture(scope="module")
def matched(m: TermMatcher) -> dict[str, list[tuple[str, str]]]:
    """Category key -> (code, description) of every affirmed match in the corpus."""
    found: dict[str, list[tuple[str, str]]] = {}
    for code, description in icd10cm():
        if barred(code):
            continue
        for key, hits in m.find_all(description).items():
            if key in NAMES and any(h.affirmed for h in hits):
                found.setdefault(key, []).append((code, description))
    return found


def test_the_corpus_is_the_whole_tabular_list() -> None:
    codes = dict(icd10cm())
    assert len(codes) > 90_000
    assert codes["R25.3"] == "Fasciculation"
    assert codes["D22.0"] == "Melanocytic nevi of lip"


def test_every_category_read_from_text_has_a_naming_check(m: TermMatcher) -> None:
    reading = {k for k in m.keys if not k.startswith("analyte:") and k != "complaint-site"}
    assert reading == set(NAMES)


def test_no_false_complaint(matched: dict[str, list[tuple[str, str]]]) -> None:
    false = [(c, d) for c, d in matched.get("complaint", []) if not names("complaint", d)]
    assert false == []
    # and the matcher does find the complaints the terminology names
    assert {"G51.4", "G51.31"} <= {c for c, _ in matched["complaint"]}


def test_no_false_red_flag(matched: dict[str, list[tuple[str, str]]]) -> None:
    false = {
        key: [(c, d) for c, d in rows if not names(key, d)]
        for key, rows in matched.items()
        if key.startswith("red-flag:") or key == "spreading"
    }
    assert {k: v for k, v in false.items() if v} == {}


def test_no_false_known_condition(matched: dict[str, list[tuple[str, str]]]) -> None:
    false = {
        key: [(c, d) for c, d in rows if not names(key, d)]
        for key, rows in matched.items()
        if key.startswith("known:") or key == "hypoparathyroidism"
    }
    assert {k: v for k, v in false.items() if v} == {}


def test_the_examples_that_used_to_match_do_not(m: TermMatcher) -> None:
    corpus = dict(icd10cm())
    for code, key in [
        ("D22.0", "complaint"),  # Melanocytic nevi of lip
        ("D17.6", "complaint"),  # Benign lipomatous neoplasm of spermatic cord
        ("C84.61", "complaint"),  # Anaplastic large cell lymphoma ... head, face, and neck
        ("O09.90", "red-flag:vision-changes"),  # Supervision of high risk pregnancy
        ("D81.1", "red-flag:numbness"),  # SCID with low T- and B-cell numbers
        ("F17.220", "red-flag:chewing-trigger"),  # Nicotine dependence, chewing tobacco
        ("M26.12", "red-flag:facial-weakness"),  # Other jaw asymmetry
    ]:
        assert m.affirmed(key, [corpus[code]]) is None, (code, corpus[code])


def test_true_findings_are_still_found(matched: dict[str, list[tuple[str, str]]]) -> None:
    counts = Counter({key: len(rows) for key, rows in matched.items()})
    for key in ("red-flag:facial-weakness", "red-flag:slurred-speech", "red-flag:dysphagia",
                "red-flag:limb-weakness", "red-flag:numbness", "red-flag:vision-changes",
                "red-flag:facial-pain", "known:als", "known:parkinsons", "known:tourette",
                "known:bells-palsy", "hypoparathyroidism"):
        assert counts[key] >= 1, key
    codes = {c for rows in matched.values() for c, _ in rows}
    assert {"R29.810", "R47.81", "R13.10", "M62.81", "R20.2", "H53.2", "G50.1"} <= codes
