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


def main(argv: list[str] | None = None) -> int:
    """Serve the floor under gunicorn: `--settings` is a JSON object of gunicorn settings.

    bench/floor.py passes the server settings of `lipcds serve` (cds_hooks.serving) without
    lipcds's own hooks; this process never imports lipcds, so the floor carries none of it.
    """
    import argparse
    import json

    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser(description="serve the parse floor")
    parser.add_argument("--settings", required=True, help="gunicorn settings as JSON")
    settings = json.loads(parser.parse_args(argv).settings)

    class Floor(BaseApplication):
        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return create_app()

    Floor().run()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
