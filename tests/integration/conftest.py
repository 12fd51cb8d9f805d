"""Real servers for the integration tests: the sandbox FHIR server and lipcds over HTTP.

`LIPCDS_TEST_FHIR_BASE` points the tests at any FHIR R4 server (HAPI, a vendor sandbox);
`LIPCDS_TEST_FHIR_TOKEN` is then sent as `fhirAuthorization`. Without it the suite
installs the pinned sekmet-fhir into `.venv-fhir` and runs it on 127.0.0.1 with the
simulator off (docs: reference/fhir-sandbox-server.md, section A).

Under `CI=true` a server that cannot be installed or started fails the run; elsewhere
the integration tests are skipped with the reason.
"""

# ruff: noqa: S603  (every subprocess runs an executable of our own virtual environments)

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cds_hooks.cli.demo import as_transaction, list_demos, load_demo, patient_id_of

ROOT = Path(__file__).resolve().parents[2]
SEKMET = "sekmet-fhir==0.1.1"
FHIR_VENV = ROOT / ".venv-fhir"
READY_TIMEOUT = 60.0
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """No server to test against: a failure in CI, a skip on a developer's machine."""
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(
    url: str, process: subprocess.Popen | None, log: Path | None, *, ours: bool = False
) -> None:
    """Poll `url` until it answers 200; complain with the log tail if it never does.

    `ours`: lipcds itself, which failing to start is always a test failure.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    message = f"{url} not ready within {READY_TIMEOUT:.0f} s\n{tail}"
    if ours:
        pytest.fail(message, pytrace=False)
    unavailable(message)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def install_sekmet() -> Path:
    """`.venv-fhir/bin/sekmet`, installing the pinned release first if needed."""
    # pytest-xdist workers share the venv: one installs while the others wait.
    with open(Path(tempfile.gettempdir()) / "lipcds-venv-fhir.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_sekmet()


def _install_sekmet() -> Path:
    sekmet = FHIR_VENV / "bin" / "sekmet"
    pip = FHIR_VENV / "bin" / "pip"
    if sekmet.exists():
        shown = subprocess.run(
            [str(pip), "show", "sekmet-fhir"], capture_output=True, text=True, check=False
        )
        if f"Version: {SEKMET.split('==')[1]}" in shown.stdout:
            return sekmet
    if not pip.exists():
        venv.EnvBuilder(with_pip=True).create(FHIR_VENV)
    installed = subprocess.run(
        [str(pip), "install", "--quiet", "--disable-pip-version-check", SEKMET],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if installed.returncode != 0 or not sekmet.exists():
        unavailable(f"could not install {SEKMET}: {installed.stderr[-2000:]}")
    return sekmet


@dataclass(frozen=True)
class FhirSandbox:
    base: str
    token: str | None = None


@pytest.fixture(scope="session")
def fhir_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirSandbox]:
    """A FHIR R4 server to test against: the configured one, else a fresh sekmet."""
    configured = os.environ.get("LIPCDS_TEST_FHIR_BASE")
    if configured:
        base = configured.rstrip("/")
        wait_ready(f"{base}/metadata", None, None)
        yield FhirSandbox(base, os.environ.get("LIPCDS_TEST_FHIR_TOKEN") or None)
        return
    sekmet = install_sekmet()
    work = tmp_path_factory.mktemp("sekmet")
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = work / "sekmet.yaml"
    config.write_text(
        f"base_url: {base}\n"
        "host: 127.0.0.1\n"
        f"port: {port}\n"
        f"data_dir: {work / 'data'}\n"
        "simulator:\n  enabled: false\n"  # it would process our orders and change the data
        "validation:\n  inbound: strict\n"
        "log_inbound: false\n"
    )
    log = work / "server.log"
    env = {**os.environ, "SEKMET_DB": str(work / "sekmet.db")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(sekmet), "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    try:
        wait_ready(f"{base}/metadata", process, log)
        yield FhirSandbox(base)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def demo_patients(fhir_sandbox: FhirSandbox) -> dict[str, str]:
    """Load every demo patient (dates shifted to today) as a transaction; name -> patient id."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if fhir_sandbox.token:
        headers["Authorization"] = f"Bearer {fhir_sandbox.token}"
    ids = {}
    for name in list_demos():
        bundle = load_demo(name)
        response = requests.post(
            fhir_sandbox.base, json=as_transaction(bundle), headers=headers, timeout=30
        )
        assert response.status_code == 200, f"{name}: {response.status_code} {response.text[:500]}"
        ids[name] = patient_id_of(bundle)
    return ids


def lipcds_command(port: int) -> list[str]:
    """`lipcds serve` when the CLI offers it, else Flask's server on the app factory."""
    lipcds = Path(sys.executable).with_name("lipcds")
    if lipcds.exists():
        probe = subprocess.run(
            [str(lipcds), "serve", "--help"], capture_output=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return [str(lipcds), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [
        sys.executable, "-m", "flask", "--app", "cds_hooks:create_app",
        "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload",
    ]  # fmt: skip


@dataclass(frozen=True)
class Lipcds:
    url: str  # e.g. http://127.0.0.1:5123
    dead_fhir_base: str  # allow-listed, but nothing listens there
    log: Path  # the server's output, for assertion messages


@pytest.fixture(scope="session")
def lipcds(fhir_sandbox: FhirSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lipcds]:
    """lipcds as a real server process, allowed to call the sandbox (and one dead base)."""
    work = tmp_path_factory.mktemp("lipcds")
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}/fhir"  # the port was free a moment ago: refused
    allowed = [fhir_sandbox.base, dead]
    insecure = [b for b in allowed if b.startswith("http://")]
    env = {
        **os.environ,
        "LIPCDS_ENV": "development",
        "LIPCDS_AUTH_MODE": "disabled",
        "LIPCDS_FHIR_ALLOWED_SERVERS": ",".join(allowed),
        "LIPCDS_FHIR_INSECURE_SERVERS": ",".join(insecure),
        "LIPCDS_DATABASE_URL": f"sqlite:///{work / 'lipcds.db'}",
    }
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            lipcds_command(port), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/cds-services", process, log, ours=True)
        yield Lipcds(url, dead, log)
    finally:
        stop(process)
