"""The governance report: per rule and card kind, cards issued and what clinicians did.

`lipcds report` prints it as a table and can draw it as a PNG chart for a CDS
governance committee. Counts are of cards issued in the period, each with its latest
feedback (whenever that came); shadow-mode cards are counted apart, never as issued.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from cds_hooks.store import ReportRow, Store

DEFAULT_DAYS = 90


@dataclass
class Report:
    since: datetime
    until: datetime  # exclusive
    rows: list[ReportRow] = field(default_factory=list)
    site: str | None = None

    @property
    def period(self) -> str:
        """The period as dates, both inclusive: "2026-08-01 to 2026-10-31"."""
        last = (self.until - timedelta(microseconds=1)).date()
        return f"{self.since.date().isoformat()} to {last.isoformat()}"

    @property
    def issued(self) -> int:
        return sum(row.issued for row in self.rows)


def build_report(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    issuer: str | None = None,
    tenant: str | None = None,
) -> Report:
    """Read the report for cards issued in [since, until), optionally for one site."""
    site = " / ".join(part for part in (issuer, tenant) if part) or None
    return Report(since, until, store.report(since, until, issuer=issuer, tenant=tenant), site)


def acceptance_rate(row: ReportRow) -> float | None:
    """Accepted share of the live cards; None when none were issued."""
    return row.accepted / row.issued if row.issued else None


def top_reasons(row: ReportRow, limit: int = 3) -> list[tuple[str, int]]:
    return sorted(row.reasons.items(), key=lambda item: (-item[1], item[0]))[:limit]


def render_table(report: Report, *, reasons: int = 3) -> str:
    """The report as a plain-text table for the terminal."""
    header = [
        "Rule",
        "Card kind",
        "Issued",
        "Accepted",
        "Overridden",
        "No feedback",
        "Accept %",
        "Shadow",
        "Top override reasons",
    ]
    lines = [header]
    for row in report.rows:
        rate = acceptance_rate(row)
        lines.append(
            [
                row.rule_id,
                row.card_kind,
                str(row.issued),
                str(row.accepted),
                str(row.overridden),
                str(row.issued - row.accepted - row.overridden),
                "-" if rate is None else f"{rate:.0%}",
                str(row.shadow),
                "; ".join(f"{label} ({n})" for label, n in top_reasons(row, reasons)) or "-",
            ]
        )
    numeric = range(2, 8)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    title = f"Card outcomes, {report.period}" + (f", site {report.site}" if report.site else "")
    out = [title, "", fmt(header), "  ".join("-" * w for w in widths)]
    out.extend(fmt(line) for line in lines[1:])
    if not report.rows:
        out.append("(no cards issued in this period)")
    return "\n".join(out) + "\n"


# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
_COLOURS = {"accepted": "#0072B2", "overridden": "#E69F00", "no feedback": "#BBBBBB"}


def chart_available() -> bool:
    """matplotlib is installed (the optional `report` extra; the server never needs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render_chart(report: Report, path: str | Path) -> Path:
    """Draw the report as stacked horizontal bars per card kind and save it as a PNG."""
    # Imported here: slow, and only the CLI draws.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    rows = sorted(report.rows, key=lambda r: (r.issued, r.card_kind))
    height = 1.6 + 0.45 * max(len(rows), 2)
    fig = Figure(figsize=(11, height), dpi=120, layout="constrained")
    ax = fig.subplots()
    title = f"Card outcomes by kind, {report.period}"
    if report.site:
        title += f" ({report.site})"
    ax.set_title(title, fontsize=13, loc="left")
    if not rows:
        ax.text(
            0.5,
            0.5,
            "No cards issued in this period",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
        )
        ax.set_axis_off()
    else:
        labels = [f"{r.card_kind} ({r.rule_id})" for r in rows]
        segments = {
            "accepted": [r.accepted for r in rows],
            "overridden": [r.overridden for r in rows],
            "no feedback": [r.issued - r.accepted - r.overridden for r in rows],
        }
        left = [0] * len(rows)
        for name, values in segments.items():
            ax.barh(labels, values, left=left, color=_COLOURS[name], label=name, height=0.6)
            left = [a + b for a, b in zip(left, values, strict=True)]
        widest = max(left) or 1
        for y, row in enumerate(rows):
            rate = acceptance_rate(row)
            note = f"{row.issued} issued" + ("" if rate is None else f", {rate:.0%} accepted")
            if row.shadow:
                note += f", +{row.shadow} shadow"
            ax.text(left[y] + widest * 0.01, y, note, va="center", fontsize=9)
        ax.set_xlim(0, widest * 1.3)
        ax.set_xlabel("cards")
        ax.spines[["top", "right"]].set_visible(False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Outside the axes, so it never hides a bar.
        fig.legend(loc="outside lower center", ncols=3, frameon=False)
    fig.savefig(path, format="png")
    return path


# -- command line (wired into `lipcds` by cds_hooks.cli) --------------------------------


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def period_bounds(
    since: date | None, until: date | None, *, today: date | None = None
) -> tuple[datetime, datetime]:
    """Inclusive dates to a UTC [start, end) pair; by default the last DEFAULT_DAYS days."""
    until = until or today or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    return start, end


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_day, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--until", type=parse_day, help="last day, YYYY-MM-DD (UTC), inclusive")
    parser.add_argument("--chart", metavar="PNG", help="also draw the report to this PNG file")
    parser.add_argument("--issuer", help="only cards issued to this JWT issuer")
    parser.add_argument("--tenant", help="only cards issued to this tenant")
    parser.add_argument("--database-url", help="default: LIPCDS_DATABASE_URL")


def add_db_upgrade_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    parser.add_argument("--database-url", help="default: LIPCDS_DATABASE_URL")


def _store(args: argparse.Namespace) -> Store:
    url = getattr(args, "database_url", None)
    if not url:
        from cds_hooks.config import load_settings

        url = load_settings().database_url
    return Store(url)


def report_command(args: argparse.Namespace) -> int:
    """`lipcds report`: print the table; draw the chart when --chart is given."""
    try:
        since, until = period_bounds(getattr(args, "since", None), getattr(args, "until", None))
    except ValueError as exc:
        sys.stderr.write(f"lipcds report: {exc}\n")
        return 2
    if getattr(args, "chart", None) and not chart_available():
        sys.stderr.write(
            "lipcds report: --chart needs matplotlib, which this installation lacks; "
            "install it with: pip install 'lipcds[report]'\n"
        )
        return 1
    store = _store(args)
    try:
        report = build_report(
            store,
            since,
            until,
            issuer=getattr(args, "issuer", None),
            tenant=getattr(args, "tenant", None),
        )
    finally:
        store.dispose()
    sys.stdout.write(render_table(report))
    if getattr(args, "chart", None):
        written = render_chart(report, args.chart)
        sys.stdout.write(f"\nchart written to {written}\n")
    return 0


def db_upgrade_command(args: argparse.Namespace) -> int:
    """`lipcds db upgrade`: migrate the store's schema (run before deploying a release)."""
    from cds_hooks.store import migrate

    store = _store(args)
    try:
        store.upgrade(getattr(args, "revision", "head"))
        revision = migrate.current_revision(store.engine)
    finally:
        store.dispose()
    sys.stdout.write(f"{store.url}: schema at revision {revision}\n")
    return 0
