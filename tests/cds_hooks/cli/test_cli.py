"""The `lipcds` command line: knowledge check, invoke on the demo patients, demo, errors."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources

import pytest

from cds_hooks.cli import commands as cli
from cds_hooks.cli.demo import as_transaction, hook_request, load_demo
from knowledge import load_knowledge_base
from tests.demo_cards import DEMO_CARDS

NOW = "2026-03-02T12:00:00Z"
CARD_LINE = re.compile(r"^\[\d+\] (INFO|WARNING|CRITICAL)  (\S+)$", re.MULTILINE)

# The demo table, with indicators as the terminal prints them.
EXPECTED_CARDS = {
    name: {kind: indicator.upper() for kind, indicator in cards.items()}
    for name, cards in DEMO_CARDS.items()
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def card_kinds(output: str) -> dict[str, str]:
    return {kind: indicator for indicator, kind in CARD_LINE.findall(output)}


# -- knowledge check ---------------------------------------------------------------------------


def test_knowledge_check_lists_every_rule(capsys):
    kb = load_knowledge_base()
    status, out, err = run(capsys, "knowledge", "check")
    assert status == 0, err
    assert kb.version in out.splitlines()[0]
    listed = re.findall(r"^(\w+)  \S+  \((?:enabled|disabled)\)$", out, re.MULTILINE)
    assert listed == [rule.id for rule in kb.rules]
    assert {f"R{n}" for n in range(1, 11)} <= set(listed)


@pytest.fixture
def knowledge_copy(tmp_path):
    folder = tmp_path / "knowledge"
    with resources.as_file(resources.files("knowledge") / "data") as data:
        shutil.copytree(data, folder)
    return folder


def test_knowledge_check_of_a_copy_passes(capsys, knowledge_copy):
    status, out, _ = run(capsys, "knowledge", "check", "--dir", str(knowledge_copy))
    assert status == 0
    assert str(knowledge_copy) in out


def test_broken_knowledge_file_is_named_without_a_traceback(capsys, knowledge_copy):
    rules = knowledge_copy / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + "\n  - id: [unclosed\n")
    status, out, err = run(capsys, "knowledge", "check", "--dir", str(knowledge_copy))
    assert status == 1
    assert "rules.yaml" in err
    assert "Traceback" not in err + out


def test_missing_knowledge_file_is_named(capsys, knowledge_copy):
    (knowledge_copy / "thresholds.yaml").unlink()
    status, _, err = run(capsys, "knowledge", "check", "--dir", str(knowledge_copy))
    assert status == 1
    assert "thresholds.yaml" in err and "Traceback" not in err


def test_knowledge_check_of_a_missing_directory(capsys, tmp_path):
    status, _, err = run(capsys, "knowledge", "check", "--dir", str(tmp_path / "nowhere"))
    assert status == 1
    assert "no such directory" in err


# -- invoke ------------------------------------------------------------------------------------


def test_every_demo_has_an_expectation():
    from cds_hooks.cli.demo import list_demos

    assert set(list_demos()) == set(EXPECTED_CARDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CARDS))
def test_invoke_demo_prints_the_expected_cards(capsys, name):
    status, out, err = run(capsys, "invoke", f"demo:{name}", "--now", NOW)
    assert status == 0, err
    assert card_kinds(out) == EXPECTED_CARDS[name]
    if not EXPECTED_CARDS[name]:
        assert "no cards" in out


def test_invoke_prints_summary_detail_and_suggestions(capsys):
    status, out, _ = run(capsys, "invoke", "demo:low-magnesium-mgdl", "--now", NOW)
    assert status == 0
    assert "1.4 mg/dL" in out  # the summary and detail quote the value
    assert "\n    Magnesium **1.4 mg/dL**" in out  # detail: markdown as is, indented
    assert "Suggestions:" in out
    assert "LOINC 19123-9" in out  # the ServiceRequest's code next to its description


@pytest.mark.parametrize("name", ["low-magnesium-mgdl", "no-complaint"])
def test_invoke_json_prints_the_raw_response(capsys, name):
    status, out, _ = run(capsys, "invoke", f"demo:{name}", "--now", NOW, "--json")
    assert status == 0
    response = json.loads(out)
    kinds = {card["source"]["topic"]["code"] for card in response["cards"]}
    assert kinds == set(EXPECTED_CARDS[name])
    if not kinds:
        assert response == {"cards": []}


@pytest.mark.parametrize("form", ["collection", "transaction", "request"])
def test_invoke_reads_bundles_and_hook_requests_from_files(capsys, tmp_path, form):
    bundle = load_demo("ssri-started-before-twitch")
    document = {
        "collection": bundle,
        "transaction": as_transaction(bundle),
        "request": hook_request(bundle),
    }[form]
    path = tmp_path / f"{form}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    status, out, err = run(capsys, "invoke", str(path))
    assert status == 0, err
    assert card_kinds(out) == EXPECTED_CARDS["ssri-started-before-twitch"]


def test_invoke_reads_a_searchset(capsys, tmp_path):
    conditions = hook_request(load_demo("benign-twitch-normal-labs"))["prefetch"]["conditions"]
    path = tmp_path / "searchset.json"
    path.write_text(json.dumps(conditions), encoding="utf-8")
    status, out, err = run(capsys, "invoke", str(path))
    assert status == 0, err
    # conditions only: no labs at all, so the work-up is missing
    assert card_kinds(out) == {"lab-workup-missing": "INFO", "lifestyle-advice": "INFO"}


def test_invoke_missing_file(capsys, tmp_path):
    status, out, err = run(capsys, "invoke", str(tmp_path / "absent.json"))
    assert status == 1
    assert "absent.json" in err and "no such file" in err
    assert "Traceback" not in err and out == ""


def test_invoke_invalid_json(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": "Bundle",', encoding="utf-8")
    status, _, err = run(capsys, "invoke", str(path))
    assert status == 1
    assert "broken.json" in err and "not valid JSON" in err


def test_invoke_rejects_a_lone_resource(capsys, tmp_path):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "p"}), encoding="utf-8")
    status, _, err = run(capsys, "invoke", str(path))
    assert status == 1
    assert "expected a FHIR Bundle or a CDS Hooks request" in err


def test_invoke_unknown_demo_and_service(capsys):
    status, _, err = run(capsys, "invoke", "demo:nobody")
    assert status == 1 and "no demo patient 'nobody'" in err
    status, _, err = run(capsys, "invoke", "demo:facial-droop", "--service", "nope")
    assert status == 1 and "no CDS service with id 'nope'" in err


def test_invoke_reports_the_services_error(capsys, tmp_path):
    request = hook_request(load_demo("facial-droop"))
    request["context"]["patientId"] = "Patient/facial-droop"  # a reference, not an id
    path = tmp_path / "bad-request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    status, out, err = run(capsys, "invoke", str(path))
    assert status == 1
    assert "HTTP 400" in err and "patientId" in err
    assert out == ""


def test_invoke_rejects_a_bad_clock(capsys):
    status, _, err = run(capsys, "invoke", "demo:facial-droop", "--now", "yesterday")
    assert status == 2
    assert "ISO 8601" in err


def test_configuration_errors_are_one_line(capsys, monkeypatch):
    monkeypatch.setenv("LIPCDS_MAX_BODY_BYTES", "lots")
    status, _, err = run(capsys, "invoke", "demo:facial-droop")
    assert status == 1
    assert err.startswith("lipcds: configuration error: LIPCDS_MAX_BODY_BYTES")
    assert len(err.strip().splitlines()) == 1


def test_invoke_leaves_no_files_behind(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, _ = run(capsys, "invoke", "demo:benign-twitch-normal-labs")
    assert status == 0
    assert list(tmp_path.iterdir()) == []


# -- demo, serve, store commands ---------------------------------------------------------------


def test_demo_list_and_show(capsys):
    status, out, _ = run(capsys, "demo", "list")
    assert status == 0
    assert out.split() == sorted(EXPECTED_CARDS)
    status, out, _ = run(capsys, "demo", "show", "low-potassium-meq", "--now", NOW)
    assert status == 0
    bundle = json.loads(out)
    assert bundle["type"] == "collection"
    assert bundle["timestamp"].startswith("2026-03-01")  # anchor lands within a day of --now
    status, out, _ = run(capsys, "demo", "show", "low-potassium-meq", "--as", "request")
    assert json.loads(out)["hook"] == "patient-view"


def test_serve_stops_on_a_bad_setting_before_starting(capsys, monkeypatch):
    monkeypatch.setenv("LIPCDS_ENV", "staging")
    status, _, err = run(capsys, "serve", "--port", "0")
    assert status == 1
    assert "LIPCDS_ENV" in err and "Traceback" not in err


def test_gunicorn_is_configured_from_the_options():
    app = cli._gunicorn_application({"bind": "127.0.0.1:8085", "workers": 3})
    assert app.cfg.bind == ["127.0.0.1:8085"]
    assert app.cfg.workers == 3


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "invoke")[0] == 2
    assert run(capsys, "demo", "list", "--extra")[0] == 2
    assert run(capsys)[0] == 2


def test_db_upgrade_and_report_are_delegated(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    status, out, err = run(capsys, "db", "upgrade", "--database-url", url)
    assert status == 0, err
    assert "schema at revision" in out
    status, out, err = run(capsys, "report", "--database-url", url)
    assert status == 0, err
    status, _, err = run(capsys, "report", "--no-such-option")
    assert status == 2 and "--no-such-option" in err
