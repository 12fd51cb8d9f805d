"""Fetch-on-miss against a misbehaving FHIR server: each hook call still answers in time,
with a JSON body, and the worker's memory stays bounded.

The worker is a process of its own (fetch_fault_worker.py) so that its peak resident
memory is measured alone. Bound: the peak grows by less than `RSS_GROWTH_BOUND` over
the warmed-up worker across all the faults below, with the default limits (4 MB per
answer, 16 MB per hook call). Without the limits one 50 MB answer took a worker past
1 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fakefhir

ROOT = Path(__file__).resolve().parents[3]
FAULTS = (
    "huge",
    "huge-chunked",
    "gzip-bomb",
    "endless",
    "drip",
    "drip-headers",
    "frozen",
    "number-bomb",
)
MARGIN = 1.0  # seconds past the fetch deadline a hook call may take, evaluation included
RSS_GROWTH_BOUND = 64 * 1024  # KiB


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    with fakefhir.running() as fake:
        done = subprocess.run(  # noqa: S603  (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "tests.cds_hooks.hooks.fetch_fault_worker",
                str(fake.port),
                str(tmp_path_factory.mktemp("worker")),
                *FAULTS,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_worker_answered_normally_before_the_faults(report):
    assert report["warm"]["status"] == 200 and report["warm"]["json"]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_call_answers_json_within_the_deadline_and_a_margin(report, fault):
    answer = report["faults"][fault]
    assert answer["json"], answer
    # 412: `conditions` is required and could not be had; 200: only other keys failed.
    assert answer["status"] in (200, 412), answer
    assert answer["seconds"] < report["deadline"] + MARGIN, answer


@pytest.mark.parametrize("fault", FAULTS)
def test_no_fetch_thread_keeps_reading_after_the_answer(report, fault):
    assert report["faults"][fault]["threads_after"] == 0


def test_the_workers_memory_stays_bounded(report):
    peak = max(answer["peak_kib"] for answer in report["faults"].values())
    growth = peak - report["baseline_kib"]
    assert growth < RSS_GROWTH_BOUND, f"peak RSS grew by {growth} KiB over the faults"


def test_the_size_limits_are_settings(tmp_path):
    from tests import builders as b

    with fakefhir.running() as fake:
        base = fake.base("huge-chunked")
        app = b.make_app(
            tmp_path,
            env="development",
            fhir_allowed_servers=[base],
            fhir_insecure_servers=[base],
            fhir_max_response_bytes=64 * 1024,
            fhir_max_fetch_bytes=1024 * 1024,
        )
        request = b.hook_request()
        del request["prefetch"]["conditions"]
        request["fhirServer"] = base
        response = app.test_client().post(f"/cds-services/{b.SERVICE}", json=request)
    assert response.status_code == 412
    assert "larger than 64 KB" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("response_bytes", "fetch_bytes"), [(100, 1024 * 1024), (2 * 1024 * 1024, 1024 * 1024)]
)
def test_size_limits_out_of_range_are_refused_at_start(response_bytes, fetch_bytes):
    from cds_hooks.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="LIPCDS_FHIR_MAX_RESPONSE_BYTES"):
        load_settings(
            {"fhir_max_response_bytes": response_bytes, "fhir_max_fetch_bytes": fetch_bytes},
            environ={},
        )
