"""`lipcds check URL`: every check passes against lipcds and fails, by name, against a
service that breaks the rules."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from cds_hooks.checker import (
    Checker,
    CheckerError,
    discovery_problems,
    prefetch_token_problems,
    run_check,
    synthetic_prefetch,
)
from cds_hooks.cli.demo import hook_request, load_demo
from tests.cds_hooks.broken_cds_service import broken_app, serving
from tests.cds_hooks.live_lipcds import CORS_ORIGIN, running_lipcds

LINE = re.compile(r"^(PASS|FAIL|WARN|N-A) +(\S+)  .+  \[.+\]$")


def statuses(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        match = LINE.match(line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


# -- against lipcds, a real process -------------------------------------------------------------


@pytest.fixture(scope="module")
def lipcds_live(tmp_path_factory: pytest.TempPathFactory):
    with running_lipcds(tmp_path_factory.mktemp("lipcds-check")) as live:
        yield live


def test_every_check_passes_against_lipcds(lipcds_live, tmp_path: Path):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(hook_request(load_demo("low-potassium-meq"))))
    out = io.StringIO()
    status = run_check(
        lipcds_live.url,
        token_cmd=lipcds_live.token_cmd(),
        request_files=[request_file],
        origin=CORS_ORIGIN,
        out=out,
    )
    output = out.getvalue()
    found = statuses(output)
    assert status == 0, output
    assert "FAIL" not in found.values() and "WARN" not in found.values(), output
    # The checks that matter most ran and passed, not just "nothing failed".
    for name in (
        "discovery.status",
        "discovery.services",
        "discovery.prefetch-tokens",
        "service[lip-twitch-patient-view].call",
        "service[lip-twitch-patient-view].response",
        "service[lip-twitch-patient-view].no-prefetch",
        "service[lip-twitch-patient-view].no-prefetch.body",
        "service[lip-twitch-patient-view].feedback",
        "service[lip-twitch-patient-view].feedback.invalid",
        "service[lip-twitch-order-select].call",
        "service[lip-twitch-order-sign].response",
        "errors.unknown-service",
        "errors.malformed-json",
        "errors.no-context",
        "errors.wrong-hook",
        "auth.no-token",
        "auth.bad-token",
        "auth.replay",
        "cors.preflight",
        "cors.response",
    ):
        assert found.get(name) == "PASS", f"{name}: {found.get(name)}\n{output}"
    assert re.search(r"the response and its [1-9]\d* card\(s\) follow", output), output
    assert output.rstrip().splitlines()[-1].startswith(f"{len(found)} checks: ")


# -- against a broken service -----------------------------------------------------------------


def test_the_broken_service_fails_the_checks_it_breaks():
    out = io.StringIO()
    with serving(broken_app()) as url:
        status = run_check(url, origin=CORS_ORIGIN, out=out)
    output = out.getvalue()
    found = statuses(output)
    assert status == 1, output
    expected_failures = {
        "discovery.services": ["services[0].description: required", "title"],
        "discovery.prefetch-tokens": ["context.medication.id"],
        "service[broken-view].response": [
            "cards[0].summary: 150 characters",
            "cards[0].indicator: 'hard-stop'",
            "cards[0].selectionBehavior: required",
        ],
        "service[broken-view].no-prefetch": ["answered 500"],
        "service[broken-view].feedback": ["answered 500"],
        "errors.unknown-service": ["answered 500"],
        "errors.malformed-json": ["answered 500"],
        "errors.no-context": ["answered 500"],
        "errors.wrong-hook": ["answered 500"],
        "cors.preflight": ["Access-Control-Allow-Origin"],
        "cors.response": ["Access-Control-Allow-Origin"],
    }
    for name, said in expected_failures.items():
        assert found.get(name) == "FAIL", f"{name}: {found.get(name)}\n{output}"
        block = _block(output, name)
        for text in said:
            assert text in block, f"{name} should say {text!r}:\n{block}"
    # What it does right still passes; what it does not offer is not applicable.
    assert found["discovery.status"] == "PASS"
    assert found["service[broken-view].call"] == "PASS"
    assert "auth.no-token" not in found  # no --token-cmd: nothing to say about tokens


def _block(output: str, name: str) -> str:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"  {name}  " in line)
    end = start + 1
    while end < len(lines) and lines[end].startswith("        "):
        end += 1
    return "\n".join(lines[start:end])


def test_cors_without_an_explicit_origin_is_a_warning_only():
    out = io.StringIO()
    with serving(broken_app()) as url:
        run_check(url, out=out)
    found = statuses(out.getvalue())
    assert found["cors.preflight"] == "WARN"


def test_an_unreachable_service_fails_discovery_and_checks_nothing_else():
    out = io.StringIO()
    status = run_check("http://127.0.0.1:9", out=out)  # discard port: nothing listens
    found = statuses(out.getvalue())
    assert status == 1
    assert found["discovery.status"] == "FAIL"
    assert found["services"] == "N-A"


# -- the rules and the request building on their own -------------------------------------------


def test_discovery_rules():
    assert discovery_problems({"services": []}) == []
    assert discovery_problems([]) == ["response: must be a JSON object"]
    assert discovery_problems({}) == ["services: required"]
    problems = discovery_problems(
        {
            "services": [
                {"hook": "patient-view", "id": "a", "description": "x"},
                {"hook": "patient-view", "id": "a", "description": "x"},
                {"hook": 3, "id": "b", "description": "x", "prefetch": {}},
            ]
        }
    )
    assert problems == [
        "services[1]: id 'a' is listed twice for hook 'patient-view'",
        "services[2].hook: must be a non-empty string",
        "services[2].prefetch: must be a non-empty object when present",
        "services[2].prefetch: empty object is not allowed; omit the element",
    ]


def test_prefetch_tokens():
    ok = {
        "p": "Patient/{{context.patientId}}",
        "u": "Practitioner/{{userPractitionerId}}",
        "e": "Encounter/{{ context.encounterId }}",
    }
    assert prefetch_token_problems("patient-view", ok) == []
    bad = {"m": "Medication/{{context.medication.id}}", "d": "X?d={{context.draftOrders}}"}
    assert prefetch_token_problems("order-sign", bad) == [
        "prefetch.m: token {{context.medication.id}} is not allowed",
        "prefetch.d: context.draftOrders is not a prefetch token of order-sign",
    ]


def test_synthetic_prefetch_sends_no_data_the_way_an_ehr_does():
    data = synthetic_prefetch(
        {
            "patient": "Patient/{{context.patientId}}",
            "labs": "Observation?patient=x",
            "enc": "Encounter/{{context.encounterId}}",
        },
        {"patientId": "p1"},
    )
    assert data == {
        "patient": {"resourceType": "Patient", "id": "p1"},
        "labs": {"resourceType": "Bundle", "type": "searchset", "total": 0},
        "enc": None,
    }


def test_bad_arguments_are_one_line_errors(tmp_path: Path):
    with pytest.raises(CheckerError, match="not an http"):
        Checker("ftp://example.org")
    not_json = tmp_path / "r.json"
    not_json.write_text("{")
    with pytest.raises(CheckerError, match="not valid JSON"):
        run_check("http://127.0.0.1:9", request_files=[not_json], out=io.StringIO())
    with pytest.raises(CheckerError, match="could not be run"):
        run_check("http://127.0.0.1:9", token_cmd="/nonexistent/mint", out=io.StringIO())
