"""`lipcds serve` as a real process on a loopback port, trusting a fake EHR's keys.

The EHR's JWKS is served from a thread of the test process; `mint_token.py` signs the
tokens (it is the checker's --token-cmd, and `token()` runs the same code in-process).
"""

# ruff: noqa: S603  (the subprocesses run our own virtual environment's executables)

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ROOT = Path(__file__).resolve().parents[2]
MINT = Path(__file__).parent / "security" / "mint_token.py"
ISSUER = "https://ehr.example.test"
KID = "checker-key-1"
CORS_ORIGIN = "https://sandbox.cds-hooks.org"
READY_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Live:
    url: str
    log: Path
    key_file: Path
    process: subprocess.Popen

    def token(self, audience: str) -> str:
        key = self.key_file.read_bytes()
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})

    def token_cmd(self) -> str:
        return f"{sys.executable} {MINT} {self.key_file} {ISSUER} {KID}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def _jwks_server(jwks: dict) -> Iterator[str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def running_lipcds(work: Path, *, args: tuple[str, ...] = (), **env_extra: str) -> Iterator[Live]:
    """`lipcds serve` (gunicorn) with JWT auth, CORS for the sandbox, a SQLite store."""
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = work / "ehr-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=KID, use="sig", alg="ES384")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _jwks_server({"keys": [jwk]}) as jwks_url:
        env = {
            **os.environ,
            "LIPCDS_ENV": "development",
            "LIPCDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISSUER, "jwks_url": jwks_url}]),
            "LIPCDS_PUBLIC_BASE_URL": url,
            "LIPCDS_CORS_ORIGINS": CORS_ORIGIN,
            "LIPCDS_DATABASE_URL": f"sqlite:///{work / 'lipcds.db'}",
            "LIPCDS_PATIENT_ID_KEY": "k" * 64,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the server makes its own unless told
        env.update(env_extra)
        log = work / "server.log"
        lipcds = Path(sys.executable).with_name("lipcds")
        command = [str(lipcds), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work
            )
        try:
            _wait_ready(f"{url}/healthz", process, log)
            yield Live(url, log, key_file, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"lipcds did not start:\n{log.read_text(errors='replace')[-3000:]}", pytrace=False)
