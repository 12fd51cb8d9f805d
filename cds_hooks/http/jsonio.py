"""JSON in and out of HTTP with orjson: request bodies of a few MB parse several times faster.

Flask's `jsonify` and `request.get_json` go through `OrjsonProvider`; hook bodies are
parsed by `parse_json_body`, which turns every way a body can be wrong into one message.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

from cds_hooks.http.errors import InvalidRequest

_CONSTANTS = ("NaN", "Infinity")  # what Python's json module would have let through


def _default(value: Any) -> Any:
    """What orjson cannot write by itself (e.g. Decimal), as Flask's own provider writes it."""
    return DefaultJSONProvider.default(value)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider on orjson; keys keep their order (no sorting), UTF-8 output."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)
        return self._app.response_class(body, mimetype=self.mimetype)


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, or InvalidRequest (400) saying what is wrong and where.

    RFC 8259: UTF-8 only, no NaN or Infinity, no content after the document; orjson also
    refuses lone surrogates and more than 1024 levels of nesting.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(_problem(exc)) from None


def _problem(exc: orjson.JSONDecodeError) -> str:
    where = f"at line {exc.lineno} column {exc.colno}"
    rest = exc.doc[exc.pos : exc.pos + 8] if isinstance(exc.doc, str) else ""
    for constant in _CONSTANTS:
        if rest.startswith(constant):
            return f"request body is not valid JSON: {constant} is not a JSON number {where}"
    if "depth limit" in exc.msg:
        return "request body is nested too deeply"
    return f"request body is not valid JSON: {exc.msg} {where}"
