"""Per-site policy reaches the engine: a site's disabled rules and thresholds apply to it only."""

from datetime import UTC, datetime

from cds_hooks import create_app
from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.hooks.pipeline import run_hook
from cds_hooks.runtime import runtime

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SERVICE = "lip-twitch-patient-view"


def make_runtime(tmp_path):
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        "sites:\n"
        "  - issuer: https://ehr-a.example.org\n"
        "    rules_disabled: [R1]\n"
        "  - issuer: https://ehr-b.example.org\n"
        "    thresholds: {freshness_days: 365}\n"
    )
    app = create_app(
        {
            "env": "test",
            "auth_mode": "disabled",
            "database_url": f"sqlite:///{tmp_path}/t.db",
            "site_policy_file": str(sites),
            "clock": lambda: NOW,
        }
    )
    return runtime(app)


def kinds(response):
    return [card["source"]["topic"]["code"] for card in response["cards"]]


def test_a_rule_disabled_for_one_site_is_off_for_that_site_only(tmp_path):
    rt = make_runtime(tmp_path)
    body = hook_request(load_demo("benign-twitch-normal-labs", now=NOW))
    assert kinds(run_hook(rt, SERVICE, body, issuer="https://other.example.org")) == [
        "lifestyle-advice"
    ]
    body = hook_request(load_demo("benign-twitch-normal-labs", now=NOW))
    assert kinds(run_hook(rt, SERVICE, body, issuer="https://ehr-a.example.org")) == []


def test_a_site_threshold_moves_the_rule_for_that_site_only(tmp_path):
    rt = make_runtime(tmp_path)
    # Labs drawn 201 days ago: stale at the default 90 days, fresh at site B's 365.
    body = hook_request(load_demo("stale-labs", now=NOW))
    assert "lab-workup-missing" in kinds(run_hook(rt, SERVICE, body, issuer="https://x"))
    body = hook_request(load_demo("stale-labs", now=NOW))
    assert kinds(run_hook(rt, SERVICE, body, issuer="https://ehr-b.example.org")) == [
        "lifestyle-advice"
    ]
