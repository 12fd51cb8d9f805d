"""Wiring of the store into the app: schema at start-up, and a record of every hook response."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask

from cds_hooks.app import runtime
from cds_hooks.config import ConfigError
from cds_hooks.store.pseudonym import hash_patient_id, load_patient_key
from cds_hooks.store.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from cds_hooks.hooks.pipeline import HookCall, HookResult

log = logging.getLogger("lipcds.store")


class CardRecorder:
    """An `on_result` listener: records the cards of each response, never blocks it.

    The record serves governance; the cards serve the clinician. When the database
    cannot take the record, the response still goes out and the loss is logged.
    """

    def __init__(
        self,
        store: Store,
        patient_key: bytes,
        shadow: Callable[[str | None, str | None], bool] | None = None,
    ):
        self.store = store
        self.patient_key = patient_key
        self.shadow = shadow

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
                shadow=bool(self.shadow and self.shadow(call.issuer, call.tenant)),
                encounter_id=call.context.get("encounter_id"),  # issue #4
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


def install_store(app: Flask) -> Store:
    """Open the store, prepare its schema, and record every hook response from now on.

    SQLite (the embedded default) is migrated to the latest schema here. Any other
    database is migrated by `lipcds db upgrade` before deployment; start-up only checks
    it and logs when it is behind or unreachable, because hook calls work without it.
    """
    rt = runtime(app)
    settings = rt.settings
    patient_key = load_patient_key(settings)
    store = Store(settings.database_url)
    if store.dialect == "sqlite":
        try:
            store.upgrade()
        except Exception as exc:
            raise ConfigError(f"LIPCDS_DATABASE_URL: cannot prepare {store.url}: {exc}") from exc
    else:
        _check_schema(store)
    rt.extras["store"] = store
    shadow = rt.extras.get("shadow")
    recorder = CardRecorder(store, patient_key, _late_lookup(rt.extras, "shadow", shadow))
    rt.extras.setdefault("on_result", []).append(recorder)
    log.info("store: %s", store.url)
    return store


def _late_lookup(extras: dict[str, Any], name: str, fallback: Any) -> Callable[..., bool]:
    """Read `extras[name]` per call, so the order of installation does not matter."""

    def lookup(issuer: str | None, tenant: str | None) -> bool:
        fn = extras.get(name, fallback)
        return bool(fn and fn(issuer, tenant))

    return lookup


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
