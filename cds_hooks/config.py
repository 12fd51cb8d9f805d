"""Settings: embedded defaults, then `LIPCDS_*` environment variables, then explicit overrides.

Read once when the app is created, never per request. Every value is checked here, so a
bad setting stops start-up with its variable named instead of failing a request later.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV_PREFIX = "LIPCDS_"
ENVIRONMENTS = ("production", "development", "test")


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe; the message names the variable."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_database_url() -> str:
    return f"sqlite:///{Path('var/lipcds.db').resolve()}"


@dataclass(frozen=True)
class Settings:
    """Every setting of the service. Field `foo_bar` is read from `LIPCDS_FOO_BAR`."""

    # -- core -------------------------------------------------------------------------
    env: str = "production"
    knowledge_dir: str | None = None  # None: the knowledge base packaged with lipcds
    max_body_bytes: int = 5 * 1024 * 1024
    public_base_url: str | None = None  # e.g. https://cds.example.org (JWT aud, links)
    threshold_overrides: dict[str, float] = field(default_factory=dict)
    log_level: str = "INFO"
    clock: Callable[[], datetime] = _utcnow  # injectable for tests; not read from env

    # -- store (feedback, issued cards) ---------------------------------------------------
    database_url: str = field(default_factory=default_database_url)
    patient_id_key: str | None = None  # HMAC key for patient-id hashes
    site_policy_file: str | None = None

    # -- authentication of the EHR (CDS Hooks security) --------------------------------
    auth_mode: str = "jwt"  # "jwt" | "disabled" (development only, logged loudly)
    trusted_issuers: list[dict[str, Any]] = field(default_factory=list)
    allowed_algorithms: list[str] = field(default_factory=lambda: ["ES384", "RS384"])
    clock_skew_seconds: int = 60
    jwks_cache_seconds: int = 3600
    jwks_refresh_min_interval_seconds: int = 30
    discovery_requires_auth: bool = False
    redis_url: str | None = None
    cors_origins: list[str] = field(default_factory=list)

    # -- fetching from the EHR's FHIR server -----------------------------------------------
    fhir_allowed_servers: list[str] = field(default_factory=list)
    fhir_insecure_servers: list[str] = field(default_factory=list)  # http allowed (dev only)
    fhir_connect_timeout: float = 1.0
    fhir_read_timeout: float = 2.0
    fhir_deadline_seconds: float = 4.0
    fhir_max_pages: int = 5

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _parse(name: str, raw: str, example: Any) -> Any:
    """Convert an environment string to the type of the field's default."""
    env_name = ENV_PREFIX + name.upper()
    try:
        if isinstance(example, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if isinstance(example, int):
            return int(raw)
        if isinstance(example, float):
            return float(raw)
        if isinstance(example, list):
            text = raw.strip()
            if text.startswith("["):
                value = json.loads(text)
                if not isinstance(value, list):
                    raise ValueError("expected a JSON list")
                return value
            return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(example, dict):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        return raw
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{env_name}: {exc}") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build and check the settings: defaults, then environment, then `overrides`."""
    environ = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for f in fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and f.name != "clock":
            values[f.name] = _parse(f.name, raw, getattr(defaults, f.name))
    for key, value in (overrides or {}).items():
        name = key.lower()
        if name not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[name] = value
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if s.env not in ENVIRONMENTS:
        raise ConfigError(f"LIPCDS_ENV: must be one of {', '.join(ENVIRONMENTS)}, not {s.env!r}")
    if s.auth_mode not in ("jwt", "disabled"):
        raise ConfigError(f"LIPCDS_AUTH_MODE: must be 'jwt' or 'disabled', not {s.auth_mode!r}")
    if s.auth_mode == "disabled" and s.is_production:
        raise ConfigError(
            "LIPCDS_AUTH_MODE=disabled is refused when LIPCDS_ENV=production; "
            "set LIPCDS_ENV=development for local use"
        )
    if s.max_body_bytes < 1024:
        raise ConfigError("LIPCDS_MAX_BODY_BYTES: must be at least 1024")
    for name in ("fhir_connect_timeout", "fhir_read_timeout", "fhir_deadline_seconds"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be greater than 0")
    if s.fhir_max_pages < 1:
        raise ConfigError("LIPCDS_FHIR_MAX_PAGES: must be at least 1")
    if s.clock_skew_seconds < 0 or s.clock_skew_seconds > 600:
        raise ConfigError("LIPCDS_CLOCK_SKEW_SECONDS: must be between 0 and 600")
    if s.is_production and "*" in s.cors_origins:
        raise ConfigError("LIPCDS_CORS_ORIGINS: '*' is only allowed outside production")
    for key, value in s.threshold_overrides.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"LIPCDS_THRESHOLD_OVERRIDES: {key}: must be a number")
    if s.is_production and s.auth_mode == "jwt" and not s.public_base_url:
        # Without it the expected JWT audience would come from the Host header, which the
        # caller chooses: a token minted for another service could then pass as ours.
        raise ConfigError(
            "LIPCDS_PUBLIC_BASE_URL: required in production, it is the audience every EHR "
            "token must name (e.g. https://cds.example.org)"
        )
    if s.public_base_url is not None and not s.public_base_url.startswith(("https://", "http://")):
        raise ConfigError("LIPCDS_PUBLIC_BASE_URL: must be an absolute http(s) URL")
