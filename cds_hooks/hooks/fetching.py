"""Fetch-on-miss for the hook endpoints: which FHIR server we may call, and with what.

`make_fetcher(settings)` builds the `Fetcher` that `resolve_data` calls with the keys the
EHR did not (fully) prefetch. Calls go only to allow-listed `fhirServer` bases, over https
unless a base is configured as a development server (CDS Hooks 2.0 requires https for
production data). A refused server leaves the keys unavailable; the refusal is logged
with the server's address, never with the access token.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests

from cds_hooks.config import Settings
from cds_hooks.hooks.prefetch import Fetcher
from fhir_mapping.client import fetch_all, new_session, queries_for
from fhir_mapping.records import KeyData, interpret_prefetch
from knowledge.kb import ServiceDefinition
from knowledge.model import DataState

log = logging.getLogger("lipcds.fetching")


def normalise_base(url: str) -> str:
    """A FHIR base URL as compared with the allow-list: no trailing slash."""
    return url.strip().rstrip("/")


def shown(url: str) -> str:
    """A URL safe to log: scheme, host and path only (no user info, query or fragment)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # drop user:password@, keep host[:port] as sent
    return f"{parts.scheme}://{host}{parts.path}"


class ServerPolicy:
    """The allow-list of FHIR servers, and which of them may be reached over plain http."""

    def __init__(self, settings: Settings):
        self.allowed = {normalise_base(u) for u in settings.fhir_allowed_servers}
        self.insecure = {normalise_base(u) for u in settings.fhir_insecure_servers}
        self.production = settings.is_production
        if self.production and any(u.startswith("http://") for u in self.insecure):
            log.warning("LIPCDS_FHIR_INSECURE_SERVERS is ignored in production: https only")

    def refusal(self, base: str) -> str | None:
        """Why `base` may not be called, or None when it may."""
        parts = urlsplit(base)
        if parts.username or parts.password or parts.query or parts.fragment:
            return "a FHIR base URL may not carry credentials, a query or a fragment"
        if base not in self.allowed:
            return "not on the allow-list (LIPCDS_FHIR_ALLOWED_SERVERS)"
        if parts.scheme == "https":
            return None
        if parts.scheme == "http" and base in self.insecure and not self.production:
            return None
        return "https is required for this FHIR server"


class WorkerSession:
    """One HTTP session per process for every call to the EHRs' FHIR servers.

    Connections to a FHIR server are kept alive and reused by the hook calls that follow
    (TLS set up once, not per call); at most `pool_size` idle ones are kept per server.
    A forked worker makes its own on first use: sockets must not be shared across a fork.
    """

    def __init__(self, pool_size: int):
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._pid: int | None = None

    def get(self) -> requests.Session:
        pid = os.getpid()
        session = self._session
        if session is not None and self._pid == pid:
            return session
        with self._lock:
            if self._session is None or self._pid != pid:
                self._session = _new_session(self.pool_size)
                self._pid = pid
            return self._session


def _new_session(pool_size: int) -> requests.Session:
    # The client's session: its connections can be cancelled at the fetch deadline.
    session = new_session(pool_connections=8, pool_maxsize=pool_size)
    # Shared by every call of the process: a cookie one FHIR server set for one user's
    # token must never travel with another call.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


_OUTCOMES = {DataState.PRESENT: "ok", DataState.EMPTY: "no_data", DataState.UNAVAILABLE: "failed"}


def make_fetcher(
    settings: Settings, count_fetches: Callable[[str, int], None] | None = None
) -> Fetcher:
    """The fetcher `resolve_data` calls for keys the EHR did not prefetch.

    `count_fetches(outcome, n)` is told how each key ended (the metrics): ok, no_data,
    failed, refused (server not allowed) or not_attempted (no fhirServer in the request).
    """
    policy = ServerPolicy(settings)
    sessions = WorkerSession(settings.fhir_pool_size)

    def counted(results: dict[str, KeyData], outcome: str | None = None) -> dict[str, KeyData]:
        if count_fetches is not None:
            tally: dict[str, int] = {}
            for data in results.values():
                name = outcome or _OUTCOMES.get(data.state, "failed")
                tally[name] = tally.get(name, 0) + 1
            for name, n in tally.items():
                count_fetches(name, n)
        return results

    def fetcher(
        service: ServiceDefinition, request: Mapping[str, Any], to_fetch: Mapping[str, str]
    ) -> dict[str, KeyData]:
        prior = _paged_prefetch(service, request)
        server = request.get("fhir_server")
        if not server:
            return counted(
                _not_fetched(to_fetch, prior, "the request names no fhirServer"), "not_attempted"
            )
        base = normalise_base(server)
        refusal = policy.refusal(base)
        if refusal is not None:
            log.warning("not calling FHIR server %s: %s", shown(base), refusal)
            refused = _not_fetched(to_fetch, prior, f"the FHIR server {shown(base)} was refused")
            return counted(refused, "refused")
        authorization = request.get("fhir_authorization") or {}
        return counted(
            fetch_all(
                base,
                authorization.get("access_token"),
                queries_for(to_fetch, prior),
                connect_timeout=settings.fhir_connect_timeout,
                read_timeout=settings.fhir_read_timeout,
                deadline_seconds=settings.fhir_deadline_seconds,
                max_pages=settings.fhir_max_pages,
                max_response_bytes=settings.fhir_max_response_bytes,
                max_fetch_bytes=settings.fhir_max_fetch_bytes,
                session=sessions.get(),
            )
        )

    return fetcher


def _paged_prefetch(service: ServiceDefinition, request: Mapping[str, Any]) -> dict[str, KeyData]:
    """Prefetched keys the EHR paged (a `next` link), to continue rather than repeat."""
    prefetch = request.get("prefetch") or {}
    paged = {}
    for key, template in service.prefetch.items():
        if key in prefetch:
            data = interpret_prefetch(key, template, prefetch[key])
            if data.state is not DataState.UNAVAILABLE and data.next_link:
                paged[key] = data
    return paged


def _not_fetched(
    to_fetch: Mapping[str, str], prior: Mapping[str, KeyData], reason: str
) -> dict[str, KeyData]:
    out = {}
    for key in to_fetch:
        if key in prior:
            # The first page the EHR sent stands; say that the rest could not be had.
            out[key] = replace(
                prior[key],
                next_link=None,
                issues=(*prior[key].issues, f"{key}: incomplete, more pages not fetched: {reason}"),
            )
        else:
            out[key] = KeyData.unavailable(key, f"{key!r} was not prefetched and {reason}")
    return out
