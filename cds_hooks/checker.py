"""`lipcds check URL`: check any CDS Hooks service against the rules of CDS Hooks 2.0.

It acts as an EHR would: discovery, then each service called with its prefetch and
without it, the answers and cards checked with the rules of `cds_hooks.conformance`,
feedback on a card it was given, error answers to bad requests, and a CORS preflight.
With `--token-cmd` every call carries a fresh JWT from that command, and calls without
a valid one must be refused.

Each check prints one line: PASS, FAIL, WARN (a SHOULD that is not met) or N-A (does not
apply to this service), its name, what it checks and the clause of the specification
(https://cds-hooks.hl7.org/2.0/ and its section anchor). The exit status is 1 when any
check FAILs, 0 otherwise.

The checker sends only synthetic data (or the requests given with `--request`); cards
it is given and the feedback it sends are recorded by a service that keeps them, so
point it at a test or staging instance.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from cds_hooks.conformance import (
    CONTEXT_TOKENS,
    discovery_problems,
    prefetch_token_problems,
    response_problems,
)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


SPEC = "https://cds-hooks.hl7.org/2.0/"
PASS, FAIL, WARN, NA = "PASS", "FAIL", "WARN", "N-A"
DEFAULT_ORIGIN = "https://sandbox.cds-hooks.org"  # the browser-based client most EHRs test with
TOKEN_AUDIENCE_ENV = "CDS_CHECK_AUD"  # noqa: S105 - a variable name, not a secret
MAX_SHOWN_PROBLEMS = 12

CHECK_PATIENT = "cds-check-patient"
CHECK_USER = "Practitioner/cds-check-user"


class CheckerError(Exception):
    """The checker cannot run (bad URL, token command failing): one line, exit status 2."""


@dataclass
class Result:
    status: str
    name: str
    text: str
    clause: str
    details: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.status:<4}  {self.name}  {self.text}  [{self.clause}]"
        shown = self.details[:MAX_SHOWN_PROBLEMS]
        more = len(self.details) - len(shown)
        tail = [f"        {line}" for line in shown]
        if more > 0:
            tail.append(f"        ... and {more} more")
        return [head, *tail]


def clause(anchor: str, note: str = "") -> str:
    return f"{SPEC}#{anchor}" + (f" {note}" if note else "")


# -- requests the checker sends ------------------------------------------------------------------


def _draft_orders() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "cds-check-order",
                    "status": "draft",
                    "intent": "order",
                    "subject": {"reference": f"Patient/{CHECK_PATIENT}"},
                    "medicationCodeableConcept": {"text": "paracetamol 500 mg tablet"},
                }
            }
        ],
    }


def synthetic_request(hook: str) -> dict[str, Any]:
    """A minimal, valid request for `hook` about a patient with no recorded data."""
    context: dict[str, Any] = {"userId": CHECK_USER, "patientId": CHECK_PATIENT}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = _draft_orders()
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/cds-check-order"]
    if hook in ("encounter-start", "encounter-discharge"):
        context["encounterId"] = "cds-check-encounter"
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}


def synthetic_prefetch(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
    """Data for every template: the patient for a read of it, else no data.

    "No data" is what the EHR sends for a template with no results: an empty searchset
    Bundle for a search, null for a read (https://cds-hooks.hl7.org/2.0/#prefetch-template).
    """
    out: dict[str, Any] = {}
    for key, template in templates.items():
        path = str(template).split("?", 1)[0].strip("/")
        if "?" in str(template) or "/" not in path:
            out[key] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
        elif path.split("/", 1)[0] == "Patient":
            out[key] = {"resourceType": "Patient", "id": str(context.get("patientId"))}
        else:
            out[key] = None
    return out


def _without_data(body: Mapping[str, Any]) -> dict[str, Any]:
    stripped = {
        k: v for k, v in body.items() if k not in ("prefetch", "fhirServer", "fhirAuthorization")
    }
    stripped["hookInstance"] = str(uuid.uuid4())
    return stripped


# -- the checker ---------------------------------------------------------------------------------


TokenSource = Callable[[str], str]


def token_command(command: str, timeout: float = 20.0) -> TokenSource:
    """A token source running `command` (no shell) with the audience in $CDS_CHECK_AUD."""
    argv = shlex.split(command)
    if not argv:
        raise CheckerError("--token-cmd is empty")

    def mint(audience: str) -> str:
        env = {**os.environ, TOKEN_AUDIENCE_ENV: audience}
        try:
            done = subprocess.run(  # noqa: S603 - the operator's own command, no shell
                argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CheckerError(f"--token-cmd could not be run: {exc}") from None
        if done.returncode != 0:
            said = (done.stderr or "").strip().splitlines()[-1:] or ["no message"]
            raise CheckerError(f"--token-cmd exited {done.returncode}: {said[0]}")
        token = done.stdout.strip()
        if not token or any(c.isspace() for c in token):
            raise CheckerError("--token-cmd printed no token (one line, no spaces)")
        return token

    return mint


class Checker:
    """Runs the checks against one CDS Hooks base URL; `run()` returns the results."""

    def __init__(
        self,
        base_url: str,
        *,
        tokens: TokenSource | None = None,
        requests_by_hook: Mapping[str, Mapping[str, Any]] | None = None,
        origin: str | None = None,
        feedback: bool = True,
        timeout: float = 15.0,
        session: requests.Session | None = None,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CheckerError(f"{base_url!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise CheckerError(f"{base_url!r}: a base URL has no query or fragment")
        self.base = base_url.rstrip("/")
        self.tokens = tokens
        self.requests_by_hook = dict(requests_by_hook or {})
        self.origin = origin or DEFAULT_ORIGIN
        self.origin_given = origin is not None
        self.feedback = feedback
        self.timeout = timeout
        self.session = session or requests.Session()
        self.results: list[Result] = []

    # -- plumbing ---------------------------------------------------------------------------

    def _add(self, status: str, name: str, text: str, where: str, details: Iterable[str] = ()):
        result = Result(status, name, text, where, list(details))
        self.results.append(result)
        return result

    def _headers(self, url: str, *, token: bool = True, json_body: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        if token and self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens(url)}"
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        token: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response | str:
        """The answer, or a one-line reason why there was none."""
        url = self.base + path
        sent = self._headers(url, token=token, json_body=body is not None or raw is not None)
        sent.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            return self.session.request(
                method, url, data=data, headers=sent, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return f"no answer from {url}: {type(exc).__name__}: {_first_line(exc)}"

    # -- the checks ---------------------------------------------------------------------------

    def run(self) -> list[Result]:
        services = self.check_discovery()
        if services is None:
            self._add(
                NA,
                "services",
                "no discovery document, no service to call",
                clause("calling-a-cds-service"),
            )
        elif not services:
            self._add(
                NA, "services", "discovery lists no services", clause("calling-a-cds-service")
            )
        for service in services or []:
            self.check_service(service)
        self.check_errors(services or [])
        if self.tokens is not None:
            self.check_auth(services or [])
        self.check_cors(services or [])
        return self.results

    def check_discovery(self) -> list[Mapping[str, Any]] | None:
        answer = self._send("GET", "/cds-services")
        where = clause("discovery")
        if isinstance(answer, str):
            self._add(
                FAIL, "discovery.status", "GET /cds-services answers 200 with JSON", where, [answer]
            )
            return None
        body = _json_of(answer)
        if answer.status_code != 200 or body is _NOT_JSON:
            self._add(
                FAIL,
                "discovery.status",
                "GET /cds-services answers 200 with JSON",
                where,
                [f"answered {answer.status_code} {_content_type(answer)}"],
            )
            return None
        self._add(PASS, "discovery.status", "GET /cds-services answers 200 with JSON", where)
        problems = discovery_problems(body)
        status = FAIL if problems else PASS
        count = (
            len(body.get("services", []))
            if isinstance(body, Mapping) and isinstance(body.get("services"), list)
            else 0
        )
        self._add(
            status,
            "discovery.services",
            f"each of {count} service(s) has hook, description and id; no null or empty values",
            clause("response"),
            problems,
        )
        services = [
            s
            for s in (body.get("services") if isinstance(body, Mapping) else None) or []
            if isinstance(s, Mapping)
            and isinstance(s.get("id"), str)
            and isinstance(s.get("hook"), str)
        ]
        token_problems = []
        for service in services:
            prefetch = service.get("prefetch")
            if isinstance(prefetch, Mapping):
                token_problems += [
                    f"{service['id']}: {p}"
                    for p in prefetch_token_problems(service["hook"], prefetch)
                ]
        with_prefetch = [s for s in services if isinstance(s.get("prefetch"), Mapping)]
        if not with_prefetch:
            self._add(
                NA,
                "discovery.prefetch-tokens",
                "no service declares prefetch templates",
                clause("prefetch-tokens"),
            )
        else:
            self._add(
                FAIL if token_problems else PASS,
                "discovery.prefetch-tokens",
                "prefetch templates use only context fields and user tokens",
                clause("prefetch-tokens"),
                token_problems,
            )
        return services

    def _request_for(self, service: Mapping[str, Any]) -> dict[str, Any]:
        hook = service["hook"]
        given = self.requests_by_hook.get(hook)
        if given is not None:
            body = json.loads(json.dumps(given))
            body["hookInstance"] = str(uuid.uuid4())
            return body
        body = synthetic_request(hook)
        templates = service.get("prefetch")
        if isinstance(templates, Mapping) and templates:
            body["prefetch"] = synthetic_prefetch(templates, body["context"])
        return body

    def check_service(self, service: Mapping[str, Any]) -> None:
        sid, hook = service["id"], service["hook"]
        name = f"service[{sid}]"
        path = f"/cds-services/{sid}"
        body = self._request_for(service)
        if hook not in CONTEXT_TOKENS and hook not in self.requests_by_hook:
            self._add(
                NA,
                f"{name}.call",
                f"hook {hook!r} is not one the checker can build a request for (use --request)",
                clause("calling-a-cds-service"),
            )
            return
        # 1. With its prefetch (or the request given with --request).
        answer = self._send("POST", path, body=body)
        where = clause("http-response")
        text = "a call with the prefetch answers 200 with JSON"
        response_body = None
        if isinstance(answer, str):
            self._add(FAIL, f"{name}.call", text, where, [answer])
        elif answer.status_code != 200 or _json_of(answer) is _NOT_JSON:
            self._add(FAIL, f"{name}.call", text, where, [_said(answer)])
        else:
            self._add(PASS, f"{name}.call", text, where)
            response_body = _json_of(answer)
        if response_body is not None:
            problems = response_problems(response_body)
            cards = response_body.get("cards") if isinstance(response_body, Mapping) else None
            count = len(cards) if isinstance(cards, list) else 0
            self._add(
                FAIL if problems else PASS,
                f"{name}.response",
                f"the response and its {count} card(s) follow the card rules",
                clause("card-attributes", "and cds-resp-1..7"),
                problems,
            )
        else:
            self._add(NA, f"{name}.response", "no response to check", clause("card-attributes"))

        # 2. Without prefetch and without FHIR access: 412 if it needs the data.
        self._check_without_data(name, path, hook, body, service)

        # 3. Feedback on a card it gave.
        if self.feedback:
            self._check_feedback(name, path, response_body)

    def _check_without_data(
        self, name: str, path: str, hook: str, body: Mapping[str, Any], service: Mapping[str, Any]
    ) -> None:
        text = "a call without prefetch nor FHIR access answers 412 (or 200 if it needs no data)"
        where = clause("prefetch-template", "(SHALL respond 412)")
        answer = self._send("POST", path, body=_without_data(body))
        if isinstance(answer, str):
            self._add(FAIL, f"{name}.no-prefetch", text, where, [answer])
            return
        if answer.status_code == 412:
            self._add(PASS, f"{name}.no-prefetch", text, where, [])
            outcome = _json_of(answer)
            is_outcome = (
                isinstance(outcome, Mapping) and outcome.get("resourceType") == "OperationOutcome"
            )
            self._add(
                PASS if is_outcome else WARN,
                f"{name}.no-prefetch.body",
                "the 412 carries an OperationOutcome saying what is missing",
                "CDS Hooks 3.0 ballot: a non-2xx answer SHOULD carry an OperationOutcome",
                [] if is_outcome else [f"body: {_content_type(answer)} {answer.text[:120]!r}"],
            )
            return
        if answer.status_code == 200:
            data = _json_of(answer)
            problems = response_problems(data) if data is not _NOT_JSON else ["not JSON"]
            if problems:
                self._add(
                    FAIL,
                    f"{name}.no-prefetch",
                    text,
                    where,
                    ["answered 200 with a response that breaks the rules:", *problems],
                )
            else:
                note = "answered 200: the service answers without that data"
                self._add(
                    PASS,
                    f"{name}.no-prefetch",
                    text,
                    where,
                    [note] if service.get("prefetch") else [],
                )
            return
        self._add(FAIL, f"{name}.no-prefetch", text, where, [_said(answer)])

    def _check_feedback(self, name: str, path: str, response_body: Any) -> None:
        where = clause("feedback")
        cards = response_body.get("cards") if isinstance(response_body, Mapping) else None
        card = next(
            (
                c
                for c in cards or []
                if isinstance(c, Mapping) and isinstance(c.get("uuid"), str) and _is_uuid(c["uuid"])
            ),
            None,
        )
        text = "feedback on a card it issued is accepted (2xx)"
        if card is None:
            self._add(NA, f"{name}.feedback", "no card with a uuid to give feedback on", where)
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item = {
            "card": card["uuid"],
            "outcome": "overridden",
            "overrideReason": {"userComment": "sent by a CDS Hooks conformance check"},
            "outcomeTimestamp": now,
        }
        answer = self._send("POST", f"{path}/feedback", body={"feedback": [item]})
        if isinstance(answer, str):
            self._add(FAIL, f"{name}.feedback", text, where, [answer])
            return
        if answer.status_code in (404, 405, 501):
            self._add(
                NA,
                f"{name}.feedback",
                f"the service takes no feedback ({answer.status_code})",
                where,
            )
            return
        if not 200 <= answer.status_code < 300:
            self._add(FAIL, f"{name}.feedback", text, where, [_said(answer)])
            return
        self._add(PASS, f"{name}.feedback", text, where)
        bad = dict(item, outcome="ignored")
        answer = self._send("POST", f"{path}/feedback", body={"feedback": [bad]})
        self._expect_client_error(
            f"{name}.feedback.invalid",
            "feedback with an outcome other than accepted|overridden is refused (4xx)",
            clause("feedback", "cds-fb-1"),
            answer,
        )

    def check_errors(self, services: Sequence[Mapping[str, Any]]) -> None:
        where = clause("http-response", "(4xx for the client's error)")
        unknown = f"/cds-services/cds-check-{uuid.uuid4().hex[:12]}"
        known = next((s for s in services if s.get("hook") in CONTEXT_TOKENS), None)
        answer = self._send("POST", unknown, body=synthetic_request("patient-view"))
        self._expect_client_error(
            "errors.unknown-service",
            "a call to an unknown service id is refused (4xx)",
            where,
            answer,
        )
        if known is None:
            self._add(
                NA, "errors.requests", "no service of a known hook to send bad requests to", where
            )
            return
        path = f"/cds-services/{known['id']}"
        answer = self._send("POST", path, raw=b'{"hook": ')
        self._expect_client_error(
            "errors.malformed-json", "a body that is not JSON is refused (4xx)", where, answer
        )
        body = synthetic_request(known["hook"])
        del body["context"]
        answer = self._send("POST", path, body=body)
        self._expect_client_error(
            "errors.no-context",
            "a request without context is refused (4xx)",
            clause("http-request"),
            answer,
        )
        body = synthetic_request(known["hook"])
        body["hook"] = "cds-check-no-such-hook"
        answer = self._send("POST", path, body=body)
        self._expect_client_error(
            "errors.wrong-hook",
            "a request for another hook is refused (4xx)",
            clause("http-request"),
            answer,
        )

    def _expect_client_error(
        self, name: str, text: str, where: str, answer: requests.Response | str
    ) -> None:
        if isinstance(answer, str):
            self._add(FAIL, name, text, where, [answer])
        elif 400 <= answer.status_code < 500:
            self._add(PASS, name, text, where, [f"answered {answer.status_code}"])
        else:
            self._add(FAIL, name, text, where, [_said(answer)])

    def check_auth(self, services: Sequence[Mapping[str, Any]]) -> None:
        where = clause("trusting-cds-clients", "(best practices: 401)")
        known = next(
            (
                s
                for s in services
                if s.get("hook") in CONTEXT_TOKENS or s.get("hook") in self.requests_by_hook
            ),
            None,
        )
        if known is None:
            self._add(NA, "auth", "no service to call", where)
            return
        path = f"/cds-services/{known['id']}"
        body = self._request_for(known)
        answer = self._send("POST", path, body=body, token=False)
        self._expect_status(
            "auth.no-token", "a hook call without a JWT is refused with 401", where, answer, 401
        )
        body["hookInstance"] = str(uuid.uuid4())
        answer = self._send(
            "POST", path, body=body, token=False, headers={"Authorization": "Bearer not.a.jwt"}
        )
        self._expect_status(
            "auth.bad-token",
            "a hook call with a malformed JWT is refused with 401",
            where,
            answer,
            401,
        )
        token = self.tokens(self.base + path) if self.tokens else ""
        first = self._send(
            "POST",
            path,
            body=dict(body, hookInstance=str(uuid.uuid4())),
            token=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        second = self._send(
            "POST",
            path,
            body=dict(body, hookInstance=str(uuid.uuid4())),
            token=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        text = "a JWT used twice (same jti) is refused the second time"
        replay_where = clause("trusting-cds-clients", "(jti: SHOULD reject replays)")
        if isinstance(first, str) or isinstance(second, str):
            self._add(
                FAIL,
                "auth.replay",
                text,
                replay_where,
                [a for a in (first, second) if isinstance(a, str)],
            )
        elif first.status_code == 401:
            self._add(
                FAIL,
                "auth.replay",
                text,
                replay_where,
                ["the first use of the token was already refused"],
            )
        elif second.status_code == 401:
            self._add(PASS, "auth.replay", text, replay_where)
        else:
            self._add(
                WARN,
                "auth.replay",
                text,
                replay_where,
                [f"second use answered {second.status_code}"],
            )

    def _expect_status(
        self, name: str, text: str, where: str, answer: requests.Response | str, status: int
    ) -> None:
        if isinstance(answer, str):
            self._add(FAIL, name, text, where, [answer])
        elif answer.status_code == status:
            self._add(PASS, name, text, where)
        else:
            self._add(FAIL, name, text, where, [_said(answer)])

    def check_cors(self, services: Sequence[Mapping[str, Any]]) -> None:
        where = clause("cross-origin-resource-sharing")
        severity = FAIL if self.origin_given else WARN
        path = f"/cds-services/{services[0]['id']}" if services else "/cds-services"
        answer = self._send(
            "OPTIONS",
            path,
            token=False,
            headers={
                "Origin": self.origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        text = (
            f"a CORS preflight from {self.origin} allows POST with Authorization and Content-Type"
        )
        if isinstance(answer, str):
            self._add(FAIL, "cors.preflight", text, where, [answer])
        else:
            problems = _cors_problems(answer, self.origin, preflight=True)
            self._add(severity if problems else PASS, "cors.preflight", text, where, problems)
        answer = self._send("GET", "/cds-services", headers={"Origin": self.origin})
        text = f"discovery answers {self.origin} with Access-Control-Allow-Origin"
        if isinstance(answer, str):
            self._add(FAIL, "cors.response", text, where, [answer])
        else:
            problems = _cors_problems(answer, self.origin, preflight=False)
            self._add(severity if problems else PASS, "cors.response", text, where, problems)


def _cors_problems(answer: requests.Response, origin: str, *, preflight: bool) -> list[str]:
    problems = []
    if preflight and not 200 <= answer.status_code < 300:
        problems.append(f"preflight answered {answer.status_code}")
    allowed = answer.headers.get("Access-Control-Allow-Origin")
    if allowed not in (origin, "*"):
        problems.append(f"Access-Control-Allow-Origin is {allowed!r}, not {origin!r} or '*'")
    if preflight:
        headers = {
            h.strip().lower()
            for h in answer.headers.get("Access-Control-Allow-Headers", "").split(",")
        }
        for needed in ("authorization", "content-type"):
            if needed not in headers and "*" not in headers:
                problems.append(f"Access-Control-Allow-Headers lacks {needed}")
    return problems


_NOT_JSON = object()


def _json_of(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return _NOT_JSON


def _content_type(answer: requests.Response) -> str:
    return answer.headers.get("Content-Type", "no Content-Type")


def _said(answer: requests.Response) -> str:
    text = answer.text.strip().replace("\n", " ")
    return f"answered {answer.status_code} ({_content_type(answer)}): {text[:160]!r}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# -- running it ---------------------------------------------------------------------------------


def load_requests(paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Hook requests from files, by hook (`lipcds demo show NAME --as request` makes one)."""
    found: dict[str, dict[str, Any]] = {}
    for name in paths:
        path = Path(name)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckerError(f"{name}: cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise CheckerError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("hook"), str)
            or not isinstance(body.get("context"), dict)
        ):
            raise CheckerError(f"{name}: not a CDS Hooks request (needs hook and context)")
        found[body["hook"]] = body
    return found


def summary(results: Sequence[Result]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, WARN, NA)}
    shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    return f"{len(results)} checks: {shown}"


def run_check(
    base_url: str,
    *,
    token_cmd: str | None = None,
    request_files: Iterable[str] = (),
    origin: str | None = None,
    feedback: bool = True,
    timeout: float = 15.0,
    out: Any = None,
) -> int:
    """Run every check, print one line each and a summary; the exit status."""
    out = out if out is not None else sys.stdout
    checker = Checker(
        base_url,
        tokens=token_command(token_cmd) if token_cmd else None,
        requests_by_hook=load_requests(request_files),
        origin=origin,
        feedback=feedback,
        timeout=timeout,
    )
    try:
        results = checker.run()
    finally:
        checker.session.close()
    for result in results:
        for line in result.lines():
            print(line, file=out)
    print(summary(results), file=out)
    return 1 if any(r.status == FAIL for r in results) else 0
