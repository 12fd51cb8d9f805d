"""Wire schemas of CDS Hooks 2.0: the hook request envelope, each hook's context, feedback.

https://cds-hooks.hl7.org/2.0/#http-request — unknown fields are tolerated (hooks gain
context fields in minor versions), required ones are not. Messages name fields, never
echo values: a request may carry an access token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    EXCLUDE,
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from cds_hooks.http.text import Text
from cds_hooks.store import FeedbackItem

# Anchored with \Z: `$` also matches before a final newline, so "p1\n" would pass.
_PLAIN_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}\Z")  # FHIR id datatype
_USER_REF = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}\Z"
)
TOKEN_CHARS = 16 * 1024  # an access token; JWTs with many claims run to a few KB
# Strings are bounded by their store columns (store/models.py); the comment column is
# text, bounded here so one request cannot put megabytes into the report.
USER_COMMENT_CHARS = 4000


class FhirAuthorizationSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#fhir-resource-access"""

    class Meta:
        unknown = INCLUDE

    access_token = Text(required=True, min_length=1, max_length=TOKEN_CHARS)
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True, strict=True)
    scope = Text(required=True, min_length=1, max_length=4096)
    subject = Text(required=True, min_length=1, max_length=1024)
    patient = Text(min_length=1, max_length=64)


class HookRequestSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#http-request"""

    class Meta:
        unknown = EXCLUDE

    hook = Text(required=True, min_length=1, max_length=64)
    hook_instance = Text(required=True, data_key="hookInstance", min_length=1, max_length=128)
    fhir_server = fields.Url(
        data_key="fhirServer",
        require_tld=False,
        schemes={"http", "https"},
        validate=validate.Length(max=2048),
    )
    fhir_authorization = fields.Nested(FhirAuthorizationSchema, data_key="fhirAuthorization")
    context = fields.Dict(required=True, keys=fields.String())
    prefetch = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))
    extension = fields.Dict(keys=fields.String())

    @validates_schema
    def _server_with_authorization(self, data: dict[str, Any], **kwargs: Any) -> None:
        # cds-r-1: fhirServer is required when fhirAuthorization is present.
        if "fhir_authorization" in data and "fhir_server" not in data:
            raise ValidationError(
                "fhirServer is required when fhirAuthorization is present", "fhirServer"
            )


class PatientViewContextSchema(Schema):
    """patient-view 1.0: https://cds-hooks.org/hooks/patient-view/"""

    class Meta:
        unknown = INCLUDE

    user_id = fields.String(
        required=True,
        data_key="userId",
        validate=validate.Regexp(_USER_REF, error="must be a reference such as Practitioner/123"),
    )
    patient_id = fields.String(
        required=True,
        data_key="patientId",
        validate=validate.Regexp(_PLAIN_ID, error="must be a plain FHIR id, not a reference"),
    )
    encounter_id = fields.String(
        data_key="encounterId",
        validate=validate.Regexp(_PLAIN_ID, error="must be a plain FHIR id, not a reference"),
    )


class OrderContextSchema(PatientViewContextSchema):
    """order-select 1.0.2 and order-sign 1.1.0: draftOrders is a Bundle."""

    draft_orders = fields.Dict(required=True, data_key="draftOrders")

    @validates_schema
    def _draft_orders_bundle(self, data: dict[str, Any], **kwargs: Any) -> None:
        bundle = data.get("draft_orders") or {}
        if bundle.get("resourceType") != "Bundle":
            raise ValidationError("must be a FHIR Bundle", "draftOrders")
        if not isinstance(bundle.get("entry", []), list):
            raise ValidationError("entry must be a list", "draftOrders")


class OrderSelectContextSchema(OrderContextSchema):
    selections = fields.List(Text(min_length=1, max_length=255), required=True)


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientViewContextSchema,
    "order-select": OrderSelectContextSchema,
    "order-sign": OrderContextSchema,
}


# -- feedback: https://cds-hooks.hl7.org/2.0/#feedback ------------------------------------

OUTCOMES = ("accepted", "overridden")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


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

    system = Text(required=True, min_length=1, max_length=255)
    code = Text(required=True, min_length=1, max_length=128)
    display = Text(min_length=1, max_length=255)


class OverrideReasonSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#overridereason"""

    class Meta:
        unknown = EXCLUDE

    reason = fields.Nested(CodingSchema)
    user_comment = Text(data_key="userComment", min_length=1, max_length=USER_COMMENT_CHARS)

    @validates_schema
    def _reason_or_comment(self, data: dict[str, Any], **kwargs: Any) -> None:
        # cds-fb-3
        if "reason" not in data and "user_comment" not in data:
            raise ValidationError("needs a reason or a userComment (cds-fb-3)", "reason")


class AcceptedSuggestionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Text(required=True, min_length=1, max_length=64)


class FeedbackItemSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#feedback — one card's outcome."""

    class Meta:
        unknown = EXCLUDE

    card = Text(required=True, min_length=1, max_length=64)
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
