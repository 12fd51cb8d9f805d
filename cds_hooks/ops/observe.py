"""Per-request observation: the request id, the call's log fields, the hook metrics.

`install_observation(app, metrics)` wraps every request of the app:
- before it: a request id (the caller's `X-Request-ID` if plain, else a new one) and, on a
  hook or feedback call, the service id, become the fields of every log line written;
- after it: the response carries `X-Request-ID`; a hook call is counted by service and
  status, its duration observed, and one INFO line says how it was answered.

The endpoints add what only they know with `note_hook_instance`, `note_issuer` and
`note_cards`; each costs a context-variable update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request

from cds_hooks.ops import logs
from cds_hooks.ops.metrics import Metrics, auth_reason

log = logging.getLogger("lipcds.calls")

HOOK_RULE = "/cds-services/<service_id>"
FEEDBACK_RULE = "/cds-services/<service_id>/feedback"


def note_hook_instance(value: Any) -> None:
    """The hookInstance of the body being answered (ignored unless a plain token)."""
    logs.bind(hook_instance=logs.plain(value))


def note_issuer(issuer: str | None) -> None:
    """The authenticated caller's `iss` (from the trusted list, so safe to log)."""
    if isinstance(issuer, str) and issuer:
        logs.bind(issuer=issuer)


def note_cards(cards: Iterable[Any]) -> None:
    """The cards the hook call answers with, for the metrics and the call's log line."""
    g._lipcds_cards = list(cards)


def note_auth_refusal(reason: str | None) -> None:
    """Why the verifier refused the call (its log text); counted as a reason label."""
    g._lipcds_auth_reason = reason


def note_feedback(outcomes: Iterable[str]) -> None:
    """The outcomes of the feedback items being recorded (counted once they are)."""
    g._lipcds_feedback = list(outcomes)


def install_observation(app: Flask, metrics: Metrics | None = None) -> None:
    """Request ids, log fields and hook metrics for every request of `app`."""
    known = metrics.service_ids if metrics is not None else None

    @app.before_request
    def _begin() -> None:
        g._lipcds_started = time.perf_counter()
        g._lipcds_call = logs.begin_call(
            logs.request_id_from(request.headers.get(logs.REQUEST_ID_HEADER))
        )
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule in (HOOK_RULE, FEEDBACK_RULE):
            service = (request.view_args or {}).get("service_id")
            if known is None or service in known:
                logs.bind(service=logs.plain(service))

    @app.after_request
    def _answered(response: Response) -> Response:
        call = logs.current_call()
        if call is not None:
            response.headers[logs.REQUEST_ID_HEADER] = call.request_id
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule == HOOK_RULE and request.method == "POST":
            _hook_answered(metrics, response)
        elif rule == FEEDBACK_RULE and request.method == "POST" and metrics is not None:
            _feedback_answered(metrics, response.status_code)
        if response.status_code == 401 and metrics is not None:
            metrics.auth_rejected(auth_reason(g.get("_lipcds_auth_reason")))
        return response

    @app.teardown_request
    def _end(exc: BaseException | None) -> None:
        token = g.pop("_lipcds_call", None)
        if token is not None:
            logs.end_call(token)


_FEEDBACK_REFUSALS = {400: "invalid", 422: "unknown_card", 503: "unavailable"}


def _feedback_answered(metrics: Metrics, status: int) -> None:
    if status == 200:
        for outcome in g.get("_lipcds_feedback") or ():
            metrics.feedback(outcome)
    elif status in _FEEDBACK_REFUSALS:
        metrics.feedback(_FEEDBACK_REFUSALS[status])


def _hook_answered(metrics: Metrics | None, response: Response) -> None:
    started = g.get("_lipcds_started")
    seconds = time.perf_counter() - started if started is not None else 0.0
    service = (request.view_args or {}).get("service_id")
    cards = g.get("_lipcds_cards")
    if metrics is not None:
        metrics.hook_call(service, response.status_code, seconds)
        if cards:
            metrics.cards_returned(service, cards)
    if response.status_code == 200:
        count = len(cards) if cards is not None else None
        shown = "" if count is None else f", {count} card{'s' if count != 1 else ''}"
        log.info("hook call answered 200%s in %.1f ms", shown, seconds * 1000)
    else:
        log.info("hook call answered %d in %.1f ms", response.status_code, seconds * 1000)
