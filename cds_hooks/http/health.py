"""Liveness and readiness probes for orchestrators: `GET /healthz` and `GET /readyz`.

Neither needs a token (`cds_hooks.security.auth` only guards /cds-services), and neither says
more than "ok" or which check failed: they are reachable by anyone who can reach the pod.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from cds_hooks.runtime import runtime

log = logging.getLogger("lipcds.health")

health = Blueprint("health", __name__)

_NO_CACHE = {"Cache-Control": "no-store"}


@health.get("/healthz")
def liveness() -> ResponseReturnValue:
    """The process answers HTTP. Checks nothing else, so a slow database never restarts us."""
    return jsonify({"status": "ok"}), 200, _NO_CACHE


@health.get("/readyz")
def readiness() -> ResponseReturnValue:
    """Ready for hook calls: knowledge base loaded, and the store and the replay guard's
    shared seen-set answer if they are installed. Each check is bounded (about 2 s)."""
    rt = runtime(current_app)
    checks: dict[str, str] = {}
    checks["knowledge_base"] = "ok" if rt.kb is not None and rt.kb.services else "not loaded"
    store = rt.store
    if store is not None:
        try:
            store.ping()
            checks["store"] = "ok"
        except Exception as exc:  # StoreUnavailable, or anything the driver raises
            # The reason (host, port) goes to the log, not to an unauthenticated caller.
            log.warning("readiness: store unreachable: %s", exc)
            checks["store"] = "unreachable"
    guard = rt.replay_guard
    if guard is not None:
        if store is not None and getattr(guard, "engine", None) is store.engine:
            checks["replay_guard"] = checks["store"]  # the same database: asked once
        else:
            try:
                guard.check()
                checks["replay_guard"] = "ok"
            except Exception as exc:  # ReplayGuardUnavailable (Redis away), or a driver error
                log.warning("readiness: replay guard unreachable: %s", exc)
                checks["replay_guard"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return jsonify(body), 200 if ready else 503, _NO_CACHE
