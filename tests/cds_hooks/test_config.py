"""Settings are checked at start-up: a bad or unsafe value names its variable."""

import pytest

from cds_hooks.config import ConfigError, load_settings

PRODUCTION = {"env": "production", "public_base_url": "https://cds.example.org"}


def test_production_defaults_are_secure():
    settings = load_settings(PRODUCTION, environ={})
    assert settings.auth_mode == "jwt"
    assert settings.cors_origins == []
    assert settings.discovery_requires_auth is False


def test_production_jwt_needs_the_public_url_that_tokens_must_name():
    with pytest.raises(ConfigError, match="LIPCDS_PUBLIC_BASE_URL"):
        load_settings({"env": "production"}, environ={})


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"auth_mode": "disabled"}, "LIPCDS_AUTH_MODE"),
        ({"cors_origins": ["*"]}, "LIPCDS_CORS_ORIGINS"),
        ({"env": "staging"}, "LIPCDS_ENV"),
        ({"max_body_bytes": 10}, "LIPCDS_MAX_BODY_BYTES"),
        ({"fhir_read_timeout": 0}, "LIPCDS_FHIR_READ_TIMEOUT"),
        ({"public_base_url": "cds.example.org"}, "LIPCDS_PUBLIC_BASE_URL"),
        ({"threshold_overrides": {"freshness_days": "soon"}}, "LIPCDS_THRESHOLD_OVERRIDES"),
    ],
)
def test_unsafe_or_malformed_settings_stop_start_up(overrides, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings({**PRODUCTION, **overrides}, environ={})


def test_environment_values_are_parsed_by_type():
    environ = {
        "LIPCDS_ENV": "development",
        "LIPCDS_AUTH_MODE": "disabled",
        "LIPCDS_CORS_ORIGINS": "https://a.example, https://b.example",
        "LIPCDS_FHIR_MAX_PAGES": "3",
        "LIPCDS_DISCOVERY_REQUIRES_AUTH": "yes",
        "LIPCDS_THRESHOLD_OVERRIDES": '{"freshness_days": 60}',
    }
    settings = load_settings(environ=environ)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.fhir_max_pages == 3
    assert settings.discovery_requires_auth is True
    assert settings.threshold_overrides == {"freshness_days": 60}


@pytest.mark.parametrize(
    ("name", "raw"),
    [("LIPCDS_FHIR_MAX_PAGES", "many"), ("LIPCDS_DISCOVERY_REQUIRES_AUTH", "maybe"),
     ("LIPCDS_THRESHOLD_OVERRIDES", "[1]")],
)
def test_malformed_environment_values_name_the_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: raw})


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({"no_such_setting": 1}, environ={})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"db_connect_timeout": 0}, "LIPCDS_DB_CONNECT_TIMEOUT"),
        ({"db_statement_timeout": -1}, "LIPCDS_DB_STATEMENT_TIMEOUT"),
        ({"db_operation_timeout": 1.0, "db_statement_timeout": 1.5}, "LIPCDS_DB_OPERATION_TIMEOUT"),
        ({"store_max_pending": 0}, "LIPCDS_STORE_MAX_PENDING"),
        ({"replay_fallback": "ignore"}, "LIPCDS_REPLAY_FALLBACK"),
    ],
)
def test_database_fault_settings_are_checked(overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_settings({"env": "test", **overrides}, environ={})
