"""Input checks shared by every boundary of the service (marshmallow, as the design says).

`problems` turns marshmallow's nested error messages into (path, message) pairs with
FHIRPath-like paths (`feedback[0].overrideReason.reason`), the one flattener the HTTP
answers, the settings, the trusted issuers and the site policy file all use.
"""

from __future__ import annotations

from typing import Any

from marshmallow import validate

NONBLANK = validate.Length(min=1)


def problems(messages: Any) -> list[tuple[str, str]]:
    """marshmallow's nested messages as (path, message) pairs; "" is the whole input."""
    return _walk(messages, ())


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """The problems as `path: message` lines, each path under `prefix`."""
    lines = []
    for path, message in problems(messages):
        full = _join_paths(prefix, path)
        lines.append(f"{full}: {message}" if full else message)
    return lines


def _walk(messages: Any, path: tuple[Any, ...]) -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        found: list[tuple[str, str]] = []
        for key, value in messages.items():
            found.extend(_walk(value, (*path, key)))
        return found
    if isinstance(messages, list):
        return [pair for message in messages for pair in _walk(message, path)]
    return [(_join(path), str(messages))]


def _join(path: tuple[Any, ...]) -> str:
    text = ""
    previous: Any = None
    for segment in path:
        if segment == "_schema":
            continue
        # fields.Dict reports "<entry>.value" under the entry; the entry names it well enough.
        if segment == "value" and isinstance(previous, str):
            previous = segment
            continue
        if segment == "key" and isinstance(previous, str):
            text += " (key)"
        elif isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else str(segment)
        previous = segment
    return text


def _join_paths(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"
