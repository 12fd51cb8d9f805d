"""How gunicorn serves lipcds: one set of settings for `lipcds serve` and deploy/gunicorn.conf.py.

Both read `gunicorn_settings()`, so the command and the container cannot drift apart.
Every value can be changed from the environment:

    WEB_CONCURRENCY       worker processes (2); about one per core
    GUNICORN_THREADS      threads per worker (32)
    GUNICORN_TIMEOUT      seconds before a silent worker is killed and replaced (10)
    GUNICORN_KEEPALIVE    seconds an idle keep-alive connection is held open (75)
    GUNICORN_MAX_REQUESTS requests before a worker is recycled, 0 = never (5000)
    FORWARDED_ALLOW_IPS   read by gunicorn itself: proxies trusted for X-Forwarded-*

The LIPCDS_* settings of the service itself are read by `create_app` (deploy/env.example).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    return int(raw) if raw else default


def gunicorn_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """gunicorn settings by name (as in a config file), from `environ` (os.environ)."""
    env = os.environ if environ is None else environ
    max_requests = _int(env, "GUNICORN_MAX_REQUESTS", 5000)
    return {
        "wsgi_app": "cds_hooks:create_app()",
        "bind": [f"0.0.0.0:{_int(env, 'PORT', 8080)}"],  # all interfaces: in a container
        # One process per core does the CPU work; inside one, the CPU gate lets one hook
        # call compute at a time (cds_hooks/hooks/gate.py). The threads wait: on a slow
        # client's request, on the EHR's FHIR server during fetch-on-miss, on writes.
        "workers": _int(env, "WEB_CONCURRENCY", 2),
        "worker_class": "gthread",
        "threads": _int(env, "GUNICORN_THREADS", 32),
        # Load the app once in the master, then fork: a bad setting stops start-up once,
        # and the workers share the knowledge base's pages copy-on-write.
        "preload_app": True,
        # CDS Hooks asks for answers in about 500 ms and the fetch deadline is 4 s: a
        # worker silent for 10 s is stuck. Graceful shutdown fits Kubernetes' 30 s.
        "timeout": _int(env, "GUNICORN_TIMEOUT", 10),
        "graceful_timeout": 20,
        # Longer than a load balancer's idle timeout (ingress-nginx: 60 s), so the proxy
        # closes idle connections first and never sends a request on one we are closing.
        "keepalive": _int(env, "GUNICORN_KEEPALIVE", 75),
        # Recycling a worker is a fork (preload), and keeps a slow leak from the budget.
        "max_requests": max_requests,
        "max_requests_jitter": max(1, max_requests // 10) if max_requests else 0,
        # Request limits ahead of Flask's own (LIPCDS_MAX_BODY_BYTES covers the body). A
        # header line may be 32 KB, so that a token too large (security/auth.py refuses
        # past 16 KB) reaches the service and gets its JSON 401; what gunicorn refuses
        # itself is answered as JSON too (post_worker_init, cds_hooks/cli/hardening.py).
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 32 * 1024,
        # Heartbeat files in memory: the root filesystem is read-only in the pod.
        "worker_tmp_dir": "/dev/shm" if Path("/dev/shm").is_dir() else None,  # noqa: S108
        # No runtime control socket: one path in $HOME, shared by every server on a host.
        "control_socket_disable": True,
        # The access log names method, path, status, size and duration only: no query
        # string, headers, referrer or user, so never a token or a patient id.
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": env.get("LIPCDS_LOG_LEVEL", "info").lower(),
        "access_log_format": '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms',
        "proc_name": "lipcds",
        # gunicorn's own lines and its access log in LIPCDS_LOG_FORMAT (json in production).
        # gunicorn makes its logger before it loads the app, so the logger also prepares the
        # server process: the app's log format, and the directory every worker writes its
        # metrics to (prometheus-client's multiprocess mode).
        "logger_class": "cds_hooks.ops.logs.GunicornLogger",
        "on_starting": on_starting,
        "when_ready": when_ready,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
    }


def server_problem(settings: Any) -> str | None:
    """Why these service settings cannot be served by gunicorn, or None."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or url.query.get("mode") == "memory"
    ):
        return (
            "LIPCDS_DATABASE_URL: an in-memory SQLite database lives inside one process; "
            "under gunicorn each worker would get its own empty one, and lose it when the "
            "worker is recycled. Use a database file (sqlite:///var/lipcds.db) or PostgreSQL"
        )
    return None


def on_starting(server: Any) -> None:
    """In the master, before any worker: stop at settings no worker could serve; then the
    service's own log lines, in its format (`create_app` leaves logging alone)."""
    from cds_hooks.app import configure_logging
    from cds_hooks.config import load_settings

    settings = load_settings()
    problem = server_problem(settings)
    if problem:
        server.log.error("lipcds: configuration error: %s", problem)
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.log_format)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker has exited: its live gauges leave /metrics."""
    from cds_hooks.ops.metrics import gunicorn_child_exit

    gunicorn_child_exit(server, worker)


def tune_gc() -> None:
    """Keep what is loaded out of the collector's sight: it is never garbage.

    Every collection of the oldest generation walked the knowledge base, the modules and
    the R4B model classes again; frozen, a collection sees only what calls allocated.
    Measured in-process on one 4 000-resource request: 196 ms of CPU before, 118 ms after.
    The thresholds stay Python's: higher ones measured no faster and let up to 70 MB
    more garbage wait for a collection.
    """
    gc.collect()
    gc.freeze()


def when_ready(server: Any) -> None:
    """After the preload, before the first fork: freeze the loaded objects (copy-on-write)."""
    tune_gc()


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: drop the database connections inherited from the master."""
    if not server.cfg.preload_app:
        return
    from cds_hooks.runtime import find_runtime

    rt = find_runtime(server.app.wsgi())
    if rt is None:  # another app served with these settings
        return
    for engine in rt.engines():
        engine.dispose(close=False)


def post_worker_init(worker: Any) -> None:
    """The worker is ready to serve: freeze what it built since the fork; gunicorn's own
    error answers (header too large, bad request line) become JSON."""
    from cds_hooks.cli.hardening import json_errors

    tune_gc()
    json_errors(worker)
