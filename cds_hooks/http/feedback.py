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
import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, g, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from cds_hooks.http.api import read_json_body
from cds_hooks.http.errors import CDSHooksError, InvalidRequest, ServiceUnavailable, UnknownService
from cds_hooks.runtime import runtime
from cds_hooks.store import FeedbackItem, StoreUnavailable, UnknownCard

log = logging.getLogger("lipcds.feedback")
feedback_api = Blueprint("feedback", __name__)

OUTCOMES = ("accepted", "overridden")
_NONBLANK = validate.Length(min=1)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


class CardNotIssued(CDSHooksError):
    status_code = 422
    issue_code = "not-found"


class Rfc3339(fields.Field):
    """An RFC 3339 date-time with its offset (the spec asks for UTC); loads aware UTC."""

    default_error_messages = {"invalid": "must be an RFC 3339 date-time, e.g. 2026-11-21T10:15:00Z"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        match = _RFC3339.match(value) if isinstance(value, str) else None
        if not match:
            raise self.make_error("invalid")
        day, clock, fraction, offset = match.groups()
        # fromisoformat wants at most six fraction digits; RFC 3339 allows any number.
        micro = f".{(fraction or '0')[:6]:0<6}"
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            return datetime.fromisoformat(f"{day}T{clock}{micro}{offset}").astimezone(UTC)
        except ValueError:
            raise self.make_error("invalid") from None


class CodingSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#coding — code and system required."""

    class Meta:
        unknown = EXCLUDE

    system = fields.String(required=True, validate=_NONBLANK)
    code = fields.String(required=True, validate=_NONBLANK)
    display = fields.String(validate=_NONBLANK)


class OverrideReasonSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#overridereason"""

    class Meta:
        unknown = EXCLUDE

    reason = fields.Nested(CodingSchema)
    user_comment = fields.String(data_key="userComment", validate=_NONBLANK)

    @validates_schema
    def _reason_or_comment(self, data: dict[str, Any], **kwargs: Any) -> None:
        # cds-fb-3
        if "reason" not in data and "user_comment" not in data:
            raise ValidationError("needs a reason or a userComment (cds-fb-3)", "reason")


class AcceptedSuggestionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=_NONBLANK)


class FeedbackItemSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#feedback — one card's outcome."""

    class Meta:
        unknown = EXCLUDE

    card = fields.String(required=True, validate=validate.Length(min=1, max=64))
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))  # cds-fb-1
    accepted_suggestions = fields.List(
        fields.Nested(AcceptedSuggestionSchema),
        data_key="acceptedSuggestions",
        validate=validate.Length(min=1),  # §1.1: no empty arrays
    )
    override_reason = fields.Nested(OverrideReasonSchema, data_key="overrideReason")
    outcome_timestamp = Rfc3339(required=True, data_key="outcomeTimestamp")

    @validates_schema
    def _outcome_fields(self, data: dict[str, Any], **kwargs: Any) -> None:
        outcome = data.get("outcome")
        if outcome == "accepted" and "accepted_suggestions" not in data:
            # cds-fb-2
            raise ValidationError(
                "required when outcome is accepted (cds-fb-2)", "acceptedSuggestions"
            )
        # The contrary cases carry no meaning and would corrupt the override statistics.
        if outcome == "overridden" and "accepted_suggestions" in data:
            raise ValidationError("not allowed when outcome is overridden", "acceptedSuggestions")
        if outcome == "accepted" and "override_reason" in data:
            raise ValidationError("not allowed when outcome is accepted", "overrideReason")

    @post_load
    def _item(self, data: dict[str, Any], **kwargs: Any) -> FeedbackItem:
        reason = data.get("override_reason", {})
        coding = reason.get("reason", {})
        return FeedbackItem(
            card=data["card"],
            outcome=data["outcome"],
            outcome_timestamp=data["outcome_timestamp"],
            accepted_suggestions=tuple(
                dict.fromkeys(s["id"] for s in data.get("accepted_suggestions", ()))
            ),
            reason_system=coding.get("system"),
            reason_code=coding.get("code"),
            reason_display=coding.get("display"),
            user_comment=reason.get("user_comment"),
        )


class FeedbackSchema(Schema):
    """The request body: `{"feedback": [Feedback, ...]}`."""

    class Meta:
        unknown = EXCLUDE

    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1, max=500)
    )


_SCHEMA = FeedbackSchema()


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """The items of a feedback request; InvalidRequest naming every bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return _SCHEMA.load(body)["feedback"]
    except ValidationError as exc:
        problems = _problems(exc.messages)
        raise InvalidRequest(
            "invalid feedback: " + "; ".join(f"{path}: {msg}" for path, msg in problems),
            expression=list(dict.fromkeys(path for path, _ in problems)),
        ) from None


def _problems(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested messages as (FHIRPath-like path, message) pairs."""
    if isinstance(messages, dict):
        found: list[tuple[str, str]] = []
        for key, value in messages.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == "_schema":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            found.extend(_problems(value, child))
        return found
    if isinstance(messages, list):
        return [pair for message in messages for pair in _problems(message, path)]
    return [(path or "body", str(messages))]


@feedback_api.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> ResponseReturnValue:
    """Record feedback on cards this service issued."""
    rt = runtime(current_app)
    if service_id not in rt.services:
        raise UnknownService(f"no CDS service with id {service_id!r}")
    items = parse_feedback(read_json_body())
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
