"""The store at start-up (schema checked or migrated), and the record of every hook response."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cds_hooks.config import ConfigError, Settings
from cds_hooks.store.pseudonym import hash_patient_id
from cds_hooks.store.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from cds_hooks.hooks.call import HookCall, HookResult

log = logging.getLogger("lipcds.store")


class CardRecorder:
    """A result listener: records the cards of each response, never blocks it.

    The record serves governance; the cards serve the clinician. When the database
    cannot take the record, the response still goes out and the loss is logged.
    """

    def __init__(self, store: Store, patient_key: bytes):
        self.store = store
        self.patient_key = patient_key

    def __call__(self, call: HookCall, result: HookResult) -> None:
        if not result.cards:
            return
        patient_id = call.context.get("patient_id")
        try:
            self.store.record_result(
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
        except StoreUnavailable as exc:
            log.error(
                "could not record %d cards for hookInstance %s: %s",
                len(result.cards),
                call.hook_instance,
                exc,
            )
        except Exception:
            log.exception(
                "could not record %d cards for hookInstance %s",
                len(result.cards),
                call.hook_instance,
            )


def open_store(settings: Settings) -> Store:
    """Open the store and prepare its schema.

    SQLite (the embedded default) is migrated to the latest schema here. Any other
    database is migrated by `lipcds db upgrade` before deployment; start-up only checks
    it and logs when it is behind or unreachable, because hook calls work without it.
    """
    store = Store(settings.database_url)
    if store.dialect == "sqlite":
        try:
            store.upgrade()
        except Exception as exc:
            raise ConfigError(f"LIPCDS_DATABASE_URL: cannot prepare {store.url}: {exc}") from exc
    else:
        _check_schema(store)
    log.info("store: %s", store.url)
    return store


def _check_schema(store: Store) -> None:
    try:
        current = store.schema_is_current()
    except Exception as exc:
        log.error(
            "store %s unreachable at start-up (%s); cards will not be recorded", store.url, exc
        )
        return
    if not current:
        log.error(
            "store %s: schema is not at the latest revision; run `lipcds db upgrade`", store.url
        )
