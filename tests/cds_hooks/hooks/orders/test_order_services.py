"""order-select and order-sign through the HTTP app."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from cds_hooks import create_app
from cds_hooks.hooks.pipeline import run_hook
from cds_hooks.runtime import runtime
from cds_hooks.store import StoreUnavailable
from tests.cds_hooks.hooks.orders.conftest import (
    NOW,
    call,
    concerns,
    deleted,
    draft_cards,
    hypertension,
    kinds,
    lab,
    lab_draft,
    med_draft,
    normal_labs,
    order_request,
    ordered_loincs,
    patient,
    twitching,
)

TWITCHING_NORMAL_LABS = [patient(), twitching(), *normal_labs()]

# One SCD per drug class (clinical reference §3.3), and the slug it must reach.
BY_PRODUCT_CODE = [
    ("312615", "prednisone", "systemic-corticosteroid"),
    ("312830", "risperidone", "antipsychotic"),
    ("312941", "sertraline", "antidepressant"),
    ("197658", "estradiol", "estrogen"),
    ("1049160", "pseudoephedrine", "stimulant-decongestant"),
    ("745679", "albuterol", "asthma-medication"),
    ("1091150", "methylphenidate", "adhd-stimulant"),
    ("313988", "furosemide", "loop-diuretic"),
    ("310798", "hydrochlorothiazide", "thiazide-diuretic"),
    ("198051", "omeprazole", "ppi"),
]

# The same classes named only in text: brands and generic names, as a clinician types them.
BY_NAME = [
    ("Deltasone 20 mg tablet", "prednisone"),
    ("Risperdal 1 mg", "risperidone"),
    ("Zoloft 50 mg tablet", "sertraline"),
    ("Estrace 1 MG Oral Tablet", "estradiol"),
    ("Sudafed 30 mg", "pseudoephedrine"),
    ("ProAir HFA 90 mcg/actuation", "albuterol"),
    ("Ritalin 10 mg", "methylphenidate"),
    ("Lasix 40 mg", "furosemide"),
    ("metolazone 2.5 mg tablet", "metolazone"),
    ("Prilosec 20 mg capsule", "omeprazole"),
]


def test_discovery_lists_both_order_services(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    for service_id, hook in (
        ("lip-twitch-order-select", "order-select"),
        ("lip-twitch-order-sign", "order-sign"),
    ):
        assert services[service_id]["hook"] == hook
        assert set(services[service_id]["prefetch"]) == {"patient", "conditions", "labs"}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize(("code", "slug", "drug_class"), BY_PRODUCT_CODE)
def test_each_class_by_product_code_warns_a_twitching_patient(client, hook, code, slug, drug_class):
    request = order_request(hook, TWITCHING_NORMAL_LABS, [med_draft("draft-1", code)])
    cards = call(client, hook, request)
    assert kinds(cards) == [f"draft-medication-risk:{slug}"]
    card = cards[0]
    assert card["indicator"] == "warning"
    assert concerns(card) == "MedicationRequest/draft-1"
    assert deleted(card) == ["MedicationRequest/draft-1"]
    assert "MedicationRequest/draft-1" not in card["detail"]  # ids go to the extension
    assert "Lower lip twitching" in card["detail"]
    onset = NOW - timedelta(days=10)
    assert f"onset {onset.day} {onset:%b %Y}" in card["detail"]
    assert "RxNorm" not in card["detail"]  # how a drug matched is no clinical word


@pytest.mark.parametrize(("text", "slug"), BY_NAME)
def test_each_class_by_name(client, text, slug):
    request = order_request("order-select", TWITCHING_NORMAL_LABS, [med_draft("d-9", text=text)])
    cards = call(client, "order-select", request)
    assert kinds(cards) == [f"draft-medication-risk:{slug}"]
    assert text in cards[0]["detail"]  # the record's own words
    assert "matched by" not in cards[0]["detail"]


def test_contained_medication_is_read_through_its_ingredient(client):
    draft = med_draft(
        "d-contained",
        medicationReference={"reference": "#med"},
        contained=[
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"text": "house formulary tablet"},
                "ingredient": [
                    {
                        "itemCodeableConcept": {
                            "coding": [
                                {
                                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "code": "36437",
                                }
                            ]
                        }
                    }
                ],
            }
        ],
    )
    cards = call(client, "order-sign", order_request("order-sign", TWITCHING_NORMAL_LABS, [draft]))
    assert kinds(cards) == ["draft-medication-risk:sertraline"]


def test_sandbox_first_call_with_an_invalid_draft_is_answered(client):
    """CDS Hooks sandbox, rx-view on page load: no intent, no medication: invalid R4."""
    unfinished = {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "subject": {"reference": "Patient/pt-1"},
        "authoredOn": "2026-11-20",
    }
    for hook in ("order-select", "order-sign"):
        request = order_request(hook, TWITCHING_NORMAL_LABS, [unfinished])
        assert draft_cards(call(client, hook, request)) == []


def test_drafts_that_cannot_be_read_are_skipped_and_the_rest_judged(client):
    drafts = [
        "not an entry",
        {"fullUrl": "urn:uuid:1"},  # no resource
        {"resource": ["not", "a", "resource"]},
        {"resourceType": "MedicationRequest", "status": "draft"},  # no id: cannot be named
        med_draft("d-odd", medicationCodeableConcept={"coding": "not a list"}),
        med_draft("d-ref", medicationReference={"reference": "Medication/elsewhere"}),
        # invalid R4 (no intent, a number as status) but the drug is readable: judged
        {**med_draft("d-typing", "312615"), "intent": None, "dosageInstruction": 7},
    ]
    request = order_request("order-sign", TWITCHING_NORMAL_LABS, drafts)
    cards = call(client, "order-sign", request)
    assert [concerns(c) for c in draft_cards(cards)] == ["MedicationRequest/d-typing"]


def test_order_select_judges_only_the_selected_drafts(client):
    drafts = [med_draft("d-pred", "312615"), med_draft("d-sert", "312941")]
    request = order_request(
        "order-select", TWITCHING_NORMAL_LABS, drafts, selections=["MedicationRequest/d-sert"]
    )
    assert kinds(call(client, "order-select", request)) == ["draft-medication-risk:sertraline"]
    # order-sign judges every draft (no encounter here, so nothing counts as a repeat)
    signed = call(
        client,
        "order-sign",
        order_request("order-sign", TWITCHING_NORMAL_LABS, drafts, encounter=None),
    )
    assert sorted(concerns(c) for c in signed) == [
        "MedicationRequest/d-pred",
        "MedicationRequest/d-sert",
    ]
    assert len({c["uuid"] for c in signed}) == 2


def test_two_drafts_of_one_drug_are_two_cards_with_their_own_uuids(client):
    drafts = [med_draft("d-a", "312615"), med_draft("d-b", text="prednisone 10 mg")]
    cards = call(client, "order-sign", order_request("order-sign", TWITCHING_NORMAL_LABS, drafts))
    assert [concerns(c) for c in cards] == ["MedicationRequest/d-a", "MedicationRequest/d-b"]
    assert cards[0]["uuid"] != cards[1]["uuid"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_no_complaint_and_normal_labs_gives_no_cards(client, hook):
    record = [patient(), hypertension(), *normal_labs()]
    drafts = [med_draft("d-1", "312615"), med_draft("d-2", "313988"), med_draft("d-3", "198051")]
    response = client.post(
        f"/cds-services/lip-twitch-{hook}", json=order_request(hook, record, drafts)
    )
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_low_potassium_without_complaint_warns_on_a_depleting_drug(client):
    record = [
        patient(),
        hypertension(),
        lab("potassium", 3.1),
        lab("magnesium", 2.0),
        lab("calcium", 9.4),
    ]
    drafts = [med_draft("d-furo", "313988"), med_draft("d-pred", "312615")]
    cards = call(client, "order-select", order_request("order-select", record, drafts))
    # Prednisone is a twitching cause, not a potassium thief: no complaint, no card.
    assert kinds(cards) == ["draft-medication-risk:furosemide"]
    card = cards[0]
    assert card["indicator"] == "warning"
    assert "low potassium (3.1 mmol/L" in card["summary"]
    assert "**3.1 mmol/L**" in card["detail"]
    assert "twitching" not in card["summary"].split("patient with")[1]
    assert ordered_loincs(card) == set()  # both electrolytes are fresh: nothing to order


def test_low_magnesium_warns_on_a_ppi_but_low_potassium_does_not(client):
    low_k = [patient(), hypertension(), lab("potassium", 3.0), lab("magnesium", 2.0)]
    ppi = [med_draft("d-ppi", "198051")]
    assert call(client, "order-sign", order_request("order-sign", low_k, ppi)) == []
    low_mg = [patient(), hypertension(), lab("potassium", 4.0), lab("magnesium", 1.2)]
    cards = call(client, "order-sign", order_request("order-sign", low_mg, ppi))
    assert kinds(cards) == ["draft-medication-risk:omeprazole"]


def test_missing_electrolytes_are_ordered_once_across_the_response(client):
    record = [patient(), twitching()]  # no labs at all: R2 fires too
    cards = call(
        client, "order-select", order_request("order-select", record, [med_draft("d", "313988")])
    )
    assert kinds(cards) == ["draft-medication-risk:furosemide", "lab-workup-missing"]
    drug, workup = cards
    assert ordered_loincs(drug) == {"2823-3", "19123-9"}
    labels = [s["label"] for s in drug["suggestions"]]
    assert labels == ["Remove this draft order", "Order potassium", "Order magnesium"]
    # the work-up card does not propose potassium and magnesium a second time
    assert ordered_loincs(workup) & {"2823-3", "19123-9"} == set()
    assert {"17861-6", "1751-7"} <= ordered_loincs(workup)


def test_stale_electrolyte_is_named_and_ordered(client):
    record = [patient(), twitching(), lab("potassium", 4.0, days_ago=400), lab("magnesium", 2.0)]
    cards = call(
        client, "order-sign", order_request("order-sign", record, [med_draft("d", "313988")])
    )
    drug = draft_cards(cards)[0]
    assert "older than 90 days" in drug["detail"] and "4.0 mmol/L" in drug["detail"]
    assert "2823-3" in ordered_loincs(drug)


def test_lab_drafts_in_the_basket_suppress_the_same_lab_everywhere(client):
    record = [patient(), twitching()]
    drafts = [
        med_draft("d-furo", "313988"),
        lab_draft("sr-k", loinc="2823-3"),
        lab_draft("sr-mg", text="Magnesium level"),  # named only
    ]
    cards = call(client, "order-select", order_request("order-select", record, drafts))
    drug, workup = cards
    assert ordered_loincs(drug) == set()
    assert deleted(drug) == ["MedicationRequest/d-furo"]
    assert ordered_loincs(workup) & {"2823-3", "19123-9"} == set()
    assert "17861-6" in ordered_loincs(workup)


def test_work_up_card_goes_when_the_basket_orders_all_its_labs(client):
    record = [patient(), twitching()]
    drafts = [
        med_draft("d-sert", "312941"),
        lab_draft("sr-cmp", loinc="24323-8"),  # panel: potassium, calcium, albumin
        lab_draft("sr-mg", loinc="19123-9"),
    ]
    cards = call(client, "order-sign", order_request("order-sign", record, drafts))
    # Only the optional TSH / B12 / vitamin D suggestions of R2 could remain; the
    # electrolyte suggestion is gone and its card keeps the rest.
    for card in cards:
        assert ordered_loincs(card) & {"2823-3", "19123-9", "17861-6", "1751-7"} == set()
    assert kinds(cards)[0] == "draft-medication-risk:sertraline"


def test_basket_labs_alone_leave_a_low_value_card_without_its_suggestion(client):
    record = [
        patient(),
        twitching(),
        lab("potassium", 3.1),
        lab("magnesium", 2.0),
        lab("calcium", 9.4),
        lab("albumin", 4.0),
    ]
    drafts = [lab_draft("sr-k", loinc="2823-3"), lab_draft("sr-mg", loinc="19123-9")]
    cards = call(client, "order-sign", order_request("order-sign", record, drafts))
    assert kinds(cards) == ["hypokalemia-workup"]
    assert "suggestions" not in cards[0]


# -- the repeat at order-sign -------------------------------------------------------------


def _select_then_sign(client, sign_encounter, select_encounter="enc-1"):
    drafts = [med_draft("d-pred", "312615")]
    selected = call(
        client,
        "order-select",
        order_request(
            "order-select",
            TWITCHING_NORMAL_LABS,
            drafts,
            encounter=select_encounter,
            hook_instance="hi-select",
        ),
    )
    assert kinds(selected) == ["draft-medication-risk:prednisone"]
    return call(
        client,
        "order-sign",
        order_request(
            "order-sign",
            TWITCHING_NORMAL_LABS,
            drafts,
            encounter=sign_encounter,
            hook_instance="hi-sign",
        ),
    )


def test_order_sign_does_not_repeat_what_order_select_showed_in_the_encounter(client):
    assert _select_then_sign(client, "enc-1") == []


def test_order_sign_repeats_it_in_another_encounter(client):
    assert kinds(_select_then_sign(client, "enc-2")) == ["draft-medication-risk:prednisone"]


def test_order_sign_without_encounter_does_not_suppress(client):
    assert kinds(_select_then_sign(client, None)) == ["draft-medication-risk:prednisone"]
    assert kinds(_select_then_sign(client, None, select_encounter=None)) == [
        "draft-medication-risk:prednisone"
    ]


def test_order_sign_shows_a_new_draft_and_keeps_the_repeat_out(client):
    drafts = [med_draft("d-pred", "312615")]
    call(
        client,
        "order-select",
        order_request("order-select", TWITCHING_NORMAL_LABS, drafts, hook_instance="hi-a"),
    )
    both = [*drafts, med_draft("d-sert", "312941")]
    cards = call(
        client,
        "order-sign",
        order_request("order-sign", TWITCHING_NORMAL_LABS, both, hook_instance="hi-b"),
    )
    assert [concerns(c) for c in cards] == ["MedicationRequest/d-sert"]


def test_shadow_cards_at_order_select_were_never_shown(app, client, monkeypatch):
    rt = runtime(app)
    shadow_site = replace(rt.sites.default, shadow=True)
    monkeypatch.setattr(rt.sites, "for_call", lambda issuer, tenant: shadow_site)
    _select_then_sign_shadow = order_request(
        "order-select",
        TWITCHING_NORMAL_LABS,
        [med_draft("d-pred", "312615")],
        hook_instance="hi-shadow",
    )
    assert call(client, "order-select", _select_then_sign_shadow) == []
    monkeypatch.undo()
    sign = order_request(
        "order-sign",
        TWITCHING_NORMAL_LABS,
        [med_draft("d-pred", "312615")],
        hook_instance="hi-sign",
    )
    assert kinds(call(client, "order-sign", sign)) == ["draft-medication-risk:prednisone"]


def test_store_down_at_order_sign_shows_the_card_and_logs(app, client, caplog):
    class DownStore:
        def shown_at_order_select(self, **_):
            raise StoreUnavailable("database unavailable: connection refused")

        def record_result(self, **_):
            raise StoreUnavailable("database unavailable: connection refused")

    runtime(app).store = DownStore()
    sign = order_request("order-sign", TWITCHING_NORMAL_LABS, [med_draft("d-pred", "312615")])
    with caplog.at_level("WARNING", logger="lipcds.orders"):
        assert kinds(call(client, "order-sign", sign)) == ["draft-medication-risk:prednisone"]
    assert "showing them again" in caplog.text


def test_patient_view_cards_are_unchanged_by_the_order_rule(client):
    """O1 runs only in the order services: patient-view for the same patient has no O1 card."""
    request = order_request("order-sign", [patient(), twitching()], [])
    request["hook"] = "patient-view"
    for key in ("draftOrders",):
        request["context"].pop(key)
    response = client.post("/cds-services/lip-twitch-patient-view", json=request)
    assert response.status_code == 200
    assert "O1" not in str(response.get_json())


def test_work_up_card_stays_when_the_basket_has_all_its_labs(client):
    """It says what the record lacks, so it is never hidden; it just orders nothing."""
    record = [patient(), twitching()]
    labs = {"sr-k": "2823-3", "sr-mg": "19123-9", "sr-ca": "1995-0", "sr-alb": "1751-7",
            "sr-tsh": "3016-3", "sr-b12": "2132-9", "sr-d": "62292-8"}  # fmt: skip
    drafts = [med_draft("d-sert", "312941"), *(lab_draft(i, loinc=c) for i, c in labs.items())]
    cards = call(client, "order-sign", order_request("order-sign", record, drafts))
    assert kinds(cards) == ["draft-medication-risk:sertraline", "lab-workup-missing"]
    workup = cards[1]
    assert "suggestions" not in workup
    assert "potassium, magnesium or calcium" in workup["detail"]


def test_order_select_without_selections_is_a_400_naming_the_field(client):
    request = order_request("order-select", TWITCHING_NORMAL_LABS, [med_draft("d", "312615")])
    del request["context"]["selections"]
    response = client.post("/cds-services/lip-twitch-order-select", json=request)
    assert response.status_code == 400
    assert "selections" in str(response.get_json())


def test_ionized_calcium_in_the_basket_covers_total_calcium(client):
    record = [patient(), twitching(), lab("potassium", 4.0), lab("magnesium", 2.0)]
    drafts = [med_draft("d-sert", "312941"), lab_draft("sr-ica", text="Ionized calcium")]
    cards = call(client, "order-select", order_request("order-select", record, drafts))
    workup = [c for c in cards if kinds([c]) == ["lab-workup-missing"]][0]
    # Any calcium order covers calcium: no total calcium, and no albumin to correct it.
    assert ordered_loincs(workup) & {"17861-6", "1751-7"} == set()
    assert "calcium" in workup["detail"]


def _app_with_site(tmp_path, rules_disabled: str):
    """The service with a site policy for issuer https://ehr.example.org; the calls below
    pass that issuer to run_hook, as the JWT check would."""
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        f"sites:\n  - issuer: https://ehr.example.org\n    rules_disabled: [{rules_disabled}]\n"
    )
    return create_app(
        {
            "env": "development",
            "auth_mode": "disabled",
            "log_level": "ERROR",
            "database_url": f"sqlite:///{tmp_path / 'sites.db'}",
            "patient_id_key": "order-services-test-key-0123456789abcdef",
            "site_policy_file": str(sites),
            "clock": lambda: NOW,
        }
    )


SITE = "https://ehr.example.org"


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_site_that_switches_o1_off_gets_no_draft_card(tmp_path, hook):
    rt = runtime(_app_with_site(tmp_path, "O1"))
    record = [patient(), twitching(), *normal_labs()]

    def request():
        return order_request(hook, record, [med_draft("d-pred", "312615")], encounter=None)

    elsewhere = run_hook(rt, f"lip-twitch-{hook}", request(), issuer="https://other.example.org")
    assert kinds(elsewhere["cards"]) == ["draft-medication-risk:prednisone"]
    at_site = run_hook(rt, f"lip-twitch-{hook}", request(), issuer=SITE)
    assert at_site == {"cards": []}
    rt.store.dispose()


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_site_that_switches_the_work_up_rule_off_gets_only_the_draft_card(tmp_path, hook):
    rt = runtime(_app_with_site(tmp_path, "R2"))
    record = [patient(), twitching()]  # no labs: R2 (missing work-up) fires with O1

    def request():
        return order_request(hook, record, [med_draft("d", "313988")], encounter=None)

    elsewhere = run_hook(rt, f"lip-twitch-{hook}", request(), issuer="https://other.example.org")
    assert kinds(elsewhere["cards"]) == ["draft-medication-risk:furosemide", "lab-workup-missing"]
    at_site = run_hook(rt, f"lip-twitch-{hook}", request(), issuer=SITE)
    assert kinds(at_site["cards"]) == ["draft-medication-risk:furosemide"]
    rt.store.dispose()
