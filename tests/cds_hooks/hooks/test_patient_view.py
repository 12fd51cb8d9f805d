"""patient-view end to end, against the clinical reference (§4 P1-P8, §5 R1-R10, §6, §8).

Each test builds a prefetch with `tests.builders`, posts it to the real app whose clock is
fixed at `NOW`, and checks the cards the reference asks for: kind (source.topic.code),
indicator, orders and the words of the detail.
"""

from __future__ import annotations

import pytest

from cds_hooks.cli import demo
from cds_hooks.conformance import response_problems
from tests import builders as b
from tests.builders import (
    ICD10,
    NOW,
    SNOMED,
    call,
    card,
    complaint,
    finding,
    hook_request,
    kinds,
    med_request,
    med_statement,
    normal_labs,
    observation,
    ordered_codes,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return b.make_app(tmp_path_factory.mktemp("pv")).test_client()


def labs_with(*extra, skip=()):
    """Normal labs except the analytes in `skip`, plus `extra` observations."""
    return [*normal_labs(skip=skip), *extra]


# ------------------------------------------------------------------ discovery, R0, R1


def test_discovery_lists_the_patient_view_service_with_its_templates(client):
    body = client.get("/cds-services").get_json()
    service = next(s for s in body["services"] if s["id"] == "lip-twitch-patient-view")
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert service["prefetch"] == {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "labs": "Observation?patient={{context.patientId}}&category=laboratory"
        "&_sort=-date&_count=200",
        "medRequests": "MedicationRequest?patient={{context.patientId}}&_count=200",
        "medStatements": "MedicationStatement?patient={{context.patientId}}&_count=200",
        "encounter": "Encounter/{{context.encounterId}}",
        "findings": "Observation?patient={{context.patientId}}&category=exam,survey"
        "&_sort=-date&_count=100",
    }


def test_no_complaint_answers_an_empty_card_list_whatever_the_labs(client):
    request = hook_request(
        [finding(SNOMED, "38341003", "Hypertension")],
        labs_with(observation("potassium", 2.0), skip=("potassium",)),
        [med_request()],
    )
    response = client.post(f"/cds-services/{b.SERVICE}", json=request)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_benign_complaint_with_normal_labs_gets_lifestyle_advice_only(client):
    cards = call(client, hook_request())
    assert kinds(cards) == {"lifestyle-advice": "info"}
    detail = cards[0]["detail"]
    assert "seven to nine hours" in detail and "caffeine" in detail


# ------------------------------------------------------------------ R2 missing / stale labs


@pytest.mark.parametrize(
    ("skip", "expected_orders"),
    [
        (("potassium",), ["2823-3"]),
        (("magnesium",), ["19123-9"]),
        (("calcium",), ["17861-6", "1751-7"]),
    ],
)
def test_each_missing_analyte_is_proposed(client, skip, expected_orders):
    cards = call(client, hook_request(labs=labs_with(skip=skip)))
    missing = card(cards, "lab-workup-missing")
    assert missing["indicator"] == "info"
    assert missing["suggestions"][0]["isRecommended"] is True
    assert ordered_codes({"suggestions": missing["suggestions"][:1]}) == expected_orders


def test_calcium_is_satisfied_by_a_fresh_ionized_calcium_alone(client):
    labs = labs_with(observation("ionized", 1.2, "mmol/L"), skip=("calcium", "albumin"))
    cards = call(client, hook_request(labs=labs))
    assert "lab-workup-missing" not in kinds(cards)


def test_stale_results_are_quoted_and_never_judged(client):
    stale_low_k = observation("potassium", 2.9, "mmol/L", days=120)
    cards = call(client, hook_request(labs=labs_with(stale_low_k, skip=("potassium",))))
    assert "hypokalemia-workup" not in kinds(cards)
    missing = card(cards, "lab-workup-missing")
    assert "2.9 mmol/L" in missing["detail"]
    assert "older than 90 days, so not used" in missing["detail"]


def test_optional_tsh_b12_vitamin_d_only_when_none_within_365_days(client):
    labs = [
        observation("magnesium", 2.0, "mg/dL"),
        observation("calcium", 9.4, "mg/dL"),
        observation("albumin", 4.1, "g/dL"),
        observation("tsh", 1.5, "m[IU]/L", days=300),  # within a year: not proposed
        observation("b12", 400, "pg/mL", days=400),  # older: proposed
    ]
    missing = card(call(client, hook_request(labs=labs)), "lab-workup-missing")
    optional = [s for s in missing["suggestions"] if not s["isRecommended"]]
    codes = ordered_codes({"suggestions": optional})
    assert sorted(codes) == ["2132-9", "62292-8"]


def test_unavailable_labs_give_a_data_card_and_never_order_them(client):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "lab system down"}],
    }
    cards = call(client, hook_request(prefetch={"labs": outcome}))
    assert "lab-workup-missing" not in kinds(cards)
    assert kinds(cards)["data-unavailable"] == "info"
    assert "lab system down" in card(cards, "data-unavailable")["detail"]
    for c in cards:
        assert "2823-3" not in ordered_codes(c)


def test_missing_labs_key_without_fhir_server_is_unavailable_not_absent(client):
    cards = call(client, hook_request(prefetch={"labs": "omit"}))
    assert "lab-workup-missing" not in kinds(cards)
    assert "data-unavailable" in kinds(cards)


def test_null_labs_mean_the_patient_has_none(client):
    cards = call(client, hook_request(prefetch={"labs": None}))
    missing = card(cards, "lab-workup-missing")
    assert sorted(ordered_codes({"suggestions": missing["suggestions"][:1]})) == sorted(
        ["2823-3", "19123-9", "17861-6", "1751-7"]
    )


# ------------------------------------------------------------------ R3 potassium


@pytest.mark.parametrize("unit", ["mmol/L", "mEq/L"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [(3.5, None), (3.49, "warning"), (2.5, "warning"), (2.49, "critical")],
)
def test_potassium_edges_in_both_units(client, unit, value, expected):
    labs = labs_with(observation("potassium", value, unit), skip=("potassium",))
    cards = call(client, hook_request(labs=labs))
    assert kinds(cards).get("hypokalemia-workup") == expected
    if expected:
        hypo = card(cards, "hypokalemia-workup")
        assert f"{value:g} {unit}" in hypo["summary"]
        assert ordered_codes(hypo) == ["2823-3", "19123-9"]


def test_lab_reference_range_wins_over_the_default(client):
    k = observation("potassium", 3.6, "mmol/L", ref_low=3.7, ref_high=5.2)
    cards = call(client, hook_request(labs=labs_with(k, skip=("potassium",))))
    assert kinds(cards)["hypokalemia-workup"] == "warning"
    k_ok = observation("potassium", 3.4, "mmol/L", ref_low=3.3, ref_high=5.0)
    cards = call(client, hook_request(labs=labs_with(k_ok, skip=("potassium",))))
    assert "hypokalemia-workup" not in kinds(cards)


def test_critical_card_suppresses_lifestyle_advice(client):
    labs = labs_with(observation("potassium", 2.3, "mmol/L"), skip=("potassium",))
    cards = call(client, hook_request(labs=labs))
    assert kinds(cards)["hypokalemia-workup"] == "critical"
    assert "lifestyle-advice" not in kinds(cards)
    assert "ECG" in card(cards, "hypokalemia-workup")["detail"]


def test_warning_card_keeps_lifestyle_advice(client):
    labs = labs_with(observation("potassium", 3.1, "mmol/L"), skip=("potassium",))
    assert "lifestyle-advice" in kinds(call(client, hook_request(labs=labs)))


# ------------------------------------------------------------------ R4 magnesium


@pytest.mark.parametrize(
    ("value", "unit", "analyte", "expected"),
    [
        (1.70, "mg/dL", "magnesium", None),
        (1.69, "mg/dL", "magnesium", "warning"),
        (1.22, "mg/dL", "magnesium", "warning"),
        (1.21, "mg/dL", "magnesium", "critical"),
        (0.70, "mmol/L", "magnesium_molar", None),
        (0.69, "mmol/L", "magnesium_molar", "warning"),
        (0.50, "mmol/L", "magnesium_molar", "warning"),
        (0.49, "mmol/L", "magnesium_molar", "critical"),
        (1.40, "mEq/L", "magnesium", None),
        (1.39, "mEq/L", "magnesium", "warning"),
        (0.99, "mEq/L", "magnesium", "critical"),
    ],
)
def test_magnesium_edges_in_three_units(client, value, unit, analyte, expected):
    labs = labs_with(observation(analyte, value, unit), skip=("magnesium",))
    assert kinds(call(client, hook_request(labs=labs))).get("hypomagnesemia-workup") == expected


def test_low_magnesium_orders_the_repeat_panel(client):
    labs = labs_with(observation("magnesium", 1.4, "mg/dL"), skip=("magnesium",))
    hypo = card(call(client, hook_request(labs=labs)), "hypomagnesemia-workup")
    assert ordered_codes(hypo) == ["19123-9", "2823-3", "17861-6", "1751-7"]
    assert "leafy greens" in hypo["detail"]


# ------------------------------------------------------------------ R5 calcium


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1.15, "mmol/L", None),
        (1.14, "mmol/L", "warning"),
        (0.80, "mmol/L", "warning"),
        (0.79, "mmol/L", "critical"),
        (4.6, "mg/dL", None),
        (4.5, "mg/dL", "warning"),
    ],
)
def test_ionized_calcium_edges(client, value, unit, expected):
    ica = observation("ionized", value, unit)
    cards = call(client, hook_request(labs=labs_with(ica)))
    assert kinds(cards).get("hypocalcemia-workup") == expected


def test_worked_example_corrected_calcium_is_not_low(client):
    """§1.3: Ca 7.9 mg/dL with albumin 2.8 g/dL -> 8.86 mg/dL, not hypocalcemic."""
    labs = labs_with(
        observation("calcium", 7.9, "mg/dL"),
        observation("albumin", 2.8, "g/dL"),
        skip=("calcium", "albumin"),
    )
    cards = call(client, hook_request(labs=labs))
    assert "hypocalcemia-workup" not in kinds(cards)


def test_corrected_calcium_low_shows_the_formula_and_asks_for_ionized(client):
    labs = labs_with(
        observation("calcium", 7.5, "mg/dL"),
        observation("albumin", 3.6, "g/dL"),
        skip=("calcium", "albumin"),
    )
    hypo = card(call(client, hook_request(labs=labs)), "hypocalcemia-workup")
    assert hypo["indicator"] == "warning"
    assert "7.82" in hypo["detail"]  # 7.5 + 0.8 x 0.4
    codes = ordered_codes(hypo)
    assert {"2731-8", "19123-9", "62292-8", "2777-1", "1995-0"} <= set(codes)


@pytest.mark.parametrize(
    ("calcium", "expected"), [(7.0, "warning"), (6.99, "critical"), (8.5, None), (8.49, "warning")]
)
def test_corrected_calcium_edges_with_normal_albumin(client, calcium, expected):
    labs = labs_with(
        observation("calcium", calcium, "mg/dL"),
        observation("albumin", 4.0, "g/dL"),
        skip=("calcium", "albumin"),
    )
    assert kinds(call(client, hook_request(labs=labs))).get("hypocalcemia-workup") == expected


@pytest.mark.parametrize(
    ("calcium", "albumin", "expected"),
    [
        (2.12, 40, None),  # low is < 2.12 mmol/L (§1.3)
        (2.11, 40, "warning"),
        (1.97, 33, "warning"),  # 1.97 + 0.02 x (40 - 33) = 2.11
        (2.00, 30, None),  # 2.00 + 0.02 x 10 = 2.20
        (1.74, 40, "critical"),  # < 1.75 mmol/L
    ],
)
def test_si_calcium_and_albumin_in_g_per_l(client, calcium, albumin, expected):
    labs = labs_with(
        observation("calcium_molar", calcium, "mmol/L"),
        observation("albumin", albumin, "g/L"),
        skip=("calcium", "albumin"),
    )
    assert kinds(call(client, hook_request(labs=labs))).get("hypocalcemia-workup") == expected


@pytest.mark.parametrize(("albumin_days", "paired"), [(3 + 7, True), (3 + 8, False)])
def test_albumin_pairs_within_seven_days(client, albumin_days, paired):
    labs = labs_with(
        observation("calcium", 8.2, "mg/dL", days=3),
        observation("albumin", 3.0, "g/dL", days=albumin_days),
        skip=("calcium", "albumin"),
    )
    cards = call(client, hook_request(labs=labs))
    # paired: 8.2 + 0.8 = 9.0, normal; unpaired: 8.2 uncorrected, low and said so
    if paired:
        assert "hypocalcemia-workup" not in kinds(cards)
    else:
        hypo = card(cards, "hypocalcemia-workup")
        assert "uncorrected" in hypo["detail"]


def test_ionized_calcium_wins_over_total(client):
    labs = labs_with(
        observation("calcium", 7.0, "mg/dL"),
        observation("ionized", 1.20, "mmol/L"),
        skip=("calcium",),
    )
    assert "hypocalcemia-workup" not in kinds(call(client, hook_request(labs=labs)))
    labs = labs_with(observation("ionized", 1.05, "mmol/L"))  # total Ca 9.4 is normal
    hypo = card(call(client, hook_request(labs=labs)), "hypocalcemia-workup")
    assert "ionized" in hypo["summary"]
    assert "1995-0" not in ordered_codes(hypo)


# ------------------------------------------------------------------ R6 hypoparathyroidism


def test_hypoparathyroidism_with_normal_calcium_is_info(client):
    conditions = [complaint(), finding(ICD10, "E20.9", "Hypoparathyroidism")]
    cards = call(client, hook_request(conditions))
    assert kinds(cards)["hypoparathyroidism-calcium-check"] == "info"


def test_hypoparathyroidism_without_calcium_is_warning(client):
    conditions = [complaint(), finding(SNOMED, "36976004", "Hypoparathyroidism")]
    labs = normal_labs(skip=("calcium", "albumin"))
    cards = call(client, hook_request(conditions, labs))
    check = card(cards, "hypoparathyroidism-calcium-check")
    assert check["indicator"] == "warning"
    assert "1995-0" in ordered_codes(check)


def test_hypoparathyroidism_with_low_calcium_is_warning(client):
    conditions = [complaint(), finding(ICD10, "E89.2", "Postprocedural hypoparathyroidism")]
    labs = labs_with(observation("ionized", 1.0, "mmol/L"))
    cards = call(client, hook_request(conditions, labs))
    assert kinds(cards)["hypoparathyroidism-calcium-check"] == "warning"
    assert kinds(cards)["hypocalcemia-workup"] == "warning"


# ------------------------------------------------------------------ R7 medications


@pytest.mark.parametrize(
    ("started_before_onset", "expected"), [(0, "warning"), (30, "warning"), (31, "info")]
)
def test_seed_medication_timing_against_onset(client, started_before_onset, expected):
    onset = 40
    conditions = [complaint(onset_days=onset)]
    meds = [med_request(authored_days=onset + started_before_onset)]
    cards = call(client, hook_request(conditions, med_requests=meds))
    assert kinds(cards)["medication-side-effect:sertraline"] == expected


@pytest.mark.parametrize(("started", "expected"), [(30, "warning"), (31, "info")])
def test_unknown_onset_uses_the_evaluation_time(client, started, expected):
    conditions = [complaint(onset_days=None)]
    meds = [med_request(authored_days=started)]
    cards = call(client, hook_request(conditions, med_requests=meds))
    assert kinds(cards)["medication-side-effect:sertraline"] == expected


@pytest.mark.parametrize(
    ("code", "system", "text", "slug"),
    [
        ("36437", b.RXNORM, None, "sertraline"),  # ingredient
        ("312941", b.RXNORM, None, "sertraline"),  # SCD product
        ("312941", "urn:oid:2.16.840.1.113883.6.88", None, "sertraline"),  # OID system
        (None, b.RXNORM, "Zoloft 50 mg tablet", "sertraline"),  # brand text
        (None, b.RXNORM, "Sudafed PE 10 mg", "phenylephrine"),
        (None, b.RXNORM, "Sudafed 30 mg", "pseudoephedrine"),
        ("999999", b.RXNORM, "Medrol Dosepak 4 mg", "methylprednisolone"),
    ],
)
def test_medication_matching(client, code, system, text, slug):
    meds = [med_request(code, text, system=system)]
    cards = call(client, hook_request(med_requests=meds))
    assert f"medication-side-effect:{slug}" in kinds(cards)
    assert len([k for k in kinds(cards) if k.startswith("medication-side-effect")]) == 1


def test_adderall_gives_two_cards(client):
    cards = call(client, hook_request(med_requests=[med_request(None, "Adderall XR 20 mg")]))
    assert {"medication-side-effect:amphetamine", "medication-side-effect:dextroamphetamine"} <= (
        set(kinds(cards))
    )


def test_inhaled_corticosteroid_is_excluded(client):
    meds = [
        med_request(None, "hydrocortisone cream 1%"),
        med_request(None, "prednisone", route="inhalation"),
    ]
    cards = call(client, hook_request(med_requests=meds))
    assert not [k for k in kinds(cards) if k.startswith("medication-side-effect")]


def test_request_and_statement_for_the_same_drug_give_one_card(client):
    cards = call(
        client,
        hook_request(med_requests=[med_request()], med_statements=[med_statement()]),
    )
    assert [k for k in kinds(cards) if k.startswith("medication")] == [
        "medication-side-effect:sertraline"
    ]


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("active", True),
        ("on-hold", True),
        ("stopped", False),
        ("cancelled", False),
        ("entered-in-error", False),
        ("completed", False),
        ("draft", False),
    ],
)
def test_medication_request_statuses(client, status, counted):
    cards = call(client, hook_request(med_requests=[med_request(status=status)]))
    assert ("medication-side-effect:sertraline" in kinds(cards)) is counted


@pytest.mark.parametrize(
    ("status", "counted"),
    [("active", True), ("intended", True), ("not-taken", False), ("completed", False)],
)
def test_medication_statement_statuses(client, status, counted):
    cards = call(client, hook_request(med_statements=[med_statement(status=status)]))
    assert ("medication-side-effect:sertraline" in kinds(cards)) is counted


def test_contained_and_referenced_medication(client):
    contained = med_request(medication=b.medication("8640", "prednisone", "m1"))
    assert "medication-side-effect:prednisone" in kinds(
        call(client, hook_request(med_requests=[contained]))
    )
    referenced = med_request(reference="Medication/m2")
    bundle = b.searchset([referenced, b.medication(None, "Zyprexa 5 mg", "m2")])
    cards = call(client, hook_request(prefetch={"medRequests": bundle}))
    assert "medication-side-effect:olanzapine" in kinds(cards)


# ------------------------------------------------------------------ R8 depleting drugs


def test_depleting_drug_with_normal_electrolytes_is_info(client):
    cards = call(client, hook_request(med_requests=[med_request("4603", "furosemide 40 mg")]))
    assert kinds(cards)["electrolyte-depleting-medication:furosemide"] == "info"


def test_depleting_drug_with_low_potassium_is_warning(client):
    labs = labs_with(observation("potassium", 3.2, "mmol/L"), skip=("potassium",))
    meds = [med_request("5487", "hydrochlorothiazide 25 mg")]
    cards = call(client, hook_request(labs=labs, med_requests=meds))
    assert kinds(cards)["electrolyte-depleting-medication:hydrochlorothiazide"] == "warning"


def test_ppi_is_judged_on_magnesium_only(client):
    labs = labs_with(observation("potassium", 3.2, "mmol/L"), skip=("potassium",))
    meds = [med_request("7646", "omeprazole 20 mg")]
    cards = call(client, hook_request(labs=labs, med_requests=meds))
    assert kinds(cards)["electrolyte-depleting-medication:omeprazole"] == "info"
    labs = labs_with(observation("magnesium", 1.5, "mg/dL"), skip=("magnesium",))
    cards = call(client, hook_request(labs=labs, med_requests=meds))
    assert kinds(cards)["electrolyte-depleting-medication:omeprazole"] == "warning"


# ------------------------------------------------------------------ R9 red flags


RED_FLAGS = [
    # (system, code, text, severity)
    (ICD10, "R29.810", "Facial weakness", "critical"),
    (SNOMED, "280816001", "Facial palsy", "critical"),
    (None, None, "Right-sided facial droop", "critical"),
    (ICD10, "R47.81", "Slurred speech", "critical"),
    (SNOMED, "8011004", "Dysarthria", "critical"),
    (None, None, "Difficulty speaking since Monday", "critical"),
    (ICD10, "R13.12", "Dysphagia, oropharyngeal phase", "critical"),
    (None, None, "Trouble swallowing solids", "critical"),
    (ICD10, "M62.81", "Muscle weakness (generalized)", "warning"),
    (SNOMED, "713514005", "Limb muscle weakness", "warning"),
    (ICD10, "R20.2", "Paresthesia of skin", "warning"),
    (None, None, "Numbness of the chin", "warning"),
    (ICD10, "H53.2", "Diplopia", "warning"),
    (None, None, "Blurred vision", "warning"),
    (ICD10, "G50.1", "Atypical facial pain", "warning"),
    (None, None, "Twitch triggered when chewing", "warning"),
    (None, None, "Twitching has spread to the eyelid", "warning"),
]


@pytest.mark.parametrize(("system", "code", "text", "severity"), RED_FLAGS)
def test_each_red_flag(client, system, code, text, severity):
    conditions = [complaint(), finding(system, code, text)]
    cards = call(client, hook_request(conditions))
    assert kinds(cards)["neurology-referral-red-flag"] == severity
    assert "lifestyle-advice" not in kinds(cards)
    referral = card(cards, "neurology-referral-red-flag")
    assert "3457005" in ordered_codes(referral)


@pytest.mark.parametrize(
    "text", ["No facial droop", "Denies dysphagia", "without slurred speech", "not numb"]
)
def test_negated_text_is_not_a_red_flag(client, text):
    cards = call(client, hook_request([complaint(note=text), finding(None, None, text)]))
    assert "neurology-referral-red-flag" not in kinds(cards)


def test_one_red_flag_card_lists_every_trigger_at_the_highest_severity(client):
    conditions = [
        complaint(onset_days=60),
        finding(ICD10, "R20.2", "Tingling of the lip"),
        finding(ICD10, "R47.81", "Slurred speech"),
        finding(None, None, "Blurred vision"),
    ]
    cards = call(client, hook_request(conditions))
    referrals = [c for c in cards if c["source"]["topic"]["code"] == "neurology-referral-red-flag"]
    assert len(referrals) == 1
    referral = referrals[0]
    assert referral["indicator"] == "critical"
    for label in ("Numbness or tingling", "Slurred speech", "Vision changes", "four weeks"):
        assert label in referral["detail"]


@pytest.mark.parametrize(("days", "persistent"), [(28, False), (29, True)])
def test_persistence_over_28_days(client, days, persistent):
    cards = call(client, hook_request([complaint(onset_days=days)]))
    assert ("neurology-referral-red-flag" in kinds(cards)) is persistent
    if persistent:
        assert kinds(cards)["neurology-referral-red-flag"] == "warning"


def test_pediatric_referral_wording(client):
    request = hook_request(
        [complaint(), finding(None, None, "Facial droop")],
        pat=b.patient(b.born_years_ago(10)),
    )
    referral = card(call(client, request), "neurology-referral-red-flag")
    texts = [a["resource"]["code"]["text"] for s in referral["suggestions"] for a in s["actions"]]
    assert "Referral to pediatric neurology" in texts


def test_adult_referral_wording(client):
    referral = card(
        call(client, hook_request([complaint(), finding(None, None, "Facial droop")])),
        "neurology-referral-red-flag",
    )
    texts = [a["resource"]["code"]["text"] for s in referral["suggestions"] for a in s["actions"]]
    assert "Referral to neurology" in texts


def test_red_flag_and_electrolyte_cards_co_fire(client):
    labs = labs_with(
        observation("potassium", 3.1, "mmol/L"),
        observation("magnesium", 1.5, "mg/dL"),
        observation("ionized", 1.0, "mmol/L"),
        skip=("potassium", "magnesium"),
    )
    conditions = [complaint(), finding(ICD10, "M62.81", "Muscle weakness")]
    got = kinds(call(client, hook_request(conditions, labs)))
    assert {
        "neurology-referral-red-flag",
        "hypokalemia-workup",
        "hypomagnesemia-workup",
        "hypocalcemia-workup",
    } <= set(got)
    assert "lifestyle-advice" not in got


# ------------------------------------------------------------------ R10 known conditions


def test_known_conditions_one_card_and_red_flags_still_fire(client):
    conditions = [
        complaint(),
        finding(SNOMED, "49049000", "Parkinson's disease"),
        finding(ICD10, "G12.21", "ALS"),
        finding(ICD10, "R47.1", "Dysarthria"),
    ]
    cards = call(client, hook_request(conditions))
    known = card(cards, "known-neurologic-condition")
    assert known["indicator"] == "info"
    assert "Parkinson" in known["summary"] and "Amyotrophic" in known["summary"]
    assert kinds(cards)["neurology-referral-red-flag"] == "critical"
    assert "lifestyle-advice" not in kinds(cards)


@pytest.mark.parametrize(
    ("system", "code"),
    [(ICD10, "G20"), (ICD10, "F95.2"), (SNOMED, "193093009"), (ICD10, "G51.0")],
)
def test_known_condition_suppresses_lifestyle(client, system, code):
    cards = call(client, hook_request([complaint(), finding(system, code, "Known")]))
    assert kinds(cards).get("known-neurologic-condition") == "info"
    assert "lifestyle-advice" not in kinds(cards)


# ------------------------------------------------------------------ P-rules end to end


def test_unknown_unit_is_unusable_and_said(client):
    k = observation("potassium", 4.0, "furlongs")
    missing = card(
        call(client, hook_request(labs=labs_with(k, skip=("potassium",)))), "lab-workup-missing"
    )
    assert "furlongs" in missing["detail"]
    assert "potassium" in missing["summary"]


def test_preliminary_result_is_used_and_said(client):
    k = observation("potassium", 3.2, "mmol/L", status="preliminary")
    hypo = card(
        call(client, hook_request(labs=labs_with(k, skip=("potassium",)))), "hypokalemia-workup"
    )
    assert "preliminary" in hypo["detail"]


def test_pediatric_calcium_without_range_is_not_judged_and_said(client):
    labs = labs_with(observation("calcium", 7.5, "mg/dL"), skip=("calcium",))
    request = hook_request(labs=labs, pat=b.patient(b.born_years_ago(17)))
    cards = call(client, request)
    assert "hypocalcemia-workup" not in kinds(cards)
    assert any("was not judged" in c["detail"] for c in cards)


def test_pediatric_potassium_uses_adult_default(client):
    labs = labs_with(observation("potassium", 3.3, "mmol/L"), skip=("potassium",))
    request = hook_request(labs=labs, pat=b.patient(b.born_years_ago(10)))
    assert kinds(call(client, request))["hypokalemia-workup"] == "warning"


def test_adult_at_18_is_judged_by_default(client):
    labs = labs_with(observation("calcium", 7.5, "mg/dL"), skip=("calcium",))
    request = hook_request(labs=labs, pat=b.patient(b.born_years_ago(18)))
    assert "hypocalcemia-workup" in kinds(call(client, request))


# ------------------------------------------------------------------ demo patients


DEMO_EXPECTED = {
    "benign-twitch-normal-labs": {"lifestyle-advice": "info"},
    "facial-droop": {"neurology-referral-red-flag": "critical"},
    "low-calcium-low-albumin": {"lifestyle-advice": "info"},  # 8.86 corrected: not low
    "low-magnesium-mgdl": {"hypomagnesemia-workup": "warning", "lifestyle-advice": "info"},
    "low-potassium-meq": {"hypokalemia-workup": "warning", "lifestyle-advice": "info"},
    "no-complaint": {},
    "pediatric-twitch": {"hypocalcemia-workup": "warning", "lifestyle-advice": "info"},
    "ssri-started-before-twitch": {
        "medication-side-effect:sertraline": "warning",
        "lifestyle-advice": "info",
    },
    "stale-labs": {"lab-workup-missing": "info", "lifestyle-advice": "info"},
    # §7b: "Denies facial weakness, slurred speech, dysphagia. Facial droop: none" flags nothing
    "negated-red-flag": {"lifestyle-advice": "info"},
    # §7b P9: no twitch on the problem list, the visit's reason names it
    "visit-reason-twitch": {"lifestyle-advice": "info"},
    # §7b P10: facial droop recorded as an exam Observation (present), slurred speech absent
    "exam-facial-droop": {"neurology-referral-red-flag": "critical"},
    # §7b P11: potassium "<2.5 mmol/L" is critical, and no "usually harmless" card
    "potassium-below-2-5": {"hypokalemia-workup": "critical"},
}


def test_every_demo_patient_has_an_expectation():
    assert set(demo.list_demos()) == set(DEMO_EXPECTED)


@pytest.mark.parametrize("name", sorted(DEMO_EXPECTED))
def test_demo_patient(client, name):
    request = demo.hook_request(demo.load_demo(name, NOW))
    response = client.post(f"/cds-services/{b.SERVICE}", json=request)
    assert response.status_code == 200
    body = response.get_json()
    assert kinds(body["cards"]) == DEMO_EXPECTED[name]
    assert response_problems(body) == []


def test_known_condition_card_carries_the_seed_note_for_each_condition(client):
    conditions = [complaint(), finding(ICD10, "G51.0", "Bell's palsy, left")]
    known = card(call(client, hook_request(conditions)), "known-neurologic-condition")
    assert "physical therapy or steroids" in known["detail"]
    assert "botulinum" not in known["detail"]  # the hemifacial-spasm note is not shown
