"""Latency, throughput and memory of lipcds under concurrent load, against a bare Flask app.

    .venv/bin/python bench/latency.py [--clients 8] [--duration 20] [--warmup 3]

Starts two gunicorn servers on 127.0.0.1 with the production settings of
deploy/gunicorn.conf.py (2 workers unless --workers): the real service (development
mode, authentication off, a temporary SQLite store) and a bare Flask app that only
parses the same JSON body and answers {"cards": []}. Each is driven in turn, never both
at once, by --clients threads posting the ~250-resource patient-view of
bench/workload.py, after a warm-up. Prints p50/p95/p99 latency, requests per second,
the lipcds/baseline throughput ratio, and the resident memory of each lipcds process.

A report, not a test: it checks nothing and exits 0 unless a server fails to start. See
bench/README.md for how to read the figures against the budgets of DESIGN.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import cds_hooks, bench

from bench.workload import SERVICE, count_resources, full_prefetch_request  # noqa: E402

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
PLACEHOLDER = "bench-hook-instance-0000-000000000000"  # same length as a UUID


def baseline_app():  # noqa: ANN201 - gunicorn factory, Flask imported lazily
    """The reference: a Flask app that parses the request body and answers no cards."""
    from flask import Flask, jsonify, request

    app = Flask("baseline")

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str):  # noqa: ANN202
        body = request.get_json()
        return jsonify({"cards": [] if body is not None else []})

    @app.get("/healthz")
    def healthz():  # noqa: ANN202
        return jsonify({"status": "ok"})

    return app


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn stops its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(name: str, app: str, workers: int, env: dict[str, str], tmp: Path) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--config",
        str(GUNICORN_CONF),
        "--bind",
        f"127.0.0.1:{port}",  # the command line wins over the config file's bind
        "--workers",
        str(workers),
        "--chdir",
        str(ROOT),
        app,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=tmp,
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if (
                requests.get(f"{server.url}/healthz", timeout=1).status_code == 200
                and len(server.worker_pids()) == workers
            ):
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{name} did not answer /healthz within 60 s; see {log}")


# -- load ------------------------------------------------------------------------------------


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0


def drive(url: str, body: bytes, clients: int, seconds: float) -> Run:
    """`clients` threads post `body` back to back for `seconds`; every latency is kept."""
    run = Run()
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}
    template = body

    def client() -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                # A fresh hookInstance per call, as an EHR sends: the store records it.
                data = template.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode())
                started = time.perf_counter()
                try:
                    response = session.post(url, data=data, headers=headers, timeout=30)
                    response.content  # noqa: B018 - read the whole answer before stopping
                except requests.RequestException:
                    errors += 1
                    continue
                took = time.perf_counter() - started
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    latencies.append(took)
                else:
                    errors += 1
        with lock:
            run.latencies.extend(latencies)
            run.errors += errors
            for status, count in statuses.items():
                run.statuses[status] = run.statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    run.elapsed = time.perf_counter() - started
    return run


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency some request had)."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


# -- memory ----------------------------------------------------------------------------------


def memory_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, Pss) of a process in KiB. Pss shares copy-on-write pages among their users."""
    rss = pss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def mb(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib * 1024 / 1e6:.1f} MB"


# -- report ----------------------------------------------------------------------------------


def summary(name: str, run: Run) -> str:
    if not run.latencies:
        return f"{name:<9} no successful requests ({run.errors} errors, statuses {run.statuses})"
    ms = [t * 1000 for t in run.latencies]
    rate = len(ms) / run.elapsed
    return (
        f"{name:<9} {len(ms):>6} ok {run.errors:>4} err   "
        f"p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   "
        f"p99 {percentile(ms, 99):7.1f} ms   max {max(ms):7.1f} ms   {rate:7.1f} req/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up (3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    args = parser.parse_args(argv)

    request = full_prefetch_request()
    request["hookInstance"] = PLACEHOLDER
    body = json.dumps(request).encode()
    resources = count_resources(request)
    print(
        f"workload: patient-view, {resources} prefetch resources, {len(body) / 1024:.0f} KiB "
        f"body; {args.clients} clients, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"each; gunicorn {args.workers} workers ({GUNICORN_CONF.relative_to(ROOT)}); "
        f"{os.cpu_count()} CPUs shared with the load generator"
    )

    with tempfile.TemporaryDirectory(prefix="lipcds-bench-") as tmp_name:
        tmp = Path(tmp_name)
        lipcds_env = {
            "LIPCDS_ENV": "development",
            "LIPCDS_AUTH_MODE": "disabled",
            "LIPCDS_DATABASE_URL": f"sqlite:///{tmp / 'lipcds.db'}",
            "LIPCDS_PATIENT_ID_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "LIPCDS_LOG_LEVEL": "WARNING",
        }
        runs: dict[str, Run] = {}
        memory: list[tuple[str, int, int | None, int | None]] = []
        for name, app, env in (
            ("baseline", "bench.latency:baseline_app()", {}),
            ("lipcds", "cds_hooks:create_app()", lipcds_env),
        ):
            server = start_server(name, app, args.workers, env, tmp)
            try:
                url = f"{server.url}/cds-services/{SERVICE}"
                check = requests.post(
                    url, data=body, timeout=30, headers={"Content-Type": "application/json"}
                )
                if check.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {check.status_code}: {check.text[:500]}")
                if name == "lipcds":
                    cards = check.json().get("cards", [])
                    print(f"lipcds answers {len(cards)} cards for the workload")
                drive(url, body, args.clients, args.warmup)
                runs[name] = drive(url, body, args.clients, args.duration)
                if name == "lipcds":
                    memory.append(("master", server.process.pid, *memory_kib(server.process.pid)))
                    for pid in server.worker_pids():
                        memory.append(("worker", pid, *memory_kib(pid)))
            finally:
                server.stop()

    print()
    for name in ("baseline", "lipcds"):
        print(summary(name, runs[name]))
    base, ours = runs["baseline"], runs["lipcds"]
    if base.latencies and ours.latencies:
        ratio = (len(ours.latencies) / ours.elapsed) / (len(base.latencies) / base.elapsed)
        print(f"throughput ratio lipcds/baseline: {ratio:.2f} (budget: at least 0.50)")
        print(
            f"lipcds p99: {percentile([t * 1000 for t in ours.latencies], 99):.1f} ms "
            f"(budget: under 50 ms)"
        )
    print()
    print("lipcds memory after the run (budget: under 150 MB resident per worker):")
    for role, pid, rss, pss in memory:
        print(f"  {role:<6} pid {pid:<7} VmRSS {mb(rss):>9}   Pss {mb(pss):>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
