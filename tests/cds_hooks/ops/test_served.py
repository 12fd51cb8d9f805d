"""`lipcds serve` with two gunicorn workers: /metrics sums both, every log line is JSON."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cds_hooks.cli.demo import hook_request, load_demo
from tests.cds_hooks.live_lipcds import running_lipcds

SERVICE = "lip-twitch-patient-view"
MAX_CALLS = 200  # enough for both workers to answer some, whatever the kernel's choice


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("served")
    metrics_dir = work / "metrics"
    with running_lipcds(
        work,
        args=("--workers", "2"),
        LIPCDS_LOG_FORMAT="json",
        LIPCDS_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as live:
        tokens: list[str] = []
        url = f"{live.url}/cds-services/{SERVICE}"

        def call(_: int) -> requests.Response:
            token = live.token(url)
            tokens.append(token)
            body = hook_request(load_demo("low-potassium-meq"))
            return requests.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )

        answers: list[requests.Response] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(answers) < MAX_CALLS:
                answers.extend(pool.map(call, range(16)))
                if len(_worker_files(metrics_dir)) >= 2:
                    break
        refused = requests.post(url, json={}, timeout=30)  # no token: 401
        scraped = requests.get(f"{live.url}/metrics", timeout=30)
        yield live, answers, refused, scraped, tokens, metrics_dir


def _worker_files(metrics_dir: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("histogram_*.db")}


def _samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_are_summed_over_both_workers(served):
    live, answers, refused, scraped, _, metrics_dir = served
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers[:3]]
    assert refused.status_code == 401
    assert len(_worker_files(metrics_dir)) >= 2, "both workers should have answered"
    assert scraped.status_code == 200
    found = _samples(scraped.text)
    calls = len(answers)
    key = (("service", SERVICE), ("status", "200"))
    assert found[("lipcds_hook_requests_total", key)] == calls
    assert found[("lipcds_hook_requests_total", (("service", SERVICE), ("status", "401")))] == 1
    assert found[("lipcds_hook_duration_seconds_count", (("service", SERVICE),))] == calls + 1
    inf = (("le", "+Inf"), ("service", SERVICE))
    assert found[("lipcds_hook_duration_seconds_bucket", inf)] == calls + 1
    assert found[("lipcds_auth_rejections_total", (("reason", "no_token"),))] == 1
    cards = answers[0].json()["cards"]
    for card in cards:
        labels = (
            ("indicator", card["indicator"]),
            ("kind", card["source"]["topic"]["code"]),
            ("service", SERVICE),
        )
        assert found[("lipcds_cards_total", labels)] == calls
    assert any(name == "lipcds_knowledge_base_info" for name, _ in found)


def test_every_line_of_the_server_is_json_and_carries_the_call(served):
    live, answers, _, _, tokens, _ = served
    lines = live.output().splitlines()
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    hook_lines = [r for r in records if r["logger"] == "lipcds.calls"]
    assert len(hook_lines) >= len(answers)
    for record in hook_lines:
        assert record["service"] == SERVICE
        assert len(record["requestId"]) >= 16
    answered = [r for r in hook_lines if "answered 200" in r["message"]]
    assert len(answered) == len(answers)
    for record in answered:
        uuid.UUID(record["hookInstance"])
        assert record["issuer"] == "https://ehr.example.test"
    ids = {a.headers["X-Request-ID"] for a in answers}
    assert ids == {r["requestId"] for r in answered}
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert {r["requestId"] for r in access} >= ids
    assert all(isinstance(r["status"], int) and "durationMs" in r for r in access)
    assert any(r["logger"] == "gunicorn.error" for r in records)  # its own lines too
    output = live.output()
    for token in tokens:
        assert token not in output
        assert token.split(".")[2] not in output  # not even the signature


def test_the_development_server_writes_json_lines_too(tmp_path):
    with running_lipcds(tmp_path, args=("--dev",), LIPCDS_LOG_FORMAT="json") as live:
        assert requests.get(f"{live.url}/cds-services", timeout=30).status_code == 200
        lines = live.output().splitlines()
    assert any("development server" in json.loads(line)["message"] for line in lines)
    for line in lines:
        record = json.loads(line)  # raises on any line that is not JSON
        assert {"time", "level", "logger", "message"} <= set(record)
