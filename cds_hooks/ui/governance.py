"""The governance page: per rule and card kind, cards issued, accepted, overridden and why,
over a chosen period and per site, with a chart; shadow-mode sites marked.

The counts are the store's report (the same numbers as `lipcds report`); this module only
shapes them for the page and draws the chart as inline SVG, so the page needs no image
library and the chart scales with the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from markupsafe import Markup, escape

DEFAULT_DAYS = 90
MAX_DAYS = 3660

# Okabe-Ito colours (as the report's PNG): told apart with common colour-vision deficiencies.
COLOURS = {"accepted": "#0072B2", "overridden": "#E69F00", "no feedback": "#8C8C8C"}


class PeriodError(ValueError):
    """The chosen period cannot be read."""


@dataclass(frozen=True)
class SiteChoice:
    value: str  # "" (all sites), or an opaque key
    label: str
    issuer: str | None = None
    tenant: str | None = None
    shadow: bool = False


@dataclass(frozen=True)
class Row:
    rule_id: str
    card_kind: str
    issued: int
    accepted: int
    overridden: int
    no_feedback: int
    shadow: int
    rate: str
    reasons: tuple[tuple[str, int], ...]


@dataclass
class GovernanceView:
    since: date
    until: date  # inclusive
    site: SiteChoice
    sites: list[SiteChoice]
    rows: list[Row] = field(default_factory=list)
    error: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: sum(getattr(r, name) for r in self.rows)
            for name in ("issued", "accepted", "overridden", "no_feedback", "shadow")
        }

    @property
    def chart(self) -> Markup:
        return chart_svg(self.rows)


def parse_period(since: str | None, until: str | None, today: date) -> tuple[date, date]:
    """Inclusive days from the form; by default the last DEFAULT_DAYS days up to today."""
    try:
        last = date.fromisoformat(until) if until else today
        first = date.fromisoformat(since) if since else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise PeriodError("dates must be written YYYY-MM-DD") from None
    if first > last:
        raise PeriodError(f"the period starts ({first}) after it ends ({last})")
    if (last - first).days > MAX_DAYS:
        raise PeriodError(f"choose a period of at most {MAX_DAYS} days")
    return first, last


def bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """Inclusive days to the store's [start, end) in UTC."""
    return (
        datetime.combine(first, time.min, tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
    )


def rows_of(report_rows: list[Any]) -> list[Row]:
    rows = []
    for r in report_rows:
        rate = f"{r.accepted / r.issued:.0%}" if r.issued else "–"
        reasons = tuple(sorted(r.reasons.items(), key=lambda item: (-item[1], item[0])))
        rows.append(
            Row(
                rule_id=r.rule_id,
                card_kind=r.card_kind,
                issued=r.issued,
                accepted=r.accepted,
                overridden=r.overridden,
                no_feedback=max(0, r.issued - r.accepted - r.overridden),
                shadow=r.shadow,
                rate=rate,
                reasons=reasons,
            )
        )
    rows.sort(key=lambda row: (-row.issued, row.rule_id, row.card_kind))
    return rows


def chart_svg(rows: list[Row]) -> Markup:
    """Stacked horizontal bars per card kind: accepted, overridden, no feedback."""
    if not rows:
        return Markup("")
    label_w, bar_w, row_h, top = 330, 420, 28, 34
    height = top + row_h * len(rows) + 14
    widest = max((r.issued for r in rows), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="chart-title" '
        f'viewBox="0 0 {label_w + bar_w + 150} {height}" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Card outcomes by rule and card kind</title>',
    ]
    x = label_w
    for name, colour in COLOURS.items():  # legend
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="16" font-size="12">{name}</text>')
        x += 110
    for i, row in enumerate(rows):
        y = top + i * row_h
        label = escape(f"{row.card_kind} ({row.rule_id})")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{label}</text>'
        )
        left = float(label_w)
        for name, value in (
            ("accepted", row.accepted),
            ("overridden", row.overridden),
            ("no feedback", row.no_feedback),
        ):
            if value <= 0:
                continue
            width = bar_w * value / widest
            parts.append(
                f'<rect x="{left:.1f}" y="{y + 3}" width="{width:.1f}" height="{row_h - 10}" '
                f'fill="{COLOURS[name]}"><title>{escape(name)}: {value}</title></rect>'
            )
            left += width
        note = f"{row.issued} issued"
        if row.shadow:
            note += f", +{row.shadow} shadow"
        parts.append(f'<text x="{left + 6:.1f}" y="{y + 15}" font-size="12">{note}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text in it is escaped above)
