"""The click command line: help that reads well, `lipcds check`, the optional chart."""

from __future__ import annotations

import sys

from cds_hooks.cli import main
from tests.cds_hooks.broken_cds_service import broken_app, serving

COMMANDS = ("check", "db", "demo", "invoke", "knowledge", "report", "serve")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_help_lists_every_command_with_a_sentence(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert out.startswith("Usage: lipcds [OPTIONS] COMMAND")
    listed = out.split("Commands:", 1)[1].splitlines()
    for command in COMMANDS:
        line = next(line for line in listed if line.strip().startswith(command + " "))
        assert len(line.split(None, 1)[1]) > 10, line
        assert not line.rstrip().endswith("..."), f"cut short: {line}"
    for argv in [(c, "--help") for c in COMMANDS] + [
        ("demo", "show", "-h"),
        ("db", "upgrade", "-h"),
    ]:
        status, out, _ = run(capsys, *argv)
        assert status == 0 and out.startswith("Usage: lipcds "), argv


def test_usage_errors_name_the_problem_and_exit_2(capsys):
    status, _, err = run(capsys, "serve", "--workers", "0")
    assert status == 2 and "must be at least 1" in err
    status, _, err = run(capsys, "report", "--since", "March")
    assert status == 2 and "'March' is not a date" in err
    status, _, err = run(capsys, "no-such-command")
    assert status == 2 and "No such command" in err


def test_check_exits_1_naming_the_failures(capsys):
    with serving(broken_app()) as url:
        status, out, _ = run(capsys, "check", url, "--no-feedback")
    assert status == 1
    assert "FAIL  service[broken-view].response" in out
    assert "feedback" not in out.split("service[broken-view].no-prefetch", 1)[1].split("errors.")[0]


def test_check_refuses_a_bad_url_in_one_line(capsys):
    status, _, err = run(capsys, "check", "ftp://example.org")
    assert status == 1
    assert err.strip() == "lipcds: check: 'ftp://example.org' is not an http(s) URL"


def test_report_chart_without_matplotlib_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run(capsys, "db", "upgrade", "--database-url", url)[0] == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    chart = tmp_path / "chart.png"
    status, _, err = run(capsys, "report", "--database-url", url, "--chart", str(chart))
    assert status == 1
    assert "pip install 'lipcds[report]'" in err
    assert not chart.exists()
    status, out, _ = run(capsys, "report", "--database-url", url)  # the table needs no chart
    assert status == 0 and "no cards issued" in out
