"""The composition root: `create_app` builds every typed part once and hands it over.

Nothing below looks a part up by name: each module receives what it needs as an
argument, and the request-time code reads the typed `Runtime` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from cds_hooks.config import load_settings
from cds_hooks.hooks.fetching import make_fetcher
from cds_hooks.hooks.gate import CpuGate
from cds_hooks.hooks.registry import ServiceRegistry
from cds_hooks.http.api import api
from cds_hooks.http.errors import register_error_handlers
from cds_hooks.http.feedback import feedback_api
from cds_hooks.http.health import health
from cds_hooks.http.jsonio import OrjsonProvider
from cds_hooks.ops.logs import choose_format
from cds_hooks.ops.logs import configure_logging as configure_ops_logging
from cds_hooks.ops.metrics import Metrics, install_metrics
from cds_hooks.ops.observe import install_observation
from cds_hooks.ops.openapi import install_openapi
from cds_hooks.runtime import Runtime, attach
from cds_hooks.security.auth import build_verifier, install_auth
from cds_hooks.security.replay import FallbackReplayGuard
from cds_hooks.sites import SiteRegistry, load_site_policies
from cds_hooks.store.pseudonym import load_patient_key
from cds_hooks.store.recording import CardRecorder, open_store, open_writer
from cds_hooks.ui.wiring import install_ui
from fhir_mapping.cards import check_order_templates
from knowledge import load_knowledge_base
from knowledge.policy import Policy

log = logging.getLogger("lipcds")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service. `test_config` overrides settings (see `cds_hooks.config.Settings`)."""
    settings = load_settings(test_config)
    kb = load_knowledge_base(settings.knowledge_dir)
    check_order_templates(kb)  # every ServiceRequest a card can carry, validated once here
    policy = Policy(kb.thresholds, settings.threshold_overrides)
    services = ServiceRegistry.build(kb)
    if settings.site_policy_file:
        sites = load_site_policies(settings.site_policy_file, kb, policy)
    else:
        sites = SiteRegistry(policy)
    service_ids = [s.definition.id for s in services]
    metrics = Metrics(service_ids, kb.version)
    gate = CpuGate()
    # Waiting on a FHIR server needs no CPU: a fetch leaves the gate and queues again after.
    fetcher = gate.outside(make_fetcher(settings, count_fetches=metrics.fhir_fetch))
    patient_key = load_patient_key(settings)
    store = open_store(settings)
    writer = open_writer(
        settings,
        store,
        on_pending=metrics.set_store_pending,
        on_event=metrics.store_record_event,
    )
    verifier, replay_guard = build_verifier(settings, store.engine)
    if isinstance(replay_guard, FallbackReplayGuard):
        replay_guard.on_event = metrics.replay_fallback_event
    rt = Runtime(
        settings=settings,
        kb=kb,
        policy=policy,
        sites=sites,
        services=services,
        store=store,
        fetcher=fetcher,
        verifier=verifier,
        replay_guard=replay_guard,
        writer=writer,
        listeners=[CardRecorder(writer, patient_key)],
        gate=gate,
    )

    app = Flask("cds_hooks")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    attach(app, rt)
    install_observation(app, metrics)  # request ids, call fields in logs, hook metrics
    app.register_blueprint(api)
    install_auth(app, settings, verifier)  # JWT of the EHR, CORS, token-free logs
    app.register_blueprint(feedback_api)
    app.register_blueprint(health)  # /healthz, /readyz for probes; no token needed
    install_metrics(app, metrics, token=settings.metrics_token)  # keep it off the internet
    install_openapi(
        app,
        version=_version(),
        service_ids=service_ids,
        hooks={s.definition.hook for s in services},
        base_url=settings.public_base_url,
    )
    install_ui(app, rt)  # public rule pages; preview and governance as settings allow
    register_error_handlers(app)
    log.info(
        "lipcds ready: knowledge base %s, %d services, env=%s",
        kb.version,
        len(services),
        settings.env,
    )
    return app


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Logging for a server process: called by `lipcds serve`, never by `create_app`.

    The factory leaves logging alone, so tests and embedding applications keep control of
    theirs, and one app's level cannot leak into another built in the same process.
    `log_format` json or text; None: LIPCDS_LOG_FORMAT, else by LIPCDS_ENV.
    """
    from cds_hooks.ops.logs import format_from_environ

    chosen = choose_format(log_format, None) if log_format else format_from_environ()
    configure_ops_logging(level, chosen)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lipcds")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"
