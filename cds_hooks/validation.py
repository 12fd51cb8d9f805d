"""Input checks shared by every boundary of the service (marshmallow, as the design says).

`problems` turns marshmallow's nested error messages into (path, message) pairs with
FHIRPath-like paths (`feedback[0].overrideReason.reason`), the one flattener the HTTP
answers, the settings, the trusted issuers and the site policy file all use (built on
`knowledge.validation.error_pairs`, which the knowledge loader uses too).
"""

from __future__ import annotations

from typing import Any

from marshmallow import validate

from knowledge.validation import error_pairs

NONBLANK = validate.Length(min=1)


def problems(messages: Any) -> list[tuple[str, str]]:
    """marshmallow's nested messages as (path, message) pairs; "" is the whole input."""
    return error_pairs(messages)


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """The problems as `path: message` lines, each path under `prefix`."""
    lines = []
    for path, message in problems(messages):
        full = _join_paths(prefix, path)
        lines.append(f"{full}: {message}" if full else message)
    return lines


def _join_paths(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"
