"""The governance report: numbers from a seeded store, the table, the PNG, the commands."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta

import pytest

from cds_hooks.cli import main
from cds_hooks.cli.report import build_report, period_bounds, render_chart, render_table
from cds_hooks.store import FeedbackItem, migrate
from tests.cds_hooks.conftest import make_card, record

SERVICE = "lip-twitch-patient-view"
NOV = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
SINCE, UNTIL = period_bounds(date(2026, 11, 1), date(2026, 11, 30))


def accepted(card, at):
    return FeedbackItem(card["uuid"], "accepted", at, (card["suggestions"][0]["uuid"],))


def overridden(card, at, display=None, comment=None):
    return FeedbackItem(
        card["uuid"],
        "overridden",
        at,
        reason_system="http://s" if display else None,
        reason_code="c" if display else None,
        reason_display=display,
        user_comment=comment,
    )


@pytest.fixture
def seeded(store):
    k = [make_card() for _ in range(4)]
    meds = [make_card("medication-side-effect:sertraline", "R7") for _ in range(2)]
    record(store, k + meds, issued_at=NOV)
    record(store, [make_card()], issued_at=NOV, shadow=True)
    record(store, [make_card()], issued_at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    store.record_feedback(
        SERVICE,
        [
            accepted(k[0], NOV),
            accepted(k[1], NOV),
            overridden(k[2], NOV, display="Not applicable"),
            overridden(k[3], NOV, display="Not applicable"),
            accepted(k[3], NOV + timedelta(hours=1)),  # changed its mind: the latest counts
            overridden(meds[0], NOV, comment="already stopped"),
        ],
    )
    return store


def test_report_counts_each_card_once_by_its_latest_outcome(seeded):
    report = build_report(seeded, SINCE, UNTIL)
    rows = {(r.rule_id, r.card_kind): r for r in report.rows}
    k = rows[("R3", "hypokalemia-workup")]
    assert (k.issued, k.accepted, k.overridden, k.shadow) == (4, 3, 1, 1)
    assert k.reasons == {"Not applicable": 1}
    m = rows[("R7", "medication-side-effect:sertraline")]
    assert (m.issued, m.accepted, m.overridden, m.shadow) == (2, 0, 1, 0)
    assert m.reasons == {"comment only": 1}
    assert report.issued == 6
    assert report.period == "2026-11-01 to 2026-11-30"


def test_report_can_be_narrowed_to_a_site(seeded):
    record(seeded, [make_card()], issued_at=NOV, issuer="https://a", tenant="t")
    report = build_report(seeded, SINCE, UNTIL, issuer="https://a")
    assert [(r.rule_id, r.issued) for r in report.rows] == [("R3", 1)]


def test_table_shows_the_numbers(seeded):
    text = render_table(build_report(seeded, SINCE, UNTIL))
    assert "Card outcomes, 2026-11-01 to 2026-11-30" in text
    line = next(line for line in text.splitlines() if "hypokalemia-workup" in line)
    assert line.split()[:9] == ["R3", "hypokalemia-workup", "4", "3", "1", "0", "75%", "1", "Not"]
    assert "Not applicable (1)" in line


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_is_a_readable_png(seeded, tmp_path):
    path = render_chart(build_report(seeded, SINCE, UNTIL), tmp_path / "report.png")
    width, height = png_size(path)
    assert 1000 <= width <= 2000 and 250 <= height <= 2000
    assert path.stat().st_size > 10_000


def test_an_empty_period_still_draws_and_prints(store, tmp_path):
    report = build_report(store, SINCE, UNTIL)
    assert "no cards issued" in render_table(report)
    png_size(render_chart(report, tmp_path / "empty.png"))


def test_period_defaults_and_order():
    start, end = period_bounds(None, date(2026, 11, 30))
    assert (start.date(), end.date()) == (date(2026, 9, 2), date(2026, 12, 1))
    with pytest.raises(ValueError, match="after"):
        period_bounds(date(2026, 12, 1), date(2026, 11, 1))


def test_lipcds_report_and_db_upgrade_commands(seeded, database_url, tmp_path, capsys):
    assert main(["db", "upgrade", "--database-url", database_url]) == 0
    assert f"schema at revision {migrate.head_revision()}" in capsys.readouterr().out
    chart = tmp_path / "cli.png"
    status = main(
        [
            "report",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-30",
            "--database-url",
            database_url,
            "--chart",
            str(chart),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "hypokalemia-workup" in out and "medication-side-effect:sertraline" in out
    png_size(chart)
