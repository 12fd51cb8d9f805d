"""Keep bearer tokens out of the log: redact anything shaped like a JWT or a bearer credential.

This is the safety net; the first rule is still never to put a token in a log message.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"

# A JWS compact serialisation: three base64url segments (the last may be empty for
# alg=none). Header and payload are JSON objects, so their base64url starts with "e"
# (from "{"); with the length floor this keeps dotted names such as module paths and
# exception classes ("requests.exceptions.ConnectionError") out of it.
_JWT = re.compile(r"\be[A-Za-z0-9_-]{7,}\.e[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"',;&]+")
# access_token / id_token / refresh_token in JSON, a dict repr or a query string.
_NAMED_TOKEN = re.compile(
    r"(?i)((?:access|id|refresh)_token\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\s\"'\\,;&}]+"
)

_LOGGERS = ("lipcds", "werkzeug", "flask", "cds_hooks")
_install_lock = threading.Lock()


def redact(text: str) -> str:
    """`text` with every token-shaped substring replaced by [REDACTED]."""
    lowered = text.lower()
    if "." not in text and "token" not in lowered and "bearer" not in lowered:
        return text  # the common case: nothing to look at
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _NAMED_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)


class TokenRedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback text) with tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_lipcds_redacted", False):
        return
    record._lipcds_redacted = True
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it for logging to report
        return
    cleaned = redact(message)
    if cleaned != message or record.args:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        # Format the traceback now, redacted; formatters reuse exc_text as it is.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_log_redaction() -> None:
    """Redact tokens in every log record of this process. Safe to call more than once.

    A filter on a logger only sees records logged through that very logger, not those
    of its children ("lipcds.pipeline") nor of libraries, so the filter is also applied
    where records are made, through the record factory.
    """
    with _install_lock:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "_lipcds_redacting", False):

            def redacting_factory(*args, **kwargs) -> logging.LogRecord:
                record = factory(*args, **kwargs)
                _redact_record(record)
                return record

            redacting_factory._lipcds_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(redacting_factory)
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
                logger.addFilter(TokenRedactingFilter())
