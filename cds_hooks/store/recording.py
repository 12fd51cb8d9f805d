"""The store at start-up (schema checked or migrated), and the record of every hook response."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from cds_hooks.config import ConfigError, Settings
from cds_hooks.store.engine import EngineLimits
from cds_hooks.store.pseudonym import hash_patient_id
from cds_hooks.store.store import CardRecord, Store
from cds_hooks.store.writer import RecordWriter, build_writer

if TYPE_CHECKING:
    from cds_hooks.hooks.call import HookCall, HookResult

log = logging.getLogger("lipcds.store")


class CardRecorder:
    """A result listener: hands the record of each response to the writer, never waits.

    The record serves governance; the cards serve the clinician. The writer keeps the
    record until the database has it (see `cds_hooks.store.writer`); the response goes
    out at once whatever the database is doing.
    """

    def __init__(self, writer: RecordWriter, patient_key: bytes):
        self.writer = writer
        self.patient_key = patient_key

    def __call__(self, call: HookCall, result: HookResult) -> None:
        if not result.cards:
            return
        patient_id = call.context.get("patient_id")
        try:
            record = CardRecord.of_response(
                service_id=call.service.id,
                hook=call.service.hook,
                hook_instance=call.hook_instance,
                cards=result.cards,
                issued_at=call.now,
                patient_hash=hash_patient_id(self.patient_key, patient_id) if patient_id else None,
                issuer=call.issuer,
                tenant=call.tenant,
                shadow=call.site.shadow,
                encounter_id=call.context.get("encounter_id"),
            )
            self.writer.submit(record)  # a refusal is counted and logged by the writer
        except Exception:
            log.exception(
                "could not record %d cards for hookInstance %s",
                len(result.cards),
                call.hook_instance,
            )


def engine_limits(settings: Settings) -> EngineLimits:
    return EngineLimits(
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        operation_timeout=settings.db_operation_timeout,
        busy_timeout=settings.db_busy_timeout,
    )


def open_store(settings: Settings) -> Store:
    """Open the store and prepare its schema; never waits long for the database.

    SQLite (the embedded default) is migrated to the latest schema here. Any other
    database is migrated by `lipcds db upgrade` before deployment; start-up only checks
    it and logs when it is behind or unreachable: hook calls work without it, and the
    card records wait in the spool until it is back.
    """
    store = Store(settings.database_url, limits=engine_limits(settings))
    if store.dialect == "sqlite":
        try:
            store.upgrade()
        except Exception as exc:
            raise ConfigError(f"LIPCDS_DATABASE_URL: cannot prepare {store.url}: {exc}") from exc
    else:
        _check_schema(store)
    log.info("store: %s", store.url)
    return store


def open_writer(
    settings: Settings,
    store: Store,
    on_pending: Callable[[int], None] | None = None,
    on_event: Callable[[str, int], None] | None = None,
) -> RecordWriter:
    """The card-record writer of this process, spooling under LIPCDS_SPOOL_DIR;
    `on_pending` is told the number of records waiting whenever it changes (a gauge),
    `on_event` each counted event (written, failures, rejected, refused, ...)."""
    try:
        writer = build_writer(
            store,
            settings.spool_dir,
            max_pending=settings.store_max_pending,
            on_pending=on_pending,
            on_event=on_event,
        )
    except OSError as exc:
        raise ConfigError(
            f"LIPCDS_SPOOL_DIR: cannot use {settings.spool_dir or 'the default spool'}: "
            f"{exc.strerror or exc}"
        ) from exc
    writer.start()
    log.info("card records spool: %s", writer.spool_dir or "memory only")
    return writer


def _check_schema(store: Store) -> None:
    try:
        current = store.schema_is_current()
    except Exception as exc:
        log.error(
            "store %s unreachable at start-up (%s); card records wait in the spool until it "
            "is back",
            store.url,
            str(exc).splitlines()[0][:200],
        )
        return
    if not current:
        log.error(
            "store %s: schema is not at the latest revision; run `lipcds db upgrade`", store.url
        )
