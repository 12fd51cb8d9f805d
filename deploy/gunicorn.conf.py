"""gunicorn settings for lipcds in production.

    gunicorn --config deploy/gunicorn.conf.py "cds_hooks:create_app()"

Read by gunicorn, which executes this file; every value can be changed from the
environment (names below) without editing it. The LIPCDS_* settings of the service
itself are read by `create_app`, not here (see deploy/env.example).

    PORT                port to listen on, all interfaces (8080)
    WEB_CONCURRENCY     worker processes (2); about one per core
    GUNICORN_THREADS    threads per worker (4)
    GUNICORN_TIMEOUT    seconds before a silent worker is killed and replaced (10)
    GUNICORN_KEEPALIVE  seconds an idle keep-alive connection is held open (75)
    GUNICORN_MAX_REQUESTS  requests before a worker is recycled, 0 = never (5000)
    FORWARDED_ALLOW_IPS read by gunicorn itself: proxies trusted for X-Forwarded-*
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


wsgi_app = "cds_hooks:create_app()"
bind = [f"0.0.0.0:{_int_env('PORT', 8080)}"]  # all interfaces: inside a container or pod

# Workers: one process per core does the CPU work (the pipeline is pure Python). Threads
# let a worker keep serving while one request waits on the EHR's FHIR server during
# fetch-on-miss (up to LIPCDS_FHIR_DEADLINE_SECONDS), and gthread keeps connections alive.
workers = _int_env("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = _int_env("GUNICORN_THREADS", 4)

# Load the app (settings, knowledge base, store) once in the master, then fork: a bad
# setting stops start-up once with one message, and the workers share the knowledge
# base's pages copy-on-write instead of each parsing the YAML again.
preload_app = True

# CDS Hooks asks for answers in about 500 ms and our fetch deadline is 4 s, so a worker
# silent for 10 s is stuck, not busy. Graceful shutdown stays inside the 30 s that
# Kubernetes gives a pod between SIGTERM and SIGKILL.
timeout = _int_env("GUNICORN_TIMEOUT", 10)
graceful_timeout = 20
# Longer than a load balancer's idle timeout (ingress-nginx: 60 s), so the proxy closes
# idle connections first and never sends a request on one we are closing.
keepalive = _int_env("GUNICORN_KEEPALIVE", 75)

# Recycling a worker is cheap with preload_app (a fork, no reload) and keeps a slow leak
# from ever reaching the memory budget (150 MB per worker, docs/DEPLOY.md).
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0

# Request limits ahead of Flask's own (LIPCDS_MAX_BODY_BYTES covers the body).
limit_request_line = 4094
limit_request_fields = 100

# Heartbeat files in memory: the root filesystem is read-only in the pod.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
# No runtime control socket (gunicorn 25.1+): the orchestrator scales by replicas, $HOME
# is read-only, and two servers on one host would otherwise share ~/.gunicorn/gunicorn.ctl.
# Older gunicorns ignore the name.
control_socket_disable = True

# Logs to stdout/stderr for the container runtime. The access log names method, path,
# status, size and duration only: no query string, no headers, no referrer, no user
# (gunicorn's %(u)s decodes Basic credentials), so never a token or a patient id.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LIPCDS_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
proc_name = "lipcds"


# gunicorn's own lines and its access log in LIPCDS_LOG_FORMAT (json in production). gunicorn
# makes its logger before it loads the app, so the logger also prepares what the app needs
# from the server process: its log lines in that format and an empty directory where
# every worker writes its metrics (prometheus-client's multiprocess mode).
logger_class = "cds_hooks.ops.logs.GunicornLogger"


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker has exited: its live gauges leave /metrics."""
    from cds_hooks.ops.metrics import gunicorn_child_exit

    gunicorn_child_exit(server, worker)


def on_starting(server: Any) -> None:
    """Before the app is loaded: the service's own log lines, at LIPCDS_LOG_LEVEL.

    `create_app` leaves logging alone (tests and embedders own theirs); a server process
    configures it, as `lipcds serve` does.
    """
    from cds_hooks.app import configure_logging

    configure_logging(os.environ.get("LIPCDS_LOG_LEVEL", "INFO"))


def when_ready(server: Any) -> None:
    """After the preload, before the first fork: keep the loaded objects out of the GC.

    Without this the first collection in each worker writes to every page holding a
    Python object of the knowledge base and un-shares them (copy-on-write).
    """
    gc.collect()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: drop the database connections inherited from the master.

    `dispose(close=False)` forgets the pool without closing its sockets, which still
    belong to the master; the worker opens its own on first use (SQLAlchemy's advice
    for forked processes). Redis clients reconnect after a fork by themselves.
    """
    if not server.cfg.preload_app:
        return
    from cds_hooks.runtime import find_runtime

    rt = find_runtime(server.app.wsgi())
    if rt is None:  # another app served with these settings (bench/latency.py baseline)
        return
    for engine in rt.engines():
        engine.dispose(close=False)
