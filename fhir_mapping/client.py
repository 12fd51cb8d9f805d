"""Fetch what the EHR did not prefetch: FHIR reads and searches against `fhirServer`.

Every answer becomes a `KeyData`. A server that refuses, fails, times out or answers
something that is not the FHIR we asked for makes the key UNAVAILABLE, never EMPTY
(CDS Hooks 2.0 §prefetch; DESIGN.md "Data states are distinct"). Problem strings name
the key and the HTTP status, never the URL's query (it holds the patient id) and never
the access token, which lives only in the `Authorization` header of our own calls.

Reads are bounded: each answer is streamed and stops at `max_response_bytes` (after
decompression, so a gzip bomb stops too), all answers of one hook call together at
`max_fetch_bytes`, and the deadline of the call cancels what is still running: the
sockets of the calls in flight are shut down, so their threads stop reading at once
instead of draining a slow or endless answer after the hook has been answered.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

from fhir_mapping.raw import outcome_text
from fhir_mapping.records import KeyData, bundle_data, template_resource_type
from knowledge.model import DataState

log = logging.getLogger("lipcds.fhir_client")

FHIR_JSON = "application/fhir+json"
MAX_WORKERS = 8  # a hook has a handful of keys; more threads would only queue at the server
# A searchset of 200 Observations is ~0.5 MB of JSON; parsed, a JSON answer takes about
# ten times its size in memory, so these caps bound a worker's growth per hook call.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_FETCH_BYTES = 16 * 1024 * 1024
_ERROR_BODY_BYTES = 64 * 1024  # an error answer is read only for its OperationOutcome text
_CHUNK = 64 * 1024  # read from the socket at most this much at a time
_PIECE = 256 * 1024  # and inflate at most this much at a time
_ACCEPT_ENCODING = "gzip, deflate"  # what we can decompress under a bound
_DEFAULT_RETRY_DELAY = 0.25  # 429/503 without Retry-After: one short pause, then one retry
_REFUSED = {
    401: "refused our credentials",
    403: "forbade access",
    404: "found nothing there",
    410: "says the data is gone",
}
_FAILED_HOW = {3: "redirected", 4: "rejected the query", 5: "failed"}


@dataclass(frozen=True)
class Query:
    """One prefetch key to fetch: a template rendered relative to the base, or a next link."""

    key: str
    url: str  # relative to the base (`Observation?patient=1`) or an absolute next link
    resource_type: str
    is_read: bool = False
    prior: KeyData | None = None  # a paged prefetch that `url` continues

    @classmethod
    def from_template(cls, key: str, rendered: str) -> Query:
        resource_type, is_read = template_resource_type(rendered)
        return cls(key, rendered, resource_type, is_read)


class _Failure(Exception):
    """A call that produced no usable FHIR answer; the message is the `problem` text."""


class FhirClient:
    """A FHIR REST client for one hook request: one base, one token, one deadline."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
        max_pages: int,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_fetch_bytes: int = MAX_FETCH_BYTES,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline  # on the `clock` (time.monotonic) scale
        self.max_pages = max_pages
        self.max_response_bytes = max_response_bytes
        self.max_fetch_bytes = max_fetch_bytes
        self.session = session or new_session()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._fetched = 0  # bytes of all answers so far (decompressed)
        self._cancelled = threading.Event()
        self._sockets: dict[int, socket.socket] = {}  # thread id -> socket it is reading

    @property
    def fetched_bytes(self) -> int:
        return self._fetched

    def cancel(self) -> None:
        """Stop every call in flight: later reads fail at once, blocked ones are woken."""
        self._cancelled.set()
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its own thread

    def __repr__(self) -> str:  # no token, even in a debugger or a traceback
        return f"FhirClient({self.base_url!r})"

    # -- public API -------------------------------------------------------------------------

    def fetch(self, query: Query) -> KeyData:
        """The data of one key: a read, a search, or the rest of a paged prefetch."""
        _current.client = self  # our connections register their sockets with it
        try:
            if query.prior is not None:
                return self.continue_search(query.key, query.resource_type, query.prior)
            if query.is_read:
                return self.read(query.key, query.resource_type, query.url)
            return self.search(query.key, query.resource_type, query.url)
        finally:
            _current.client = None
            self._forget_socket()

    def read(self, key: str, expected_type: str, path: str) -> KeyData:
        """`GET [base]/Type/id`: PRESENT with the resource, or UNAVAILABLE with the reason."""
        try:
            resource = self._get(key, path)
        except _Failure as failure:
            return KeyData.unavailable(key, str(failure))
        if resource["resourceType"] != expected_type:
            return KeyData.unavailable(
                key,
                f"{key!r}: the FHIR server answered a {resource['resourceType']}, "
                f"expected a {expected_type}",
            )
        return KeyData(key, DataState.PRESENT, (resource,))

    def search(self, key: str, expected_type: str, query: str) -> KeyData:
        """`GET [base]/Type?params`, following `next` links up to `max_pages` pages."""
        try:
            first = self._bundle(key, expected_type, self._get(key, query))
        except _Failure as failure:
            return KeyData.unavailable(key, str(failure))
        return self._follow(key, expected_type, first, pages_read=1)

    def continue_search(self, key: str, expected_type: str, prior: KeyData) -> KeyData:
        """The rest of a search the EHR paged: its first page plus what `next` leads to."""
        return self._follow(key, expected_type, prior, pages_read=1)

    # -- paging -----------------------------------------------------------------------------

    def _follow(self, key: str, expected_type: str, page: KeyData, pages_read: int) -> KeyData:
        resources = list(page.resources)
        issues = list(page.issues)
        seen: set[str] = set()
        next_link = page.next_link
        while next_link is not None:
            if not self.is_under_base(next_link):
                # The token must not travel to another server, whatever the Bundle says.
                issues.append(f"{key}: did not follow a next link outside the FHIR server's base")
                break
            if next_link in seen:
                issues.append(f"{key}: the FHIR server's next links loop; stopped")
                break
            if pages_read >= self.max_pages:
                issues.append(f"{key}: only the first {self.max_pages} pages were read")
                break
            seen.add(next_link)
            try:
                page = self._bundle(key, expected_type, self._get(key, next_link))
            except _Failure as failure:
                # The pages already read are real data; say the rest is missing.
                issues.append(f"{key}: incomplete, page {pages_read + 1} failed: {failure}")
                break
            pages_read += 1
            resources.extend(page.resources)
            issues.extend(page.issues)
            next_link = page.next_link
        state = DataState.PRESENT if resources else DataState.EMPTY
        return KeyData(key, state, tuple(resources), issues=tuple(issues))

    def is_under_base(self, url: str) -> bool:
        """True for a relative URL or an absolute one below this client's base."""
        if "://" not in url.split("?", 1)[0]:
            return not url.startswith("/")
        return url.startswith(self.base_url + "/") or url.startswith(self.base_url + "?")

    def _bundle(self, key: str, expected_type: str, resource: dict) -> KeyData:
        if resource["resourceType"] != "Bundle":
            raise _Failure(
                f"{key!r}: the FHIR server answered a {resource['resourceType']}, "
                f"expected a Bundle of {expected_type}"
            )
        data = bundle_data(key, expected_type, resource)
        if data.state is DataState.UNAVAILABLE:
            raise _Failure(data.problem or f"{key!r}: unusable Bundle")
        return data

    # -- one HTTP exchange ----------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if "://" in path.split("?", 1)[0] else f"{self.base_url}/{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, "Accept-Encoding": _ACCEPT_ENCODING}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _remaining(self) -> float:
        return self.deadline - self._clock()

    def _late(self, key: str) -> _Failure:
        return _Failure(f"{key!r}: deadline passed before the FHIR server answered")

    def _get(self, key: str, path: str) -> dict:
        """One GET with at most one retry (429/503); the FHIR resource it answered."""
        response = self._send(key, path)
        if response.status_code in (429, 503):
            delay = retry_delay(response.headers.get("Retry-After"))
            response.close()
            # Retry only if the pause and a fast answer still fit before the deadline.
            if delay is not None and delay + 0.05 < self._remaining():
                self._sleep(delay)
                response = self._send(key, path)
            if response.status_code in (429, 503):
                response.close()
                raise _Failure(
                    f"{key!r}: the FHIR server is busy ({response.status_code}) "
                    "and did not recover in time"
                )
        return self._resource(key, response)

    def _send(self, key: str, path: str) -> requests.Response:
        remaining = self._remaining()
        if remaining <= 0 or self._cancelled.is_set():
            raise self._late(key)
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        started = self._clock()
        try:
            # No redirects: a 3xx could carry the bearer token to another host.
            # Streamed: the body is read by `_body`, under its size and time bounds.
            response = self.session.get(
                self._url(path),
                headers=self._headers(),
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            raise self._transport_failure(key, exc) from None
        # Key and status only: the URL carries the patient id.
        log.debug(
            "FHIR %s -> %d in %.0f ms", key, response.status_code, (self._clock() - started) * 1000
        )
        return response

    def _transport_failure(self, key: str, exc: Exception) -> _Failure:
        if self._cancelled.is_set() or self._remaining() <= 0:
            return self._late(key)
        if isinstance(exc, requests.Timeout):
            return _Failure(f"{key!r}: the FHIR server did not answer in time")
        if isinstance(exc, requests.ConnectionError):
            return _Failure(f"{key!r}: could not connect to the FHIR server")
        return _Failure(f"{key!r}: request failed ({type(exc).__name__})")

    def _resource(self, key: str, response: requests.Response) -> dict:
        status = response.status_code
        if status >= 300:
            what = _REFUSED.get(status) or _FAILED_HOW[min(status // 100, 5)]
            reason = f"{key!r}: the FHIR server {what} (HTTP {status})"
            try:
                body = _json_or_none(self._body(key, response, _ERROR_BODY_BYTES))
            except _Failure:
                body = None  # the status says enough; an unreadable explanation adds nothing
            if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
                reason += f": {outcome_text(body)}"
            raise _Failure(self._scrub(reason))
        raw = self._body(key, response, self.max_response_bytes)
        body = _json_or_none(raw)
        if body is None:
            raise _Failure(f"{key!r}: the FHIR server's answer is not valid JSON")
        if _SUSPECT_ESCAPE.search(raw) and _holds_bad_characters(body):
            # NUL and lone surrogates: no store, log or JSON encoder downstream can hold them.
            raise _Failure(
                f"{key!r}: the FHIR server's answer holds NUL or unpaired surrogate characters"
            )
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise _Failure(f"{key!r}: the FHIR server's answer is not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise _Failure(self._scrub(f"{key!r}: the FHIR server reported: {outcome_text(body)}"))
        return body

    # -- the bounded read of one body -------------------------------------------------------

    def _body(self, key: str, response: requests.Response, limit: int) -> bytearray:
        """The body, decompressed, at most `limit` bytes; closes the response either way."""
        try:
            return self._read_bounded(key, response, limit)
        except requests.RequestException as exc:
            raise self._transport_failure(key, exc) from None
        except (HTTPError, OSError, ValueError, zlib.error) as exc:  # urllib3, socket, gzip
            if self._cancelled.is_set() or self._remaining() <= 0:
                raise self._late(key) from None
            raise _Failure(
                f"{key!r}: the FHIR server's answer could not be read ({type(exc).__name__})"
            ) from None
        finally:
            response.close()

    def _read_bounded(self, key: str, response: requests.Response, limit: int) -> bytearray:
        too_big = _Failure(
            f"{key!r}: the FHIR server's answer is larger than {_mb(limit)}, "
            "the limit of one answer"
        )
        decoder = _decoder(response.headers.get("Content-Encoding"))
        if decoder is None:
            raise _Failure(f"{key!r}: the FHIR server's answer has an unsupported Content-Encoding")
        declared = _content_length(response.headers.get("Content-Length"))
        if declared is not None and declared > limit:
            raise too_big  # said so up front: read nothing
        body = bytearray()
        raw = response.raw
        while True:
            remaining = self._remaining()
            if remaining <= 0 or self._cancelled.is_set():
                raise self._late(key)
            self._limit_wait(remaining)
            chunk = raw.read1(_CHUNK, decode_content=False)
            if self._cancelled.is_set():
                raise self._late(key)  # a shut-down socket reads as the end of the body
            if not chunk:
                break
            decoder.feed(chunk)
            # Inflate a piece at a time: a bomb never gets more than the room left.
            while piece := decoder.read(min(limit - len(body) + 1, _PIECE)):
                if len(body) + len(piece) > limit:
                    raise too_big
                self._spend(key, len(piece))
                body += piece
        if not decoder.complete:
            raise _Failure(f"{key!r}: the FHIR server's compressed answer is truncated")
        return body

    def _spend(self, key: str, size: int) -> None:
        with self._lock:
            self._fetched += size
            over = self._fetched > self.max_fetch_bytes
        if over:
            raise _Failure(
                f"{key!r}: the FHIR answers of this call exceed {_mb(self.max_fetch_bytes)} "
                "in total; stopped reading"
            )

    def _limit_wait(self, remaining: float) -> None:
        """No single read may block past the deadline, even on a server that drips."""
        sock = self._sockets.get(threading.get_ident())
        if sock is not None:
            try:
                sock.settimeout(max(0.01, min(self.read_timeout, remaining)))
            except OSError:
                pass

    def _watch_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets[threading.get_ident()] = sock
        if self._cancelled.is_set():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _forget_socket(self) -> None:
        with self._lock:
            self._sockets.pop(threading.get_ident(), None)

    def _scrub(self, text: str) -> str:
        # Server diagnostics are echoed into problems; make sure none repeats our token.
        return text.replace(self._token, "[token]") if self._token else text


def _json_or_none(body: bytes | bytearray) -> Any:
    """The parsed JSON, or None for anything that is not JSON (NaN and Infinity included).

    An integer longer than Python converts (4300 digits) is a ValueError too: unusable.
    """
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int limit
        return None


# The only way JSON text can carry a NUL or a lone surrogate is a \u escape.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _holds_bad_characters(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD_CHARACTER.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _mb(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    return f"{size / 1024:.3g} KB"


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _Identity:
    complete = True

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._pending = data

    def read(self, max_length: int) -> bytes:
        out, self._pending = self._pending[:max_length], self._pending[max_length:]
        return out


class _Inflate:
    """gzip or zlib decompression that never produces more than it is asked for."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        self._pending = b""
        self.complete = False

    def feed(self, data: bytes) -> None:
        self._pending = data

    def read(self, max_length: int) -> bytes:
        out = b""
        while self._pending and not out:
            if self._zlib.eof:  # a second gzip member follows the first
                self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)
            out = self._zlib.decompress(self._pending, max_length)
            # Input is left when the bound was reached or a gzip member ended inside it.
            self._pending = self._zlib.unconsumed_tail or (
                self._zlib.unused_data if self._zlib.eof else b""
            )
        self.complete = self._zlib.eof and not self._pending
        return out


def _decoder(content_encoding: str | None) -> _Identity | _Inflate | None:
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return _Identity()
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Inflate()
    return None  # br, zstd, chains: not asked for, not decoded


# The client whose call the current thread is making, for `_WatchedConnection`.
_current = threading.local()


class _WatchedConnection:
    """Hands its socket to the calling client before the answer's headers are read.

    A server that drips its headers or body keeps a blocking read alive however short the
    socket timeout; the client's `cancel` shuts the socket down, which ends that read.
    """

    def getresponse(self):  # type: ignore[no-untyped-def]
        client = getattr(_current, "client", None)
        if client is not None and self.sock is not None:  # type: ignore[attr-defined]
            client._watch_socket(self.sock)  # type: ignore[attr-defined]
        return super().getresponse()  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class CancellableAdapter(HTTPAdapter):
    """requests' adapter whose connections a `FhirClient` can cancel at its deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


def new_session(*, pool_connections: int = 10, pool_maxsize: int = 10) -> requests.Session:
    """A requests session for FHIR calls: cancellable connections for http and https.

    `pool_connections` FHIR servers are kept, each with at most `pool_maxsize` idle
    connections (requests' own defaults); one session may serve many hook calls at once.
    """
    session = requests.Session()
    adapter = CancellableAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def retry_delay(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date).

    No header: a short default pause. An unreadable header: None (do not retry).
    """
    if value is None:
        return _DEFAULT_RETRY_DELAY
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def fetch_all(
    base_url: str,
    token: str | None,
    queries: Iterable[Query],
    *,
    connect_timeout: float,
    read_timeout: float,
    deadline_seconds: float,
    max_pages: int,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    max_fetch_bytes: int = MAX_FETCH_BYTES,
    session: requests.Session | None = None,
    max_workers: int = MAX_WORKERS,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, KeyData]:
    """Fetch every query concurrently; keys not answered by the deadline are UNAVAILABLE.

    At the deadline the calls still running are cancelled (their sockets shut down) and
    this returns without waiting for their threads.
    """
    queries = list(queries)
    if not queries:
        return {}
    own_session = session is None
    session = session or new_session()
    client = FhirClient(
        base_url,
        token,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        deadline=clock() + deadline_seconds,
        max_pages=max_pages,
        max_response_bytes=max_response_bytes,
        max_fetch_bytes=max_fetch_bytes,
        session=session,
        clock=clock,
    )
    results: dict[str, KeyData] = {}
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(queries))), thread_name_prefix="lipcds-fhir"
    )
    try:
        pending: dict[Future[KeyData], Query] = {pool.submit(client.fetch, q): q for q in queries}
        while pending:
            remaining = client.deadline - clock()
            if remaining <= 0:
                break
            done, _ = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
            for future in done:
                query = pending.pop(future)
                results[query.key] = _outcome(query, future)
        if pending:
            client.cancel()
        for query in pending.values():
            results[query.key] = _late(query)
        if pending:
            late = ", ".join(sorted(q.key for q in pending.values()))
            log.warning("FHIR fetch deadline passed for %s", late)
    finally:
        # Do not wait for stragglers: cancelled, they end as soon as their read returns.
        pool.shutdown(wait=False, cancel_futures=True)
        if own_session:
            if pending:
                _close_later(session, pool)
            else:
                session.close()
    return results


def _outcome(query: Query, future: Future[KeyData]) -> KeyData:
    try:
        return future.result()
    except Exception:  # a bug in our code must not pass as "no data"
        log.exception("fetching %r failed unexpectedly", query.key)
        return KeyData.unavailable(query.key, f"{query.key!r}: fetching failed unexpectedly")


def _late(query: Query) -> KeyData:
    problem = f"{query.key!r}: deadline passed before the FHIR server answered"
    if query.prior is not None:
        # The EHR's first page still stands; only the rest is missing.
        return replace(
            query.prior,
            next_link=None,
            issues=(*query.prior.issues, f"{query.key}: incomplete, {problem}"),
        )
    return KeyData.unavailable(query.key, problem)


def _close_later(session: requests.Session, pool: ThreadPoolExecutor) -> None:
    """Close a session we opened once the straggling calls have finished with it."""

    def closer() -> None:
        pool.shutdown(wait=True)
        session.close()

    threading.Thread(target=closer, name="lipcds-fhir-close", daemon=True).start()


def queries_for(to_fetch: Mapping[str, str], prior: Mapping[str, KeyData]) -> list[Query]:
    """Queries for rendered templates, continuing a paged prefetch where there is one."""
    out = []
    for key, rendered in to_fetch.items():
        query = Query.from_template(key, rendered)
        earlier = prior.get(key)
        if earlier is not None and earlier.state is not DataState.UNAVAILABLE and earlier.next_link:
            query = replace(query, url=earlier.next_link, prior=earlier)
        out.append(query)
    return out
