"""The free-text matcher (clinical reference §7b T1) over the packaged term lists.

Every term list gets word-boundary, clause and negation cases; the matcher mechanics
(normalisation, clauses, pairs, windows, terminators, pseudo-negations, answers) are
tested on their own; a malformed terms file is refused with the field named.
"""

from __future__ import annotations

import copy
from importlib import resources

import pytest
import yaml

from knowledge.textmatch import (
    AFFIRMED,
    FAMILY,
    HISTORICAL,
    NEGATED,
    UNCERTAIN,
    TermMatcher,
    TermsError,
    compile_terms,
    normalise,
    split_clauses,
)

TERMS_FILE = resources.files("knowledge") / "data" / "terms.yaml"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(TERMS_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def m(doc: dict) -> TermMatcher:
    return compile_terms(doc)


def status(m: TermMatcher, key: str, text: str) -> str | None:
    """The status of the first hit of `key` in `text`, None when nothing matched."""
    hits = m.find(key, text)
    return hits[0].status if hits else None


def check(m: TermMatcher, key: str, cases: list[tuple[str, str | None]]) -> None:
    wrong = [(text, want, status(m, key, text)) for text, want in cases]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert not wrong, f"{key}: (text, wanted, got): {wrong}"


# -- normalisation and clauses -----------------------------------------------------------


def test_normalise_folds_width_case_accents_and_space() -> None:
    assert normalise("  \uff2c\uff49\uff50   TWITCHING\t ") == "lip twitching"
    assert normalise("Paresth\u00e9sie") == "paresthesie"
    assert normalise("e\u0301") == "e"  # a combining accent too
    assert normalise("STRASSE Stra\u00dfe") == "strasse strasse"


def test_clauses_split_at_semicolon_stop_bar_colon_and_line_breaks() -> None:
    text = "a one; b two. c three | d four: e five\nf six\r\ng seven"
    assert [c for c, _ in split_clauses(text)] == [
        "a one", "b two", "c three", "d four", "e five", "f six", "g seven",
    ]


def test_clauses_keep_commas_and_and_and_decimal_points() -> None:
    assert [c for c, _ in split_clauses("twitching of the lip and cheek, left")] == [
        "twitching of the lip and cheek, left"
    ]
    assert [c for c, _ in split_clauses("K 2.4 mmol/L. Twitching")] == [
        "K 2.4 mmol/L", "Twitching",
    ]
    assert split_clauses("  ;;  . ") == []


def test_clause_and_words_quote_the_record(m: TermMatcher) -> None:
    (hit,) = m.find("red-flag:facial-weakness", "Seen today.  Right   FACIAL droop noted")
    assert hit.words == "FACIAL droop"
    assert hit.clause == "Right FACIAL droop noted"
    assert hit.affirmed and hit.cue is None


def test_fullwidth_and_accented_text_matches(m: TermMatcher) -> None:
    fullwidth = "\uff4c\uff49\uff50 \uff54\uff57\uff49\uff54\uff43\uff48"
    assert status(m, "complaint", fullwidth) == AFFIRMED
    assert status(m, "red-flag:limb-weakness", "h\u00e9miparesis") == AFFIRMED
    assert status(m, "known:bells-palsy", "Bell\u2019s palsy") == AFFIRMED
    assert status(m, "known:parkinsons", "PARKINSON\u2019S DISEASE") == AFFIRMED


def test_empty_and_non_text_find_nothing(m: TermMatcher) -> None:
    assert m.find("complaint", "") == ()
    assert m.find("complaint", "   ") == ()
    assert m.find("complaint", None) == ()  # type: ignore[arg-type]
    assert m.find_all("") == {}
    assert m.affirmed("complaint", []) is None


# -- whole words, stems and pairs ----------------------------------------------------------


def test_words_are_whole_never_fragments(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("Melanocytic nevi of lip", None),  # tic inside melanocytic
        ("Diabetic neuropathy of face", None),
        ("Benign lipomatous neoplasm of spermatic cord", None),  # lip inside lipomatous
        ("Lipid disorder with facial flushing", None),
        ("Anaplastic large cell lymphoma, lymph nodes of head, face, and neck", None),
        ("Spasmodic cough, face flushed", None),  # spasm is a word, not a stem
        ("tic of the face", AFFIRMED),
        ("facial tics", AFFIRMED),
    ])
    assert status(m, "red-flag:vision-changes", "Supervision of high risk pregnancy") is None
    assert status(m, "red-flag:numbness", "low T- and B-cell numbers") is None


def test_stems_match_word_starts_only(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("fasciculations of the chin", AFFIRMED),
        ("fasciculating lower lip", AFFIRMED),
        ("myokymic discharges of the face", AFFIRMED),
        ("jerking of the mouth", AFFIRMED),
        ("twitchy cheek", AFFIRMED),
        ("eyelid twitching", None),  # "chin" is inside "twitching", not a word
        ("leg twitching", None),
    ])


def test_pair_needs_both_parts_in_one_clause_close_together(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("twitching of the left lower lip", AFFIRMED),  # three words between
        ("twitching of upper left lower lip", AFFIRMED),  # four between
        ("twitching of the upper left lower lip", None),  # five between
        ("lip has been twitching", AFFIRMED),  # site first
        ("lip swelling; twitching of eyelid", None),  # two clauses
        ("lip swelling. Eyelid twitching", None),
        ("twitching of the lip and cheek", AFFIRMED),  # "and" keeps one clause
        ("lip, cheek and chin twitching", AFFIRMED),
    ])


# -- negation and uncertainty -------------------------------------------------------------


def test_negation_cues_before_each_one(m: TermMatcher) -> None:
    key = "red-flag:facial-weakness"
    cues = {
        "no": NEGATED, "not": NEGATED, "denies": NEGATED, "denied": NEGATED,
        "without": NEGATED, "negative for": NEGATED, "absence of": NEGATED,
        "absent": NEGATED, "free of": NEGATED, "resolved": NEGATED,
        "rule out": UNCERTAIN, "r/o": UNCERTAIN, "ruled out": UNCERTAIN, "risk of": UNCERTAIN,
        "screening for": UNCERTAIN, "history of": HISTORICAL, "hx of": HISTORICAL,
        "family history": FAMILY, "fh": FAMILY,
    }
    check(m, key, [(f"{cue} facial droop", want) for cue, want in cues.items()])
    check(m, key, [(f"{cue.upper()} FACIAL DROOP", want) for cue, want in cues.items()])


def test_negation_cues_after(m: TermMatcher) -> None:
    check(m, "red-flag:facial-weakness", [
        ("facial droop ruled out", NEGATED),
        ("facial droop resolved", NEGATED),
        ("facial droop absent", NEGATED),
        ("facial droop negative", NEGATED),
        ("facial droop on the left has resolved", NEGATED),  # the fifth word on
        ("facial droop on the left side has resolved", AFFIRMED),  # the sixth
        ("facial droop, but dysphagia resolved", AFFIRMED),  # terminator in between
    ])


def test_negation_window_is_five_words(m: TermMatcher) -> None:
    check(m, "red-flag:dysphagia", [
        ("no dysphagia", NEGATED),
        ("denies fever, chills, nausea, vomiting, dysphagia", NEGATED),  # 4 words between
        ("denies fever, chills, nausea, vomiting, cough, dysphagia", AFFIRMED),  # 5 between
    ])


def test_negation_stops_at_clause_end(m: TermMatcher) -> None:
    check(m, "red-flag:facial-weakness", [
        ("No facial droop; lip twitching", NEGATED),
        ("No dysphagia; facial droop", AFFIRMED),
        ("No dysphagia. Facial droop", AFFIRMED),
        ("Denies dysphagia\nfacial droop", AFFIRMED),
    ])
    assert status(m, "complaint", "No facial droop; lip twitching") == AFFIRMED


@pytest.mark.parametrize(
    "terminator",
    ["but", "however", "although", "though", "except", "yet", "still", "reports",
     "complains of", "presents with", "with new"],
)
def test_scope_terminators_end_a_negation(m: TermMatcher, terminator: str) -> None:
    text = f"denies dysphagia {terminator} slurred speech"
    assert status(m, "red-flag:dysphagia", text) == NEGATED
    assert status(m, "red-flag:slurred-speech", text) == AFFIRMED


@pytest.mark.parametrize(
    "pseudo",
    ["no change in", "no improvement", "not improved", "no worse", "not only",
     "no longer improving"],
)
def test_pseudo_negations_negate_nothing(m: TermMatcher, pseudo: str) -> None:
    assert status(m, "red-flag:facial-weakness", f"{pseudo} facial droop") == AFFIRMED
    assert status(m, "red-flag:facial-weakness", f"facial droop {pseudo}") == AFFIRMED


def test_a_negation_inside_a_pair_negates_it(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("lip is not twitching", NEGATED),
        ("no twitching of the lip", NEGATED),
        ("lip twitching, not only at night", AFFIRMED),
    ])


def test_an_answer_clause_after_a_colon(m: TermMatcher) -> None:
    key = "red-flag:facial-weakness"
    check(m, key, [
        ("Facial droop: none", NEGATED),
        ("Facial droop: No", NEGATED),
        ("Facial droop: negative", NEGATED),
        ("Facial droop: absent", NEGATED),
        ("Facial droop: not present", NEGATED),
        ("Facial droop: yes", AFFIRMED),
        ("Facial droop: left side", AFFIRMED),
        ("Facial droop; none", AFFIRMED),  # only a colon asks a question
    ])
    (hit,) = m.find(key, "Facial droop: none")
    assert hit.cue == "none"


def test_history_of_does_not_negate_known_conditions(m: TermMatcher) -> None:
    check(m, "known:parkinsons", [
        ("history of Parkinson's disease", AFFIRMED),
        ("hx of parkinsonism", AFFIRMED),
        ("family history of Parkinson's disease", FAMILY),
        ("FH Parkinson disease", FAMILY),
        ("no Parkinson's disease", NEGATED),
        ("rule out Parkinson's disease", UNCERTAIN),
    ])
    assert status(m, "hypoparathyroidism", "history of hypoparathyroidism") == AFFIRMED
    assert status(m, "red-flag:dysphagia", "history of dysphagia") == HISTORICAL


def test_negated_hits_are_reported_but_not_affirmed(m: TermMatcher) -> None:
    (hit,) = m.find("red-flag:dysphagia", "Denies dysphagia")
    assert (hit.status, hit.cue, hit.affirmed) == (NEGATED, "Denies", False)
    assert m.affirmed("red-flag:dysphagia", ["Denies dysphagia", "dysphagia"]).clause == (
        "dysphagia"
    )
    assert m.affirmed("red-flag:dysphagia", ["Denies dysphagia"]) is None


# -- every term list ------------------------------------------------------------------------


def test_complaint_phrases_alone(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("lip twitch", AFFIRMED),
        ("lip twitches since Monday", AFFIRMED),
        ("twitching lips", AFFIRMED),
        ("facial myokymia", AFFIRMED),
        ("hemifacial spasm", AFFIRMED),
        ("perioral fasciculations", AFFIRMED),
        ("no lip twitch", NEGATED),
        ("lipotwitch", None),
    ])


@pytest.mark.parametrize(
    "movement",
    ["twitch", "twitching", "fasciculation", "myokymia", "spasm", "spasms", "tic", "tics",
     "jerks", "fluttering"],
)
def test_complaint_movement_terms_with_a_site(m: TermMatcher, movement: str) -> None:
    assert status(m, "complaint", f"{movement} of the lower lip") == AFFIRMED
    assert status(m, "complaint", f"denies {movement} of the lower lip") == NEGATED
    assert status(m, "complaint", f"{movement}") is None
    assert status(m, "complaint", f"{movement} of the eyelid") is None


@pytest.mark.parametrize(
    "site", ["lip", "lips", "mouth", "perioral", "face", "facial", "chin", "cheek", "cheeks"]
)
def test_complaint_site_terms(m: TermMatcher, site: str) -> None:
    assert status(m, "complaint", f"twitching {site}") == AFFIRMED
    assert status(m, "complaint", f"twitching; {site}") is None
    assert status(m, "complaint-site", f"tic involving the {site}") == AFFIRMED


def test_complaint_not_jaw_not_flutter_alone(m: TermMatcher) -> None:
    check(m, "complaint", [
        ("jaw spasm", None),  # trismus
        ("atrial flutter", None),
        ("flutter of the upper lip", AFFIRMED),
        ("Cramp and spasm", None),
        ("Tic disorder, unspecified", None),
    ])
    assert status(m, "complaint-site", "Tic disorder, unspecified") is None


def test_red_flag_facial_weakness_terms(m: TermMatcher) -> None:
    check(m, "red-flag:facial-weakness", [
        ("facial droop", AFFIRMED),
        ("facial drooping on the right", AFFIRMED),
        ("facial weakness", AFFIRMED),
        ("facial palsy", AFFIRMED),
        ("facial paralysis", AFFIRMED),
        ("drooping of the face", AFFIRMED),
        ("droop of the mouth", AFFIRMED),
        ("drooping of the lip", AFFIRMED),
        ("face droops when smiling", AFFIRMED),
        ("mouth droop", AFFIRMED),
        ("asymmetric smile", AFFIRMED),
        ("new facial asymmetry", AFFIRMED),
        ("Other jaw asymmetry", None),
        ("facial asymmetry since birth", None),
        ("eyelid droop", None),
        ("no facial droop", NEGATED),
    ])


def test_red_flag_slurred_speech_terms(m: TermMatcher) -> None:
    check(m, "red-flag:slurred-speech", [
        ("slurred speech", AFFIRMED),
        ("slurring of words", AFFIRMED),
        ("dysarthria", AFFIRMED),
        ("dysarthric speech", AFFIRMED),
        ("difficulty speaking", AFFIRMED),
        ("trouble speaking", AFFIRMED),
        ("speaking clearly, fluent speech", None),
        ("denies slurred speech", NEGATED),
    ])


def test_red_flag_dysphagia_terms(m: TermMatcher) -> None:
    check(m, "red-flag:dysphagia", [
        ("dysphagia", AFFIRMED),
        ("dysphagic to solids", AFFIRMED),
        ("difficulty swallowing", AFFIRMED),
        ("trouble swallowing", AFFIRMED),
        ("painful swallowing", None),  # odynophagia
        ("odynophagia", None),
        ("swallowing normally", None),
        ("without dysphagia", NEGATED),
    ])


def test_red_flag_limb_weakness_terms(m: TermMatcher) -> None:
    check(m, "red-flag:limb-weakness", [
        ("weakness of the left arm", AFFIRMED),
        ("arm weakness", AFFIRMED),
        ("leg weakness", AFFIRMED),
        ("weakness in both legs", AFFIRMED),
        ("limb weakness", AFFIRMED),
        ("hand weakness", AFFIRMED),
        ("generalized weakness", AFFIRMED),
        ("generalised weakness", AFFIRMED),
        ("Muscle weakness (generalized)", AFFIRMED),
        ("hemiparesis", AFFIRMED),
        ("paresis of the right leg", AFFIRMED),
        ("Paresis of accommodation, right eye", None),
        ("General paresis", None),
        ("facial weakness", None),
        ("weakness", None),
        ("weakness; arm pain", None),
        ("no arm weakness", NEGATED),
    ])


def test_red_flag_numbness_terms(m: TermMatcher) -> None:
    check(m, "red-flag:numbness", [
        ("numb", AFFIRMED),
        ("right hand numb", AFFIRMED),
        ("numbness", AFFIRMED),
        ("tingling", AFFIRMED),
        ("pins and needles in the feet", AFFIRMED),
        ("paresthesias", AFFIRMED),
        ("paraesthesia", AFFIRMED),
        ("hypoesthesia", AFFIRMED),
        ("hypoaesthesia", AFFIRMED),
        ("low B-cell numbers", None),
        ("Hyperesthesia", None),
        ("denies numbness or tingling", NEGATED),
    ])


def test_numbness_of_the_lips_only_is_perioral(m: TermMatcher) -> None:
    def perioral(text: str) -> bool:
        (hit,) = m.find("red-flag:numbness", text)[:1]
        return hit.perioral

    assert perioral("tingling around the mouth")
    assert perioral("numb lips")
    assert perioral("perioral numbness")
    assert perioral("circumoral paresthesia")
    assert not perioral("numbness of the lips and fingers")
    assert not perioral("tingling of lips and left hand")
    assert not perioral("facial numbness")
    assert not perioral("numbness")
    first, second = m.find("red-flag:numbness", "numb lips; tingling of the feet")
    assert first.perioral and not second.perioral  # judged per clause


def test_red_flag_vision_terms(m: TermMatcher) -> None:
    check(m, "red-flag:vision-changes", [
        ("blurred vision", AFFIRMED),
        ("blurry vision", AFFIRMED),
        ("double vision", AFFIRMED),
        ("diplopia", AFFIRMED),
        ("vision loss", AFFIRMED),
        ("loss of vision", AFFIRMED),
        ("visual loss", AFFIRMED),
        ("visual disturbances", AFFIRMED),
        ("visual field defect", AFFIRMED),
        ("vision changes", AFFIRMED),
        ("changes in vision", AFFIRMED),
        ("Supervision of high risk pregnancy", None),
        ("vision screening normal", None),
        ("Amblyopia ex anopsia", None),
        ("no blurred vision", NEGATED),
        ("screening for vision loss", UNCERTAIN),
    ])


def test_red_flag_facial_pain_terms(m: TermMatcher) -> None:
    check(m, "red-flag:facial-pain", [
        ("facial pain", AFFIRMED),
        ("face pain", AFFIRMED),
        ("pain in the face", AFFIRMED),
        ("trigeminal neuralgia", AFFIRMED),
        ("jaw pain", None),
        ("pain", None),
        ("no facial pain", NEGATED),
    ])


def test_red_flag_chewing_trigger_terms(m: TermMatcher) -> None:
    check(m, "red-flag:chewing-trigger", [
        ("twitch triggered by chewing", AFFIRMED),
        ("brought on by chewing", AFFIRMED),
        ("worse with chewing", AFFIRMED),
        ("worse on chewing", AFFIRMED),
        ("twitches when chewing", AFFIRMED),
        ("chewing-triggered lip twitch", AFFIRMED),
        ("Nicotine dependence, chewing tobacco, uncomplicated", None),
        ("twitches when chewing gum", None),
        ("chewing", None),
        ("chews food well", None),
        ("not triggered by chewing", NEGATED),
    ])


def test_spreading_only_in_a_clause_that_names_the_movement(m: TermMatcher) -> None:
    check(m, "spreading", [
        ("twitching spreading to the cheek", AFFIRMED),
        ("the twitch has spread to the eyelid", AFFIRMED),
        ("spreading", None),
        ("lip twitching; cancer spread to bone", None),
        ("widespread twitching", None),
        ("twitching, not spreading", NEGATED),
    ])


def test_known_condition_terms(m: TermMatcher) -> None:
    check(m, "known:als", [
        ("amyotrophic lateral sclerosis", AFFIRMED),
        ("ALS", AFFIRMED),
        ("history of ALS", AFFIRMED),
        ("als", None),  # upper case only
        ("Als", None),
        ("motor neuron disease", AFFIRMED),
        ("motor neurone disease", AFFIRMED),
        ("no ALS", NEGATED),
    ])
    check(m, "known:parkinsons", [
        ("Parkinson's disease", AFFIRMED),
        ("parkinsonism", AFFIRMED),
        ("Parkinsons", AFFIRMED),
    ])
    check(m, "known:tourette", [
        ("Tourette's syndrome", AFFIRMED),
        ("tourette syndrome", AFFIRMED),
        ("touretteless", AFFIRMED),  # a stem: any word that starts with it
        ("family history of Tourette's", FAMILY),
    ])
    check(m, "known:bells-palsy", [
        ("Bell's palsy", AFFIRMED),
        ("bell palsy, left", AFFIRMED),
        ("bell rang", None),
        ("palsy", None),
    ])
    check(m, "known:hemifacial-spasm", [
        ("hemifacial spasm", AFFIRMED),
        ("facial spasm", None),
    ])


def test_hypoparathyroidism_terms(m: TermMatcher) -> None:
    check(m, "hypoparathyroidism", [
        ("hypoparathyroidism", AFFIRMED),
        ("hypoparathyroid state", AFFIRMED),
        ("pseudohypoparathyroidism", AFFIRMED),
        ("parathyroid insufficiency", AFFIRMED),
        ("pseudopseudohypoparathyroidism", None),
        ("hyperparathyroidism", None),
        ("hx of hypoparathyroidism", AFFIRMED),
        ("no hypoparathyroidism", NEGATED),
    ])


def test_analyte_names(m: TermMatcher) -> None:
    def named(key: str, text: str) -> bool:
        return m.mentions(f"analyte:{key}", [text])

    assert named("potassium", "Potassium [Moles/volume] in Serum or Plasma")
    assert named("potassium", "K")
    assert named("potassium", "Serum K")
    assert not named("potassium", "k")
    assert not named("potassium", "Vitamin K")
    assert not named("potassium", "Potassium [Moles/volume] in Urine")
    assert named("magnesium", "Magnesium")
    assert named("magnesium", "Mg, serum")
    assert not named("magnesium", "mg")
    assert not named("magnesium", "Magnesium in urine")
    assert named("calcium_total", "Calcium")
    assert not named("calcium_total", "Calcium.ionized [Moles/volume] in Blood")
    assert not named("calcium_total", "Calcium corrected for albumin")
    assert named("calcium_corrected", "Calcium corrected for albumin")
    assert named("calcium_corrected", "Adjusted calcium")
    assert not named("calcium_corrected", "Calcium")
    assert named("calcium_ionized", "Calcium.ionized [Moles/volume] in Blood")
    assert named("calcium_ionized", "Ionised calcium")
    assert named("calcium_ionized", "iCa")
    assert not named("calcium_ionized", "Calcium")
    assert named("albumin", "Albumin")
    assert not named("albumin", "Prealbumin")
    assert not named("albumin", "Microalbumin")
    assert not named("albumin", "Albumin [Mass/volume] in Urine")
    # lab names are not read for negation
    assert named("potassium", "Potassium, not hemolysed")


def test_find_all_agrees_with_find(m: TermMatcher) -> None:
    texts = [
        "Lip twitching spreading to cheek; denies dysphagia but reports slurred speech",
        "No facial droop. Numb lips. History of Parkinson's disease, hx of hypoparathyroidism",
        "Melanocytic nevi of lip",
    ]
    for text in texts:
        together = m.find_all(text)
        for key in m.keys:
            if key.startswith("analyte:"):
                continue
            assert together.get(key, ()) == m.find(key, text), (key, text)


# -- the terms file is checked -------------------------------------------------------------


def refused(doc: dict) -> list[str]:
    with pytest.raises(TermsError) as info:
        compile_terms(doc)
    return list(info.value.problems)


def test_the_packaged_terms_compile_and_define_every_category(m: TermMatcher) -> None:
    assert {
        "complaint", "complaint-site", "spreading", "hypoparathyroidism",
        "red-flag:facial-weakness", "red-flag:slurred-speech", "red-flag:dysphagia",
        "red-flag:limb-weakness", "red-flag:numbness", "red-flag:vision-changes",
        "red-flag:facial-pain", "red-flag:chewing-trigger",
        "known:als", "known:parkinsons", "known:tourette", "known:bells-palsy",
        "known:hemifacial-spasm",
        "analyte:potassium", "analyte:magnesium", "analyte:calcium_total",
        "analyte:calcium_corrected", "analyte:calcium_ionized", "analyte:albumin",
    } <= m.keys


def test_refuses_unknown_sections_and_fields(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    bad["extra"] = {}
    bad["red_flags"]["dysphagia"]["pattern"] = "dysphag.*"
    problems = refused(bad)
    assert any(p.startswith("terms.yaml: extra: unknown section") for p in problems)
    assert any("red_flags.dysphagia.pattern: unknown field" in p for p in problems)


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("dysphag.*", "holds characters a term cannot have"),
        ("dys*phagia", "'*' may only end a word"),
        ("dy*", "a stem needs at least 3 letters"),
        ("", "a term must be a non-empty string"),
        (False, "YAML read this term as false; quote it"),
        (3, "a term must be a non-empty string"),
    ],
)
def test_refuses_malformed_terms(doc: dict, term: object, message: str) -> None:
    bad = copy.deepcopy(doc)
    bad["red_flags"]["dysphagia"]["phrases"] = ["dysphagia", term]
    problems = refused(bad)
    assert any(
        p.startswith("terms.yaml: red_flags.dysphagia.phrases[1]: ") and message in p
        for p in problems
    ), problems


def test_refuses_unknown_list_names_duplicates_and_bad_pairs(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    bad["complaint"]["pairs"] = [{"first": "movements", "second": "site"}, {"first": ["a"]}]
    bad["red_flags"]["facial-pain"]["phrases"] = ["facial pain", "facial pain"]
    bad["matching"]["negation_window"] = 40
    bad["negation"]["before"]["doubtful"] = ["perhaps"]
    problems = refused(bad)
    assert any("complaint.pairs[0].first: must be a non-empty list of terms or the name"
               in p for p in problems), problems
    assert any("complaint.pairs[1]: must have exactly `first` and `second`" in p
               for p in problems)
    assert any("red_flags.facial-pain.phrases[1]: duplicate term 'facial pain'" in p
               for p in problems)
    assert any("matching.negation_window: must be a whole number from 1 to 10" in p
               for p in problems)
    assert any("negation.before.doubtful: unknown cue kind" in p for p in problems)


def test_refuses_a_missing_section_and_an_empty_category(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    del bad["complaint"]
    bad["red_flags"]["dysphagia"] = {"negation": False}
    problems = refused(bad)
    assert "terms.yaml: complaint: section missing" in problems
    assert any("red_flags.dysphagia: needs at least one of phrases, exact_case, pairs" in p
               for p in problems)
    assert refused([]) == ["terms.yaml: the file must hold a mapping at the top level"]


def test_an_author_can_extend_a_list(doc: dict) -> None:
    extended = copy.deepcopy(doc)
    extended["red_flags"]["slurred-speech"]["phrases"].append("speech slurred")
    m2 = compile_terms(extended)
    assert status(m2, "red-flag:slurred-speech", "speech slurred since this morning") == AFFIRMED
    assert status(m2, "red-flag:slurred-speech", "no speech slurred") == NEGATED
