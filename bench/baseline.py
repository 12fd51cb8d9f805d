"""The parse floor: a bare Flask app that only parses the request body and answers no cards.

    gunicorn "bench.baseline:create_app()"

It does what every CDS Hooks service must do at least (read the HTTP request, parse its
JSON body, answer JSON) and nothing else, so lipcds's figures are compared with it.
"""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask("baseline")

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str):  # noqa: ANN202
        body = request.get_json()
        return jsonify({"cards": [] if body is not None else []})

    @app.get("/healthz")
    def healthz():  # noqa: ANN202
        return jsonify({"status": "ok"})

    return app
