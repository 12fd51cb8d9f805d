"""`POST /cds-services/{id}/feedback`: what the clinician did with our cards.

https://cds-hooks.hl7.org/2.0/#feedback. Answers:
- 200 `{"received": n, "recorded": m, "duplicates": d}` (the spec defines no body; the
  counts tell a client its retry was harmless);
- 400 OperationOutcome naming the field (cds-fb-1..3, RFC 3339 timestamp, shape);
- 404 for an unknown service;
- 422 when an item names a card this service did not issue to the calling site (JWT
  issuer and tenant), or a suggestion that was not on the card: the request is
  well-formed but refers to nothing we know, and a 404 would read as "this service
  takes no feedback";
- 503 with Retry-After when the store is down.
A request is one transaction: all of its items are recorded, or none.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, current_app, g, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from cds_hooks.http.api import read_json_body
from cds_hooks.http.errors import CDSHooksError, InvalidRequest, ServiceUnavailable, UnknownService
from cds_hooks.http.schemas import FeedbackSchema
from cds_hooks.ops.observe import note_feedback
from cds_hooks.runtime import runtime
from cds_hooks.store import FeedbackItem, StoreUnavailable, UnknownCard
from cds_hooks.validation import problems

log = logging.getLogger("lipcds.feedback")
feedback_api = Blueprint("feedback", __name__)


class CardNotIssued(CDSHooksError):
    status_code = 422
    issue_code = "not-found"


_SCHEMA = FeedbackSchema()


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """The items of a feedback request; InvalidRequest naming every bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return _SCHEMA.load(body)["feedback"]
    except ValidationError as exc:
        found = [(path or "body", message) for path, message in problems(exc.messages)]
        raise InvalidRequest(
            "invalid feedback: " + "; ".join(f"{path}: {msg}" for path, msg in found),
            expression=list(dict.fromkeys(path for path, _ in found)),
        ) from None


@feedback_api.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> ResponseReturnValue:
    """Record feedback on cards this service issued."""
    rt = runtime(current_app)
    if service_id not in rt.services:
        raise UnknownService(f"no CDS service with id {service_id!r}")
    items = parse_feedback(read_json_body())
    note_feedback(item.outcome for item in items)
    store = rt.store
    if store is None:
        raise ServiceUnavailable("the feedback store is not configured; nothing was recorded")
    try:
        client = g.cds_client  # set by cds_hooks.security.auth before any view runs
        counts = store.record_feedback(service_id, items, site=(client.iss, client.tenant))
    except StoreUnavailable as exc:
        # The cause (host, driver message) goes to the log, not to the client.
        log.error("feedback for service %s not recorded: %s", service_id, exc)
        raise ServiceUnavailable(
            "the feedback store is unavailable; nothing was recorded, try again later",
            retry_after=max(1, math.ceil(store.cooldown_seconds)),
        ) from None
    except UnknownCard as exc:
        raise CardNotIssued(
            str(exc), expression=[f"feedback[{exc.index}].{exc.field_name}"]
        ) from None
    return jsonify(
        {"received": counts.received, "recorded": counts.recorded, "duplicates": counts.duplicates}
    )
