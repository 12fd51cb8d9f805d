"""The store: issued cards and feedback, through SQLAlchemy 2 on SQLite or PostgreSQL.

Every public method is one transaction. A database that cannot be reached raises
`StoreUnavailable` (the feedback endpoint answers 503; the hook listener logs and lets
the cards go out). After such a failure the store fails fast for `cooldown_seconds`, so
hook calls are not each held up by a connect timeout while the database is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from cds_hooks.store import migrate
from cds_hooks.store.engine import EngineLimits, make_engine, operation_budget
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


class RecordRejected(StoreError):
    """The database refuses a record's values (too long, characters it cannot hold);
    retrying cannot help. Nothing was written."""


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
        limits: EngineLimits | None = None,
        cooldown_seconds: float = 5.0,
        clock: Any = None,
    ):
        self.limits = limits or EngineLimits()
        self.engine = make_engine(database_url, self.limits)
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._down_until = 0.0
        # Set by the record writer: writes the waiting records of these cards, returns how
        # many it wrote (see record_feedback).
        self.write_waiting: Callable[[str, Sequence[str]], int] | None = None

    @property
    def available(self) -> bool:
        """False while the store fails fast after the database was found unreachable."""
        return time.monotonic() >= self._down_until

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
    def _transaction(
        self, budget: float | None = None, *, unbounded: bool = False
    ) -> Iterator[Connection]:
        """One transaction; connection failures become StoreUnavailable.

        `budget`: seconds the whole transaction may take, instead of the engine's
        operation timeout; `unbounded`: no client-side bound at all.
        """
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("the database was unreachable moments ago; not retrying yet")
        if unbounded:
            bound: AbstractContextManager[None] = operation_budget(None)
        elif budget is not None:
            bound = operation_budget(budget)
        else:
            bound = nullcontext()
        try:
            with bound, self.engine.begin() as connection:
                yield connection
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            self._down_until = time.monotonic() + self.cooldown_seconds
            # The driver's message names host and port, never the password.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreUnavailable(f"database unavailable: {reason}") from exc

    # -- schema ---------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to `revision`, without the statement bounds."""
        if self.dialect == "sqlite":
            # Same engine: an in-memory database exists only on its own connection.
            with operation_budget(None):
                migrate.upgrade(self.engine, revision)
            return
        url = self.engine.url.render_as_string(hide_password=False)
        engine = make_engine(url, self.limits.unbounded())
        try:
            migrate.upgrade(engine, revision)
        finally:
            engine.dispose()

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
        """Record the cards of one hook response now; returns how many were new.

        A card uuid already recorded for this service (the EHR re-sent the same
        hookInstance) keeps its first record. Cards without a uuid cannot receive
        feedback and are not recorded.
        """
        record = CardRecord.of_response(
            service_id=service_id,
            hook=hook,
            hook_instance=hook_instance,
            cards=cards,
            issued_at=issued_at,
            patient_hash=patient_hash,
            issuer=issuer,
            tenant=tenant,
            shadow=shadow,
            encounter_id=encounter_id,
        )
        return self.record_batch([record]) if record.cards else 0

    def record_batch(self, records: Sequence[CardRecord], *, budget: float | None = None) -> int:
        """Write the records of many hook responses in one transaction; returns how many
        cards were new. Writing a record twice is harmless (the first one stays).

        Raises StoreUnavailable (the database is away or too slow; retry later) or
        RecordRejected (the database refuses the values); either way nothing was written.
        """
        card_rows = []
        suggestions: dict[tuple[str, str], list[str]] = {}
        for record in records:
            common = record.common_values()
            for card in record.cards:
                card_rows.append({**common, **card.columns()})
                if card.suggestions:
                    suggestions[(record.service_id, card.card_uuid)] = list(card.suggestions)
        if not card_rows:
            return 0
        try:
            with self._transaction(budget) as connection:
                inserted = connection.execute(
                    _insert(connection, _cards).returning(
                        _cards.c.id, _cards.c.service_id, _cards.c.card_uuid
                    ),
                    card_rows,
                ).all()
                suggestion_rows = [
                    {"card_id": card_id, "suggestion_uuid": uuid}
                    for card_id, service_id, card_uuid in inserted
                    for uuid in suggestions.get((service_id, card_uuid), ())
                ]
                if suggestion_rows:
                    connection.execute(_insert(connection, _suggestions), suggestion_rows)
        except (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.StatementError) as exc:
            if isinstance(exc, sa_exc.DBAPIError) and not isinstance(
                exc, sa_exc.DataError | sa_exc.IntegrityError
            ):
                raise  # ProgrammingError (schema not migrated yet) and the like: retry later
            raise RecordRejected(
                f"the database refused the values: {type(getattr(exc, 'orig', exc)).__name__}"
            ) from exc
        except (UnicodeError, ValueError) as exc:
            raise RecordRejected(f"values the database cannot hold: {type(exc).__name__}") from exc
        return len(inserted)

    # -- repeats between order-select and order-sign ---------------------------------

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

        A card issued moments ago may still wait to be written (`cds_hooks.store.writer`):
        then `write_waiting(service_id, card_uuids)` writes its record and the request is
        tried once more.
        """
        try:
            return self._record_feedback(service_id, items, site)
        except UnknownCard:
            cards = sorted({item.card for item in items})
            if self.write_waiting is None or not self.write_waiting(service_id, cards):
                raise
            return self._record_feedback(service_id, items, site)

    def _record_feedback(
        self,
        service_id: str,
        items: Sequence[FeedbackItem],
        site: tuple[str | None, str | None] | None,
    ) -> FeedbackCounts:
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
        # A report over a long period may take longer than a request's bounds allow.
        with self._transaction(unbounded=True) as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            rows = {
                (r[0], r[1]): ReportRow(r[0], r[1], *(int(n or 0) for n in r[2:]))
                for r in connection.execute(totals)
            }
            for rule_id, kind, code, display, commented, n in connection.execute(reasons):
                label = display or code or ("comment only" if commented else "no reason given")
                bucket = rows[(rule_id, kind)].reasons
                bucket[label] = bucket.get(label, 0) + n
        return list(rows.values())


@dataclass(frozen=True)
class RecordedCard:
    """The columns of one issued card, and its suggestion uuids."""

    card_uuid: str
    card_kind: str
    indicator: str
    rule_id: str | None = None
    kb_version: str | None = None
    concerns: str | None = None
    suggestions: tuple[str, ...] = ()

    def columns(self) -> dict[str, Any]:
        return {
            "card_uuid": self.card_uuid,
            "card_kind": self.card_kind,
            "indicator": self.indicator,
            "rule_id": self.rule_id,
            "kb_version": self.kb_version,
            "concerns": self.concerns,
        }


@dataclass(frozen=True)
class CardRecord:
    """What the store keeps of one hook response: the cards that can receive feedback.

    Plain values only, so a record can wait in a spool file (`to_json`, `from_json`) while
    the database is away.
    """

    service_id: str
    hook: str
    hook_instance: str
    issued_at: datetime  # aware
    cards: tuple[RecordedCard, ...]
    patient_hash: str | None = None
    issuer: str | None = None
    tenant: str | None = None
    shadow: bool = False
    encounter_id: str | None = None

    @classmethod
    def of_response(
        cls,
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
    ) -> CardRecord:
        """The record of one response's cards; cards without a uuid are left out."""
        return cls(
            service_id=service_id,
            hook=hook,
            hook_instance=hook_instance,
            issued_at=_utc(issued_at),
            cards=tuple(_recorded_card(card) for card in cards if card.get("uuid")),
            patient_hash=patient_hash,
            issuer=issuer,
            tenant=tenant,
            shadow=shadow,
            encounter_id=encounter_id,
        )

    @property
    def card_uuids(self) -> tuple[str, ...]:
        return tuple(card.card_uuid for card in self.cards)

    def common_values(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "hook": self.hook,
            "hook_instance": self.hook_instance,
            "patient_hash": self.patient_hash,
            "issuer": self.issuer,
            "tenant": self.tenant,
            "shadow": self.shadow,
            "issued_at": self.issued_at,
            "encounter_id": self.encounter_id,
        }

    def to_json(self) -> dict[str, Any]:
        values = self.common_values()
        values["issued_at"] = self.issued_at.isoformat()
        values["cards"] = [
            {**card.columns(), "suggestions": list(card.suggestions)} for card in self.cards
        ]
        return values

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CardRecord:
        """The inverse of `to_json`; ValueError, KeyError or TypeError on a damaged record."""
        issued_at = datetime.fromisoformat(data["issued_at"])
        cards = tuple(
            RecordedCard(
                card_uuid=str(card["card_uuid"]),
                card_kind=str(card["card_kind"]),
                indicator=str(card["indicator"]),
                rule_id=card.get("rule_id"),
                kb_version=card.get("kb_version"),
                concerns=card.get("concerns"),
                suggestions=tuple(str(u) for u in card.get("suggestions") or ()),
            )
            for card in data["cards"]
        )
        return cls(
            service_id=str(data["service_id"]),
            hook=str(data["hook"]),
            hook_instance=str(data["hook_instance"]),
            issued_at=_utc(issued_at),
            cards=cards,
            patient_hash=data.get("patient_hash"),
            issuer=data.get("issuer"),
            tenant=data.get("tenant"),
            shadow=bool(data.get("shadow", False)),
            encounter_id=data.get("encounter_id"),
        )


def _site_filter(site: tuple[str | None, str | None] | None) -> list[Any]:
    if site is None:
        return []
    issuer, tenant = site
    return [
        _cards.c.issuer.is_(None) if issuer is None else _cards.c.issuer == issuer,
        _cards.c.tenant.is_(None) if tenant is None else _cards.c.tenant == tenant,
    ]


def _recorded_card(card: Mapping[str, Any]) -> RecordedCard:
    topic = (card.get("source") or {}).get("topic") or {}
    evidence = (card.get("extension") or {}).get(EVIDENCE_EXTENSION) or {}
    suggestions = [s["uuid"] for s in card.get("suggestions") or () if s.get("uuid")]
    return RecordedCard(
        card_uuid=str(card["uuid"]),
        card_kind=str(topic.get("code") or "unknown"),
        indicator=str(card.get("indicator") or "info"),
        rule_id=evidence.get("ruleId"),
        kb_version=evidence.get("knowledgeBaseVersion"),
        concerns=evidence.get("concerns"),  # the draft order a card is about
        suggestions=tuple(dict.fromkeys(str(u) for u in suggestions)),
    )
