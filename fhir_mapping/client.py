"""Fetch what the EHR did not prefetch: FHIR reads and searches against `fhirServer`.

Every answer becomes a `KeyData`. A server that refuses, fails, times out or answers
something that is not the FHIR we asked for makes the key UNAVAILABLE, never EMPTY
(CDS Hooks 2.0 §prefetch; DESIGN.md "Data states are distinct"). Problem strings name
the key and the HTTP status, never the URL's query (it holds the patient id) and never
the access token, which lives only in the `Authorization` header of our own calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from fhir_mapping.raw import outcome_text
from fhir_mapping.records import KeyData, bundle_data, template_resource_type
from knowledge.model import DataState

log = logging.getLogger("lipcds.fhir_client")

FHIR_JSON = "application/fhir+json"
MAX_WORKERS = 8  # a hook has a handful of keys; more threads would only queue at the server
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
        self.session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:  # no token, even in a debugger or a traceback
        return f"FhirClient({self.base_url!r})"

    # -- public API -------------------------------------------------------------------------

    def fetch(self, query: Query) -> KeyData:
        """The data of one key: a read, a search, or the rest of a paged prefetch."""
        if query.prior is not None:
            return self.continue_search(query.key, query.resource_type, query.prior)
        if query.is_read:
            return self.read(query.key, query.resource_type, query.url)
        return self.search(query.key, query.resource_type, query.url)

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
        headers = {"Accept": FHIR_JSON}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _remaining(self) -> float:
        return self.deadline - self._clock()

    def _get(self, key: str, path: str) -> dict:
        """One GET with at most one retry (429/503); the FHIR resource it answered."""
        response = self._send(key, path)
        if response.status_code in (429, 503):
            delay = retry_delay(response.headers.get("Retry-After"))
            # Retry only if the pause and a fast answer still fit before the deadline.
            if delay is not None and delay + 0.05 < self._remaining():
                response.close()
                self._sleep(delay)
                response = self._send(key, path)
            if response.status_code in (429, 503):
                raise _Failure(
                    f"{key!r}: the FHIR server is busy ({response.status_code}) "
                    "and did not recover in time"
                )
        return self._resource(key, response)

    def _send(self, key: str, path: str) -> requests.Response:
        remaining = self._remaining()
        if remaining <= 0:
            raise _Failure(f"{key!r}: deadline passed before the FHIR server answered")
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        started = self._clock()
        try:
            # No redirects: a 3xx could carry the bearer token to another host.
            response = self.session.get(
                self._url(path), headers=self._headers(), timeout=timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise _Failure(f"{key!r}: the FHIR server did not answer in time") from None
        except requests.ConnectionError:
            raise _Failure(f"{key!r}: could not connect to the FHIR server") from None
        except requests.RequestException as exc:
            raise _Failure(f"{key!r}: request failed ({type(exc).__name__})") from None
        # Key and status only: the URL carries the patient id.
        log.debug(
            "FHIR %s -> %d in %.0f ms", key, response.status_code, (self._clock() - started) * 1000
        )
        return response

    def _resource(self, key: str, response: requests.Response) -> dict:
        status = response.status_code
        body = _json_or_none(response)
        if status >= 300:
            what = _REFUSED.get(status) or _FAILED_HOW[min(status // 100, 5)]
            reason = f"{key!r}: the FHIR server {what} (HTTP {status})"
            if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
                reason += f": {outcome_text(body)}"
            raise _Failure(self._scrub(reason))
        if body is None:
            raise _Failure(f"{key!r}: the FHIR server's answer is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise _Failure(f"{key!r}: the FHIR server's answer is not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise _Failure(self._scrub(f"{key!r}: the FHIR server reported: {outcome_text(body)}"))
        return body

    def _scrub(self, text: str) -> str:
        # Server diagnostics are echoed into problems; make sure none repeats our token.
        return text.replace(self._token, "[token]") if self._token else text


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError, UnicodeDecodeError
        return None


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
    session: requests.Session | None = None,
    max_workers: int = MAX_WORKERS,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, KeyData]:
    """Fetch every query concurrently; keys not answered by the deadline are UNAVAILABLE."""
    queries = list(queries)
    if not queries:
        return {}
    own_session = session is None
    session = session or requests.Session()
    client = FhirClient(
        base_url,
        token,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        deadline=clock() + deadline_seconds,
        max_pages=max_pages,
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
        for query in pending.values():
            results[query.key] = _late(query)
        if pending:
            late = ", ".join(sorted(q.key for q in pending.values()))
            log.warning("FHIR fetch deadline passed for %s", late)
    finally:
        # Do not wait for stragglers: their own (deadline-capped) timeouts end them.
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
