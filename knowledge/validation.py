"""marshmallow's nested error messages as (field path, message) pairs.

The one flattener of the project: the knowledge loader and every boundary of the service
(HTTP bodies, settings, trusted issuers, site policies) name a field by the paths it makes
(`feedback[0].overrideReason.reason`, `rules[2].params.limit`).
"""

from __future__ import annotations

from typing import Any


def error_pairs(messages: Any) -> list[tuple[str, str]]:
    """The (path, message) pairs of marshmallow's messages; "" names the whole input."""
    return _walk(messages, ())


def _walk(messages: Any, path: tuple[Any, ...]) -> list[tuple[str, str]]:
    """Turn marshmallow's nested error messages into (field path, message) pairs."""
    if isinstance(messages, dict):
        pairs: list[tuple[str, str]] = []
        for key, value in messages.items():
            pairs.extend(_walk(value, (*path, key)))
        return pairs
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(_join(path), message) for message in messages]
    if isinstance(messages, list):
        return [pair for item in messages for pair in _walk(item, path)]
    return [(_join(path), str(messages))]


def _join(path: tuple[Any, ...]) -> str:
    text = ""
    previous: Any = None
    for segment in path:
        if segment == "_schema":
            continue
        # fields.Dict reports "<entry>.value" / "<entry>.key" under a string entry; the
        # entry itself names the field well enough (a suggestion's own "key" follows an
        # int index, so it is kept)
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
