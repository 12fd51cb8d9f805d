"""Cards a clinician reads in five seconds (clinical reference §7b C1), on every demo.

Each demo patient goes through the patient-view service and each order demo through its
own service, over HTTP as an EHR calls them. Every card is read as a clinician reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_hooks.app import create_app
from cds_hooks.cli.demo import (
    bundle_resources,
    hook_request,
    list_demos,
    list_order_demos,
    load_demo,
    order_demo_request,
)
from knowledge import load_knowledge_base

KB = load_knowledge_base()
EVIDENCE = "org.lipcds.evidence"
RESOURCE_TYPES = (
    "Patient|Condition|Observation|MedicationRequest|MedicationStatement|Medication|"
    "Encounter|ServiceRequest|DiagnosticReport"
)
FORBIDDEN = [
    (re.compile(r"\.txt\b|\b\d{3}_[0-9a-f]{16}\b|Seed article", re.I), "a source file name"),
    (re.compile(r"[“”]|\.\.\."), "a quote-fragment marker"),
    (re.compile(rf"\b({RESOURCE_TYPES})/[A-Za-z0-9\-.]+"), "a FHIR resource id"),
    (re.compile(r"\b(R\d{1,2}|O\d|D\d|P\d{1,2}|T\d)\b"), "a rule id"),
    (re.compile(r"stale: not judged|not from the seeds|well established|\bthe seeds\b|"
                r"\bseed (article|file)|\bby code\b|\bmatched by\b|evaluator|knowledge base|"
                r"\brule\b(?! out)", re.I),
     "an internal word"),
]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
# What a label must name for each thing its suggestion creates (order text, lower case).
LABEL_WORDS = {
    "serum potassium": ("potassium",),
    "serum magnesium": ("magnesium",),
    "serum calcium": ("calcium",),
    "serum albumin": ("albumin",),
    "ionized calcium": ("ionized calcium",),
    "parathyroid hormone, intact": ("parathyroid hormone", "pth"),
    "25-hydroxyvitamin d": ("vitamin d",),
    "serum phosphate": ("phosphate",),
    "tsh": ("tsh",),
    "vitamin b12": ("b12",),
    "referral to neurology": ("neurology",),
    "referral to pediatric neurology": ("neurology",),
    "facial nerve conduction study": ("nerve conduction",),
    "mri brain with attention to the facial nerve": ("mri",),
}
RANK = {"critical": 3, "warning": 2, "info": 1}


def pretty_date(iso: str) -> str:
    day = date.fromisoformat(iso[:10])
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def number_text(value: float | int) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def service_for_hook(hook: str) -> str:
    return next(s.id for s in KB.services.values() if s.hook == hook)


def calls() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(name, service id, request, bundle) of every demo patient and order demo."""
    for name in list_demos():
        bundle = load_demo(name)
        yield name, "lip-twitch-patient-view", hook_request(bundle), bundle
    for name in list_order_demos():
        request = order_demo_request(name)
        patient = request["context"]["patientId"]
        yield name, service_for_hook(request["hook"]), request, load_demo(patient)


CALLS = list(calls())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = tmp_path_factory.mktemp("card-text") / "store.db"
    app = create_app({"env": "development", "auth_mode": "disabled",
                      "database_url": f"sqlite:///{store}", "patient_id_key": "k" * 32})
    return app.test_client()


@pytest.fixture(scope="module")
def answers(client: Any) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    found = {}
    for name, service, request, bundle in CALLS:
        response = client.post(f"/cds-services/{service}", json=request)
        assert response.status_code == 200, (name, response.get_json())
        found[name] = (response.get_json()["cards"], bundle)
    return found


def prose(card: dict[str, Any]) -> str:
    return f"{card['summary']}\n{card.get('detail', '')}"


def every_card(answers: dict) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, (cards, bundle) in answers.items():
        for card in cards:
            yield name, card, bundle


def test_the_demos_give_cards(answers: dict) -> None:
    assert sum(len(cards) for cards, _ in answers.values()) >= 12
    assert answers["no-complaint"][0] == []


def test_no_file_names_quote_fragments_ids_or_internal_words(answers: dict) -> None:
    problems = []
    for name, card, bundle in every_card(answers):
        text = prose(card)
        for pattern, what in FORBIDDEN:
            found = pattern.search(text)
            if found:
                problems.append(f"{name} {card['source']['topic']['code']}: {what} "
                                f"{found.group(0)!r}")
        for resource in bundle_resources(bundle):
            if len(resource["id"]) > 6 and resource["id"] in text:
                problems.append(f"{name}: resource id {resource['id']!r} in the prose")
    assert not problems, "\n".join(problems)


def test_ids_and_rule_ids_are_in_the_evidence_extension(answers: dict) -> None:
    for _, card, _ in every_card(answers):
        trace = card["extension"][EVIDENCE]
        assert re.fullmatch(r"[RODP]\d{1,2}", trace["ruleId"])
        assert trace["knowledgeBaseVersion"] == KB.version
        if card["source"]["topic"]["code"] not in ("lifestyle-advice",):
            assert trace.get("evidence"), card["summary"]


def lab_observations(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in bundle_resources(bundle):
        if resource["resourceType"] == "Observation" and "valueQuantity" in resource:
            yield resource


def test_values_in_the_labs_unit_with_the_reported_precision(answers: dict) -> None:
    checked = 0
    for name, card, bundle in every_card(answers):
        text = card.get("detail", "")
        for obs in lab_observations(bundle):
            when = pretty_date(obs["effectiveDateTime"])
            display = obs["code"]["coding"][0]["display"].split(" [")[0].split(".")[0]
            lines = [ln for ln in text.splitlines() if when in ln and display.lower() in
                     ln.lower()]
            if not lines:
                continue
            quantity = obs["valueQuantity"]
            shown = f"{number_text(quantity['value'])} {quantity['unit']}"
            assert any(shown in ln for ln in lines), (name, shown, lines)
            checked += 1
    assert checked >= 6


def test_the_magnesium_card_reads_as_a_clinician_writes_it(answers: dict) -> None:
    cards, bundle = answers["low-magnesium-mgdl"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "hypomagnesemia-workup")
    obs = next(o for o in lab_observations(bundle) if "mg" in o["id"])
    low = obs["referenceRange"][0]["low"]["value"]
    high = obs["referenceRange"][0]["high"]["value"]
    expected = (f"Magnesium {number_text(obs['valueQuantity']['value'])} mg/dL (low; lab range "
                f"{number_text(low)}–{number_text(high)} mg/dL), "
                f"{pretty_date(obs['effectiveDateTime'])}")
    assert expected in card["detail"]
    assert "mmol/L" not in card["detail"]  # the deciding range is the lab's own, in mg/dL


def test_cards_in_the_order_a_clinician_needs(answers: dict) -> None:
    for name, (cards, _) in answers.items():
        keys = [
            (
                card["source"]["topic"]["code"] == "lifestyle-advice",
                -RANK[card["indicator"]],
                not card.get("suggestions"),
            )
            for card in cards
        ]
        assert keys == sorted(keys), (name, [c["summary"] for c in cards])


def test_stale_labs_put_the_missing_labs_card_before_lifestyle(answers: dict) -> None:
    kinds = [c["source"]["topic"]["code"] for c in answers["stale-labs"][0]]
    assert kinds == ["lab-workup-missing", "lifestyle-advice"]


def test_critical_cards_lead_with_the_action(answers: dict) -> None:
    cards, _ = answers["facial-droop"]
    card = cards[0]
    assert card["indicator"] == "critical"
    first = card["detail"].strip().splitlines()[0]
    assert "stroke" in first and "today" in first and "emergency" in first
    lines = card["detail"].strip().splitlines()
    treatments = [i for i, ln in enumerate(lines) if "botulinum" in ln]
    assert len(treatments) == 1
    assert treatments[0] > [i for i, ln in enumerate(lines) if "Facial droop" in ln][0]


def test_red_flags_are_listed_once(answers: dict) -> None:
    card = answers["facial-droop"][0][0]
    assert card["detail"].count("Facial droop, right side") == 1


def test_sources_in_one_line_named_for_a_reader(answers: dict) -> None:
    for name, card, _ in every_card(answers):
        lines = [ln for ln in card["detail"].splitlines() if ln.startswith("Sources")]
        assert len(lines) == 1, (name, card["summary"])
        assert lines[0].startswith("Sources: ")
        assert len(lines[0]) < 220


def test_lifestyle_advice_fits_six_bullets_and_one_follow_up_line(answers: dict) -> None:
    seen = 0
    for _, card, _ in every_card(answers):
        if card["source"]["topic"]["code"] != "lifestyle-advice":
            continue
        seen += 1
        lines = [ln for ln in card["detail"].splitlines() if ln.strip()]
        bullets = [ln for ln in lines if ln.startswith("- ")]
        assert len(bullets) <= 6
        assert len([ln for ln in lines if ln.lower().startswith(("follow up", "**follow up"))]) == 1
        assert len(lines) <= 10
    assert seen >= 5


def test_labels_name_what_they_create(answers: dict) -> None:
    checked = 0
    for name, card, _ in every_card(answers):
        for suggestion in card.get("suggestions", []):
            label = suggestion["label"].lower()
            for action in suggestion["actions"]:
                if action["type"] == "delete":
                    assert "remove" in label
                    continue
                made = action["resource"]["code"]["text"].lower()
                words = LABEL_WORDS[made]
                assert any(w in label for w in words), (name, suggestion["label"], made)
                checked += 1
    assert checked >= 20


def test_missing_labs_after_deduplication_names_only_what_remains(answers: dict) -> None:
    cards, _ = answers["order-select-prednisone"]
    missing = next(c for c in cards if c["source"]["topic"]["code"] == "lab-workup-missing")
    created = {
        a["resource"]["code"]["text"]
        for s in missing.get("suggestions", [])
        for a in s["actions"]
        if s["label"].lower().startswith("order") and a["type"] == "create"
    }
    order = next(s for s in missing["suggestions"] if s["isRecommended"])
    for text in created:
        assert any(w in order["label"].lower() for w in LABEL_WORDS[text.lower()])
    assert "electrolytes" not in order["label"].lower()


def test_no_do_not_stop_abruptly_for_a_drug_not_yet_taken(answers: dict) -> None:
    seen = 0
    for _, card, _ in every_card(answers):
        if card["source"]["topic"]["code"].startswith("draft-medication-risk"):
            seen += 1
            assert "abrupt" not in card["detail"].lower()
    assert seen >= 2


def test_every_card_links_to_its_rule_page(answers: dict, client: Any) -> None:
    for name, card, _ in every_card(answers):
        links = [link for link in card.get("links", []) if link["label"] == "Why this card?"]
        assert len(links) == 1, (name, card["summary"])
        link = links[0]
        assert link["type"] == "absolute"
        rule_id = card["extension"][EVIDENCE]["ruleId"]
        assert re.fullmatch(rf"http://localhost/rules/{rule_id}(\?site=[0-9a-f]{{16}})?",
                            link["url"]), link["url"]
        page = client.get(link["url"].removeprefix("http://localhost"))
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert f"{rule_id}: " in page.text


def test_links_use_the_public_base_url_when_set(tmp_path: Path) -> None:
    app = create_app({"env": "development", "auth_mode": "disabled",
                      "database_url": f"sqlite:///{tmp_path / 's.db'}",
                      "patient_id_key": "k" * 32,
                      "public_base_url": "https://cds.example.org/lipcds/"})
    body = hook_request(load_demo("low-potassium-meq"))
    cards = app.test_client().post("/cds-services/lip-twitch-patient-view", json=body).get_json()
    urls = {link["url"] for card in cards["cards"] for link in card["links"]}
    assert urls == {"https://cds.example.org/lipcds/rules/R3",
                    "https://cds.example.org/lipcds/rules/R1"}


def test_unusable_records_are_said_without_their_ids(client: Any) -> None:
    bundle = load_demo("stale-labs")
    broken = {
        "resourceType": "Observation",
        "id": "broken-magnesium-result",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "19123-9"}]},
        "subject": {"reference": "Patient/stale-labs"},
        "effectiveDateTime": bundle["timestamp"],
        "valueQuantity": {"value": 1.1, "unit": "furlongs"},
    }
    bundle["entry"].append({"resource": broken})
    cards = client.post("/cds-services/lip-twitch-patient-view",
                        json=hook_request(bundle)).get_json()["cards"]
    text = "\n".join(prose(card) for card in cards)
    assert "furlongs" in text  # the problem is said ...
    assert "broken-magnesium-result" not in text  # ... without the record's id
    assert not re.search(rf"\b({RESOURCE_TYPES})/", text)
