"""`lipcds serve` in production mode, with JWT, while its PostgreSQL is refused or frozen.

The database sits behind a proxy the test controls. While it is away, hook calls still
answer their cards within a bounded time (the replay guard falls back to the worker's own
seen-set, the card records wait in the spool), `/readyz` says 503, feedback says 503 with
Retry-After, and the server stays up. When the database is back, the cards issued
meanwhile are in the store and accept feedback.
"""

# ruff: noqa: S603  (the subprocess is our own lipcds from this virtual environment)

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.store import Store
from tests.cds_hooks.security.jwt_helpers import ISS, FakeEhr
from tests.support.jwks_server import JwksServer
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "lip-twitch-patient-view"
BASE = "https://cds.example.org"
AUD = f"{BASE}/cds-services/{SERVICE}"
FEEDBACK_AUD = f"{AUD}/feedback"
# "Answers within about 2 s": the engine bounds a frozen call at 2 s; the margin is for a
# loaded two-core machine. Without the bounds these calls took 30 s and killed workers.
BOUND = 4.0
# Longer than gunicorn's worker timeout would matter for a call stuck on the database.
FREEZE_SECONDS = 12.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    ehr: FakeEhr

    def token(self, aud: str = AUD) -> str:
        now = int(time.time())
        return self.ehr.token(aud, iat=now, exp=now + 300)

    def hook(self) -> tuple[requests.Response, float, str]:
        body = hook_request(load_demo("low-potassium-meq"))
        started = time.monotonic()
        response = requests.post(
            f"{self.url}/cds-services/{SERVICE}",
            json=body,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        return response, time.monotonic() - started, body["hookInstance"]

    def feedback(self, cards: list[dict]) -> requests.Response:
        items = [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"userComment": "not now"},
                "outcomeTimestamp": "2026-11-21T10:15:00Z",
            }
            for card in cards
        ]
        return requests.post(
            f"{self.url}/cds-services/{SERVICE}/feedback",
            json={"feedback": items},
            headers={"Authorization": f"Bearer {self.token(FEEDBACK_AUD)}"},
            timeout=30,
        )

    def get(self, path: str) -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = requests.get(f"{self.url}{path}", timeout=30)
        return response, time.monotonic() - started

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def database(postgres_database) -> Iterator[Store]:
    store = Store(postgres_database)
    store.upgrade()
    with store.engine.begin() as connection:
        connection.execute(
            text("TRUNCATE feedback, issued_suggestion, issued_card, jwt_replay RESTART IDENTITY")
        )
    yield store
    store.dispose()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        yield proxy


@pytest.fixture
def launch(database, proxy, tmp_path) -> Iterator:
    """Start `lipcds serve` (production, JWT, two workers) against the proxied database."""
    started: list[tuple[Server, JwksServer]] = []

    def start() -> Server:
        ehr = FakeEhr()
        jwks = JwksServer(ehr.jwks(), tmp_path)
        engine_url = database.engine.url.render_as_string(hide_password=False)
        url = make_url(engine_url).set(port=proxy.port).render_as_string(hide_password=False)
        port = free_port()
        env = {
            **os.environ,
            "LIPCDS_ENV": "production",
            "LIPCDS_PUBLIC_BASE_URL": BASE,
            "LIPCDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks_url": jwks.url}]),
            "LIPCDS_DATABASE_URL": url,
            "LIPCDS_PATIENT_ID_KEY": "outage-test-patient-key-0123456789",
            "LIPCDS_SPOOL_DIR": str(tmp_path / "spool"),
            "LIPCDS_LOG_LEVEL": "INFO",
            "REQUESTS_CA_BUNDLE": str(jwks.ca_file),
        }
        env.pop("LIPCDS_REDIS_URL", None)
        lipcds = Path(sys.executable).with_name("lipcds")
        log = tmp_path / "server.log"
        command = [str(lipcds), "serve", "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*command, "--workers", "2"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log, ehr)
        started.append((server, jwks))
        return server

    yield start
    for server, jwks in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
        jwks.close()


@pytest.fixture
def server(launch) -> Server:
    server = launch()
    _wait_until(lambda: _status(server, "/readyz") == 200, 90, server)
    return server


def _status(server: Server, path: str) -> int | None:
    try:
        return requests.get(f"{server.url}{path}", timeout=5).status_code
    except requests.RequestException:
        return None


def _wait_until(condition, seconds: float, server: Server) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"lipcds exited ({server.process.returncode}):\n{server.tail()}")
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"condition not met within {seconds:.0f} s:\n{server.tail()}")


def _recorded(database: Store, hook_instances: list[str]) -> dict[str, int]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT hook_instance, count(*) FROM issued_card "
                "WHERE hook_instance = ANY(:ids) GROUP BY hook_instance"
            ),
            {"ids": hook_instances},
        ).all()
    return dict(rows)


@pytest.mark.parametrize("fault", ["refuse", "freeze"])
def test_hook_calls_answer_while_the_database_is_away_and_nothing_is_lost(
    server, proxy, database, fault
):
    response, _, _ = server.hook()
    assert response.status_code == 200, server.tail()
    assert server.feedback(response.json()["cards"]).status_code == 200

    getattr(proxy, fault)()
    issued: dict[str, list[dict]] = {}
    slowest = 0.0
    ended = time.monotonic() + (FREEZE_SECONDS if fault == "freeze" else 3.0)
    while time.monotonic() < ended:
        response, elapsed, hook_instance = server.hook()
        assert response.status_code == 200, (response.text, server.tail())
        assert response.json()["cards"], "the cards go out while the database is away"
        issued[hook_instance] = response.json()["cards"]
        slowest = max(slowest, elapsed)
    print(f"{fault}: {len(issued)} hook calls during the outage, slowest {slowest:.2f} s")
    assert slowest < BOUND, f"slowest hook call {slowest:.1f} s\n{server.tail()}"

    ready, elapsed = server.get("/readyz")
    assert ready.status_code == 503 and elapsed < BOUND, (ready.status_code, elapsed)
    cards = next(iter(issued.values()))
    started = time.monotonic()
    refused = server.feedback(cards)
    assert refused.status_code == 503 and time.monotonic() - started < BOUND
    assert int(refused.headers["Retry-After"]) >= 1
    assert server.process.poll() is None, "the server survives the outage"
    assert server.get("/healthz")[0].status_code == 200

    proxy.pass_()
    _wait_until(lambda: _status(server, "/readyz") == 200, 60, server)
    response, elapsed, _ = server.hook()
    assert response.status_code == 200 and elapsed < BOUND
    _wait_until(
        lambda: _recorded(database, list(issued)) == {k: len(v) for k, v in issued.items()},
        60,
        server,
    )
    for cards in issued.values():
        accepted = server.feedback(cards)
        assert accepted.status_code == 200, (accepted.text, server.tail())
        assert accepted.json()["recorded"] == len(cards)
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_the_server_starts_without_its_database(database, proxy, launch):
    proxy.refuse()
    server = launch()
    _wait_until(lambda: _status(server, "/healthz") == 200, 90, server)
    assert _status(server, "/readyz") == 503
    response, _, hook_instance = server.hook()
    assert response.status_code == 200 and response.json()["cards"], server.tail()
    proxy.pass_()
    _wait_until(lambda: _status(server, "/readyz") == 200, 60, server)
    cards = response.json()["cards"]
    expected = {hook_instance: len(cards)}
    _wait_until(lambda: _recorded(database, [hook_instance]) == expected, 60, server)
    assert server.feedback(cards).status_code == 200
