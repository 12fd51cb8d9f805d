"""JSON and text logs: the call's fields on every line, request ids, tokens never shown."""

from __future__ import annotations

import io
import json
import logging

import pytest

from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.ops import logs

SERVICE = "lip-twitch-patient-view"
JWT = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJodHRwczovL2VociJ9.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture
def captured():
    """The root logger writing to a buffer, as `configure_logging` sets it up; restored."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("lipcds").level)
    buffers = {}

    def configure(log_format: str) -> io.StringIO:
        buffers[log_format] = io.StringIO()
        logs.configure_logging("INFO", log_format, buffers[log_format])
        return buffers[log_format]

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("lipcds").setLevel(saved[2])


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_line_is_a_json_object_with_the_calls_fields(app, captured):
    buffer = captured("json")
    request = hook_request(load_demo("low-potassium-meq"))
    answer = app.test_client().post(
        f"/cds-services/{SERVICE}", json=request, headers={"X-Request-ID": "req-42"}
    )
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "req-42"
    lines = json_lines(buffer)
    assert lines, "a hook call writes at least its own line"
    call_lines = [line for line in lines if line["logger"] == "lipcds.calls"]
    assert len(call_lines) == 1
    line = call_lines[0]
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["requestId"] == "req-42"
    assert line["service"] == SERVICE
    assert line["hookInstance"] == request["hookInstance"]
    assert line["time"].endswith("Z")
    assert "answered 200" in line["message"]


def test_request_ids_are_made_when_missing_or_unsafe(app):
    client = app.test_client()
    made = client.get("/cds-services").headers["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()
    assert client.get("/cds-services").headers["X-Request-ID"] != made
    forged = "x FAKE LINE"
    answer = client.get("/cds-services", headers={"X-Request-ID": forged})
    assert answer.headers["X-Request-ID"] != forged
    assert (
        client.get("/cds-services", headers={"X-Request-ID": "a" * 129}).headers["X-Request-ID"]
        != "a" * 129
    )


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_tokens_are_redacted_in_both_formats(captured, log_format):
    buffer = captured(log_format)
    log = logging.getLogger("lipcds.test")
    log.warning("calling with Bearer %s", JWT)
    log.warning("access_token=%s", "opaque-secret-value")
    try:
        raise ValueError(f"fhirAuthorization {{'access_token': 'opaque-secret-value'}} {JWT}")
    except ValueError:
        log.exception("failed")
    logging.getLogger("some.library").error("token %s", JWT)
    output = buffer.getvalue()
    assert JWT not in output and "opaque-secret-value" not in output
    assert output.count("[REDACTED]") >= 4
    if log_format == "json":
        lines = json_lines(buffer)
        assert len(lines) == 4
        assert "Traceback" in lines[2]["exc_info"]


def test_text_lines_carry_the_call_fields(captured):
    buffer = captured("text")
    token = logs.begin_call("req-7")
    try:
        logs.bind(service="svc", hook_instance="hi-1", issuer="https://ehr")
        logging.getLogger("lipcds.test").info("hello")
    finally:
        logs.end_call(token)
    logging.getLogger("lipcds.test").info("outside")
    first, second = buffer.getvalue().splitlines()
    assert first.endswith(
        "lipcds.test: hello [requestId=req-7 service=svc hookInstance=hi-1 issuer=https://ehr]"
    )
    assert second.endswith("lipcds.test: outside")


def test_the_format_follows_the_environment():
    assert logs.choose_format(None, "production") == "json"
    assert logs.choose_format(None, None) == "json"
    assert logs.choose_format("", "development") == "text"
    assert logs.choose_format("TEXT", "production") == "text"
    with pytest.raises(logs.LogFormatError, match="LIPCDS_LOG_FORMAT"):
        logs.choose_format("xml", "production")


def test_unsafe_values_are_not_bound():
    token = logs.begin_call("r")
    try:
        logs.bind(hook_instance=logs.plain("bad value\nwith newline"))
        logs.bind(hook_instance=logs.plain(12))
        assert logs.current_call().hook_instance is None
        logs.bind(hook_instance=logs.plain("d3f1c2a4-0000-4000-8000-000000000001"))
        assert logs.current_call().hook_instance == "d3f1c2a4-0000-4000-8000-000000000001"
    finally:
        logs.end_call(token)
    assert logs.current_call() is None
