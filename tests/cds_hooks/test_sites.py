"""Per-site policy: rules, thresholds within bounds, shadow mode; a bad file stops start-up."""

from __future__ import annotations

import pytest

from cds_hooks import create_app
from cds_hooks.config import ConfigError
from cds_hooks.runtime import runtime
from cds_hooks.sites import load_site_policies
from knowledge import load_knowledge_base
from knowledge.policy import Policy


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture
def base(kb):
    return Policy(kb.thresholds)


def load(tmp_path, text, kb, base):
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    return load_site_policies(path, kb, base)


def test_a_site_gets_its_rules_thresholds_and_shadow_flag(tmp_path, kb, base):
    sites = load(
        tmp_path,
        """
sites:
  - issuer: https://ehr.example.org
    tenant: north
    rules_disabled: [R1]
    thresholds: {freshness_days: 60}
    shadow: true
  - issuer: https://ehr.example.org
""",
        kb,
        base,
    )
    north = sites.for_call("https://ehr.example.org", "north")
    assert north.disabled_rules == {"R1"}
    assert north.policy["freshness_days"] == 60
    assert north.shadow
    # Another tenant of the same issuer falls back to the issuer's entry.
    south = sites.for_call("https://ehr.example.org", "south")
    assert not south.shadow
    assert south.policy["freshness_days"] == 90
    # An unknown caller has no site: the deployment's policy, everything on, live.
    assert sites.for_call("https://other", None).policy is base
    assert sites.for_call(None, None).disabled_rules == frozenset()
    assert not sites.for_call(None, None).shadow


def test_rules_enabled_is_an_allow_list(tmp_path, kb, base):
    sites = load(tmp_path, "sites:\n  - issuer: i\n    rules_enabled: [R3]\n", kb, base)
    assert sites.for_call("i", None).disabled_rules == {r.id for r in kb.rules} - {"R3"}


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ("thresholds: {freshness_days: 5}", ["sites[0]", "issuer https://a", "thresholds", "14"]),
        ("thresholds: {no_such: 5}", ["sites[0]", "thresholds", "no_such"]),
        ("thresholds: {freshness_days: yes}", ["thresholds", "not a number"]),
        ("rules_disabled: [R99]", ["sites[0]", "rules_disabled", "R99"]),
        ("rules_enabled: [R1]\n    rules_disabled: [R2]", ["rules_enabled", "not both"]),
        ("shadow: maybe", ["sites[0]", "shadow"]),
        ("colour: blue", ["sites[0]", "colour"]),
    ],
)
def test_a_bad_entry_names_the_site_and_field(tmp_path, kb, base, entry, names):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"sites:\n  - issuer: https://a\n    {entry}\n", kb, base)
    for name in names:
        assert name in str(caught.value)


def test_two_entries_for_one_site_are_refused(tmp_path, kb, base):
    with pytest.raises(ConfigError, match="sites\\[1\\].*second entry"):
        load(tmp_path, "sites:\n  - issuer: a\n  - issuer: a\n", kb, base)


def test_a_missing_or_broken_file_stops_start_up(tmp_path):
    config = {
        "env": "test",
        "auth_mode": "disabled",
        "database_url": f"sqlite:///{tmp_path / 'x.db'}",
    }
    with pytest.raises(ConfigError, match="cannot read"):
        create_app({**config, "site_policy_file": str(tmp_path / "absent.yaml")})
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        create_app({**config, "site_policy_file": str(broken)})
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="sites"):
        create_app({**config, "site_policy_file": str(empty)})


def test_create_app_installs_the_site_lookups(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text("sites:\n  - issuer: https://a\n    rules_disabled: [R1]\n    shadow: true\n")
    app = create_app(
        {
            "env": "test",
            "auth_mode": "disabled",
            "site_policy_file": str(path),
            "database_url": f"sqlite:///{tmp_path / 'x.db'}",
        }
    )
    rt = runtime(app)
    assert rt.sites.for_call("https://a", None).disabled_rules == {"R1"}
    assert rt.sites.for_call("https://a", "any-tenant").shadow
    assert rt.sites.for_call("https://b", None).policy is rt.policy
    rt.store.dispose()
