"""gunicorn's own error answers as JSON, and why the worker settings hold slow clients.

The settings live in `cds_hooks.serving` (read by `lipcds serve` and deploy/gunicorn.conf.py).
Measured with tests/cds_hooks/cli/test_serve_slow_clients.py (8 clients dripping their
headers or body at one byte per half second; ordinary calls must still answer):

- sync workers: every other call waits until a slow client gives up;
- gthread, 4 threads per worker: the same once the slow clients hold all 8 threads
  (gunicorn defers a connection that sends nothing, not one that drips);
- gthread, 32 threads per worker: ordinary calls answer in tens of milliseconds with 8
  and with 40 slow clients. A waiting thread costs a stack and no CPU.

Beyond `workers x threads` slow connections the proxy in front has to absorb them
(docs/DEPLOY.md: it buffers whole requests before passing them on).

Header limits: a bearer token may be up to 16 KB (security/auth.py refuses a larger one
with a JSON 401), so a header line may be 32 KB; past that, and for any request gunicorn
cannot parse, gunicorn answers itself, and `json_errors` makes that answer an
OperationOutcome like every other answer of the service instead of an HTML page.
"""

from __future__ import annotations

import json
from typing import Any

# Parser errors gunicorn answers without the app: status -> OperationOutcome issue code.
_ISSUE_CODES = {
    400: "invalid",
    403: "forbidden",
    414: "too-long",
    431: "too-long",
    501: "not-supported",
}


def write_json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's error writer, answering JSON. Only the reason is sent: `message` can quote
    the request (a header it could not parse), which may hold a token."""
    from gunicorn import util

    body = json.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": _ISSUE_CODES.get(status, "exception"),
                    "diagnostics": f"{reason} (the request could not be read)",
                }
            ],
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def json_errors(worker: Any) -> None:
    """gunicorn `post_worker_init` hook: this worker's own error answers are JSON.

    gunicorn has no setting for the format of its error pages; its workers call
    `gunicorn.util.write_error`, which this replaces in the worker process.
    """
    from gunicorn import util

    util.write_error = write_json_error

