"""Errors of the HTTP layer, each with its status and an OperationOutcome body.

    CDSHooksError                 (status_code, to_dict)
     ├── InvalidRequest           400  malformed JSON, missing fields, wrong hook
     ├── Unauthorized             401  JWT missing or not trusted (no detail given out)
     ├── UnknownService           404  no service with that id
     ├── UnsupportedMediaType     415  body is not application/json
     ├── PrefetchUnavailable      412  data the service requires could not be had
     └── ServiceUnavailable       503  a dependency (the store) is down; Retry-After set

Anything else is logged with its traceback and answered 500 with no detail: a stack trace
never reaches the client, and an error is never turned into an empty card list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from cds_hooks.ops.observe import note_auth_refusal

__all__ = [
    "CDSHooksError",
    "InvalidRequest",
    "PrefetchUnavailable",
    "ServiceUnavailable",
    "Unauthorized",
    "UnknownService",
    "UnsupportedMediaType",
    "operation_outcome",
    "register_error_handlers",
]

log = logging.getLogger("lipcds")

# HTTP status -> OperationOutcome issue code, for errors Werkzeug raises itself.
_HTTP_ISSUE_CODES = {
    400: "invalid",
    404: "not-found",
    405: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


def operation_outcome(
    code: str, diagnostics: str, *, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    """A FHIR OperationOutcome with one issue (the body of every error answer)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class CDSHooksError(Exception):
    status_code = 500
    issue_code = "exception"

    def __init__(self, message: str, *, expression: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.expression = expression

    def to_dict(self) -> dict[str, Any]:
        return operation_outcome(self.issue_code, self.message, expression=self.expression)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(CDSHooksError):
    status_code = 400
    issue_code = "invalid"


class Unauthorized(CDSHooksError):
    status_code = 401
    issue_code = "login"

    def __init__(self, message: str = "Authentication required"):
        # The reason for refusing goes to the log, never to the client.
        super().__init__("Authentication required")
        self.reason = message

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="cds-services"'}


class UnknownService(CDSHooksError):
    status_code = 404
    issue_code = "not-found"


class UnsupportedMediaType(CDSHooksError):
    status_code = 415
    issue_code = "not-supported"


class PrefetchUnavailable(CDSHooksError):
    status_code = 412
    issue_code = "incomplete"


class ServiceUnavailable(CDSHooksError):
    status_code = 503
    issue_code = "transient"

    def __init__(self, message: str, *, retry_after: int = 30):
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def error_response(status: int, body: dict[str, Any], headers: Mapping[str, str] = ()) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in dict(headers).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error answers JSON (an OperationOutcome), never HTML or a traceback."""

    @app.errorhandler(CDSHooksError)
    def _cds_error(exc: CDSHooksError) -> Response:
        if exc.status_code == 401:
            reason = getattr(exc, "reason", exc.message)
            note_auth_refusal(reason)  # counted by reason in the metrics
            log.warning("request refused (401): %s", reason)
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
