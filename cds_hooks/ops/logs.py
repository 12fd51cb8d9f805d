"""Log lines a person can follow and a log pipeline can parse: JSON or text, per call.

`LIPCDS_LOG_FORMAT=json` writes one JSON object per line (python-json-logger does the
writing): `time`, `level`, `logger`, `message`, and while a request is being answered its
`requestId` plus, once known, the `service`, the `hookInstance` and the calling `issuer`.
`text` writes the same as a readable line. The default is json in production and text
elsewhere (`LIPCDS_ENV`).

The request id comes from the caller's `X-Request-ID` when it is a plain token (letters,
digits and `._:-`, at most 128 characters; anything else could forge log lines), or is
made here; the response carries it back in `X-Request-ID`. gunicorn's own lines and its
access log go through the same formatter (`GunicornLogger`).

Token redaction (`cds_hooks.security.logsafe`) applies to both formats: the record is
redacted when it is made, and the JSON formatter redacts every string field once more,
tracebacks included.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from cds_hooks.security.logsafe import install_log_redaction, redact

FORMAT_ENV = "LIPCDS_LOG_FORMAT"
LOG_FORMATS = ("json", "text")
REQUEST_ID_HEADER = "X-Request-ID"
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatError(ValueError):
    """LIPCDS_LOG_FORMAT holds something else than json or text."""


def choose_format(value: str | None, env: str | None) -> str:
    """The log format: `value` when set, else json in production and text elsewhere."""
    if value is None or not value.strip():
        return "json" if (env or "production") == "production" else "text"
    chosen = value.strip().lower()
    if chosen not in LOG_FORMATS:
        raise LogFormatError(f"{FORMAT_ENV}: must be json or text, not {value!r}")
    return chosen


def format_from_environ(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return choose_format(environ.get(FORMAT_ENV), environ.get("LIPCDS_ENV"))


# -- what the current call is ------------------------------------------------------------------


@dataclass(frozen=True)
class CallContext:
    """What every log line written while answering one request says about it."""

    request_id: str
    service: str | None = None
    hook_instance: str | None = None
    issuer: str | None = None

    def fields(self) -> dict[str, str]:
        out = {"requestId": self.request_id}
        if self.service is not None:
            out["service"] = self.service
        if self.hook_instance is not None:
            out["hookInstance"] = self.hook_instance
        if self.issuer is not None:
            out["issuer"] = self.issuer
        return out


_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "lipcds_call", default=None
)
_CONTEXT_FIELDS = ("requestId", "service", "hookInstance", "issuer")


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a plain token, else a new one."""
    if header is not None and _PLAIN_ID.match(header):
        return header
    return uuid.uuid4().hex


def plain(value: Any) -> str | None:
    """`value` if it is a string safe to put in a log line as it is, else None."""
    return value if isinstance(value, str) and _PLAIN_ID.match(value) else None


def begin_call(request_id: str) -> contextvars.Token[CallContext | None]:
    return _CALL.set(CallContext(request_id=request_id))


def end_call(token: contextvars.Token[CallContext | None]) -> None:
    try:
        _CALL.reset(token)
    except ValueError:  # made in another context (a copied one); clearing is enough
        _CALL.set(None)


def bind(**values: str | None) -> None:
    """Add what became known about the current call (service, hook_instance, issuer).

    Values must be safe for a log line: the service id from the URL rule, the
    hookInstance through `plain`, an issuer from the trusted list.
    """
    current = _CALL.get()
    if current is None:
        return
    known = {f.name for f in fields(CallContext)} - {"request_id"}
    update = {k: v for k, v in values.items() if k in known and v is not None}
    if update:
        _CALL.set(replace(current, **update))


def current_call() -> CallContext | None:
    return _CALL.get()


class CallContextFilter(logging.Filter):
    """Puts the current call's fields on every record that passes (on a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _CALL.get()
        if call is not None:
            for key, value in call.fields().items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


# -- formatters -------------------------------------------------------------------------------


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: time, level, logger, message, then the call's fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        # gunicorn and the libraries log at their own names; our fields keep their order.
        log_data.pop("_lipcds_redacted", None)
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        ordered: dict[str, Any] = {}
        for key in ("time", "level", "logger", "message", *_CONTEXT_FIELDS):
            if key in log_data:
                ordered[key] = log_data.pop(key)
        ordered.update(log_data)
        return _redact_value(ordered)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact(logging.Formatter.formatException(self, ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        return redact(stack_info)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [requestId=... service=... hookInstance=...]`."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        shown = [f"{key}={getattr(record, key)}" for key in _CONTEXT_FIELDS if hasattr(record, key)]
        if not shown:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(shown)}]{newline}{rest}"

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(level: str, log_format: str, stream: IO[str] | None = None) -> None:
    """Logging for a server process: every record to `stream` (stderr) in `log_format`.

    Called by `lipcds serve` and gunicorn's configuration, never by `create_app`: tests and
    embedding applications keep their own logging.
    """
    install_log_redaction()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(CallContextFilter())
    logging.basicConfig(handlers=[handler], force=True)
    logging.getLogger("lipcds").setLevel(level.upper())


# -- gunicorn ---------------------------------------------------------------------------------

try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover - gunicorn is a dependency; keep imports cheap
    _GunicornLogger = object  # type: ignore[assignment,misc]


_prepared_in: int | None = None


def _prepare_server_process(level: str, log_format: str) -> None:
    """Once per server process, before gunicorn loads the app (which it does after making
    its logger): the service's lines in `log_format`, and the metrics directory."""
    global _prepared_in
    if _prepared_in == os.getpid():
        return
    _prepared_in = os.getpid()
    from cds_hooks.ops.metrics import prepare_multiprocess_dir

    if not logging.getLogger().handlers or not any(
        isinstance(f, CallContextFilter) for h in logging.getLogger().handlers for f in h.filters
    ):
        configure_logging(level, log_format)
    prepare_multiprocess_dir(reuse_prepared=True)


class GunicornLogger(_GunicornLogger):  # type: ignore[misc,valid-type]
    """gunicorn's logger writing its lines, and the access log, in LIPCDS_LOG_FORMAT.

    gunicorn makes it before loading the app, so it also prepares the server process
    (`_prepare_server_process`): `gunicorn --config deploy/gunicorn.conf.py` and
    `lipcds serve` end up alike.

    In json the access line carries method, path (never the query string), status,
    bytes, durationMs, remote address and the request id the app answered with; no header,
    no user, no referrer, so never a token or a patient id.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.lipcds_format = format_from_environ()
        _prepare_server_process(cfg.loglevel, self.lipcds_format)
        formatter = make_formatter(self.lipcds_format)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(
                        formatter
                        if logger is self.error_log or self.lipcds_format == "json"
                        else logging.Formatter("%(message)s")
                    )
                    if not any(isinstance(f, CallContextFilter) for f in handler.filters):
                        handler.addFilter(CallContextFilter())

    def access(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any) -> None:
        if getattr(self, "lipcds_format", "text") != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        try:
            status_code: int | str = int(status)
        except (TypeError, ValueError):
            status_code = str(status)
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        request_id = next((v for k, v in headers if k.lower() == REQUEST_ID_HEADER.lower()), None)
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        extra: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status_code,
            "bytes": getattr(resp, "sent", None),
            "durationMs": round(request_time.total_seconds() * 1000, 1),
            "remote": environ.get("REMOTE_ADDR", "-"),
        }
        if plain(request_id):
            extra["requestId"] = request_id
        try:
            self.access_log.info("%s %s %s", method, path, status_code, extra=extra)
        except Exception:  # logging must never fail a request
            self.error("access log line could not be written")
