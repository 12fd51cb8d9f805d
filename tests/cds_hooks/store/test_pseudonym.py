"""Patient-id hashes: keyed, stable across restarts, and a key required in production."""

from __future__ import annotations

import hashlib
import stat

import pytest

from cds_hooks.config import ConfigError, load_settings
from cds_hooks.store.pseudonym import hash_patient_id, key_file_path, load_patient_key


def settings(tmp_path, **values):
    values.setdefault("database_url", f"sqlite:///{tmp_path / 'lipcds.db'}")
    return load_settings({"env": "test", "auth_mode": "disabled", **values}, environ={})


def test_without_a_key_one_is_generated_kept_private_and_reused(tmp_path):
    s = settings(tmp_path)
    first = load_patient_key(s)
    path = key_file_path(s)
    assert path == tmp_path / "patient-id.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_patient_key(s) == first  # a restart hashes the same way


def test_the_hash_is_keyed(tmp_path):
    a = hash_patient_id(b"k" * 32, "patient-1")
    assert a != hash_patient_id(b"j" * 32, "patient-1")
    assert a != hashlib.sha256(b"patient-1").hexdigest()
    assert len(a) == 64


def test_production_requires_a_key():
    production = load_settings(
        {"env": "production", "trusted_issuers": [], "public_base_url": "https://cds.example.org"},
        environ={},
    )
    with pytest.raises(ConfigError, match="LIPCDS_PATIENT_ID_KEY"):
        load_patient_key(production)


def test_a_short_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least"):
        load_patient_key(settings(tmp_path, patient_id_key="short"))


def test_a_configured_key_is_used_as_given(tmp_path):
    key = "0123456789abcdef0123456789abcdef"
    assert load_patient_key(settings(tmp_path, patient_id_key=key)) == key.encode()
    assert not (tmp_path / "patient-id.key").exists()
