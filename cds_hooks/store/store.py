"""The store: issued cards and feedback, through SQLAlchemy 2 on SQLite or PostgreSQL.

Every public method is one transaction. A database that cannot be reached raises
`StoreUnavailable` (the feedback endpoint answers 503; the hook listener logs and lets
the cards go out). After such a failure the store fails fast for `cooldown_seconds`, so
hook calls are not each held up by a connect timeout while the database is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    create_engine,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from cds_hooks.store import migrate
from cds_hooks.store.models import Feedback, IssuedCard, IssuedSuggestion

log = logging.getLogger("lipcds.store")

EVIDENCE_EXTENSION = "org.lipcds.evidence"

_cards = IssuedCard.__table__
_suggestions = IssuedSuggestion.__table__
_feedback = Feedback.__table__


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database could not be reached or did not answer in time; nothing was written."""


class UnknownCard(StoreError):
    """Feedback names a card (or a suggestion) this service did not issue; nothing was written."""

    def __init__(self, message: str, *, index: int, field_name: str):
        super().__init__(message)
        self.index = index
        self.field_name = field_name


@dataclass(frozen=True)
class FeedbackItem:
    """One validated item of a feedback request (see `cds_hooks.http.feedback.FeedbackSchema`)."""

    card: str
    outcome: str  # accepted | overridden
    outcome_timestamp: datetime  # aware
    accepted_suggestions: tuple[str, ...] = ()
    reason_system: str | None = None
    reason_code: str | None = None
    reason_display: str | None = None
    user_comment: str | None = None


@dataclass(frozen=True)
class FeedbackCounts:
    received: int
    recorded: int
    duplicates: int


@dataclass
class ReportRow:
    """Cards of one rule and kind issued in a period, and what clinicians did with them."""

    rule_id: str
    card_kind: str
    issued: int  # live cards (shown to clinicians)
    shadow: int  # computed in shadow mode, never shown
    accepted: int  # live cards whose latest feedback is "accepted"
    overridden: int
    reasons: dict[str, int] = field(default_factory=dict)  # override reason -> cards


def make_engine(database_url: str, *, connect_timeout: float = 3.0) -> Engine:
    """An engine tuned for the store: pre-ping, short connect timeouts, SQLite in WAL mode."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, int(connect_timeout))
    return create_engine(
        database_url,
        pool_pre_ping=True,  # a connection the server dropped is replaced, not used
        pool_size=5,
        max_overflow=5,
        pool_timeout=connect_timeout,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _sqlite_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    in_memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        database_url,
        # Several processes write the same file: wait for the lock instead of failing.
        connect_args={"timeout": 30, "check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front. A deferred transaction that reads and then writes
        # fails at once with SQLITE_BUSY when another process wrote in between, and the
        # busy timeout does not help then.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _insert(connection: Connection, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the connection's dialect."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise StoreError(f"the store supports SQLite and PostgreSQL, not {name}")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime; the store keeps aware UTC times")
    return value.astimezone(UTC)


class Store:
    """Issued cards and feedback in one database."""

    def __init__(
        self,
        database_url: str,
        *,
        connect_timeout: float = 3.0,
        cooldown_seconds: float = 5.0,
        clock: Any = None,
    ):
        self.engine = make_engine(database_url, connect_timeout=connect_timeout)
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._down_until = 0.0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with the password hidden, for logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction; connection failures become StoreUnavailable."""
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("the database was unreachable moments ago; not retrying yet")
        try:
            with self.engine.begin() as connection:
                yield connection
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            self._down_until = time.monotonic() + self.cooldown_seconds
            # The driver's message names host and port, never the password.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreUnavailable(f"database unavailable: {reason}") from exc

    # -- schema ---------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to `revision`."""
        migrate.upgrade(self.engine, revision)

    def schema_is_current(self) -> bool:
        return migrate.current_revision(self.engine) == migrate.head_revision()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        with self._transaction() as connection:
            connection.execute(text("SELECT 1"))

    # -- issued cards -----------------------------------------------------------------

    def record_result(
        self,
        *,
        service_id: str,
        hook: str,
        hook_instance: str,
        cards: Sequence[Mapping[str, Any]],
        issued_at: datetime,
        patient_hash: str | None = None,
        issuer: str | None = None,
        tenant: str | None = None,
        shadow: bool = False,
        encounter_id: str | None = None,
    ) -> int:
        """Record the cards of one hook response; returns how many were new.

        A card uuid already recorded for this service (the EHR re-sent the same
        hookInstance) keeps its first record. Cards without a uuid cannot receive
        feedback and are not recorded.
        """
        rows = [_card_row(card) for card in cards if card.get("uuid")]
        if not rows:
            return 0
        issued_at = _utc(issued_at)
        recorded = 0
        with self._transaction() as connection:
            for row, suggestion_uuids in rows:
                values = {
                    **row,
                    "service_id": service_id,
                    "hook": hook,
                    "hook_instance": hook_instance,
                    "patient_hash": patient_hash,
                    "issuer": issuer,
                    "tenant": tenant,
                    "shadow": shadow,
                    "issued_at": issued_at,
                    "encounter_id": encounter_id,  # issue #4
                }
                stmt = _insert(connection, _cards).values(values).returning(_cards.c.id)
                card_id = connection.execute(stmt).scalar()
                if card_id is None:
                    continue  # already recorded
                recorded += 1
                if suggestion_uuids:
                    connection.execute(
                        _insert(connection, _suggestions),
                        [{"card_id": card_id, "suggestion_uuid": u} for u in suggestion_uuids],
                    )
        return recorded

    # -- issue #4: repeats between order-select and order-sign ------------------------

    def shown_at_order_select(
        self, *, encounter_id: str, issuer: str | None = None, tenant: str | None = None
    ) -> set[tuple[str | None, str]]:
        """(concerns, card kind) of the cards order-select showed in this encounter.

        Shadow cards were never shown, so they do not count. The issuer and tenant keep
        one EHR's encounter ids apart from another's.
        """
        query = select(_cards.c.concerns, _cards.c.card_kind).where(
            _cards.c.hook == "order-select",
            _cards.c.encounter_id == encounter_id,
            _cards.c.shadow.is_(False),
            _cards.c.issuer.is_(None) if issuer is None else _cards.c.issuer == issuer,
            _cards.c.tenant.is_(None) if tenant is None else _cards.c.tenant == tenant,
        )
        with self._transaction() as connection:
            return {(concerns, kind) for concerns, kind in connection.execute(query.distinct())}

    # -- feedback ---------------------------------------------------------------------

    def record_feedback(
        self,
        service_id: str,
        items: Sequence[FeedbackItem],
        *,
        site: tuple[str | None, str | None] | None = None,
    ) -> FeedbackCounts:
        """Record a feedback request, all items or none.

        Raises UnknownCard when an item names a card this service did not issue to a
        clinician (shadow cards were never shown, so they count as not issued) or a
        suggestion that was not on the card. With `site` (issuer, tenant), only cards
        issued to that site count, so one EHR cannot write another's statistics.
        """
        received_at = self._clock()
        recorded = 0
        with self._transaction() as connection:
            wanted = sorted({item.card for item in items})
            found = connection.execute(
                select(_cards.c.card_uuid, _cards.c.id).where(
                    _cards.c.service_id == service_id,
                    _cards.c.card_uuid.in_(wanted),
                    _cards.c.shadow.is_(False),
                    *_site_filter(site),
                )
            ).all()
            card_ids = {uuid: card_id for uuid, card_id in found}
            for index, item in enumerate(items):
                if item.card not in card_ids:
                    raise UnknownCard(
                        f"feedback[{index}].card: card {item.card} was not issued by "
                        f"service {service_id!r}",
                        index=index,
                        field_name="card",
                    )
            offered: dict[int, set[str]] = {}
            for card_id, suggestion_uuid in connection.execute(
                select(_suggestions.c.card_id, _suggestions.c.suggestion_uuid).where(
                    _suggestions.c.card_id.in_(sorted(card_ids.values()))
                )
            ):
                offered.setdefault(card_id, set()).add(suggestion_uuid)
            for index, item in enumerate(items):
                card_id = card_ids[item.card]
                for uuid in item.accepted_suggestions:
                    if uuid not in offered.get(card_id, ()):
                        raise UnknownCard(
                            f"feedback[{index}].acceptedSuggestions: suggestion {uuid} is "
                            f"not one of card {item.card}'s suggestions",
                            index=index,
                            field_name="acceptedSuggestions",
                        )
            for item in items:
                stmt = (
                    _insert(connection, _feedback)
                    .values(
                        card_id=card_ids[item.card],
                        outcome=item.outcome,
                        accepted_suggestions=" ".join(item.accepted_suggestions) or None,
                        reason_system=item.reason_system,
                        reason_code=item.reason_code,
                        reason_display=item.reason_display,
                        user_comment=item.user_comment,
                        outcome_timestamp=_utc(item.outcome_timestamp),
                        received_at=received_at,
                    )
                    .returning(_feedback.c.id)
                )
                if connection.execute(stmt).scalar() is not None:
                    recorded += 1
        return FeedbackCounts(len(items), recorded, len(items) - recorded)

    # -- governance report ------------------------------------------------------------

    def report(
        self,
        since: datetime,
        until: datetime,
        *,
        issuer: str | None = None,
        tenant: str | None = None,
    ) -> list[ReportRow]:
        """Per rule and card kind: cards issued in [since, until) and their latest outcome.

        A card may receive feedback several times; only its latest outcome (by
        outcomeTimestamp) counts, so a card is accepted or overridden at most once.
        """
        ranked = select(
            _feedback.c.card_id,
            _feedback.c.outcome,
            _feedback.c.reason_system,
            _feedback.c.reason_code,
            _feedback.c.reason_display,
            _feedback.c.user_comment,
            func.row_number()
            .over(
                partition_by=_feedback.c.card_id,
                order_by=(_feedback.c.outcome_timestamp.desc(), _feedback.c.id.desc()),
            )
            .label("rank"),
        ).subquery()
        latest = select(ranked).where(ranked.c.rank == 1).subquery()
        period = [_cards.c.issued_at >= _utc(since), _cards.c.issued_at < _utc(until)]
        if issuer is not None:
            period.append(_cards.c.issuer == issuer)
        if tenant is not None:
            period.append(_cards.c.tenant == tenant)
        joined = _cards.outerjoin(latest, latest.c.card_id == _cards.c.id)
        live = _cards.c.shadow.is_(False)
        # A literal, not a bound parameter: PostgreSQL matches GROUP BY expressions
        # textually, and two parameters never match.
        rule = func.coalesce(_cards.c.rule_id, literal_column("'-'"))

        def count_where(*conditions: Any) -> Any:
            return func.sum(case((and_(*conditions), 1), else_=0))

        totals = (
            select(
                rule.label("rule_id"),
                _cards.c.card_kind,
                count_where(live),
                count_where(_cards.c.shadow.is_(True)),
                count_where(live, latest.c.outcome == "accepted"),
                count_where(live, latest.c.outcome == "overridden"),
            )
            .select_from(joined)
            .where(*period)
            .group_by(rule, _cards.c.card_kind)
            .order_by(rule, _cards.c.card_kind)
        )
        reasons = (
            select(
                rule.label("rule_id"),
                _cards.c.card_kind,
                latest.c.reason_code,
                latest.c.reason_display,
                (latest.c.user_comment.is_not(None)).label("commented"),
                func.count(),
            )
            .select_from(joined)
            .where(*period, live, latest.c.outcome == "overridden")
            .group_by(
                rule,
                _cards.c.card_kind,
                latest.c.reason_code,
                latest.c.reason_display,
                latest.c.user_comment.is_not(None),
            )
        )
        with self._transaction() as connection:
            rows = {
                (r[0], r[1]): ReportRow(r[0], r[1], *(int(n or 0) for n in r[2:]))
                for r in connection.execute(totals)
            }
            for rule_id, kind, code, display, commented, n in connection.execute(reasons):
                label = display or code or ("comment only" if commented else "no reason given")
                bucket = rows[(rule_id, kind)].reasons
                bucket[label] = bucket.get(label, 0) + n
        return list(rows.values())


def _site_filter(site: tuple[str | None, str | None] | None) -> list[Any]:
    if site is None:
        return []
    issuer, tenant = site
    return [
        _cards.c.issuer.is_(None) if issuer is None else _cards.c.issuer == issuer,
        _cards.c.tenant.is_(None) if tenant is None else _cards.c.tenant == tenant,
    ]


def _card_row(card: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The columns of one card, and its suggestion uuids."""
    topic = (card.get("source") or {}).get("topic") or {}
    evidence = (card.get("extension") or {}).get(EVIDENCE_EXTENSION) or {}
    suggestions = [s["uuid"] for s in card.get("suggestions") or () if s.get("uuid")]
    row = {
        "card_uuid": str(card["uuid"]),
        "card_kind": str(topic.get("code") or "unknown"),
        "rule_id": evidence.get("ruleId"),
        "kb_version": evidence.get("knowledgeBaseVersion"),
        "indicator": str(card.get("indicator") or "info"),
        "concerns": evidence.get("concerns"),  # issue #4: the draft order a card is about
    }
    return row, list(dict.fromkeys(suggestions))
