"""The application factory: settings, knowledge base, services, error handling."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from cds_hooks.config import Settings, load_settings
from cds_hooks.http.errors import CDSHooksError, operation_outcome
from knowledge import KnowledgeBase, load_knowledge_base
from knowledge.policy import Policy

log = logging.getLogger("lipcds")

# HTTP status -> OperationOutcome issue code, for errors Werkzeug raises itself.
_HTTP_ISSUE_CODES = {
    400: "invalid",
    404: "not-found",
    405: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


@dataclass
class Runtime:
    """What the service needs on every request, built once at start-up."""

    settings: Settings
    kb: KnowledgeBase
    policy: Policy
    extras: dict[str, Any] = field(default_factory=dict)  # store, fetcher, verifier, ...

    def policy_for(self, issuer: str | None, tenant: str | None) -> Policy:
        """The thresholds for the calling site: its own policy if one is configured."""
        site_policies = self.extras.get("site_policies")
        if site_policies is None:
            return self.policy
        return site_policies(issuer, tenant) or self.policy


def runtime(app: Flask) -> Runtime:
    return app.extensions["lipcds"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service. `test_config` overrides settings (see `cds_hooks.config.Settings`)."""
    settings = load_settings(test_config)
    kb = load_knowledge_base(settings.knowledge_dir)
    policy = Policy(kb.thresholds, settings.threshold_overrides)

    app = Flask("cds_hooks")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["lipcds"] = Runtime(settings=settings, kb=kb, policy=policy)

    from cds_hooks.hooks.fetching import install_fetching
    from cds_hooks.http.api import api
    from cds_hooks.security.auth import install_auth

    install_fetching(app)  # fetch-on-miss from allow-listed FHIR servers (issue #3)
    app.register_blueprint(api)
    install_auth(app, settings)  # JWT of the EHR, CORS, token-free logs (issue #5)
    # -- issue #6: per-site policy, the store of issued cards, feedback --
    from cds_hooks.http.feedback import feedback_api
    from cds_hooks.sites import install_site_policies
    from cds_hooks.store import install_store

    install_site_policies(app)
    install_store(app)
    app.register_blueprint(feedback_api)
    # -- end issue #6 --
    from cds_hooks.http.health import health

    app.register_blueprint(health)  # /healthz, /readyz for probes; no token needed
    _register_error_handlers(app)
    log.info(
        "lipcds ready: knowledge base %s, %d services, env=%s",
        kb.version,
        len(kb.services),
        settings.env,
    )
    return app


def configure_logging(level: str) -> None:
    """Logging for a server process: called by `lipcds serve`, never by `create_app`.

    The factory leaves logging alone, so tests and embedding applications keep control of
    theirs, and one app's level cannot leak into another built in the same process.
    """
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lipcds").setLevel(level.upper())


def error_response(status: int, body: dict[str, Any], headers: Mapping[str, str] = ()) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in dict(headers).items():
        response.headers[name] = value
    return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CDSHooksError)
    def _cds_error(exc: CDSHooksError) -> Response:
        if exc.status_code == 401:
            log.warning("request refused (401): %s", getattr(exc, "reason", exc.message))
        elif exc.status_code >= 500:
            log.error("request failed (%d): %s", exc.status_code, exc.message)
        return error_response(exc.status_code, exc.to_dict(), exc.headers())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            413: f"request body larger than {app.config['MAX_CONTENT_LENGTH']} bytes",
            405: "method not allowed for this endpoint",
            404: "no such endpoint",
        }.get(status, exc.description or exc.name)
        body = operation_outcome(_HTTP_ISSUE_CODES.get(status, "exception"), message)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(status, body, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error while handling a request")
        body = operation_outcome("exception", "internal error; the service log has the details")
        return error_response(500, body)
