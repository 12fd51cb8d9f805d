"""Marshmallow fields for evaluator params: sentence templates and names of other knowledge.

`Template` holds a sentence with `{placeholders}`, checked against the fields its user
fills. `Ref` names something else in the knowledge base (a threshold, an order, an analyte,
a rule); it is checked against the names of the knowledge base being loaded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

# What a `Ref` may name, by kind, while one knowledge base is being checked.
_KNOWN: ContextVar[Mapping[str, frozenset[str]] | None] = ContextVar("known_names", default=None)

_FORMATTER = string.Formatter()


def placeholders(template: str) -> set[str]:
    """The field names a `str.format` template uses; ValueError for a malformed one."""
    names = set()
    for _, name, _, _ in _FORMATTER.parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"{{{name}}} is not a plain named placeholder")
        names.add(name)
    return names


def unknown_placeholders(template: str, allowed: Iterable[str]) -> str | None:
    """None when every placeholder of `template` is allowed; else what is wrong."""
    try:
        used = placeholders(template)
    except ValueError as exc:
        return f"not a valid template: {exc}"
    unknown = sorted(used - set(allowed))
    if not unknown:
        return None
    names = ", ".join(f"{{{u}}}" for u in unknown)
    known = ", ".join(f"{{{a}}}" for a in sorted(allowed)) or "none"
    return f"placeholder {names} is not filled here (filled: {known})"


class Params(Schema):
    """Base of every evaluator's params schema: an unknown key is an unused param."""

    class Meta:
        unknown = RAISE


class Template(fields.String):
    """A sentence template whose placeholders must be among `fills`."""

    def __init__(self, fills: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fills = frozenset(fills)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = unknown_placeholders(text, self.fills)
        if problem:
            raise ValidationError(problem)
        return text


@contextmanager
def names_known(known: Mapping[str, frozenset[str]]) -> Iterator[None]:
    """While loading one knowledge base: the names each kind of `Ref` may take."""
    token = _KNOWN.set(known)
    try:
        yield
    finally:
        _KNOWN.reset(token)


class Ref(fields.String):
    """The name of something else in the knowledge base: a threshold, an order, ..."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.error_messages["invalid"] = f"must name a {kind.rstrip('s')}"

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[override]
        name = super()._deserialize(value, attr, data, **kwargs)
        known = (_KNOWN.get() or {}).get(self.kind)
        if known is not None and name not in known:
            raise ValidationError(f"unknown {self.kind.rstrip('s')} '{name}'")
        return name


class Pattern(fields.String):
    """A regular expression, compiled at load time (case-insensitive unless told)."""

    def __init__(self, *, flags: int = re.IGNORECASE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flags = flags

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            raise ValidationError("must not be empty")
        try:
            return re.compile(text, self.flags)
        except re.error as exc:
            raise ValidationError(f"not a valid regular expression: {exc}") from exc
