"""`GET /openapi.json`: an OpenAPI 3.1 description of every endpoint of the service.

Built by apispec from the marshmallow schemas the endpoints validate their input with
(the hook request, each hook's context, feedback), plus schemas of what the service
answers (discovery, cards, OperationOutcome, probes). Paths come from the app's own URL
map, so a route cannot exist without appearing here: an endpoint not described below
appears with its view's docstring as summary.

The document is built once per app, on the first request for it; it holds no patient
data and no secret (the settings it reads are the public base URL and the service ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from cds_hooks.http.schemas import (
    CONTEXT_SCHEMAS,
    CodingSchema,
    FeedbackSchema,
    HookRequestSchema,
    Rfc3339,
)

OPENAPI_VERSION = "3.1.0"
_CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")
_PATH_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
JSON = "application/json"


# -- what the service answers (documentation schemas) ------------------------------------------


class SourceSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#source"""

    label = fields.String(required=True)
    url = fields.Url()
    icon = fields.Url()
    topic = fields.Nested(CodingSchema)


class ActionSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#action"""

    type = fields.String(required=True, validate=validate.OneOf(("create", "update", "delete")))
    description = fields.String(required=True)
    resource = fields.Dict(metadata={"description": "a FHIR R4 resource"})
    resourceId = fields.String(metadata={"description": "relative reference, e.g. Type/id"})


class SuggestionSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#suggestion"""

    label = fields.String(required=True)
    uuid = fields.UUID()
    isRecommended = fields.Boolean()
    actions = fields.List(fields.Nested(ActionSchema))


class LinkSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#link"""

    label = fields.String(required=True)
    url = fields.Url(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("absolute", "smart")))
    appContext = fields.String()
    autolaunchable = fields.Boolean()


class CardSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#card-attributes"""

    uuid = fields.UUID()
    summary = fields.String(required=True, validate=validate.Length(max=139))
    detail = fields.String(metadata={"description": "GitHub-flavoured Markdown"})
    indicator = fields.String(
        required=True, validate=validate.OneOf(("info", "warning", "critical"))
    )
    source = fields.Nested(SourceSchema, required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema))
    selectionBehavior = fields.String(validate=validate.OneOf(("at-most-one", "any")))
    overrideReasons = fields.List(fields.Nested(CodingSchema))
    links = fields.List(fields.Nested(LinkSchema))
    extension = fields.Dict(
        metadata={"description": "evidence behind the card: rule, knowledge-base version, data"}
    )


class HookResponseSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#cds-service-response"""

    cards = fields.List(fields.Nested(CardSchema), required=True)
    systemActions = fields.List(fields.Nested(ActionSchema))


class ServiceSchema(Schema):
    """https://cds-hooks.hl7.org/2.0/#response"""

    hook = fields.String(required=True)
    title = fields.String()
    description = fields.String(required=True)
    id = fields.String(required=True)
    prefetch = fields.Dict(keys=fields.String(), values=fields.String())
    usageRequirements = fields.String()


class DiscoverySchema(Schema):
    services = fields.List(fields.Nested(ServiceSchema), required=True)


class IssueSchema(Schema):
    severity = fields.String(required=True)
    code = fields.String(required=True)
    diagnostics = fields.String()
    expression = fields.List(fields.String())


class OperationOutcomeSchema(Schema):
    """The body of every error answer: a FHIR R4 OperationOutcome naming the problem."""

    resourceType = fields.String(required=True, validate=validate.Equal("OperationOutcome"))
    issue = fields.List(fields.Nested(IssueSchema), required=True)


class FeedbackReceiptSchema(Schema):
    received = fields.Integer(required=True)
    recorded = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)


class ProbeSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


# -- operations of the known endpoints ------------------------------------------------------------


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json("OperationOutcome", description)


_BEARER = [{"cdsHooksJwt": []}]


def _operations(context_refs: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    hook_request = {
        "description": "A CDS Hooks request; `context` as the service's hook defines it.",
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/HookRequest"},
                        {"properties": {"context": {"oneOf": context_refs}}},
                    ]
                }
            }
        },
    }
    return {
        ("/cds-services", "get"): {
            "operationId": "discovery",
            "summary": "The CDS services offered here, with their prefetch templates",
            "tags": ["CDS Hooks"],
            "security": [{}, *_BEARER],
            "responses": {"200": _json("Discovery", "The services")},
        },
        ("/cds-services/{service_id}", "post"): {
            "operationId": "callService",
            "summary": "Call a service with a hook request; it answers with cards",
            "tags": ["CDS Hooks"],
            "security": _BEARER,
            "requestBody": hook_request,
            "responses": {
                "200": _json("HookResponse", "The cards (possibly none)"),
                "400": _error("The request is malformed; the problem is named"),
                "401": _error("No valid JWT from a trusted EHR"),
                "404": _error("No service with this id"),
                "412": _error("Data the service needs could not be had"),
                "413": _error("The body is too large"),
                "415": _error("The body is not application/json"),
                "503": _error("A dependency is unavailable; Retry-After says when to retry"),
            },
        },
        ("/cds-services/{service_id}/feedback", "post"): {
            "operationId": "feedback",
            "summary": "What the clinician did with the service's cards",
            "tags": ["CDS Hooks"],
            "security": _BEARER,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": "Feedback"}},
            },
            "responses": {
                "200": _json("FeedbackReceipt", "All items recorded (duplicates counted)"),
                "400": _error("The feedback is malformed; the field is named"),
                "401": _error("No valid JWT from a trusted EHR"),
                "404": _error("No service with this id"),
                "422": _error("A card or suggestion this service did not issue to the caller"),
                "503": _error("The store is unavailable; nothing was recorded"),
            },
        },
        ("/healthz", "get"): {
            "operationId": "liveness",
            "summary": "Liveness probe: the process answers HTTP",
            "tags": ["Operations"],
            "responses": {"200": _json("Probe", "Alive")},
        },
        ("/readyz", "get"): {
            "operationId": "readiness",
            "summary": "Readiness probe: the parts a hook call needs answer",
            "tags": ["Operations"],
            "responses": {
                "200": _json("Probe", "Ready"),
                "503": _json("Probe", "Not ready; `checks` names what failed"),
            },
        },
        ("/metrics", "get"): {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text format); keep it off the public network",
            "tags": ["Operations"],
            "responses": {
                "200": {
                    "description": "Counters, histograms and gauges of all workers",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {"description": "A metrics token is configured and was not given"},
            },
        },
        ("/openapi.json", "get"): {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["Operations"],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        },
    }


# -- the document ------------------------------------------------------------------------------


def openapi_path(rule: str) -> str:
    """Werkzeug's `/a/<int:b>/<c>` as OpenAPI's `/a/{b}/{c}`."""
    return _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", rule)


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """Every (OpenAPI path, lower-case method, endpoint) the app answers."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" and not _has_static_files(app):
            continue  # Flask's route to a static folder the service does not have
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            found.append((path, method.lower(), rule.endpoint))
    return sorted(found)


def _has_static_files(app: Flask) -> bool:
    return app.static_folder is not None and Path(app.static_folder).is_dir()


def build_document(
    app: Flask,
    *,
    title: str = "lipcds",
    version: str = "0",
    service_ids: Iterable[str] = (),
    hooks: Iterable[str] = (),
    base_url: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s routes."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=version,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": (
                "A CDS Hooks 2.0 service (https://cds-hooks.hl7.org/2.0/). Hook and feedback "
                "calls carry the EHR's signed JWT; errors answer a FHIR OperationOutcome."
            )
        },
        **({"servers": [{"url": base_url.rstrip("/")}]} if base_url else {}),
    )
    plugin.map_to_openapi_type(Rfc3339, "string", "date-time")
    spec.components.security_scheme(
        "cdsHooksJwt",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "https://cds-hooks.hl7.org/2.0/#trusting-cds-clients (ES384/RS384)",
        },
    )
    for name, schema in (
        ("HookRequest", HookRequestSchema),
        ("Feedback", FeedbackSchema),
        ("HookResponse", HookResponseSchema),
        ("Discovery", DiscoverySchema),
        ("OperationOutcome", OperationOutcomeSchema),
        ("FeedbackReceipt", FeedbackReceiptSchema),
        ("Probe", ProbeSchema),
    ):
        spec.components.schema(name, schema=schema)
    context_refs = []
    offered_hooks = set(hooks)
    for hook, schema in CONTEXT_SCHEMAS.items():
        if offered_hooks and hook not in offered_hooks:
            continue
        name = "".join(part.title() for part in hook.split("-")) + "Context"
        spec.components.schema(name, schema=schema)
        context_refs.append({"$ref": f"#/components/schemas/{name}"})
    if not context_refs:
        context_refs.append({"type": "object"})

    known = _operations(context_refs)
    services = sorted(service_ids)
    by_path: dict[str, dict[str, Any]] = {}
    parameters: dict[str, list[dict[str, Any]]] = {}
    for path, method, endpoint in routes(app):
        operation = known.get((path, method))
        if operation is None:
            operation = _described(app, endpoint)
        by_path.setdefault(path, {})[method] = operation
        if path not in parameters:
            parameters[path] = [
                _parameter(name, services) for name in _PATH_PARAMETER.findall(path)
            ]
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations, parameters=parameters[path] or None)
    return spec.to_dict()


def _parameter(name: str, services: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name == "service_id" and services:
        schema["enum"] = services
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _described(app: Flask, endpoint: str) -> dict[str, Any]:
    """An operation for a route not described above, from its view's docstring."""
    view = app.view_functions.get(endpoint)
    doc = (getattr(view, "__doc__", None) or "").strip()
    paragraph = " ".join(line.strip() for line in doc.split("\n\n", 1)[0].splitlines())
    if endpoint == "static" or endpoint.endswith(".static"):
        summary = "Static files (stylesheets, scripts, images) of the pages"
    else:
        summary = paragraph or endpoint
    return {
        "operationId": endpoint.replace(".", "_"),
        "summary": summary,
        "responses": {"200": {"description": "OK"}},
    }


def openapi_blueprint(**document_options: Any) -> Blueprint:
    """`GET /openapi.json`, built on first use for the app serving it."""
    blueprint = Blueprint("openapi", __name__)
    cache: dict[str, Any] = {}

    @blueprint.get("/openapi.json")
    def openapi_document() -> ResponseReturnValue:
        """This service's OpenAPI 3.1 document."""
        document = cache.get("document")
        if document is None:
            document = build_document(current_app, **document_options)
            cache["document"] = document
        return jsonify(document)

    return blueprint


def install_openapi(app: Flask, **document_options: Any) -> None:
    app.register_blueprint(openapi_blueprint(**document_options))
