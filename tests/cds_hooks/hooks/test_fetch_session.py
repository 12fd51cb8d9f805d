"""Fetch-on-miss keeps its connections to a FHIR server alive across hook calls."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cds_hooks import create_app
from cds_hooks.runtime import runtime

SERVICE = "lip-twitch-patient-view"


@contextmanager
def keepalive_fhir() -> Iterator[tuple[str, list[tuple[int, str | None]]]]:
    """A FHIR server answering every search with no results; notes (client port, Cookie)."""
    seen: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with lock:
                seen.append((self.client_address[1], self.headers.get("Cookie")))
            path = self.path.split("?", 1)[0]
            if path.startswith("/fhir/Patient/"):
                body = {"resourceType": "Patient", "id": path.rsplit("/", 1)[1]}
            else:
                body = {"resourceType": "Bundle", "type": "searchset", "total": 0}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Set-Cookie", "affinity=user-a; Path=/")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _request(base: str) -> dict:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": base,
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
    }


def test_the_second_call_reuses_the_first_calls_connections_and_sends_no_cookie():
    with keepalive_fhir() as (base, seen):
        app = create_app(
            {
                "env": "development",
                "auth_mode": "disabled",
                "database_url": "sqlite://",
                "patient_id_key": "k" * 64,
                "fhir_allowed_servers": [base],
                "fhir_insecure_servers": [base],
            }
        )
        try:
            client = app.test_client()
            assert client.post(f"/cds-services/{SERVICE}", json=_request(base)).status_code == 200
            first = {port for port, _ in seen}
            count = len(seen)
            assert client.post(f"/cds-services/{SERVICE}", json=_request(base)).status_code == 200
            second = {port for port, _ in seen[count:]}
            metrics = client.get("/metrics").get_data(as_text=True)
        finally:
            runtime(app).store.dispose()
    assert count >= 3 and len(seen) == 2 * count  # every key fetched, both times
    # A session per call would open all new connections (and close the old ones).
    assert first & second, "the second call reused none of the first call's connections"
    assert all(cookie is None for _, cookie in seen)
    # Each key fetched counts once per call, by how it ended.
    assert 'lipcds_fhir_fetch_total{outcome="ok"} 2.0' in metrics  # the Patient read
    assert f'lipcds_fhir_fetch_total{{outcome="no_data"}} {2.0 * (count - 1)}' in metrics
