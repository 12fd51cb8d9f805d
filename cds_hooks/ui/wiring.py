"""Hands the pages what they read from the running service."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Flask

from cds_hooks.cli import demo as demos
from cds_hooks.hooks.pipeline import run_hook
from cds_hooks.http.api import rule_pages_base
from cds_hooks.http.errors import CDSHooksError
from cds_hooks.runtime import Runtime
from cds_hooks.store import FeedbackItem, StoreError
from cds_hooks.ui.access import UiAccess
from cds_hooks.ui.preview import PREVIEW_ISSUER
from cds_hooks.ui.views import SiteView, UiContext, create_ui_blueprint


def access_from_settings(settings: Any) -> UiAccess:
    """On outside production unless switched off; in production only when switched on
    (and then config has made sure a credential is set)."""
    enabled = settings.ui_pages
    if enabled is None:
        enabled = not settings.is_production
    return UiAccess(enabled=bool(enabled), credential=settings.ui_credential)


def ui_context(rt: Runtime) -> UiContext:
    sites = [
        SiteView(site.issuer, site.tenant, getattr(site, "name", None), site.policy,
                 site.disabled_rules, site.shadow)
        for site in rt.sites._sites.values()
        if site.issuer
    ]
    # The preview never fetches from a FHIR server: what it shows is what it was given.
    preview_rt = dataclasses.replace(rt, fetcher=None)

    def run(service_id: str, body: Any) -> dict[str, Any]:
        return run_hook(
            preview_rt, service_id, body, issuer=PREVIEW_ISSUER, tenant=None,
            rule_pages=rule_pages_base(rt.settings),
        )

    return UiContext(
        kb=rt.kb,
        policy=rt.policy,
        run=run,
        refusal=CDSHooksError,
        demos=demos,
        clock=rt.settings.clock,
        store=rt.store,
        sites=sites,
        feedback_item=FeedbackItem,
        store_errors=(StoreError,),
    )


def install_ui(app: Flask, rt: Runtime, access: UiAccess | None = None) -> None:
    """Register the pages on `app`; `access` overrides what the settings say."""
    context = ui_context(rt)
    app.register_blueprint(
        create_ui_blueprint(lambda: context, access or access_from_settings(rt.settings))
    )
