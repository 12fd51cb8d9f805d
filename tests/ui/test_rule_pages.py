"""The public rule pages: every rule, its thresholds for the site, codes, every citation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds_hooks.sites import site_key
from cds_hooks.ui.rulepage import rule_page
from knowledge import load_knowledge_base
from knowledge.policy import Policy
from tests.browser.server import build_app

KB = load_knowledge_base()
RULE_IDS = [rule.id for rule in KB.rules]

CREDENTIAL = "ui-credential-0123456789"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_has_a_public_page_with_every_citation(client: Any, rule_id: str) -> None:
    response = client.get(f"/rules/{rule_id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    rule = KB.rule(rule_id)
    assert f"{rule_id}: " in html
    assert f"version {KB.version}" in html
    assert rule.about and rule.about.replace("'", "&#39;") in html  # the rule in plain words
    for source_id, quote in rule.citations:
        assert quote.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;") in html
        assert KB.sources[source_id].title.replace("&", "&amp;") in html


def test_unknown_rule_is_a_404_page(client: Any) -> None:
    response = client.get("/rules/R99")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "has no rule" in response.get_data(as_text=True)


def test_rule_pages_need_no_credential_even_when_the_other_pages_do(tmp_path: Path) -> None:
    client = build_app(tmp_path, ui_pages=True, ui_credential=CREDENTIAL).test_client()
    assert client.get("/rules/R3").status_code == 200
    assert client.get("/rules/").status_code == 200
    css = client.get("/ui/static/ui.css")
    assert css.status_code == 200
    css.close()
    assert client.get("/ui/").status_code == 401
    assert client.get("/ui/", headers={"Authorization": f"Bearer {CREDENTIAL}"}).status_code == 200


def test_thresholds_in_force_for_a_site() -> None:
    site_policy = Policy(KB.thresholds, {"potassium_low": 3.4, "freshness_days": 60})
    page = rule_page(KB, "R3", site_policy, site_label="North clinic")
    shown = {t.name: t for t in page.thresholds}
    assert shown["potassium_low"].value == 3.4 and shown["potassium_low"].changed
    assert shown["potassium_critical_low"].value == KB.thresholds["potassium_critical_low"].default
    assert not shown["potassium_critical_low"].changed
    assert shown["freshness_days"].value == 60
    assert page.site_label == "North clinic"


def test_a_rule_switched_off_for_the_site_says_so() -> None:
    page = rule_page(KB, "R9", Policy(KB.thresholds), disabled_rules={"R9"})
    assert page.enabled is False
    assert rule_page(KB, "R9", Policy(KB.thresholds)).enabled is True


def test_red_flag_page_lists_codes_and_terms() -> None:
    page = rule_page(KB, "R9", Policy(KB.thresholds))
    titles = [group.title for group in page.matches]
    assert any("Facial weakness" in t and "critical" in t for t in titles)
    facial = next(g for g in page.matches if "Facial weakness" in g.title)
    assert ("ICD-10-CM", "R29.810") in {(c.system, c.code) for c in facial.codes}
    assert facial.terms
    assert "persistence_days" in {t.name for t in page.thresholds}


def test_lab_rule_lists_loinc_codes_and_units() -> None:
    page = rule_page(KB, "R4", Policy(KB.thresholds))
    magnesium = next(g for g in page.matches if g.title.startswith("Magnesium"))
    assert "19123-9" in {c.code for c in magnesium.codes}
    assert "mg/dL" in magnesium.note
    assert {"magnesium_low", "magnesium_critical_low", "freshness_days"} <= {
        t.name for t in page.thresholds
    }


def test_medication_rule_lists_the_drugs_of_its_group() -> None:
    page = rule_page(KB, "R7", Policy(KB.thresholds))
    names = {term for g in page.matches for term in g.terms}
    assert "sertraline" in names
    assert "furosemide" not in names  # R8's, not R7's
    r8 = rule_page(KB, "R8", Policy(KB.thresholds))
    assert "furosemide" in {term for g in r8.matches for term in g.terms}


def test_site_key_is_opaque_and_stable() -> None:
    key = site_key("https://ehr.north.example.org", "north-main")
    assert key == site_key("https://ehr.north.example.org", "north-main")
    assert key != site_key("https://ehr.north.example.org", None)
    assert "north" not in key and len(key) == 16
    assert site_key(None, None) is None


def test_site_link_shows_that_sites_thresholds(tmp_path: Path) -> None:
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        "sites:\n"
        "  - issuer: https://ehr.north.example.org\n"
        "    thresholds: {potassium_low: 3.3}\n"
        "    rules_disabled: [R1]\n"
        "    shadow: true\n",
        encoding="utf-8",
    )
    from cds_hooks.app import create_app

    app = create_app({"env": "development", "auth_mode": "disabled",
                      "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}",
                      "patient_id_key": "k" * 32, "site_policy_file": str(sites)})
    client = app.test_client()
    key = site_key("https://ehr.north.example.org", None)
    html = client.get(f"/rules/R3?site={key}").get_data(as_text=True)
    assert "3.3 mmol/L" in html and "changed" in html
    assert "for the calling site" in html
    assert "ehr.north" not in html  # a public page names no issuer
    assert "switched off" in client.get(f"/rules/R1?site={key}").get_data(as_text=True)
    unknown = client.get("/rules/R3?site=0000000000000000").get_data(as_text=True)
    assert "not configured here" in unknown and "3.5 mmol/L" in unknown
