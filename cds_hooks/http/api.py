"""HTTP endpoints of CDS Hooks 2.0: discovery and service calls.

https://cds-hooks.hl7.org/2.0/#discovery and https://cds-hooks.hl7.org/2.0/#calling-a-cds-service
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from cds_hooks.hooks.pipeline import discovery_document, run_hook
from cds_hooks.http.errors import InvalidRequest, UnknownService, UnsupportedMediaType
from cds_hooks.http.jsonio import parse_json_body
from cds_hooks.http.text import BAD_CHARACTER_MESSAGE, first_bad_string, may_hold_bad_characters
from cds_hooks.ops.observe import note_cards, note_hook_instance
from cds_hooks.runtime import runtime

api = Blueprint("cds", __name__)

_JSON_TYPES = ("application/json", "application/fhir+json")


@api.get("/cds-services")
def discovery() -> ResponseReturnValue:
    """The services this endpoint offers, with their prefetch templates."""
    return jsonify(discovery_document(runtime(current_app).kb))


@api.post("/cds-services/<service_id>")
def call_service(service_id: str) -> ResponseReturnValue:
    """Run one service on one hook request and answer with its cards."""
    rt = runtime(current_app)
    if service_id not in rt.services:  # "no such service" comes before any body check
        raise UnknownService(f"no CDS service with id {service_id!r}")
    raw = read_body()  # reading a slow client's body needs no CPU: outside the gate
    client = g.cds_client  # set by cds_hooks.security.auth before any view runs
    with rt.gate:  # one call computes at a time in this process, first come first served
        body = parse_checked(raw)
        if isinstance(body, dict):
            note_hook_instance(body.get("hookInstance"))  # on every log line of this call
        answer = run_hook(
            rt,
            service_id,
            body,
            issuer=client.iss,
            tenant=client.tenant,
            rule_pages=rule_pages_base(rt.settings),
        )
        note_cards(answer["cards"])
        return jsonify(answer)


def rule_pages_base(settings: Any) -> str | None:
    """Where the "Why this card?" links point: LIPCDS_PUBLIC_BASE_URL, else (outside
    production) the host the request came to."""
    if settings.public_base_url:
        return str(settings.public_base_url)
    return None if settings.is_production else request.host_url


def read_body() -> bytes:
    """The raw request body: 415 for a media type other than JSON, 413 past the limit."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in _JSON_TYPES:
        shown = mimetype or "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {shown}")
    return request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH


def read_json_body() -> Any:
    """The request body as JSON: 415 for another media type, 400 for anything else wrong."""
    return parse_checked(read_body())


def parse_checked(raw: bytes) -> Any:
    """`raw` as JSON (every parser failure a 400), and 400 for a string anywhere in it
    holding NUL or a lone surrogate, which no store, encoder or log line can carry; the
    message names its path."""
    try:
        body = parse_json_body(raw)
    except InvalidRequest:
        if not may_hold_bad_characters(raw):
            raise
        # orjson refuses a lone surrogate without saying where: find the field.
        body = _lenient(raw)
        if body is None or first_bad_string(body) is None:
            raise
    if may_hold_bad_characters(raw):
        where = first_bad_string(body)
        if where is not None:
            raise InvalidRequest(f"{where}: {BAD_CHARACTER_MESSAGE}", expression=[where])
    return body


def _lenient(raw: bytes) -> Any:
    """`raw` read by Python's json module, which keeps lone surrogates; None if it fails."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None
