"""`lipcds`: run the service, try a patient against it, check the knowledge base.

Every failure ends as one clear message on stderr and exit status 1 (2 for a usage
error), never a traceback: the people running this are clinicians-in-IT and
integration engineers, not Python developers. The commands are click commands; each
one's work is done by a `*_command(args)` function below, which the tests call too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

DEFAULT_SERVICE = "lip-twitch-patient-view"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8085

# Short names for the code systems a suggested ServiceRequest may use.
_SYSTEM_NAMES = {
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.ama-assn.org/go/cpt": "CPT",
}


class CLIError(Exception):
    """A failure to report in one line; `status` is the exit code."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lipcds` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        status = cli.main(args=args, prog_name="lipcds", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        return 130
    except CLIError as exc:
        _fail(str(exc))
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`lipcds invoke ... | head`): stop quietly, and keep Python
        # from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        if show_traceback:
            raise
        message = _known_failure(exc)
        if message is None:
            message = (
                f"unexpected {type(exc).__name__}: {_first_line(exc)} (rerun with --traceback)"
            )
        _fail(message)
        return 1
    return int(status or 0)


def _known_failure(exc: Exception) -> str | None:
    """The one-line message for a failure we expect users to hit, else None."""
    from cds_hooks.checker import CheckerError
    from cds_hooks.config import ConfigError
    from knowledge import KnowledgeError
    from knowledge.policy import PolicyError

    if isinstance(exc, KnowledgeError):
        return "the knowledge base is broken:\n" + "\n".join(f"  {p}" for p in exc.problems)
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, PolicyError):
        return f"threshold policy error: {exc}"
    if isinstance(exc, CheckerError):
        return f"check: {exc}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    from sqlalchemy.exc import SQLAlchemyError

    from cds_hooks.store import StoreError

    if isinstance(exc, StoreError):
        return f"store error: {_first_line(exc)}"
    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        return f"database error: {_first_line(cause)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str) -> None:
    print(f"lipcds: {message}", file=sys.stderr)


# -- the command line ----------------------------------------------------------------------------


class _PositiveInt(click.ParamType):
    name = "N"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < 1:
            self.fail("must be at least 1", param, ctx)
        return number


class _Instant(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return _parse_now(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Day(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        from cds_hooks.cli.report import parse_day

        try:
            return parse_day(str(value))
        except (ValueError, argparse.ArgumentTypeError) as exc:
            self.fail(str(exc), param, ctx)


_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.option("--traceback", is_flag=True, help="Show the Python traceback of a failure.")
def cli(traceback: bool) -> None:
    """CDS Hooks service for lip and facial twitching.

    Run the service, try a patient against it, check the knowledge base, keep the
    card store's schema current, report to the governance committee, and check any
    CDS Hooks service against the CDS Hooks 2.0 rules.
    """


@cli.command(context_settings=_CONTEXT)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port.")
@click.option(
    "--workers",
    type=_PositiveInt(),
    default=lambda: os.environ.get("WEB_CONCURRENCY", "2"),
    help="gunicorn worker processes (default: $WEB_CONCURRENCY or 2).",
)
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve(host: str, port: int, workers: int, dev: bool) -> int:
    """Run the HTTP service (gunicorn)."""
    return serve_command(argparse.Namespace(host=host, port=port, workers=workers, dev=dev))


@cli.command(context_settings=_CONTEXT, short_help="Run one patient through a service.")
@click.argument("input", metavar="INPUT")
@click.option(
    "--service", help=f"Service id (default: {DEFAULT_SERVICE}, or the one for the hook)."
)
@click.option("--now", type=_Instant(), help="Evaluation time, ISO 8601 (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw CDS Hooks response.")
def invoke(input: str, service: str | None, now: datetime | None, as_json: bool) -> int:  # noqa: A002
    """Run one patient through a service in-process and print the cards.

    No server is started and authentication is off for this call only. INPUT is a JSON
    file holding a FHIR Bundle (collection, searchset or transaction) or a complete CDS
    Hooks request, '-' for standard input, or demo:NAME for a bundled demo patient.
    """
    return invoke_command(argparse.Namespace(input=input, service=service, now=now, json=as_json))


@cli.group(context_settings=_CONTEXT)
def demo() -> None:
    """The bundled demo patients."""


@demo.command("list", context_settings=_CONTEXT)
def demo_list() -> int:
    """List the demo patients."""
    return demo_list_command(argparse.Namespace())


@demo.command("show", context_settings=_CONTEXT)
@click.argument("name", metavar="NAME")
@click.option(
    "--as",
    "form",
    type=click.Choice(("bundle", "transaction", "request")),
    default="bundle",
    show_default=True,
    help="A collection Bundle, a transaction for a FHIR server, or a patient-view hook request.",
)
@click.option("--now", type=_Instant(), help="Date the patient as of this time.")
def demo_show(name: str, form: str, now: datetime | None) -> int:
    """Print a demo patient as JSON."""
    return demo_show_command(argparse.Namespace(name=name, form=form, now=now))


@cli.group(context_settings=_CONTEXT)
def knowledge() -> None:
    """The clinical knowledge base."""


@knowledge.command("check", context_settings=_CONTEXT)
@click.option("--dir", "directory", help="Knowledge directory (default: the packaged one).")
def knowledge_check(directory: str | None) -> int:
    """Load and validate the knowledge base, list its rules."""
    return knowledge_check_command(argparse.Namespace(dir=directory))


@cli.group(context_settings=_CONTEXT)
def db() -> None:
    """The database schema of the card and feedback store."""


_DATABASE_URL = click.option("--database-url", help="Default: $LIPCDS_DATABASE_URL.")


@db.command("upgrade", context_settings=_CONTEXT)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@_DATABASE_URL
def db_upgrade(revision: str, database_url: str | None) -> int:
    """Bring the database schema up to date (run before deploying a release)."""
    from cds_hooks.cli import report

    return report.db_upgrade_command(
        argparse.Namespace(revision=revision, database_url=database_url)
    )


@cli.command(context_settings=_CONTEXT)
@click.option("--since", type=_Day(), help="First day, UTC.")
@click.option("--until", type=_Day(), help="Last day, UTC, inclusive.")
@click.option("--chart", metavar="PNG", help="Also draw the report to this PNG file.")
@click.option("--issuer", help="Only cards issued to this JWT issuer.")
@click.option("--tenant", help="Only cards issued to this tenant.")
@_DATABASE_URL
def report(**options: Any) -> int:
    """Governance report of issued cards and feedback."""
    from cds_hooks.cli import report as governance

    return governance.report_command(argparse.Namespace(**options))


@cli.command(context_settings=_CONTEXT, short_help="Check a CDS Hooks service at URL.")
@click.argument("url", metavar="URL")
@click.option(
    "--token-cmd",
    metavar="CMD",
    help="Command printing a fresh client JWT for the audience in $CDS_CHECK_AUD "
    "(run once per call, no shell). Without it no Authorization is sent.",
)
@click.option(
    "--request",
    "request_files",
    metavar="FILE",
    multiple=True,
    help="A CDS Hooks request to send to the services of its hook instead of the "
    "checker's synthetic patient (repeatable; `lipcds demo show NAME --as request`).",
)
@click.option(
    "--origin",
    help="Origin of the CORS checks; when given, a missing CORS answer FAILs "
    "(default: the CDS Hooks sandbox's origin, and a missing answer is a WARN).",
)
@click.option("--no-feedback", is_flag=True, help="Send no feedback on the cards received.")
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per call.")
def check(
    url: str,
    token_cmd: str | None,
    request_files: tuple[str, ...],
    origin: str | None,
    no_feedback: bool,
    timeout: float,
) -> int:
    """Check the CDS Hooks service at URL against the CDS Hooks 2.0 rules.

    URL is the base the services are under (URL/cds-services is discovery). One line per
    check: PASS, FAIL, WARN (a SHOULD not met) or N-A, with the clause of the
    specification. Exit status 1 when a check FAILs. Cards received and feedback sent
    are recorded by a service that keeps them: use a test instance.
    """
    from cds_hooks.checker import run_check

    return run_check(
        url,
        token_cmd=token_cmd,
        request_files=request_files,
        origin=origin,
        feedback=not no_feedback,
        timeout=timeout,
    )


def _parse_now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-03-01T09:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- serve -----------------------------------------------------------------------------------


def serve_command(args: argparse.Namespace) -> int:
    """Serve HTTP: gunicorn by default, Flask's own server with --dev."""
    from cds_hooks import create_app
    from cds_hooks.app import configure_logging
    from cds_hooks.config import ConfigError, load_settings
    from cds_hooks.ops.metrics import prepare_multiprocess_dir
    from cds_hooks.serving import gunicorn_settings, server_problem

    # Logging first, so that every line, the app's own included, has the chosen format.
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if not args.dev:
        problem = server_problem(settings)
        if problem:
            raise ConfigError(problem)
        prepare_multiprocess_dir()  # the workers' metrics, summed by /metrics
    # Build the app once here so a bad setting or knowledge file stops us with one line,
    # before any worker starts (and fails to boot with a traceback in the log).
    app = create_app()
    if args.dev:
        from werkzeug.serving import run_simple

        # Werkzeug's server without Flask's banner, which is printed, not logged: every
        # line then comes through the configured log format.
        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
        return 0
    # The settings of deploy/gunicorn.conf.py (cds_hooks/serving.py). The app built above
    # is the one gunicorn forks into its workers (preload): they share its knowledge base
    # copy-on-write and drop its database connections after the fork (post_fork).
    options = gunicorn_settings()
    options.pop("wsgi_app")
    options.update(bind=f"{_bind_host(args.host)}:{args.port}", workers=args.workers)
    _gunicorn_application(options, app).run()
    return 0


def _bind_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _gunicorn_application(options: dict[str, Any], app: Any = None) -> Any:
    """gunicorn configured from `options` only, serving `app` (else `create_app()`)."""
    from gunicorn.app.base import BaseApplication

    class LipcdsApplication(BaseApplication):
        """gunicorn serving lipcds, configured from our options only."""

        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            if app is not None:
                return app
            from cds_hooks import create_app

            return create_app()

    return LipcdsApplication()


# -- invoke ------------------------------------------------------------------------------------


def invoke_command(args: argparse.Namespace) -> int:
    """Run one patient through a service in-process and print its cards."""
    from cds_hooks import create_app
    from cds_hooks.runtime import runtime

    document, label = _read_input(args.input, args.now)
    config: dict[str, Any] = {
        # In-process only: this call never opens a socket, so nobody else can reach the
        # unauthenticated service. The server's own settings are not touched.
        "env": "development",
        "auth_mode": "disabled",
        # A trial run is not a clinical event: keep its cards out of the real store (and
        # out of the governance report), and leave no database or key file behind.
        "database_url": "sqlite://",
        "patient_id_key": secrets.token_hex(32),
    }
    if args.now is not None:
        now = args.now
        config["clock"] = lambda: now
    with _quiet_warnings("lipcds"):
        # The "authentication disabled" warning is meant for a listening server; this
        # app never listens. Errors still show.
        app = create_app(config)
    kb = runtime(app).kb
    request, service_id = _hook_request(document, label, args.service, kb)

    response = app.test_client().post(f"/cds-services/{service_id}", json=request)
    body = response.get_json(silent=True)
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0 if response.status_code == 200 else 1
    if response.status_code != 200:
        _print_error(response.status_code, response.status, body)
        return 1
    print(format_cards(body, service_id, request["context"].get("patientId")))
    return 0


@contextlib.contextmanager
def _quiet_warnings(logger_name: str) -> Iterator[None]:
    """Only errors from `logger_name` for the duration; its level is restored after."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _read_input(source: str, now: datetime | None) -> tuple[Any, str]:
    """The JSON document named by INPUT, and a label for messages."""
    if source.startswith("demo:"):
        from cds_hooks.cli.demo import DemoError, list_order_demos, load_demo, order_demo_request

        name = source.removeprefix("demo:")
        try:
            if name in list_order_demos():  # a complete order-select/-sign request
                return order_demo_request(name, now=now), source
            return load_demo(name, now=now), source
        except DemoError as exc:
            raise CLIError(str(exc)) from None
    if source == "-":
        text, label = sys.stdin.read(), "standard input"
    else:
        path = Path(source)
        if not path.is_file():
            raise CLIError(f"{source}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"{source}: cannot be read ({exc})") from None
        label = source
    try:
        return json.loads(text), label
    except json.JSONDecodeError as exc:
        raise CLIError(
            f"{label}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _hook_request(
    document: Any, label: str, service_id: str | None, kb: Any
) -> tuple[dict[str, Any], str]:
    """A hook request for the document, and the service to send it to."""
    from cds_hooks.cli.demo import DemoError, hook_request

    if not isinstance(document, dict):
        raise CLIError(f"{label}: expected a JSON object")
    if "hook" in document and "context" in document:  # already a CDS Hooks request
        if service_id is None:
            hook = document.get("hook")
            matches = [s.id for s in kb.services.values() if s.hook == hook]
            service_id = (
                DEFAULT_SERVICE if DEFAULT_SERVICE in matches or not matches else matches[0]
            )
        return document, service_id
    if document.get("resourceType") != "Bundle":
        found = document.get("resourceType") or "JSON object without resourceType"
        raise CLIError(f"{label}: expected a FHIR Bundle or a CDS Hooks request, not a {found}")
    service_id = service_id or DEFAULT_SERVICE
    service = kb.services.get(service_id)
    if service is None:
        known = ", ".join(sorted(kb.services))
        raise CLIError(f"no CDS service with id {service_id!r} (known: {known})")
    try:
        return hook_request(document, service_id, templates=service.prefetch), service_id
    except DemoError as exc:
        raise CLIError(f"{label}: {exc}") from None


def _print_error(status: int, status_text: str, body: Any) -> None:
    print(f"lipcds: the service answered HTTP {status_text}", file=sys.stderr)
    issues = body.get("issue", []) if isinstance(body, dict) else []
    for issue in issues:
        print(
            f"  {issue.get('severity', 'error')}: {issue.get('diagnostics', '')}", file=sys.stderr
        )
    if not issues:
        print(f"  (no OperationOutcome in the {status} answer)", file=sys.stderr)


def format_cards(response: dict[str, Any], service_id: str, patient_id: str | None) -> str:
    """The cards of a CDS Hooks response as text for a terminal."""
    cards = response.get("cards", [])
    who = f"Patient/{patient_id}" if patient_id else "the patient"
    if not cards:
        return f"{service_id}: no cards for {who}."
    noun = "card" if len(cards) == 1 else "cards"
    lines = [f"{service_id}: {len(cards)} {noun} for {who}"]
    for number, card in enumerate(cards, start=1):
        topic = (card.get("source") or {}).get("topic") or {}
        lines.append("")
        heading = f"[{number}] {card.get('indicator', '?').upper()}"
        if topic.get("code"):
            heading += f"  {topic['code']}"
        lines.append(heading)
        lines.append(f"    {card.get('summary', '')}")
        if card.get("detail"):
            lines.append("")
            lines.append(textwrap.indent(card["detail"].rstrip(), "    "))
        suggestions = card.get("suggestions") or []
        if suggestions:
            lines.append("")
            lines.append("    Suggestions:")
        for suggestion in suggestions:
            flag = " (recommended)" if suggestion.get("isRecommended") else ""
            lines.append(f"      * {suggestion.get('label', '')}{flag}")
            for action in suggestion.get("actions") or []:
                lines.append(f"          - {_describe_action(action)}")
        for link in card.get("links") or []:
            lines.append(f"    Link: {link.get('label', '')} <{link.get('url', '')}>")
    return "\n".join(lines)


def _describe_action(action: dict[str, Any]) -> str:
    text = f"{action.get('type', '?')}: {action.get('description', '')}"
    resource = action.get("resource") or {}
    code = resource.get("code") or {}
    codings = [c for c in code.get("coding") or [] if c.get("code")]
    if codings:
        coding = codings[0]
        system = _SYSTEM_NAMES.get(coding.get("system", ""), coding.get("system", ""))
        text += f"  [{resource.get('resourceType', '')} {system} {coding['code']}]"
    elif code.get("text"):
        text += f'  [{resource.get("resourceType", "")} "{code["text"]}"]'
    return text


# -- demo --------------------------------------------------------------------------------------


def demo_list_command(args: argparse.Namespace) -> int:
    from cds_hooks.cli.demo import list_demos

    for name in list_demos():
        print(name)
    return 0


def demo_show_command(args: argparse.Namespace) -> int:
    from cds_hooks.cli.demo import DemoError, as_transaction, hook_request, load_demo

    try:
        bundle = load_demo(args.name, now=args.now)
    except DemoError as exc:
        raise CLIError(str(exc)) from None
    shown: dict[str, Any] = {
        "bundle": lambda: bundle,
        "transaction": lambda: as_transaction(bundle),
        "request": lambda: hook_request(bundle),
    }[args.form]()
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


# -- knowledge ---------------------------------------------------------------------------------


def knowledge_check_command(args: argparse.Namespace) -> int:
    """Load the knowledge base as start-up would; list its rules."""
    from knowledge import load_knowledge_base
    from knowledge.describe import format_rule_listing

    if args.dir is not None and not Path(args.dir).is_dir():
        raise CLIError(f"{args.dir}: no such directory")
    kb = load_knowledge_base(args.dir)
    where = args.dir or "packaged knowledge/data"
    print(f"knowledge base OK: version {kb.version} ({where})")
    print()
    print(format_rule_listing(kb), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
