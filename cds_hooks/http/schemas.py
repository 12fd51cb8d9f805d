"""Wire schemas of CDS Hooks 2.0: the hook request envelope and each hook's context.

https://cds-hooks.hl7.org/2.0/#http-request — unknown fields are tolerated (hooks gain
context fields in minor versions), required ones are not. Messages name fields, never
echo values: a request may carry an access token.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import (
    EXCLUDE,
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

_PLAIN_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id datatype
_USER_REF = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$"
)
_NONBLANK = validate.Length(min=1)


class FhirAuthorizationSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#fhir-resource-access"""

    class Meta:
        unknown = INCLUDE

    access_token = fields.String(required=True, validate=_NONBLANK)
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True, strict=True)
    scope = fields.String(required=True, validate=_NONBLANK)
    subject = fields.String(required=True, validate=_NONBLANK)
    patient = fields.String(validate=_NONBLANK)


class HookRequestSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#http-request"""

    class Meta:
        unknown = EXCLUDE

    hook = fields.String(required=True, validate=_NONBLANK)
    hook_instance = fields.String(
        required=True, data_key="hookInstance", validate=validate.Length(min=1, max=128)
    )
    fhir_server = fields.Url(data_key="fhirServer", require_tld=False, schemes={"http", "https"})
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
    selections = fields.List(fields.String(validate=_NONBLANK), required=True)


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientViewContextSchema,
    "order-select": OrderSelectContextSchema,
    "order-sign": OrderContextSchema,
}


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as `field.path: message` lines, for an OperationOutcome."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(flatten_messages(value, path))
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in flatten_messages(m, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]
