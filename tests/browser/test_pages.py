"""The preview, rule and governance pages in Chromium, as a person uses them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, ConsoleLog, assert_accessible

PATIENT_VIEW = "lip-twitch-patient-view"
# Border colours of the indicators in ui.css (critical red, warning amber, info blue).
INDICATOR_COLOURS = {
    "critical": "rgb(179, 38, 30)",
    "warning": "rgb(217, 130, 0)",
    "info": "rgb(11, 92, 173)",
}
SCREENSHOT = ROOT / "docs" / "card-preview.png"


def run_demo(page: Any, base: str, demo: str, service: str = PATIENT_VIEW) -> None:
    page.goto(f"{base}/ui/")
    page.select_option("#service", service)
    page.check("#source-demo")
    page.select_option("#demo", demo)
    page.click("button:has-text('Run')")
    page.wait_for_selector("#result")


def cards(page: Any) -> Any:
    return page.locator("article.card")


def counts_on_governance(page: Any, base: str, kind: str) -> dict[str, int]:
    page.goto(f"{base}/ui/governance")
    row = page.locator(f"tr[data-kind='{kind}']")
    if row.count() == 0:
        return {"issued": 0, "accepted": 0, "overridden": 0}
    return {
        col: int(row.locator(f"td[data-col='{col}']").inner_text())
        for col in ("issued", "accepted", "overridden")
    }


@pytest.mark.parametrize(
    ("demo", "indicators"),
    [
        ("patient:facial-droop", {"critical"}),
        ("patient:low-magnesium-mgdl", {"warning", "info"}),
        ("patient:stale-labs", {"info"}),
        ("patient:ssri-started-before-twitch", {"warning", "info"}),
    ],
)
def test_preview_shows_demo_cards_as_an_ehr_would(
    page: Any, live_server: Any, axe_source: str, demo: str, indicators: set[str]
) -> None:
    run_demo(page, live_server.url, demo)
    shown = cards(page)
    assert shown.count() >= 1
    seen = set()
    for i in range(shown.count()):
        card = shown.nth(i)
        indicator = card.get_attribute("data-indicator")
        seen.add(indicator)
        assert card.locator(".badge").inner_text().lower() == indicator
        colour = card.evaluate("el => getComputedStyle(el).borderLeftColor")
        assert colour == INDICATOR_COLOURS[indicator]
        assert card.locator(".summary").inner_text().strip()
        detail = card.locator(".detail")
        # Markdown is rendered: no raw emphasis markers, and the bold text is <strong>.
        assert "**" not in detail.inner_text()
        assert "<strong>" not in detail.inner_text()
        assert detail.locator("p, li").count() >= 1
        buttons = card.locator(".suggestion-button")
        for j in range(buttons.count()):
            button = buttons.nth(j)
            assert button.is_visible() and button.inner_text().strip()
            actions = button.locator("xpath=following-sibling::ul[1]/li")
            assert actions.count() >= 1
            first = actions.first.inner_text()
            assert re.match(r"(creates a draft ServiceRequest|removes )", first)
    assert seen <= indicators | {"info"} and seen & indicators
    assert page.locator(".detail strong").count() >= 1
    assert_accessible(page, axe_source)


def test_why_this_card_leads_to_the_rule_page(
    page: Any, live_server: Any, axe_source: str
) -> None:
    run_demo(page, live_server.url, "patient:facial-droop")
    card = cards(page).first
    assert card.get_attribute("data-indicator") == "critical"
    link = card.locator("ul.links a", has_text="Why this card?")
    assert link.get_attribute("data-link-type") == "absolute"
    assert link.get_attribute("href") == f"{live_server.url}/rules/R9"
    link.click()
    page.wait_for_url(f"{live_server.url}/rules/R9")
    assert page.locator("h1").inner_text().startswith("R9: ")
    assert page.locator("ol.citations blockquote").count() >= 5
    assert page.locator("#thresholds").is_visible()
    assert_accessible(page, axe_source)


def test_request_and_response_json_on_demand(page: Any, live_server: Any) -> None:
    run_demo(page, live_server.url, "patient:low-potassium-meq")
    request_box = page.locator("details.json", has_text="Request JSON")
    response_box = page.locator("details.json", has_text="Response JSON")
    assert not request_box.locator("pre").is_visible()
    request_box.locator("summary").click()
    assert '"hook": "patient-view"' in request_box.locator("pre").inner_text()
    response_box.locator("summary").click()
    assert '"cards"' in response_box.locator("pre").inner_text()


def test_order_demo_runs_through_its_own_service(page: Any, live_server: Any) -> None:
    run_demo(page, live_server.url, "order:order-select-prednisone")
    assert "lip-twitch-order-select" in page.locator("#result").inner_text()
    kinds = [cards(page).nth(i).get_attribute("data-kind") for i in range(cards(page).count())]
    assert "draft-medication-risk:prednisone" in kinds
    delete = page.locator("article[data-kind^='draft-medication-risk'] .actions li",
                          has_text="removes MedicationRequest/")
    assert delete.count() == 1


def test_no_complaint_is_an_answer_without_cards_not_an_error(
    page: Any, live_server: Any
) -> None:
    run_demo(page, live_server.url, "patient:no-complaint")
    assert page.locator(".no-cards").is_visible()
    assert page.locator(".call-error").count() == 0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"hook": "patient-view", ', "not valid JSON"),
        ('{"hook": "patient-view", "context": {}}', "invalid hook request"),
        ('{"hookInstance": "a", "hook": "order-sign", "context": {"patientId": "p", '
         '"userId": "Practitioner/1"}}', "answers the 'patient-view' hook"),
    ],
)
def test_malformed_request_is_shown_as_an_error(
    page: Any, live_server: Any, axe_source: str, payload: str, expected: str
) -> None:
    page.goto(f"{live_server.url}/ui/")
    page.select_option("#service", PATIENT_VIEW)
    page.check("#source-request")
    page.fill("#payload", payload)
    page.click("button:has-text('Run')")
    alert = page.locator(".call-error[role=alert]")
    alert.wait_for()
    assert "refused the request (HTTP 400)" in alert.inner_text()
    assert expected in alert.inner_text()
    assert "not an answer without cards" in alert.inner_text()
    assert cards(page).count() == 0
    assert page.locator(".no-cards").count() == 0
    assert page.locator("#payload").input_value() == payload  # kept for fixing
    assert_accessible(page, axe_source)


def test_pasted_bundle_runs_like_a_demo(page: Any, live_server: Any) -> None:
    import json

    from cds_hooks.cli.demo import load_demo

    page.goto(f"{live_server.url}/ui/")
    page.check("#source-bundle")
    page.fill("#payload", json.dumps(load_demo("low-magnesium-mgdl")))
    page.click("button:has-text('Run')")
    page.wait_for_selector("#result")
    kinds = [cards(page).nth(i).get_attribute("data-kind") for i in range(cards(page).count())]
    assert "hypomagnesemia-workup" in kinds


def test_accepting_a_suggestion_is_counted_on_the_governance_page(
    page: Any, live_server: Any, axe_source: str
) -> None:
    kind = "hypokalemia-workup"
    before = counts_on_governance(page, live_server.url, kind)
    run_demo(page, live_server.url, "patient:low-potassium-meq")
    card = page.locator(f"article[data-kind='{kind}']")
    card.locator(".suggestion-button").first.click()
    page.wait_for_selector("text=recorded as accepted")
    page.click("text=See it on the governance page")
    page.wait_for_selector("h1:has-text('Governance')")
    assert page.locator(f"tr[data-kind='{kind}']").is_visible()
    after = counts_on_governance(page, live_server.url, kind)
    assert after["issued"] == before["issued"] + 1
    assert after["accepted"] == before["accepted"] + 1
    assert after["overridden"] == before["overridden"]
    assert page.locator("svg.chart").is_visible()
    assert_accessible(page, axe_source)


def test_dismissing_with_a_reason_is_counted_with_the_reason(
    page: Any, live_server: Any
) -> None:
    kind = "hypomagnesemia-workup"
    before = counts_on_governance(page, live_server.url, kind)
    run_demo(page, live_server.url, "patient:low-magnesium-mgdl")
    card = page.locator(f"article[data-kind='{kind}']")
    card.locator("form.override select").select_option("patient-declined")
    card.locator("form.override button").click()
    page.wait_for_selector("text=recorded as overridden")
    after = counts_on_governance(page, live_server.url, kind)
    assert after["overridden"] == before["overridden"] + 1
    row = page.locator(f"tr[data-kind='{kind}']")
    assert "Patient declined" in row.inner_text()


def test_governance_period_and_site_choice(page: Any, live_server: Any, axe_source: str) -> None:
    page.goto(f"{live_server.url}/ui/governance?since=2000-01-01&until=2000-01-31")
    assert page.locator(".no-cards").is_visible()
    page.select_option("#site", label="Card preview (not shown to clinicians)")
    page.fill("#since", "2000-02-01")
    page.fill("#until", "2000-01-01")
    page.click("button:has-text('Show')")
    assert "starts (2000-02-01) after it ends" in page.locator(".call-error").inner_text()
    assert_accessible(page, axe_source)


def test_rule_pages_are_reachable_and_accessible(
    page: Any, live_server: Any, axe_source: str
) -> None:
    page.goto(f"{live_server.url}/rules/")
    links = page.locator(".rule-list a")
    assert links.count() >= 10
    assert_accessible(page, axe_source)
    page.click("text=R9:")
    assert page.locator("h1").inner_text().startswith("R9:")
    assert page.locator("ol.citations li").count() >= 5
    assert page.locator("text=Slurred speech").count() >= 1
    assert_accessible(page, axe_source)


def test_console_errors_are_caught(browser_context: Any, live_server: Any) -> None:
    """The console check the other tests rely on does see an error the page logs."""
    log = ConsoleLog()
    tab = browser_context.new_page()
    log.attach(tab)
    try:
        tab.goto(f"{live_server.url}/rules/")
        tab.evaluate("() => console.error('deliberate error')")
        tab.evaluate("() => setTimeout(() => { throw new Error('deliberate throw') }, 0)")
        tab.wait_for_timeout(200)
        tab.goto(f"{live_server.url}/ui/static/no-such-file.css")
    finally:
        tab.close()
    joined = "\n".join(log.errors)
    assert "deliberate error" in joined
    assert "deliberate throw" in joined
    assert "404" in joined


def test_screenshot_of_the_preview(page: Any, live_server: Any, tmp_path: Path) -> None:
    """The README's picture; LIPCDS_UPDATE_SCREENSHOT=1 writes it to docs/."""
    run_demo(page, live_server.url, "patient:low-magnesium-mgdl")
    shot = tmp_path / "card-preview.png"
    page.locator("section.result .cards").screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    if os.environ.get("LIPCDS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
