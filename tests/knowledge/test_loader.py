"""Loading the knowledge base: the packaged data, spot checks against the reference, faults."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge import KnowledgeError, load_knowledge_base
from knowledge.codes import ICD10CM, LOINC, SNOMED, matches
from knowledge.describe import describe_rules, format_rule_listing

PACKAGED = Path(str(resources.files("knowledge") / "data"))


# --- the packaged knowledge base -------------------------------------------------------


@pytest.mark.skipif(not (PACKAGED / "rules.yaml").exists(), reason="no packaged rules.yaml yet")
def test_packaged_knowledge_base_loads():
    kb = load_knowledge_base()
    assert kb.version
    assert kb.rules


def test_identity(kb_with_test_rules):
    assert kb_with_test_rules.label == "Lip Twitch CDS"
    assert kb_with_test_rules.topic_system == "https://lip-twitch-cds.example.org/card-kind"
    assert kb_with_test_rules.version == "2026.11.0"


def test_counts(kb_with_test_rules):
    assert set(kb_with_test_rules.analytes) == {
        "potassium", "magnesium", "calcium_total", "calcium_corrected", "calcium_ionized",
        "albumin", "pth", "tsh", "b12", "vitamin_d", "ck", "phosphate",
    }
    assert len(kb_with_test_rules.thresholds) == 16
    assert [f.key for f in kb_with_test_rules.red_flags] == [
        "facial-weakness", "slurred-speech", "dysphagia", "spreading", "limb-weakness",
        "numbness", "vision-changes", "facial-pain", "chewing-trigger", "persistent",
    ]
    assert [c.key for c in kb_with_test_rules.known_conditions] == [
        "als", "parkinsons", "tourette", "bells-palsy", "hemifacial-spasm",
    ]
    assert len(kb_with_test_rules.ingredients) == 46  # 31 seed-class (§3.1) + 15 depleting (§3.2)
    assert len(kb_with_test_rules.products) == 36  # 29 SCDs (§3.3) + 7 combination brands
    assert len(kb_with_test_rules.orders) == 14
    assert list(kb_with_test_rules.services) == [
        "lip-twitch-patient-view", "lip-twitch-order-select", "lip-twitch-order-sign",
    ]


def test_loinc_index_covers_every_reference_code(kb_with_test_rules):
    expected = {
        "2823-3": "potassium", "6298-4": "potassium",
        "19123-9": "magnesium", "2601-3": "magnesium",
        "17861-6": "calcium_total", "2000-8": "calcium_total",
        "29265-6": "calcium_corrected",
        "1994-3": "calcium_ionized", "1995-0": "calcium_ionized",
        "17864-0": "calcium_ionized", "17863-2": "calcium_ionized",
        "1751-7": "albumin", "2731-8": "pth", "3016-3": "tsh", "2132-9": "b12",
        "62292-8": "vitamin_d", "14635-7": "vitamin_d", "2157-6": "ck", "2777-1": "phosphate",
    }
    assert kb_with_test_rules.loinc_index == expected


def test_unit_factors(kb_with_test_rules):
    analytes = kb_with_test_rules.analytes
    assert analytes["magnesium"].units == {"mmol/L": 1, "mg/dL": 0.4114, "meq/L": 0.5}
    assert analytes["calcium_total"].units == {"mg/dL": 1, "mmol/L": 4.008, "meq/L": 2.004}
    assert analytes["calcium_corrected"].canonical_unit == "mg/dL"
    assert analytes["calcium_ionized"].units == {"mmol/L": 1, "mg/dL": 0.2495, "meq/L": 0.5}
    assert analytes["potassium"].units["meq/L"] == 1
    assert analytes["potassium"].units["mg/dL"] == pytest.approx(1 / 3.91, rel=1e-4)
    assert analytes["albumin"].units == {"g/dL": 1, "g/L": 0.1}
    assert kb_with_test_rules.analytes["tsh"].units == {"m[IU]/L": 1, "u[IU]/mL": 1}


@pytest.mark.parametrize(("name", "default", "unit", "policy"), [
    ("freshness_days", 90, "days", True),
    ("recent_start_days", 30, "days", True),
    ("persistence_days", 28, "days", True),
    ("albumin_pairing_days", 7, "days", True),
    ("optional_workup_lookback_days", 365, "days", True),
    ("adult_age_years", 18, "years", False),
    ("potassium_low", 3.5, "mmol/L", False),
    ("potassium_critical_low", 2.5, "mmol/L", False),
    ("magnesium_low", 0.70, "mmol/L", False),
    ("magnesium_critical_low", 0.50, "mmol/L", True),
    ("calcium_corrected_low", 8.5, "mg/dL", False),
    ("calcium_corrected_critical_low", 7.0, "mg/dL", True),
    ("calcium_ionized_low", 1.15, "mmol/L", False),
    ("calcium_ionized_critical_low", 0.80, "mmol/L", True),
])
def test_thresholds(kb_with_test_rules, name, default, unit, policy):
    threshold = kb_with_test_rules.thresholds[name]
    assert (threshold.default, threshold.unit, threshold.policy) == (default, unit, policy)
    assert threshold.minimum <= threshold.default <= threshold.maximum
    assert threshold.source in kb_with_test_rules.sources


@pytest.mark.parametrize(("system", "code", "expected"), [
    (SNOMED, "82470000", True),
    (SNOMED, "32402008", True),
    (SNOMED, "1070000", True),
    (SNOMED, "13753008", True),
    ("urn:oid:2.16.840.1.113883.6.90", "R25.3", True),
    (ICD10CM, "G51.4", True),
    (ICD10CM, "G51.31", True),
    (ICD10CM, "G5139", True),
    (ICD10CM, "R25.2", False),  # cramp and spasm: too broad (§2)
    (ICD10CM, "F95.1", False),  # tics count only with lip/face text
])
def test_complaint_codes(kb_with_test_rules, system, code, expected):
    assert any(matches(m, system, code) for m in kb_with_test_rules.complaint.codes) is expected


def test_complaint_text(kb_with_test_rules):
    complaint = kb_with_test_rules.complaint
    assert "lip twitch*" in complaint.phrases and "fascicul*" in complaint.movement
    assert "lip" in complaint.site and "jaw" not in complaint.site
    assert kb_with_test_rules.terms.affirmed("complaint", ["Lip Twitching for 2 weeks"])
    assert kb_with_test_rules.terms.affirmed("complaint", ["Fasciculations of the upper LIP"])
    assert not kb_with_test_rules.terms.affirmed("complaint", ["ticket to the lip clinic"])
    assert any(matches(m, ICD10CM, "F95.0") for m in complaint.codes_needing_text)


def test_red_flags(kb_with_test_rules):
    flags = {f.key: f for f in kb_with_test_rules.red_flags}
    assert {k for k, f in flags.items() if f.severity == "critical"} == {
        "facial-weakness", "slurred-speech", "dysphagia"}
    assert any(matches(m, ICD10CM, "R13.12") for m in flags["dysphagia"].codes)
    assert any(matches(m, ICD10CM, "R20.2") for m in flags["numbness"].codes)
    assert any(matches(m, ICD10CM, "H53.2") for m in flags["vision-changes"].codes)
    assert "facial droop*" in flags["facial-weakness"].text  # the terms, for people to read
    assert kb_with_test_rules.terms.affirmed("red-flag:facial-weakness", ["Right facial DROOP"])
    assert kb_with_test_rules.terms.affirmed("red-flag:slurred-speech", ["difficulty speaking"])
    assert flags["persistent"].codes == () and flags["persistent"].text == ()
    # narrowed ranges (§7b): no amblyopia, no hyperesthesia
    assert not any(matches(m, ICD10CM, "H53.01") for m in flags["vision-changes"].codes)
    assert not any(matches(m, ICD10CM, "R20.3") for m in flags["numbness"].codes)
    assert all(any(matches(m, ICD10CM, c) for m in flags["vision-changes"].codes)
               for c in ("H53.10", "H53.2", "H53.40", "H53.8", "H53.9"))
    assert all(any(matches(m, ICD10CM, c) for m in flags["numbness"].codes)
               for c in ("R20.0", "R20.1", "R20.2", "R20.9"))
    assert all(f.citations for f in kb_with_test_rules.red_flags)


def test_known_conditions_and_hypoparathyroidism(kb_with_test_rules):
    parkinsons = next(c for c in kb_with_test_rules.known_conditions if c.key == "parkinsons")
    for code in ("G20", "G20.A1", "G20.C"):
        assert any(matches(m, ICD10CM, code) for m in parkinsons.codes)
    hypo = kb_with_test_rules.hypoparathyroidism
    for code in ("E20.0", "E20.815", "E89.2"):
        assert any(matches(m, ICD10CM, code) for m in hypo.codes)
    assert not any(matches(m, ICD10CM, "E20.8") for m in hypo.codes)
    assert all(m.display for c in kb_with_test_rules.known_conditions for m in c.codes)


def test_medications(kb_with_test_rules):
    assert kb_with_test_rules.rxnorm_index["36437"] == ("sertraline",)
    assert kb_with_test_rules.rxnorm_index["312941"] == ("sertraline",)  # SCD -> ingredient (§3.3)
    assert kb_with_test_rules.rxnorm_index["1091392"] == ("methylphenidate",)
    assert kb_with_test_rules.ingredients["metolazone"].rxnorm is None
    assert kb_with_test_rules.ingredients["indapamide"].drug_class == "thiazide-diuretic"
    assert "Sudafed PE" in kb_with_test_rules.ingredients["phenylephrine"].names
    assert "Sudafed" in kb_with_test_rules.ingredients["pseudoephedrine"].names
    adderall = next(p for p in kb_with_test_rules.products if p.name == "Adderall")
    assert adderall.rxnorm is None
    assert adderall.ingredients == ("amphetamine", "dextroamphetamine")
    assert kb_with_test_rules.drug_classes["systemic-corticosteroid"].systemic_only
    assert kb_with_test_rules.drug_classes["ppi"].depletes == ("magnesium",)
    assert kb_with_test_rules.drug_classes["loop-diuretic"].group == "depleting"
    assert kb_with_test_rules.route_exclusions.search("fluticasone NASAL spray")


def test_orders(kb_with_test_rules):
    potassium = kb_with_test_rules.orders["lab-potassium"]
    assert potassium.coding.system == LOINC and potassium.coding.code == "2823-3"
    assert potassium.coding.display == "Potassium [Moles/volume] in Serum or Plasma"
    referral = kb_with_test_rules.orders["referral-neurology"]
    assert (referral.coding.system, referral.coding.code) == (SNOMED, "3457005")
    assert referral.pediatric_text == "Referral to pediatric neurology"
    assert kb_with_test_rules.orders["nerve-conduction-study"].coding is None


def test_service(kb_with_test_rules):
    service = kb_with_test_rules.services["lip-twitch-patient-view"]
    assert service.hook == "patient-view"
    assert set(service.prefetch) == {"patient", "conditions", "labs", "medRequests",
                                     "medStatements", "encounter", "findings"}
    assert service.required_prefetch == ("conditions",)


def test_name_patterns(kb_with_test_rules):
    def named(key: str, text: str) -> bool:
        return kb_with_test_rules.terms.mentions(f"analyte:{key}", [text])

    assert named("magnesium", "Serum Mg") and not named("magnesium", "Calcium mg/dL")
    assert named("calcium_total", "Calcium, serum")
    assert not named("calcium_total", "Calcium, ionized")
    assert named("calcium_ionized", "Ionised calcium (whole blood)")
    assert not named("calcium_ionized", "Calcium, serum")
    assert not named("albumin", "Urine microalbumin")
    assert kb_with_test_rules.analytes["magnesium"].name_pattern == ("magnesium", "Mg")
    assert "urine" in kb_with_test_rules.analytes["albumin"].name_exclude


def test_source_titles_speak_of_the_source(kb_with_test_rules):
    # Card "Sources" lines print these titles; this one used to say where it did not come from.
    title = kb_with_test_rules.sources["clinical-pharmacology"].title
    assert title == (
        "Clinical pharmacology of diuretics and proton-pump inhibitors (established drug effects)"
    )


def test_rule_listing(kb_with_test_rules):
    described = describe_rules(kb_with_test_rules)
    assert [r["id"] for r in described] == ["R1", "R3", "R9"]
    assert described[2]["enabled"] is False
    assert described[0]["citations"][0]["title"].startswith("Seed article 000")
    listing = format_rule_listing(kb_with_test_rules)
    assert "R9  neurology-referral-red-flag  (disabled)" in listing
    assert '"Slurred speech"' in listing


# --- broken files ----------------------------------------------------------------------


def _edit(directory: Path, name: str, change: Callable[[Any], None]) -> None:
    path = directory / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _set(*path: Any) -> Callable[[Any], None]:
    """A change that sets the value at `path[:-1]` to `path[-1]`."""
    *keys, last, value = path

    def change(data: Any) -> None:
        for key in keys:
            data = data[key]
        data[last] = value
    return change


def _delete(*path: Any) -> Callable[[Any], None]:
    *keys, last = path

    def change(data: Any) -> None:
        for key in keys:
            data = data[key]
        del data[last]
    return change


def _both(*changes: Callable[[Any], None]) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for one in changes:
            one(data)
    return change


BREAKAGES = [
    pytest.param("analytes.yaml", _set("analytes", "magnesium", "units", "mg/dL", -0.4114),
                 "analytes.yaml: analytes.magnesium.units.mg/dL: must be greater than 0",
                 id="negative-factor"),
    pytest.param("thresholds.yaml", _set("thresholds", "magnesium_low", "default", 0.9),
                 "thresholds.yaml: thresholds.magnesium_low.default: 0.9 is outside its bounds",
                 id="default-out-of-bounds"),
    pytest.param("orders.yaml", _set("orders", "lab-potassium", "colour", "blue"),
                 "orders.yaml: orders.lab-potassium.colour: unknown field",
                 id="unknown-field"),
    pytest.param("medications.yaml", _set("ingredients", 0, "class", "steroid"),
                 "medications.yaml: ingredients[0].class: unknown class 'steroid'",
                 id="unknown-drug-class"),
    pytest.param("rules.yaml", _set("rules", 1, "suggestions", 0, "orders", ["lab-sodium"]),
                 "rules.yaml: rules[1].suggestions[0].orders[0]: unknown order 'lab-sodium'",
                 id="unknown-order"),
    pytest.param("conditions.yaml", _set("red_flags", 0, "citations", 0, "source", "seed-999"),
                 "conditions.yaml: red_flags[0].citations[0].source: unknown source 'seed-999'",
                 id="unknown-source"),
    pytest.param("rules.yaml", _set("rules", 0, "summary", "info", "x" * 140),
                 "rules.yaml: rules[0].summary.info: must be 1 to 139 characters long",
                 id="summary-too-long"),
    pytest.param("rules.yaml", _set("rules", 0, "detail", "Sleep <b>more</b>"),
                 "rules.yaml: rules[0].detail: raw HTML is not allowed",
                 id="html-in-detail"),
    pytest.param("rules.yaml", _set("rules", 0, "suppressed_by", ["red-flags"]),
                 "rules.yaml: rules[0].suppressed_by[0]: 'red-flags' is neither a rule kind",
                 id="unknown-suppressor"),
    pytest.param("conditions.yaml", _set("complaint", "movement", "(twitch|spasm"),
                 "conditions.yaml: complaint.movement: unknown field",
                 id="regex-not-here"),
    pytest.param("terms.yaml", _set("red_flags", "dysphagia", "phrases", ["dysphag.*"]),
                 "terms.yaml: red_flags.dysphagia.phrases[0]: 'dysphag.*' holds characters",
                 id="bad-term"),
    pytest.param("terms.yaml", _set("red_flags", "drooling", {"phrases": ["drool*"]}),
                 "terms.yaml: red_flags.drooling: no such id in conditions.yaml",
                 id="terms-for-unknown-flag"),
    pytest.param("conditions.yaml", _set("red_flags", 0, "severity", "urgent"),
                 "conditions.yaml: red_flags[0].severity: must be one of",
                 id="bad-severity"),
    pytest.param("analytes.yaml", _delete("analytes", "phosphate"),
                 "analytes.yaml: analytes: 'phosphate' is required",
                 id="missing-analyte"),
    pytest.param("analytes.yaml", _delete("unit_aliases", "mg/dl"),
                 "analytes.yaml: analytes.potassium.units.mg/dL: unit_aliases must map",
                 id="missing-unit-alias"),
    pytest.param("thresholds.yaml", _set("thresholds", "potassium_critical_low", "default", 3.6),
                 "thresholds.yaml: thresholds.potassium_critical_low.default: 3.6 is outside",
                 id="critical-out-of-bounds"),
    pytest.param("thresholds.yaml",
                 _both(_set("thresholds", "magnesium_low", "default", 0.55),
                       _set("thresholds", "magnesium_critical_low", "default", 0.6)),
                 "thresholds.yaml: thresholds.magnesium_critical_low.default: must be below "
                 "magnesium_low", id="critical-not-below-low"),
    pytest.param("medications.yaml", _set("products", 0, "ingredients", ["zoloft"]),
                 "medications.yaml: products[0].ingredients[0]: unknown ingredient 'zoloft'",
                 id="unknown-product-ingredient"),
    pytest.param("services.yaml", _set("services", 0, "required_prefetch", ["appointments"]),
                 "services.yaml: services[0].required_prefetch: 'appointments' is not a prefetch",
                 id="required-prefetch-not-declared"),
    pytest.param("orders.yaml", _set("orders", "lab-tsh", "coding", "code", "3016"),
                 "orders.yaml: orders.lab-tsh.coding.code: not a valid loinc code",
                 id="malformed-loinc"),
    pytest.param("analytes.yaml", _set("analytes", "potassium", "loinc", "2823-3x", "K"),
                 "analytes.yaml: analytes.potassium.loinc.2823-3x (key): not a LOINC code",
                 id="malformed-loinc-key"),
    pytest.param("kb.yaml", _delete("label"),
                 "kb.yaml: label: missing data for required field",
                 id="missing-required-field"),
]


@pytest.mark.parametrize(("file", "change", "expected"), BREAKAGES)
def test_broken_file_names_file_and_field(kb_with_test_rules_dir, file, change, expected):
    _edit(kb_with_test_rules_dir, file, change)
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge_base(kb_with_test_rules_dir)
    assert expected in str(caught.value), str(caught.value)


def test_missing_file(kb_with_test_rules_dir):
    (kb_with_test_rules_dir / "orders.yaml").unlink()
    with pytest.raises(KnowledgeError, match=r"^orders\.yaml: file not found"):
        load_knowledge_base(kb_with_test_rules_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(KnowledgeError, match="kb.yaml: file not found"):
        load_knowledge_base(tmp_path / "nowhere")


def test_yaml_syntax_error_names_line(kb_with_test_rules_dir):
    path = kb_with_test_rules_dir / "thresholds.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if "potassium_low:" in line)
    lines[index + 1] = "    default: [3.5"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"^thresholds\.yaml: line \d+, column \d+: YAML"):
        load_knowledge_base(kb_with_test_rules_dir)


def test_duplicate_key_is_refused(kb_with_test_rules_dir):
    path = kb_with_test_rules_dir / "kb.yaml"
    path.write_text(path.read_text(encoding="utf-8") + 'label: "Other"\n', encoding="utf-8")
    expected = r"kb\.yaml: line 5, column 1: .*duplicate key 'label'"
    with pytest.raises(KnowledgeError, match=expected):
        load_knowledge_base(kb_with_test_rules_dir)


def test_every_problem_is_reported(kb_with_test_rules_dir):
    _edit(kb_with_test_rules_dir, "orders.yaml", _set("orders", "lab-tsh", "category", "drug"))
    _edit(kb_with_test_rules_dir, "kb.yaml", _set("version", "latest"))
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge_base(kb_with_test_rules_dir)
    assert len(caught.value.problems) == 2
    assert any(p.startswith("orders.yaml: orders.lab-tsh.category:") for p in caught.value.problems)
    assert any(p.startswith("kb.yaml: version:") for p in caught.value.problems)
