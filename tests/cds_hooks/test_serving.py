"""`lipcds serve` and deploy/gunicorn.conf.py serve with one set of settings (cds_hooks.serving)."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from cds_hooks.cli import commands as cli
from cds_hooks.serving import gunicorn_settings, server_problem

CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
IN_MEMORY = ["sqlite:///:memory:", "sqlite://"]


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Run `lipcds serve` up to the point where gunicorn would start; return its options."""
    monkeypatch.setenv("LIPCDS_ENV", "development")
    monkeypatch.setenv("LIPCDS_AUTH_MODE", "disabled")
    monkeypatch.setenv("LIPCDS_DATABASE_URL", f"sqlite:///{tmp_path / 'lipcds.db'}")
    captured: dict = {}

    class NotStarted:
        def run(self) -> None:
            captured["ran"] = True

    def application(options, app=None):
        captured.update(options=options, app=app)
        return NotStarted()

    monkeypatch.setattr(cli, "_gunicorn_application", application)
    return captured


def test_serve_and_the_container_run_the_same_gunicorn_settings(served, capsys):
    assert cli.main(["serve", "--port", "8123", "--workers", "3"]) == 0
    options = served["options"]
    conf = runpy.run_path(str(CONF))
    for key, value in gunicorn_settings().items():
        if key not in ("bind", "workers", "wsgi_app"):
            assert options[key] == conf[key] == value, key
    assert options["bind"] == "127.0.0.1:8123" and options["workers"] == 3
    assert served["ran"] and served["app"] is not None  # the app built once, preloaded


def test_the_worker_model_computes_one_call_at_a_time_and_waits_on_threads():
    settings = gunicorn_settings({})
    # gthread: a slow client or a FHIR fetch holds a thread, not the process; the CPU
    # gate (cds_hooks.hooks.gate) keeps computation to one call at a time per worker.
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] >= 16
    assert settings["preload_app"] is True
    assert gunicorn_settings({"GUNICORN_THREADS": "8", "WEB_CONCURRENCY": "4"})["threads"] == 8


@pytest.mark.parametrize("url", IN_MEMORY)
def test_serve_refuses_an_in_memory_sqlite_database(served, monkeypatch, capsys, url):
    monkeypatch.setenv("LIPCDS_DATABASE_URL", url)
    assert cli.main(["serve", "--port", "8123"]) == 1
    err = capsys.readouterr().err
    assert "LIPCDS_DATABASE_URL" in err and "in-memory" in err and "Traceback" not in err
    assert "ran" not in served


@pytest.mark.parametrize("url", IN_MEMORY)
def test_gunicorn_refuses_an_in_memory_sqlite_database_before_any_worker(monkeypatch, url):
    monkeypatch.setenv("LIPCDS_ENV", "development")
    monkeypatch.setenv("LIPCDS_AUTH_MODE", "disabled")
    monkeypatch.setenv("LIPCDS_DATABASE_URL", url)
    logged = []
    server = SimpleNamespace(log=SimpleNamespace(error=lambda *args: logged.append(args)))
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(CONF))["on_starting"](server)
    assert stopped.value.code == 2
    assert "in-memory" in logged[0][1] % logged[0][2:]


def test_every_spelling_of_an_in_memory_sqlite_database_is_named():
    for url in [*IN_MEMORY, "sqlite:///file:x?mode=memory&uri=true"]:
        assert "in-memory" in server_problem(SimpleNamespace(database_url=url))


def test_a_database_file_or_postgresql_is_fine():
    for url in ("sqlite:///var/lipcds.db", "postgresql+psycopg://u@db/lipcds"):
        assert server_problem(SimpleNamespace(database_url=url)) is None


def test_workers_freeze_what_they_loaded():
    try:
        runpy.run_path(str(CONF))["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
