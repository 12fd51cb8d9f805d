"""Strings from outside: bounded in length, and free of what the store cannot hold.

JSON can carry two things no column can: the NUL character (`\\u0000`; PostgreSQL text
refuses it) and a lone UTF-16 surrogate (`\\ud800` without its pair; no UTF-8 encoder
takes it: the database driver, the card uuid builder and the log all fail on it). Both
only ever arrive as `\\u` escapes, so the raw body is scanned for those escapes first;
only a body that has one is walked to find and name the string (a surrogate *pair*
such as `\\ud83d\\ude00` is an emoji and fine).

`Text` is the marshmallow field for every string of the wire schemas: a length bound
(the store's column, or a sane limit) and the same character check.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields

_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
BAD_CHARACTER_MESSAGE = "must not contain NUL or unpaired surrogate characters"


def bad_character(text: str) -> bool:
    return _BAD_CHARACTER.search(text) is not None


def may_hold_bad_characters(raw: bytes) -> bool:
    """False when the JSON text `raw` cannot decode to a NUL or a lone surrogate."""
    return _SUSPECT_ESCAPE.search(raw) is not None


def first_bad_string(value: Any, path: str = "") -> str | None:
    """The path (`context.patientId`, `prefetch.labs.entry[0]...`) of a string, key or
    value, holding NUL or a lone surrogate; None if there is none."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if bad_character(item):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and bad_character(key):
                    return (where or "body") + " (a key)"
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None


class Text(fields.String):
    """A string of at most `max_length` characters, without NUL or lone surrogates."""

    def __init__(self, *, max_length: int, min_length: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ValidationError(f"longer than {self.max_length} characters")
        if len(text) < self.min_length:
            raise ValidationError(
                "must not be empty"
                if self.min_length == 1
                else f"shorter than {self.min_length} characters"
            )
        if bad_character(text):
            raise ValidationError(BAD_CHARACTER_MESSAGE)
        return text
