"""A real browser on the service's pages: Playwright for Python driving Debian's chromium.

Playwright cannot download its own browser here, so it launches the system executable
(`LIPCDS_CHROMIUM`, default /usr/bin/chromium) with a fresh profile and no background
traffic. axe-core comes from the npm registry (tests/browser/js, installed by
scripts/browser-setup). lipcds runs in this process on 127.0.0.1 with a SQLite store.

Every page a test opens records its console errors and uncaught exceptions; any of them
fails the test. Under CI=true a missing browser or axe-core fails the run; elsewhere the
browser tests are skipped with the reason.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("LIPCDS_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "tests" / "browser" / "js" / "node_modules" / "axe-core" / "axe.min.js"
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 900}


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: browser tests must run; see scripts/browser-setup)",
                    pytrace=False)
    pytest.skip(reason)


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """lipcds in development mode with its pages, on a free loopback port."""
    from tests.browser.server import build_app

    app = build_app(tmp_path_factory.mktemp("browser-store"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="lipcds-browser", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def browser_context() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"no chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}")
    profile = tempfile.TemporaryDirectory(prefix="lipcds-chromium-")
    manager = sync_playwright()
    playwright = manager.start()
    try:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile.name,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=VIEWPORT,
                locale="en-GB",
                timezone_id="UTC",
            )
        except PlaywrightError as exc:
            unavailable(f"chromium did not start: {exc.message.splitlines()[0]}")
        context.set_default_timeout(15_000)
        yield context
        context.close()
    finally:
        manager.__exit__(None, None, None)
        profile.cleanup()


@dataclass
class ConsoleLog:
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text} ({message.location})")


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser_context: Any, console: ConsoleLog) -> Iterator[Any]:
    """A new tab; the test fails if the browser logged an error on it."""
    tab = browser_context.new_page()
    console.attach(tab)
    try:
        yield tab
    finally:
        tab.close()
    assert not console.errors, "browser console errors:\n" + "\n".join(console.errors)


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        unavailable(f"axe-core is not installed at {AXE.relative_to(ROOT)}")
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now.

    axe is evaluated through the DevTools protocol, not as a <script> of the page, so the
    pages' Content-Security-Policy (no scripts) stays as it is in production.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(f"() => {{ {axe_source}\n; window.axe = axe; }}")
    result = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def assert_accessible(page: Any, axe_source: str) -> None:
    bad = axe_violations(page, axe_source)
    assert not bad, "axe-core serious/critical violations:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at {', '.join(v['nodes'])}" for v in bad
    )
