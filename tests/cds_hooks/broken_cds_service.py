"""A CDS Hooks service that gets many rules wrong, for the checker's tests.

Each fault is one a real service has been seen to make; the checker must name them all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

CARD_UUID = "0b1c6d3e-2f4a-4b5c-8d9e-0f1a2b3c4d5e"


def broken_app() -> Flask:
    app = Flask("broken_cds_service")

    @app.get("/cds-services")
    def discovery():
        return jsonify(
            {
                "services": [
                    {
                        # no description (REQUIRED), an empty title, a token that is not allowed
                        "hook": "patient-view",
                        "id": "broken-view",
                        "title": "",
                        "prefetch": {
                            "patient": "Patient/{{context.patientId}}",
                            "meds": "MedicationRequest?medication={{context.medication.id}}",
                        },
                    }
                ]
            }
        )

    @app.post("/cds-services/<service_id>")
    def call(service_id: str):
        body = request.get_json(force=True)  # malformed JSON: an unhandled 400 -> see below
        if "prefetch" not in body:
            raise RuntimeError("no prefetch")  # answers 500 instead of 412
        return jsonify(
            {
                "cards": [
                    {
                        "uuid": CARD_UUID,
                        "summary": "S" * 150,  # 140 characters or more
                        "indicator": "hard-stop",  # the 1.0 name, not a 2.0 indicator
                        "source": {"label": "Broken"},
                        "suggestions": [{"label": "Do something"}],  # no selectionBehavior
                    }
                ]
            }
        )

    @app.errorhandler(400)
    def bad_request(exc):  # a body that is not JSON: 500 with an HTML page
        return "<h1>Internal Server Error</h1>", 500

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str):
        return "feedback store exploded", 500

    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """`app` on a loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
