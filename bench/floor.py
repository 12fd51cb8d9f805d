"""`lipcds serve` against the parse floor: what a user sees, under load and as the prefetch grows.

    bench/run [options]                 (installs wrk when missing, then runs this)
    .venv/bin/python bench/floor.py [--rounds 3] [--seconds 10] [--clients 8] ...

Starts two servers on 127.0.0.1 and keeps both up for the whole run:
- lipcds: the real `lipcds serve` command (development mode, authentication off, a SQLite
  store in a temporary directory, so every answer is recorded as in a real deployment);
- the floor: bench/baseline.py, a bare Flask app under gunicorn that only parses the
  body with `request.get_json()`, with the worker settings `lipcds serve` uses.

Load comes from wrk (bench/hook.lua), an external closed-loop generator: --clients
connections, each sending the next request when the last answer arrived, every request
with a fresh hookInstance. The two servers are driven in turn, never at once, in
--rounds interleaved rounds (the order flips each round), so a change in machine load
falls on both. Then a scaling run: one client, prefetches of --sizes resources, ms and
server CPU per request, the growth exponent, and the ratio to a standard-library
`json.loads` of the same body. Then fetch-on-miss (bench/fetch_concurrency.py).

Server CPU is read from /proc/<pid>/stat of the server and its workers; memory from
/proc/<pid>/status and smaps_rollup. A report, not a test: it prints figures and ratios
against the budgets of DESIGN.md, and exits 0 unless a server fails or answers wrongly.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import bench

from bench.workload import SERVICE, sized_request  # noqa: E402

BIN = Path(sys.executable).parent
PLACEHOLDER = "bench000-0000-4000-8000-hookinstance"  # as long as a UUID; see hook.lua
HOOK_LUA = BENCH / "hook.lua"
PATH = f"/cds-services/{SERVICE}"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6

# Budgets of DESIGN.md.
MIN_THROUGHPUT_RATIO = 0.5
MAX_P99_RATIO = 2.0
MAX_CPU_RATIO = 2.0
MAX_PARSE_RATIO = 3.0  # at the largest size
MAX_RSS_MB = 150.0
MAX_FETCH_RATIO = 1.3


# -- processes and /proc ------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on; comm may hold spaces


def server_cpu_seconds(master: int) -> float:
    """CPU of the master, of its live workers, and of workers it has already reaped."""
    fields = _stat_fields(master)
    if fields is None:
        return math.nan
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    ticks = utime + stime + cutime + cstime
    for child in children_of(master):
        child_fields = _stat_fields(child)
        if child_fields is not None:
            ticks += int(child_fields[11]) + int(child_fields[12])
    return ticks / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / CLK_TCK, total / CLK_TCK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def memory(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak resident) and Pss of a process, in MB."""
    found: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0]) * 1024 / MB
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["Pss"] = int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout
    )
    return response.status_code, response.content


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    workers: int
    log: Path
    settings: str
    answered: int = 0  # successful calls counted by the bench (wrk and checks)
    left_in_flight: int = 0  # at most this many more: wrk stops with calls unanswered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def cpu_seconds(self) -> float:
        return server_cpu_seconds(self.process.pid)

    def wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} did not start:\n{self.log_tail()}")
            try:
                answer = requests.get(f"{self.url}/healthz", timeout=2)
                if answer.status_code == 200 and len(self.worker_pids()) == self.workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise SystemExit(
            f"{self.name} did not answer /healthz within {seconds:g} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn stops its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    workers: int,
    tmp: Path,
    settings: str,
) -> Server:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=tmp
        )
    return Server(name, process, port, workers, log, settings)


def start_lipcds(workers: int, tmp: Path) -> Server:
    port = free_port()
    env = {
        "LIPCDS_ENV": "development",
        "LIPCDS_AUTH_MODE": "disabled",
        "LIPCDS_DATABASE_URL": f"sqlite:///{tmp / 'lipcds.db'}",
        "LIPCDS_PATIENT_ID_KEY": secrets.token_hex(32),
        "LIPCDS_LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": str(workers),
    }
    command = [
        str(BIN / "lipcds"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return start("lipcds", command, env, port, workers, tmp, f"`lipcds serve`, {_server(workers)}")


def _server(workers: int) -> str:
    """The gunicorn settings both servers run with, in words."""
    from cds_hooks.serving import gunicorn_settings

    settings = gunicorn_settings()
    threads = f" x {settings['threads']} threads" if settings["worker_class"] == "gthread" else ""
    return f"gunicorn {settings['worker_class']}, {workers} workers{threads}"


def start_baseline(workers: int, tmp: Path) -> Server:
    """The floor under the server settings of `lipcds serve` (cds_hooks.serving), no app hooks."""
    from cds_hooks.serving import gunicorn_settings

    port = free_port()
    settings = {
        key: value
        for key, value in gunicorn_settings().items()
        # lipcds's own hooks and logger stay out: the floor's process never imports lipcds
        if not callable(value)
        and not (isinstance(value, str) and value.startswith("cds_hooks"))
        and key not in ("wsgi_app", "preload_app", "loglevel")
    }
    settings.update(
        bind=f"127.0.0.1:{port}", workers=workers, proc_name="lipcds-floor", loglevel="warning"
    )
    command = [sys.executable, str(BENCH / "baseline.py"), "--settings", json.dumps(settings)]
    return start(
        "baseline", command, {}, port, workers, tmp, f"bench/baseline.py, {_server(workers)}"
    )


# -- one wrk run --------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    requests: int
    seconds: float
    errors: int
    error_kinds: dict[str, int]
    quantiles_us: list[int]
    mean_us: float
    max_us: int
    server_cpu: float  # seconds
    wrk_cpu: float
    machine_busy: float  # CPU seconds of the whole machine in the run
    wall: float  # seconds of the whole wrk process, over which the CPU figures are read
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def ok(self) -> int:
        return self.requests - self.error_kinds.get("status", 0)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu * 1000 / self.requests if self.requests else math.nan

    def quantile_ms(self, q: float) -> float:
        return pooled_quantile([self], q)

    def load_note(self) -> str:
        others = max(0.0, self.machine_busy - self.server_cpu - self.wrk_cpu)
        wall = self.wall or self.seconds
        return (
            f"machine {self.machine_busy / wall:.2f} of {self.cores} cores busy: "
            f"server {self.server_cpu / wall:.2f}, wrk "
            f"{self.wrk_cpu / wall:.2f}, others {others / wall:.2f}"
        )


def pooled_quantile(runs: list[Run], q: float) -> float:
    """Quantile q (0..100) in ms of the runs' latencies together.

    wrk reports each run's distribution as equally spaced quantiles; each stands for an
    equal share of that run's requests, so the runs pool by weighting them with it.
    """
    points: list[tuple[int, float]] = []
    for run in runs:
        if run.quantiles_us and run.requests:
            weight = run.requests / len(run.quantiles_us)
            points.extend((value, weight) for value in run.quantiles_us)
    if not points:
        return math.nan
    points.sort()
    wanted = q / 100 * sum(weight for _, weight in points)
    seen = 0.0
    for value, weight in points:
        seen += weight
        if seen >= wanted - 1e-9:
            return value / 1000
    return points[-1][0] / 1000


def wrk(server: Server, body_file: Path, *, clients: int, threads: int, seconds: int) -> Run:
    env = {
        **os.environ,
        "BENCH_BODY": str(body_file),
        "BENCH_PATH": PATH,
        "BENCH_RUN": secrets.token_hex(4),
        "BENCH_QUANTA": "2000",
    }
    command = [
        "wrk",
        "--threads",
        str(min(threads, clients)),
        "--connections",
        str(clients),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "10s",
        "--script",
        str(HOOK_LUA),
        server.url,
    ]
    cpu_before = server.cpu_seconds()
    busy_before, _ = machine_cpu()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    wall = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_after, _ = machine_cpu()
    cpu_after = server.cpu_seconds()
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    kinds = {k: result[k] for k in ("connect", "read", "write", "status", "timeout") if result[k]}
    server.answered += result["requests"] - result["status"]
    server.left_in_flight += clients
    wrk_cpu = (
        children_after.ru_utime
        - children_before.ru_utime
        + children_after.ru_stime
        - children_before.ru_stime
    )
    return Run(
        server=server.name,
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        errors=sum(kinds.values()),
        error_kinds=kinds,
        quantiles_us=result["quantiles"],
        mean_us=result["mean_us"],
        max_us=result["max_us"],
        server_cpu=cpu_after - cpu_before,
        wrk_cpu=wrk_cpu,
        machine_busy=busy_after - busy_before,
        wall=wall,
    )


# -- checks of the answers ----------------------------------------------------------------


def body_with_placeholder(total: int) -> bytes:
    request = sized_request(total)
    request["hookInstance"] = PLACEHOLDER
    return json.dumps(request).encode()


def check_answer(server: Server, body: bytes) -> int:
    """One call with a real hookInstance; the number of cards. Stops the run on a failure."""
    status, answer = post(
        server.url + PATH, body.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode())
    )
    if status != 200:
        raise SystemExit(f"{server.name}: HTTP {status}: {answer[:800]!r}")
    server.answered += 1
    cards = json.loads(answer).get("cards")
    if not isinstance(cards, list):
        raise SystemExit(f"{server.name}: the answer holds no card list: {answer[:800]!r}")
    if server.name == "lipcds" and not cards:
        raise SystemExit("lipcds answered no cards for a workload that has some")
    return len(cards)


def stored_hook_instances(database: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            return connection.execute(
                "SELECT COUNT(DISTINCT hook_instance) FROM issued_card"
            ).fetchone()[0]
    except sqlite3.Error:
        return None


# -- report -------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def budget_line(what: str, value: str, budget: str, met: bool) -> str:
    return f"{what:<40} {value:>9}   budget {budget:<9} {verdict(met)}"


def run_line(label: str, run: Run) -> str:
    errors = f"{run.errors} err" + (f" {run.error_kinds}" if run.errors else "")
    return (
        f"  {label:<18} {run.ok:>6} ok  {errors:<8} {run.rate:7.1f} req/s  "
        f"p50 {run.quantile_ms(50):6.1f} ms  p99 {run.quantile_ms(99):7.1f} ms  "
        f"CPU {run.cpu_ms:6.2f} ms/req   [{run.load_note()}]"
    )


@dataclass
class Pooled:
    name: str
    runs: list[Run]

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def rate(self) -> float:
        return self.ok / sum(r.seconds for r in self.runs)

    @property
    def cpu_ms(self) -> float:
        return sum(r.server_cpu for r in self.runs) * 1000 / sum(r.requests for r in self.runs)

    def q(self, quantile: float) -> float:
        return pooled_quantile(self.runs, quantile)


def load_phase(
    lipcds: Server, baseline: Server, args: argparse.Namespace, tmp: Path, summary: list[str]
) -> None:
    body = body_with_placeholder(args.resources)
    body_file = tmp / f"body-{args.resources}.json"
    body_file.write_bytes(body)
    cards = check_answer(lipcds, body)
    check_answer(baseline, body)
    print(
        f"\n== load: patient-view with {args.resources} prefetch resources "
        f"({len(body) / 1024:.0f} KiB), lipcds answers {cards} cards; {args.clients} "
        f"closed-loop clients, {args.rounds} rounds of {args.seconds} s each, "
        f"{args.warmup} s warm-up =="
    )
    for server in (baseline, lipcds):
        wrk(server, body_file, clients=args.clients, threads=args.threads, seconds=args.warmup)
    runs: dict[str, list[Run]] = {"baseline": [], "lipcds": []}
    for round_no in range(1, args.rounds + 1):
        order = (baseline, lipcds) if round_no % 2 else (lipcds, baseline)
        for server in order:
            run = wrk(
                server, body_file, clients=args.clients, threads=args.threads, seconds=args.seconds
            )
            runs[server.name].append(run)
            print(run_line(f"round {round_no} {server.name}", run), flush=True)

    base, ours = Pooled("baseline", runs["baseline"]), Pooled("lipcds", runs["lipcds"])
    print(
        f"\n  {'all rounds':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/req':>11} {'errors':>7}"
    )
    for pooled in (base, ours):
        print(
            f"  {pooled.name:<10} {pooled.rate:8.1f} {pooled.q(50):8.1f} {pooled.q(99):8.1f} "
            f"{pooled.cpu_ms:11.2f} {pooled.errors:7d}"
        )
    throughput = ours.rate / base.rate
    p99 = ours.q(99) / base.q(99)
    cpu = ours.cpu_ms / base.cpu_ms
    summary.append(
        budget_line(
            "throughput lipcds/floor",
            f"{throughput:.2f}",
            f">= {MIN_THROUGHPUT_RATIO:g}",
            throughput >= MIN_THROUGHPUT_RATIO,
        )
    )
    summary.append(
        budget_line(
            "p99 lipcds/floor", f"{p99:.2f}x", f"<= {MAX_P99_RATIO:g}x", p99 <= MAX_P99_RATIO
        )
    )
    summary.append(
        budget_line(
            "CPU per request lipcds/floor",
            f"{cpu:.2f}x",
            f"<= {MAX_CPU_RATIO:g}x",
            cpu <= MAX_CPU_RATIO,
        )
    )
    summary.append(budget_line("errors under load", str(ours.errors), "0", ours.errors == 0))
    summary.insert(
        0,
        f"load: floor {base.rate:.0f} req/s p99 {base.q(99):.1f} ms "
        f"CPU {base.cpu_ms:.2f} ms/req; lipcds {ours.rate:.0f} req/s p99 "
        f"{ours.q(99):.1f} ms CPU {ours.cpu_ms:.2f} ms/req",
    )


def parse_cost_ms(body: bytes, budget_seconds: float = 1.0, *, collect: bool = True) -> float:
    """Median CPU time of `json.loads(body)` in this process, ms.

    With `collect` the garbage collector runs as it does by default, and its passes over
    the objects being built count (a fresh Python program parsing the body pays them);
    without, the parse alone.
    """
    if not collect:
        gc.disable()
    try:
        return _median_parse(body, budget_seconds)
    finally:
        gc.enable()


def _median_parse(body: bytes, budget_seconds: float) -> float:
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < 5 or (
        time.perf_counter() - started < budget_seconds and len(samples) < 200
    ):
        before = time.thread_time()
        json.loads(body)
        samples.append((time.thread_time() - before) * 1000)
    return statistics.median(samples)


def exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(size): cost grows as size ** exponent."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(v) for v in values]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def scaling_phase(
    lipcds: Server, baseline: Server, args: argparse.Namespace, tmp: Path, summary: list[str]
) -> None:
    print(f"\n== scaling: one client, {args.scaling_seconds} s per size and server ==")
    print(
        f"  {'resources':>9} {'KiB':>6} {'json.loads':>10} {'(no gc)':>8} | "
        f"{'floor p50':>9} {'CPU':>7} | "
        f"{'lipcds p50':>10} {'CPU':>7} {'/parse':>7} {'p50/parse':>9} {'err':>4}"
    )
    rows: list[tuple[int, float, float]] = []
    for size in args.sizes:
        body = body_with_placeholder(size)
        body_file = tmp / f"body-{size}.json"
        body_file.write_bytes(body)
        check_answer(lipcds, body)
        check_answer(baseline, body)
        measured: dict[str, Run] = {}
        for server in (baseline, lipcds) if size % 2 else (lipcds, baseline):
            measured[server.name] = wrk(
                server, body_file, clients=1, threads=1, seconds=args.scaling_seconds
            )
        parse = parse_cost_ms(body)
        bare_parse = parse_cost_ms(body, collect=False)
        base, ours = measured["baseline"], measured["lipcds"]
        rows.append((size, ours.cpu_ms, ours.quantile_ms(50)))
        print(
            f"  {size:>9} {len(body) / 1024:6.0f} {parse:8.2f}ms {bare_parse:6.2f}ms | "
            f"{base.quantile_ms(50):7.1f}ms {base.cpu_ms:5.1f}ms | "
            f"{ours.quantile_ms(50):8.1f}ms {ours.cpu_ms:5.1f}ms {ours.cpu_ms / parse:6.1f}x "
            f"{ours.quantile_ms(50) / parse:8.1f}x {ours.errors:4d}",
            flush=True,
        )
        last = (size, parse, bare_parse, ours)
    sizes = [r[0] for r in rows]
    cpu_exp = exponent(sizes, [r[1] for r in rows])
    wall_exp = exponent(sizes, [r[2] for r in rows])
    print(f"  growth exponent (cost ~ resources^k): CPU k = {cpu_exp:.2f}, p50 k = {wall_exp:.2f}")
    for (s1, c1, _), (s2, c2, _) in zip(rows, rows[1:], strict=False):
        print(f"    {s1:>5} -> {s2:<5} CPU k = {math.log(c2 / c1) / math.log(s2 / s1):.2f}")
    size, parse, bare_parse, ours = last
    ratio = ours.cpu_ms / parse
    summary.append(
        budget_line(
            f"CPU per request / json.loads at {size}",
            f"{ratio:.1f}x",
            f"<= {MAX_PARSE_RATIO:g}x",
            ratio <= MAX_PARSE_RATIO,
        )
        + f" (without its gc passes: {ours.cpu_ms / bare_parse:.1f}x; "
        f"p50 latency / json.loads {ours.quantile_ms(50) / parse:.1f}x)"
    )
    summary.append(
        f"growth exponent of CPU per request over {sizes[0]}..{sizes[-1]}: {cpu_exp:.2f}"
    )


def memory_phase(lipcds: Server, baseline: Server, summary: list[str]) -> None:
    print("\n== memory after the runs (VmHWM: the peak resident size of the process) ==")
    worst = 0.0
    for server in (baseline, lipcds):
        for role, pid in [("master", server.process.pid)] + [
            ("worker", p) for p in server.worker_pids()
        ]:
            m = memory(pid)
            print(
                f"  {server.name:<9} {role:<6} pid {pid:<7} VmRSS {m.get('VmRSS', 0):6.1f} MB  "
                f"VmHWM {m.get('VmHWM', 0):6.1f} MB  Pss {m.get('Pss', 0):6.1f} MB"
            )
            if server.name == "lipcds" and role == "worker":
                worst = max(worst, m.get("VmHWM", 0.0))
    summary.append(
        budget_line(
            "peak RSS per lipcds worker",
            f"{worst:.1f} MB",
            f"< {MAX_RSS_MB:g} MB",
            0 < worst < MAX_RSS_MB,
        )
    )


def fetch_phase(args: argparse.Namespace, summary: list[str]) -> None:
    print("\n== fetch-on-miss (bench/fetch_concurrency.py) ==", flush=True)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "fetch_concurrency.py"),
            "--iterations",
            str(args.fetch_iterations),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stderr.rstrip()[-3000:])
        summary.append("fetch-on-miss: the benchmark failed (see above)")
        return
    for line in done.stdout.splitlines():
        if "ratio request/slowest:" in line:
            ratio = float(line.split(":", 1)[1].split()[0])
            summary.append(
                budget_line(
                    "fetch-on-miss request/slowest query",
                    f"{ratio:.2f}x",
                    f"<= {MAX_FETCH_RATIO:g}x",
                    ratio <= MAX_FETCH_RATIO,
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients (8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per round (10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up (3)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (2)")
    parser.add_argument("--resources", type=int, default=256, help="load workload size (256)")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[50, 250, 1000, 4000],
        help="scaling sizes (50,250,1000,4000)",
    )
    parser.add_argument("--scaling-seconds", type=int, default=6, help="per size and server (6)")
    parser.add_argument("--fetch-iterations", type=int, default=20, help="fetch-on-miss (20)")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["load", "scaling", "fetch"],
        help="leave a phase out",
    )
    args = parser.parse_args(argv)

    print(
        f"lipcds bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs "
        f"shared with wrk and anything else running; load average {loadavg()}"
    )
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lipcds-bench-") as tmp_name:
        tmp = Path(tmp_name)
        lipcds = start_lipcds(args.workers, tmp)
        baseline = start_baseline(args.workers, tmp)
        try:
            lipcds.wait_ready()
            baseline.wait_ready()
            print(f"servers: lipcds = {lipcds.settings}; floor = {baseline.settings}")
            if "load" not in args.skip:
                load_phase(lipcds, baseline, args, tmp, summary)
            if "scaling" not in args.skip:
                scaling_phase(lipcds, baseline, args, tmp, summary)
            memory_phase(lipcds, baseline, summary)
        finally:
            lipcds.stop()
            baseline.stop()
        stored = stored_hook_instances(tmp / "lipcds.db")
        if stored is not None:
            print(
                f"\nstore: {stored} hook calls recorded after shutdown; the bench counted "
                f"{lipcds.answered} answers, and wrk stopped with at most "
                f"{lipcds.left_in_flight} more calls in flight, which the server still serves"
            )
    if "fetch" not in args.skip:
        fetch_phase(args, summary)
    print(f"\n== summary (load average now {loadavg()}) ==")
    for line in summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
