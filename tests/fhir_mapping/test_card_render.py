"""The pieces of a card's text and order (fhir_mapping.cards), one case each."""

from __future__ import annotations

from fhir_mapping.cards import (
    EVIDENCE_EXTENSION,
    clinical_date,
    evidence_line,
    order_cards,
    order_name,
    orders_label,
    relabel,
    with_rule_links,
)
from knowledge import load_knowledge_base
from knowledge.engine.text import converted, day, like, reported
from knowledge.model import Evidence

KB = load_knowledge_base()


def card(rule: str, indicator: str, suggestions: bool = False) -> dict:
    out = {"summary": rule, "indicator": indicator,
           "extension": {EVIDENCE_EXTENSION: {"ruleId": rule}}}
    if suggestions:
        out["suggestions"] = [{"label": "x", "actions": []}]
    return out


def test_evidence_lines_read_as_clinical_words() -> None:
    lab = Evidence("Magnesium", "1.4 mg/dL", "2026-11-15", "Observation/mg-1",
                   "low; lab range 1.7–2.2 mg/dL")
    expected = "- Magnesium 1.4 mg/dL (low; lab range 1.7–2.2 mg/dL), 15 Nov 2026"
    assert evidence_line(lab) == expected
    text = Evidence("Complaint", "Lower lip twitching", "2026-11-19", "Condition/c", "onset")
    assert evidence_line(text) == "- Complaint: Lower lip twitching, since 19 Nov 2026"
    bare = Evidence("Draft order", "Lasix 40 mg tablet", None, "MedicationRequest/d")
    assert evidence_line(bare) == "- Draft order: Lasix 40 mg tablet"
    assert "Observation/" not in evidence_line(lab)
    assert "MedicationRequest" not in evidence_line(bare)


def test_dates_and_numbers() -> None:
    assert clinical_date("2026-01-05") == "5 Jan 2026"
    assert clinical_date("soon") == "soon"
    assert reported(3.0, "") == "3.0" and reported(3.0, "3") == "3"
    assert reported(2.5, "<2.5") == "<2.5"
    assert converted(0.5758, "1.4") == "0.58" and converted(3.1, "3.1") == "3.1"
    assert like(1.7000000001, "1.4") == "1.7" and like(10.8, "8.7") == "10.8"
    from datetime import UTC, datetime

    assert day(datetime(2026, 11, 15, tzinfo=UTC)) == "15 Nov 2026" and day(None)


def test_labels_name_what_they_create() -> None:
    assert order_name("Serum potassium") == "potassium"
    assert order_name("Parathyroid hormone, intact") == "parathyroid hormone"
    assert order_name("TSH") == "TSH" and order_name("Ionized calcium") == "ionized calcium"
    assert orders_label("Order", ["calcium", "albumin"]) == "Order calcium and albumin"
    assert orders_label("Order", ["a", "b", "c", "a"]) == "Order a, b and c"
    cut = relabel({"label": "Order potassium, magnesium, calcium and albumin", "actions": [
        {"type": "create", "resource": {"code": {"text": "Serum calcium"}}},
        {"type": "create", "resource": {"code": {"text": "Serum albumin"}}},
    ]})
    assert cut["label"] == "Order calcium and albumin"


def test_cards_in_the_order_of_c1() -> None:
    cards = [card("R1", "info"), card("R2", "info", True), card("R7", "info"),
             card("R4", "warning", True), card("R9", "critical", True), card("R8", "warning")]
    assert [c["summary"] for c in order_cards(cards, KB)] == ["R9", "R4", "R8", "R2", "R7", "R1"]


def test_rule_links() -> None:
    linked = with_rule_links([card("R3", "warning")], "https://cds.example.org/", "abc")
    assert linked[0]["links"] == [{"label": "Why this card?", "type": "absolute",
                                   "url": "https://cds.example.org/rules/R3?site=abc"}]
    assert list(linked[0])[-1] == "extension"  # links before the extension
    again = with_rule_links(linked, "https://cds.example.org")
    assert len(again[0]["links"]) == 1


def test_data_notes_put_ids_into_words() -> None:
    from knowledge.engine.text import without_ids

    assert without_ids("Observation/obs-3: value is not a number") == (
        "A result: value is not a number"
    )
    assert without_ids("MedicationRequest/m1: medication Medication/x could not be resolved") == (
        "A prescription: medication a medication could not be resolved"
    )
    assert without_ids("the FHIR server did not answer") == "the FHIR server did not answer"
