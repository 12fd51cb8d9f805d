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

from typing import Any

__all__ = [
    "CDSHooksError",
    "InvalidRequest",
    "PrefetchUnavailable",
    "ServiceUnavailable",
    "Unauthorized",
    "UnknownService",
    "UnsupportedMediaType",
    "operation_outcome",
]


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
