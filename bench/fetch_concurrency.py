"""Fetch-on-miss concurrency: a request's wall time against its slowest single FHIR query.

A stub FHIR server on 127.0.0.1 answers each search after an artificial delay (a
different one per resource type) with a demo patient's data. lipcds runs in-process and
gets patient-view requests with no prefetch, so every key is fetched. Concurrent fetching
keeps the ratio request / slowest query near 1; serial fetching would push it toward
sum / slowest.

    .venv/bin/python bench/fetch_concurrency.py [--iterations 20] [--demo low-magnesium-mgdl]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from cds_hooks import create_app
from cds_hooks.cli.demo import bundle_resources, load_demo, patient_id_of

SERVICE = "lip-twitch-patient-view"
# Seconds each query waits before answering: unequal, so "the slowest" means something.
DELAYS = {
    "Patient": 0.040,
    "Condition": 0.060,
    "Observation": 0.120,
    "MedicationRequest": 0.080,
    "MedicationStatement": 0.050,
}


def stub_handler(resources: list[dict]) -> type[BaseHTTPRequestHandler]:
    """A FHIR read/search handler over `resources`, slowed down by `DELAYS`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")[1:]  # drop the "fhir" prefix
            rtype = segments[0] if segments else ""
            time.sleep(DELAYS.get(rtype, 0.0))
            if len(segments) == 2:
                found = [
                    r for r in resources if r["resourceType"] == rtype and r["id"] == segments[1]
                ]
                body = found[0] if found else None
                status = 200 if found else 404
            else:
                patient = parse_qs(parts.query).get("patient", [""])[0]
                matching = [
                    r
                    for r in resources
                    if r["resourceType"] == rtype
                    and (r.get("subject") or r.get("patient") or {}).get("reference")
                    == f"Patient/{patient}"
                ]
                body = {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": len(matching),
                    "entry": [{"resource": r} for r in matching],
                }
                status = 200
            payload = json.dumps(body or {"resourceType": "OperationOutcome", "issue": []}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the figures are the output

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--demo", default="low-magnesium-mgdl")
    args = parser.parse_args()
    iterations = max(1, min(args.iterations, 500))

    bundle = load_demo(args.demo)
    patient_id = patient_id_of(bundle)
    server = ThreadingHTTPServer(("127.0.0.1", 0), stub_handler(list(bundle_resources(bundle))))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/fhir"

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "env": "development",
                "auth_mode": "disabled",
                "log_level": "ERROR",
                "fhir_allowed_servers": [base],
                "fhir_insecure_servers": [base],
                "database_url": f"sqlite:///{Path(tmp) / 'bench.db'}",
            }
        )
        templates = app.extensions["lipcds"].kb.services[SERVICE].prefetch
        queries = [t.replace("{{context.patientId}}", patient_id) for t in templates.values()]
        client = app.test_client()

        single: list[float] = []  # the slowest single query of each round
        summed: list[float] = []
        whole: list[float] = []
        with requests.Session() as session:
            for _ in range(iterations):
                times = []
                for query in queries:
                    started = time.perf_counter()
                    session.get(f"{base}/{query}", timeout=5).raise_for_status()
                    times.append(time.perf_counter() - started)
                single.append(max(times))
                summed.append(sum(times))
                body = {
                    "hookInstance": str(uuid.uuid4()),
                    "hook": "patient-view",
                    "fhirServer": base,
                    "context": {"userId": "Practitioner/bench", "patientId": patient_id},
                }
                started = time.perf_counter()
                response = client.post(f"/cds-services/{SERVICE}", json=body)
                whole.append(time.perf_counter() - started)
                assert response.status_code == 200, response.get_data(as_text=True)
    server.shutdown()

    slowest = statistics.median(single)
    request = statistics.median(whole)
    total = statistics.median(summed)
    print(f"fetch-on-miss, {len(queries)} queries, {iterations} iterations (medians)")
    print(f"  slowest single query : {slowest * 1000:8.1f} ms")
    print(f"  sum of query times   : {total * 1000:8.1f} ms")
    print(f"  whole request        : {request * 1000:8.1f} ms")
    serial = total / slowest
    print(f"  ratio request/slowest: {request / slowest:8.2f}  (serial would be ~{serial:.2f})")


if __name__ == "__main__":
    main()
