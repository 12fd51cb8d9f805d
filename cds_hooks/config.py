"""Settings: embedded defaults, then `LIPCDS_*` environment variables, then explicit overrides.

Read once when the app is created, never per request. Every value is checked here, so a
bad setting stops start-up with its variable named instead of failing a request later.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from cds_hooks.validation import problems

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
    log_format: str | None = None  # json | text; None: json in production, text elsewhere
    metrics_token: str | None = None  # when set, GET /metrics needs "Authorization: Bearer <it>"
    clock: Callable[[], datetime] = _utcnow  # injectable for tests; not read from env

    # -- pages for people (cds_hooks/ui) ---------------------------------------------------
    # Rule pages are always public. The card preview and governance pages: None = on outside
    # production, off in production; True/False forces. On in production they need
    # ui_credential (HTTP Basic password or bearer token).
    ui_pages: bool | None = None
    ui_credential: str | None = None

    # -- store (feedback, issued cards) ---------------------------------------------------
    database_url: str = field(default_factory=default_database_url)
    patient_id_key: str | None = None  # HMAC key for patient-id hashes
    site_policy_file: str | None = None
    db_connect_timeout: float = 2.0  # seconds to open a connection
    db_statement_timeout: float = 1.5  # PostgreSQL statement_timeout
    db_operation_timeout: float = 2.0  # one use of a connection, measured by us
    db_busy_timeout: float = 2.0  # SQLite: wait for another process's write lock
    spool_dir: str | None = None  # card records waiting for the database
    store_max_pending: int = 50_000  # records waiting per worker before new ones are refused
    replay_fallback: str = "local"  # "local" | "refuse" while the shared jti seen-set is away

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
    fhir_pool_size: int = 10  # kept-alive connections per FHIR server and worker process
    fhir_max_response_bytes: int = 4 * 1024 * 1024  # one answer, after decompression
    fhir_max_fetch_bytes: int = 16 * 1024 * 1024  # all answers of one hook call

    @property
    def is_production(self) -> bool:
        return self.env == "production"


# Settings whose default is None but whose value, when set, has a type.
_TYPED_NONE: dict[str, Any] = {"ui_pages": False}


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
    known = {f.name for f in dataclass_fields(Settings)}
    for f in dataclass_fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and f.name != "clock":
            example = _TYPED_NONE.get(f.name, getattr(defaults, f.name))
            values[f.name] = _parse(f.name, raw, example)
    for key, value in (overrides or {}).items():
        name = key.lower()
        if name not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[name] = value
    settings = Settings(**values)
    _check(settings)
    return settings


_POSITIVE = validate.Range(min=0, min_inclusive=False, error="must be greater than 0")


def _number_values(value: Any) -> None:
    for key, number in value.items():
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise ValidationError(f"{key}: must be a number")


class _SettingsSchema(Schema):
    """The checks of every setting; field `foo_bar` stands for LIPCDS_FOO_BAR."""

    class Meta:
        unknown = EXCLUDE  # the other settings are checked where they are used

    env = fields.String(
        validate=validate.OneOf(
            ENVIRONMENTS, error=f"must be one of {', '.join(ENVIRONMENTS)}, not {{input!r}}"
        )
    )
    auth_mode = fields.String(
        validate=validate.OneOf(
            ("jwt", "disabled"), error="must be 'jwt' or 'disabled', not {input!r}"
        )
    )
    max_body_bytes = fields.Integer(
        validate=validate.Range(min=1024, error="must be at least 1024")
    )
    fhir_connect_timeout = fields.Float(validate=_POSITIVE)
    fhir_read_timeout = fields.Float(validate=_POSITIVE)
    fhir_deadline_seconds = fields.Float(validate=_POSITIVE)
    fhir_max_pages = fields.Integer(validate=validate.Range(min=1, error="must be at least 1"))
    fhir_pool_size = fields.Integer(
        validate=validate.Range(min=1, max=100, error="must be between 1 and 100")
    )
    fhir_max_response_bytes = fields.Integer(
        validate=validate.Range(min=1024, error="must be at least 1024")
    )
    fhir_max_fetch_bytes = fields.Integer(
        validate=validate.Range(min=1024, error="must be at least 1024")
    )
    clock_skew_seconds = fields.Integer(
        validate=validate.Range(min=0, max=600, error="must be between 0 and 600")
    )
    threshold_overrides = fields.Dict(keys=fields.String(), validate=_number_values)
    public_base_url = fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^https?://", error="must be an absolute http(s) URL"),
    )
    cors_origins = fields.List(fields.Raw())
    log_format = fields.String(
        allow_none=True,
        validate=validate.OneOf(
            ("json", "text", "JSON", "TEXT"), error="must be json or text, not {input!r}"
        ),
    )
    metrics_token = fields.String(
        allow_none=True, validate=validate.Length(min=16, error="must be at least 16 characters")
    )
    ui_pages = fields.Boolean(allow_none=True)
    ui_credential = fields.String(
        allow_none=True, validate=validate.Length(min=16, error="must be at least 16 characters")
    )
    db_connect_timeout = fields.Float(validate=_POSITIVE)
    db_statement_timeout = fields.Float(validate=_POSITIVE)
    db_operation_timeout = fields.Float(validate=_POSITIVE)
    db_busy_timeout = fields.Float(validate=_POSITIVE)
    store_max_pending = fields.Integer(validate=validate.Range(min=1, error="must be at least 1"))
    replay_fallback = fields.String(
        validate=validate.OneOf(
            ("local", "refuse"), error="must be 'local' or 'refuse', not {input!r}"
        )
    )

    @validates_schema
    def _database_bounds(self, data: dict[str, Any], **kwargs: Any) -> None:
        operation, statement = data.get("db_operation_timeout"), data.get("db_statement_timeout")
        if operation is not None and statement is not None and operation < statement:
            # The server should cancel a slow statement before we cut its connection.
            raise ValidationError(
                "must be at least LIPCDS_DB_STATEMENT_TIMEOUT", "db_operation_timeout"
            )

    @validates_schema
    def _fetch_limits(self, data: dict[str, Any], **kwargs: Any) -> None:
        one, total = data.get("fhir_max_response_bytes"), data.get("fhir_max_fetch_bytes")
        if isinstance(one, int) and isinstance(total, int) and one > total:
            raise ValidationError(
                "must not exceed LIPCDS_FHIR_MAX_FETCH_BYTES", "fhir_max_response_bytes"
            )

    @validates_schema
    def _production(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("env") != "production":
            return
        if data.get("auth_mode") == "disabled":
            raise ValidationError(
                "'disabled' is refused when LIPCDS_ENV=production; "
                "set LIPCDS_ENV=development for local use",
                "auth_mode",
            )
        if "*" in data.get("cors_origins", []):
            raise ValidationError("'*' is only allowed outside production", "cors_origins")
        if data.get("ui_pages") and not data.get("ui_credential"):
            raise ValidationError(
                "true in production needs LIPCDS_UI_CREDENTIAL: the card preview and "
                "governance pages are never open without it there",
                "ui_pages",
            )
        if data.get("auth_mode") == "jwt" and not data.get("public_base_url"):
            # Without it the expected JWT audience would come from the Host header, which
            # the caller chooses: a token minted for another service could then pass as ours.
            raise ValidationError(
                "required in production, it is the audience every EHR token must name "
                "(e.g. https://cds.example.org)",
                "public_base_url",
            )


_SETTINGS_SCHEMA = _SettingsSchema()


def _check(s: Settings) -> None:
    values = {f.name: getattr(s, f.name) for f in dataclass_fields(Settings)}
    errors = _SETTINGS_SCHEMA.validate(values)
    if errors:
        lines = []
        for path, message in problems(errors):
            name, _, rest = path.partition(".")
            variable = ENV_PREFIX + name.upper() if name else "settings"
            where = f"{variable}{'.' + rest if rest else ''}"
            lines.append(f"{where}: {message}")
        raise ConfigError("; ".join(lines))
