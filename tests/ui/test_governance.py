"""The governance page: period, site, counts, chart, shadow-mode sites."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cds_hooks.store import ReportRow
from cds_hooks.ui.governance import PeriodError, chart_svg, parse_period, rows_of

TODAY = date(2026, 12, 1)


def test_default_period_is_the_last_90_days() -> None:
    assert parse_period(None, None, TODAY) == (date(2026, 9, 3), TODAY)
    assert parse_period("2026-11-01", "2026-11-30", TODAY) == (date(2026, 11, 1),
                                                               date(2026, 11, 30))


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2026-13-01", None, "YYYY-MM-DD"),
        ("2026-12-02", "2026-12-01", "after it ends"),
        ("1990-01-01", "2026-01-01", "at most"),
    ],
)
def test_bad_periods(since: str, until: str | None, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_period(since, until, TODAY)


def test_rows_and_chart() -> None:
    rows = rows_of([
        ReportRow("R3", "hypokalemia-workup", issued=4, shadow=2, accepted=1, overridden=2,
                  reasons={"Patient declined": 2}),
        ReportRow("R1", "<lifestyle>", issued=0, shadow=3, accepted=0, overridden=0),
    ])
    assert rows[0].rule_id == "R3" and rows[0].no_feedback == 1 and rows[0].rate == "25%"
    assert rows[1].rate == "–"
    svg = chart_svg(rows)
    assert svg.startswith("<svg") and "&lt;lifestyle&gt;" in svg and "<lifestyle>" not in svg
    assert svg.count("<rect") == 3 + 3  # legend + accepted, overridden, no feedback of R3
    assert "+2 shadow" in svg
    assert chart_svg([]) == ""


def test_shadow_sites_are_marked(tmp_path: Path) -> None:
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        "sites:\n  - issuer: https://ehr.south.example.org\n    shadow: true\n"
        "  - issuer: https://ehr.north.example.org\n",
        encoding="utf-8",
    )
    from cds_hooks.app import create_app
    from cds_hooks.sites import site_key

    app = create_app({"env": "development", "auth_mode": "disabled",
                      "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}",
                      "patient_id_key": "k" * 32, "site_policy_file": str(sites)})
    client = app.test_client()
    html = client.get("/ui/governance").text
    assert "https://ehr.south.example.org (shadow mode)" in html
    assert "https://ehr.north.example.org (shadow mode)" not in html
    south = site_key("https://ehr.south.example.org", None)
    page = client.get(f"/ui/governance?site={south}").text
    assert 'tag tag-shadow">shadow mode' in page
    assert "No cards were issued in this period to this site" in page


def test_store_unavailable_is_an_error_not_zero(tmp_path: Path) -> None:
    from cds_hooks.app import create_app

    # Port 1 on loopback: nothing listens, the connection is refused at once.
    app = create_app({"env": "development", "auth_mode": "disabled",
                      "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
                      "patient_id_key": "k" * 32})
    response = app.test_client().get("/ui/governance")
    assert response.status_code == 503
    assert "unavailable" in response.text
    assert "No cards were issued" not in response.text
