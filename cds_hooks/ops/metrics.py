"""Prometheus metrics of the service, right with one process or with many gunicorn workers.

With several workers each process counts on its own; prometheus-client's multiprocess mode
makes each write its values to memory-mapped files in one directory
(`PROMETHEUS_MULTIPROC_DIR`), and `GET /metrics` in any worker sums them. The server
process prepares that directory before the first worker starts (`prepare_multiprocess_dir`,
called by `lipcds serve` and `deploy/gunicorn.conf.py`) and forgets a worker's live gauges
when it exits (`mark_worker_dead`).

Labels hold only values from closed sets: a service id this service offers, an HTTP
status, a card kind and indicator, an outcome or reason from the lists below. Nothing a
caller can choose freely (a patient id, a token, an unknown service id, free text) ever
becomes a label, so the number of time series stays bounded and no patient data leaves
through the metrics.

Recording costs one dictionary look-up and one locked float update per value (prometheus
client's own lock): nothing here waits on I/O or on another request.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, request

log = logging.getLogger("lipcds.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. CDS Hooks asks for answers "on the order of 500 ms"; fetch-on-miss may take up
# to the fetch deadline (4 s by default), so the buckets reach past it.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INDICATORS = frozenset({"info", "warning", "critical"})
FEEDBACK_OUTCOMES = frozenset({"accepted", "overridden", "invalid", "unknown_card", "unavailable"})
FHIR_FETCH_OUTCOMES = frozenset({"ok", "no_data", "failed", "refused", "not_attempted"})
AUTH_REASONS = frozenset(
    {
        "no_token",
        "malformed",
        "algorithm",
        "issuer",
        "jku",
        "key",
        "signature",
        "audience",
        "time",
        "tenant",
        "jti",
        "replay",
        "other",
    }
)
OTHER = "other"
_KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# What an Unauthorized reason says (the text the verifier logs) -> the reason label.
# Checked in order; the first pattern found in the text wins.
_AUTH_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"no Authorization header|is not a bearer token", "no_token"),
        (r"replay", "replay"),
        (r"malformed token|token too long|header typ|header has no kid", "malformed"),
        (r"algorithm", "algorithm"),
        (r"is not trusted|iss changed", "issuer"),
        (r"jku|no jwks_url", "jku"),
        (r"no usable key", "key"),
        (r"signature", "signature"),
        (r"\baud\b", "audience"),
        (r"expired|in the future|not valid yet|exp and iat|lifetime", "time"),
        (r"tenant", "tenant"),
        (r"jti", "jti"),
    )
)


def auth_reason(text: str | None) -> str:
    """The label for why a token was refused, from the verifier's reason text."""
    if not text:
        return OTHER
    for pattern, reason in _AUTH_PATTERNS:
        if pattern.search(text):
            return reason
    return OTHER


# -- the multiprocess directory -------------------------------------------------------------


def multiprocess_enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return bool(environ.get(MULTIPROC_ENV))


_prepared: dict[int, Path] = {}


def prepare_multiprocess_dir(
    path: str | os.PathLike[str] | None = None, *, reuse_prepared: bool = False
) -> Path:
    """Make the directory the workers write their metrics to, empty, and announce it.

    `path`, else `$PROMETHEUS_MULTIPROC_DIR`, else a new private directory (in memory
    under /dev/shm when there is one; removed when this process exits). Files left by an
    earlier run are removed: counts from a dead server must not be added to this one's.
    Call it in the server process before any worker starts; with `reuse_prepared`, a
    second call in the same process keeps the directory the first one made.
    """
    if reuse_prepared and os.getpid() in _prepared:
        return _prepared[os.getpid()]
    chosen = path or os.environ.get(MULTIPROC_ENV)
    if chosen:
        directory = Path(chosen)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        base = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
        directory = Path(tempfile.mkdtemp(prefix="lipcds-metrics-", dir=base))
        import atexit

        master = os.getpid()

        def _remove() -> None:
            if os.getpid() == master:  # not in a forked worker that exits
                shutil.rmtree(directory, ignore_errors=True)

        atexit.register(_remove)
    os.environ[MULTIPROC_ENV] = str(directory)
    _prepared[os.getpid()] = directory
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus-client chooses how values are stored when it is first imported; it was
        # imported before the directory was known, so choose again (as it would have).
        values.ValueClass = values.get_value_class()
    return directory


def mark_worker_dead(pid: int) -> None:
    """Forget the live gauges of a worker that exited (gunicorn's `child_exit` hook)."""
    if not multiprocess_enabled():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    """gunicorn `child_exit` server hook: see `mark_worker_dead`."""
    mark_worker_dead(worker.pid)


# -- the metrics -------------------------------------------------------------------------------


class Metrics:
    """The service's metrics. One instance per app; record with the methods below."""

    def __init__(self, service_ids: Iterable[str], kb_version: str):
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        # `*_created` series are not written in multiprocess mode; leave them out in both
        # modes so that a dashboard sees the same names with one worker or many.
        disable_created_metrics()

        self.multiprocess = multiprocess_enabled()
        if self.multiprocess:
            from prometheus_client import values

            if not getattr(values.ValueClass, "_multiprocess", False):
                values.ValueClass = values.get_value_class()
        # Our own registry, so several apps in one process (tests, embedding) never clash
        # on metric names; in multiprocess mode the files are read instead of it.
        self.registry = CollectorRegistry(auto_describe=True)
        self.service_ids = frozenset(service_ids)
        self.kb_version = kb_version
        r = self.registry
        self.hook_requests = Counter(
            "lipcds_hook_requests",
            "Hook calls answered, by service and HTTP status.",
            ("service", "status"),
            registry=r,
        )
        self.hook_duration = Histogram(
            "lipcds_hook_duration_seconds",
            "Time to answer a hook call, from the request to the response, by service.",
            ("service",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cards = Counter(
            "lipcds_cards",
            "Cards returned to the EHR, by service, card kind (source.topic.code) and indicator.",
            ("service", "kind", "indicator"),
            registry=r,
        )
        self.auth_rejections = Counter(
            "lipcds_auth_rejections",
            "Calls refused with 401, by reason.",
            ("reason",),
            registry=r,
        )
        self.fhir_fetches = Counter(
            "lipcds_fhir_fetch",
            "Prefetch keys fetched on miss from the EHR's FHIR server, by outcome.",
            ("outcome",),
            registry=r,
        )
        self.feedback_items = Counter(
            "lipcds_feedback",
            "Feedback on cards: items recorded by outcome, or requests refused by cause.",
            ("outcome",),
            registry=r,
        )
        self.store_pending = Gauge(
            "lipcds_store_pending_records",
            "Records of issued cards accepted but not yet written to the database.",
            registry=r,
            multiprocess_mode="livesum",  # a dead worker's queue is no longer pending here
        )
        self.store_records = Counter(
            "lipcds_store_records",
            "Records of issued cards by what became of them: written; failures (a batch the "
            "database did not take, retried); rejected (values it refuses, kept aside); "
            "refused (queue full); adopted (from an ended worker's spool); spool_errors.",
            ("event",),
            registry=r,
        )
        self.replay_fallback = Counter(
            "lipcds_replay_fallback",
            "The replay guard while its shared seen-set is away: outages; local_claims (jti "
            "checked by one worker only); refused (LIPCDS_REPLAY_FALLBACK=refuse); "
            "late_replays (found after the outage).",
            ("event",),
            registry=r,
        )

    # -- recording ----------------------------------------------------------------------------

    def _service(self, service_id: str | None) -> str:
        return service_id if service_id in self.service_ids else OTHER

    def hook_call(self, service_id: str | None, status: int, seconds: float) -> None:
        service = self._service(service_id)
        shown_status = str(status) if 100 <= status <= 599 else OTHER
        self.hook_requests.labels(service, shown_status).inc()
        self.hook_duration.labels(service).observe(max(0.0, seconds))

    def cards_returned(self, service_id: str | None, cards: Iterable[Any]) -> None:
        service = self._service(service_id)
        counts: dict[tuple[str, str], int] = {}
        for card in cards:
            if not isinstance(card, Mapping):
                continue
            source = card.get("source")
            topic = source.get("topic") if isinstance(source, Mapping) else None
            code = topic.get("code") if isinstance(topic, Mapping) else None
            kind = code if isinstance(code, str) and _KIND.match(code) else OTHER
            indicator = card.get("indicator")
            indicator = indicator if indicator in INDICATORS else OTHER
            counts[(kind, indicator)] = counts.get((kind, indicator), 0) + 1
        for (kind, indicator), count in counts.items():
            self.cards.labels(service, kind, indicator).inc(count)

    def auth_rejected(self, reason: str) -> None:
        self.auth_rejections.labels(reason if reason in AUTH_REASONS else OTHER).inc()

    def fhir_fetch(self, outcome: str, count: int = 1) -> None:
        if count > 0:
            label = outcome if outcome in FHIR_FETCH_OUTCOMES else OTHER
            self.fhir_fetches.labels(label).inc(count)

    def feedback(self, outcome: str, count: int = 1) -> None:
        if count > 0:
            label = outcome if outcome in FEEDBACK_OUTCOMES else OTHER
            self.feedback_items.labels(label).inc(count)

    def store_record_event(self, event: str, count: int = 1) -> None:
        self.store_records.labels(event).inc(count)

    def replay_fallback_event(self, event: str, count: int = 1) -> None:
        self.replay_fallback.labels(event).inc(count)

    def set_store_pending(self, count: int) -> None:
        """The number of records this process has not yet written (the writer calls it)."""
        self.store_pending.set(max(0, count))

    # -- exposition ---------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric, summed over the workers in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(registry)
        else:
            registry.register(_Forward(self.registry))
        registry.register(_KnowledgeBaseInfo(self.kb_version))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """A collector that yields another registry's metrics (single-process exposition)."""

    def __init__(self, source: Any):
        self._source = source

    def collect(self) -> Iterator[Any]:
        yield from self._source.collect()


class _KnowledgeBaseInfo:
    """`lipcds_knowledge_base_info{version=...} 1`: the same in every worker, so it is not
    stored in the multiprocess files (prometheus-client's Info cannot be) but made here."""

    def __init__(self, version: str):
        self._version = str(version)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import InfoMetricFamily

        yield InfoMetricFamily(
            "lipcds_knowledge_base",
            "Version of the clinical knowledge base this service answers with.",
            value={"version": self._version},
        )

    def describe(self) -> list[Any]:
        return list(self.collect())


# -- the endpoint ------------------------------------------------------------------------------


def metrics_blueprint(metrics: Metrics, token: str | None = None) -> Blueprint:
    """`GET /metrics`. Open, or behind `Authorization: Bearer <token>` when a token is set.

    Either way it should not be reachable from outside the cluster: it says how busy the
    service is and which rules fire (never about whom).
    """
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    def scrape() -> Response:
        """The Prometheus text format of the service's metrics."""
        if token is not None:
            scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return Response(
                    "metrics need a bearer token (LIPCDS_METRICS_TOKEN)\n",
                    status=401,
                    mimetype="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = metrics.exposition()
        headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
        return Response(body, status=200, headers=headers)

    return blueprint


def install_metrics(app: Flask, metrics: Metrics, token: str | None = None) -> None:
    """Serve `/metrics` from `app`."""
    app.register_blueprint(metrics_blueprint(metrics, token))
