"""Per-site policy, keyed by the JWT issuer and tenant (LIPCDS_SITE_POLICY_FILE).

A YAML file lists the sites; each may switch rules off, move thresholds within the
bounds the knowledge base allows, and run in shadow mode (cards computed and recorded,
none returned) while it validates the service before go-live:

    sites:
      - issuer: https://ehr.north.example.org     # the JWT `iss`
        tenant: north-main                        # optional: the JWT `tenant`
        rules_disabled: [R9]                      # or rules_enabled: [...] (an allow-list)
        thresholds: {freshness_days: 60}
        shadow: true

A call matches the entry with its issuer and tenant, else the issuer's entry without a
tenant, else none (the deployment's policy, all rules, live). The file is checked at
start-up: a mistake stops start-up naming the site and the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema

from cds_hooks.config import ConfigError
from cds_hooks.validation import NONBLANK, flatten_messages
from knowledge.kb import KnowledgeBase
from knowledge.policy import Policy, PolicyError


class _SiteSchema(Schema):
    class Meta:
        unknown = RAISE

    issuer = fields.String(required=True, validate=NONBLANK)
    tenant = fields.String(validate=NONBLANK)
    name = fields.String(validate=NONBLANK)
    rules_enabled = fields.List(fields.String(validate=NONBLANK))
    rules_disabled = fields.List(fields.String(validate=NONBLANK))
    thresholds = fields.Dict(keys=fields.String(), values=fields.Raw())  # Policy checks them
    shadow = fields.Boolean(load_default=False)

    @validates_schema
    def _one_rule_list(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "rules_enabled" in data and "rules_disabled" in data:
            raise ValidationError("give rules_enabled or rules_disabled, not both", "rules_enabled")


class _FileSchema(Schema):
    class Meta:
        unknown = RAISE

    sites = fields.List(fields.Dict(), required=True)


def site_key(issuer: str | None, tenant: str | None) -> str | None:
    """An opaque handle for a site in a public link (the rule pages' `?site=`): the pages
    find the site's thresholds by it; a reader of the link learns neither issuer nor tenant."""
    if not issuer:
        return None
    return hashlib.sha256(f"{issuer}\n{tenant or ''}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Site:
    """What applies to one call: the site's thresholds, switched-off rules and shadow flag."""

    issuer: str | None
    tenant: str | None
    policy: Policy
    disabled_rules: frozenset[str] = frozenset()
    shadow: bool = False


class SiteRegistry:
    """The configured sites, by (issuer, tenant); a caller with no entry gets the default."""

    def __init__(self, default_policy: Policy, sites: list[Site] | tuple[Site, ...] = ()):
        self.default = Site(issuer=None, tenant=None, policy=default_policy)
        self._sites = {(site.issuer, site.tenant): site for site in sites}

    def __len__(self) -> int:
        return len(self._sites)

    def for_call(self, issuer: str | None, tenant: str | None) -> Site:
        """The entry with this issuer and tenant, else the issuer's without a tenant, else
        the deployment's default (its policy, every rule on, live)."""
        if issuer is None:
            return self.default
        return self._sites.get((issuer, tenant)) or self._sites.get((issuer, None)) or self.default


def load_site_policies(path: str | Path, kb: KnowledgeBase, base: Policy) -> SiteRegistry:
    """Read and check the site policy file; ConfigError names the site and the field."""
    where = f"LIPCDS_SITE_POLICY_FILE {path}"
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    try:
        entries = _FileSchema().load(document if isinstance(document, Mapping) else {})["sites"]
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + "; ".join(flatten_messages(exc.messages))) from None
    known_rules = {rule.id for rule in kb.rules}
    sites: list[Site] = []
    seen: set[tuple[str, str | None]] = set()
    for index, entry in enumerate(entries):
        label = f"{where}: sites[{index}]"
        try:
            site = _SiteSchema().load(entry)
        except ValidationError as exc:
            raise ConfigError(f"{label}: " + "; ".join(flatten_messages(exc.messages))) from None
        key = (site["issuer"], site.get("tenant"))
        label = f"{label} (issuer {key[0]}" + (f", tenant {key[1]})" if key[1] else ")")
        if key in seen:
            raise ConfigError(f"{label}: a second entry for the same issuer and tenant")
        seen.add(key)
        for field_name in ("rules_enabled", "rules_disabled"):
            unknown = sorted(set(site.get(field_name, ())) - known_rules)
            if unknown:
                raise ConfigError(
                    f"{label}: {field_name}: unknown rule ids {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(known_rules))})"
                )
        if "rules_enabled" in site:
            disabled = known_rules - set(site["rules_enabled"])
        else:
            disabled = set(site.get("rules_disabled", ()))
        try:
            policy = base.with_overrides(site.get("thresholds", {}))
        except PolicyError as exc:
            raise ConfigError(f"{label}: thresholds: {exc}") from None
        sites.append(Site(key[0], key[1], policy, frozenset(disabled), site["shadow"]))
    return SiteRegistry(base, sites)
