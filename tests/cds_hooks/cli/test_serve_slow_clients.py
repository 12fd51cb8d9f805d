"""Slow and abusive clients against `lipcds serve`.

A slow-header client sends its request line and then one header byte at a time; a
slow-body client sends complete headers announcing a body it then drips. While
`SLOW_CLIENTS` of them hold their connections open, ordinary calls still answer (a
bounded wait, `ANSWER_WITHIN`, not a speed target). Oversized headers answer JSON, from
the service (a token too large: 401) or from gunicorn itself (a header past its limit).
"""

# ruff: noqa: S603  (the server is our own interpreter's lipcds)

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import builders as b
from tests.integration.conftest import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[3]
SLOW_CLIENTS = 8
ANSWER_WITHIN = 5.0  # seconds
DRIP_INTERVAL = 0.5


def serve(work: Path, **settings: str) -> Iterator[str]:
    """`lipcds serve` on a free loopback port with these LIPCDS_* settings; its URL."""
    port = free_port()
    env = {
        **os.environ,
        "LIPCDS_DATABASE_URL": f"sqlite:///{work / 'lipcds.db'}",
        "LIPCDS_PATIENT_ID_KEY": "k" * 32,
        "LIPCDS_LOG_LEVEL": "WARNING",
        **{f"LIPCDS_{name.upper()}": value for name, value in settings.items()},
    }
    log = work / "server.log"
    lipcds = Path(sys.executable).with_name("lipcds")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(lipcds), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", process, log, ours=True)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("serve"), env="development", auth_mode="disabled")


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory) -> Iterator[str]:
    issuers = '[{"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}]'
    yield from serve(
        tmp_path_factory.mktemp("serve-jwt"), env="test", auth_mode="jwt", trusted_issuers=issuers
    )


class Dripper:
    """`count` connections, each sending `head` and then one byte every DRIP_INTERVAL."""

    def __init__(self, url: str, count: int, head: bytes, drip: bytes):
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.count, self.head, self.drip = count, head, drip
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Dripper:
        for _ in range(self.count):
            sock = socket.create_connection(self.address, timeout=5)
            sock.sendall(self.head)
            self.sockets.append(sock)
            thread = threading.Thread(target=self._drip, args=(sock,), daemon=True)
            thread.start()
            self.threads.append(thread)
        time.sleep(2 * DRIP_INTERVAL)  # let the server pick every one of them up
        return self

    def _drip(self, sock: socket.socket) -> None:
        for _ in range(int(120 / DRIP_INTERVAL)):  # bounded: two minutes at most
            if self.stop.wait(DRIP_INTERVAL):
                return
            try:
                sock.sendall(self.drip)
            except OSError:
                return  # the server gave up on us: fine

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


SLOW_HEADERS = (b"POST /cds-services/lip-twitch-patient-view HTTP/1.1\r\nHost: x\r\n", b"X")
SLOW_BODY = (
    b"POST /cds-services/lip-twitch-patient-view HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    b" ",
)


def ordinary_calls(url: str) -> list[float]:
    """A hook call and a health check; the seconds each took (raises if either fails)."""
    took = []
    for method, path, body in (
        ("post", f"/cds-services/{b.SERVICE}", b.hook_request()),
        ("get", "/healthz", None),
    ):
        started = time.monotonic()
        response = requests.request(method, url + path, json=body, timeout=ANSWER_WITHIN)
        took.append(time.monotonic() - started)
        assert response.status_code == 200, response.text[:300]
    return took


@pytest.mark.parametrize("kind", ["headers", "body"])
def test_slow_clients_do_not_stall_ordinary_calls(server, kind):
    head, drip = SLOW_HEADERS if kind == "headers" else SLOW_BODY
    ordinary_calls(server)  # warm
    with Dripper(server, SLOW_CLIENTS, head, drip):
        for _ in range(3):
            took = ordinary_calls(server)  # requests' timeout is the bound
            assert max(took) < ANSWER_WITHIN


def is_operation_outcome(response: requests.Response) -> bool:
    body = response.json()  # raises if the body is not JSON
    return body.get("resourceType") == "OperationOutcome"


def test_a_token_too_large_answers_a_json_401(jwt_server):
    token = "e" * (20 * 1024)  # past the 16 KB a token may have, under gunicorn's 32 KB line
    response = requests.post(
        f"{jwt_server}/cds-services/{b.SERVICE}",
        json=b.hook_request(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=ANSWER_WITHIN,
    )
    assert response.status_code == 401
    assert is_operation_outcome(response)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "e" * (40 * 1024)},
        {"X-Padding": "x" * (40 * 1024)},
        {f"X-Many-{i}": "1" for i in range(150)},
    ],
    ids=["token-past-the-line-limit", "one-huge-header", "too-many-headers"],
)
def test_headers_gunicorn_refuses_answer_json(jwt_server, headers):
    response = requests.get(f"{jwt_server}/cds-services", headers=headers, timeout=ANSWER_WITHIN)
    assert response.status_code in (400, 431)
    assert response.headers["Content-Type"] == "application/json"
    assert is_operation_outcome(response)
    assert "e" * 100 not in response.text  # nothing of the request is echoed


def test_the_served_settings_are_those_that_hold(monkeypatch):
    from cds_hooks.serving import gunicorn_settings

    for name in ("GUNICORN_THREADS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    settings = gunicorn_settings()
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] >= 32  # measured above: 4 did not hold 8 slow clients
    assert settings["limit_request_field_size"] >= 20 * 1024  # a 16 KB token's line fits
