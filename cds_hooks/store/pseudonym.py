"""Keyed hashes of patient ids: the store links a patient's cards without holding the id.

HMAC-SHA256 with `LIPCDS_PATIENT_ID_KEY`. Production refuses to start without a key.
In development and test a random key is generated once and kept in a file (mode 0600)
so hashes stay the same across restarts: beside the SQLite database when the store is
a SQLite file, otherwise in `var/`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from cds_hooks.config import ConfigError, Settings

KEY_FILE_NAME = "patient-id.key"
MIN_KEY_LENGTH = 16


def key_file_path(settings: Settings) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / KEY_FILE_NAME
    return Path("var").resolve() / KEY_FILE_NAME


def load_patient_key(settings: Settings) -> bytes:
    """The HMAC key: the setting, else (outside production) the kept or a new key file."""
    if settings.patient_id_key:
        if len(settings.patient_id_key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"LIPCDS_PATIENT_ID_KEY: must be at least {MIN_KEY_LENGTH} characters"
            )
        return settings.patient_id_key.encode("utf-8")
    if settings.is_production:
        raise ConfigError(
            "LIPCDS_PATIENT_ID_KEY: required in production (the key of the patient-id "
            "hashes in the store); generate one with `python -c 'import secrets; "
            "print(secrets.token_hex(32))'` and keep it with the database backups"
        )
    path = key_file_path(settings)
    try:
        return path.read_text(encoding="ascii").strip().encode("ascii")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # Write a private temporary file, then link it into place: the link fails if another
    # worker got there first, and a reader never sees a half-written key.
    tmp = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip().encode("ascii")
    finally:
        tmp.unlink()
    return key.encode("ascii")


def hash_patient_id(key: bytes, patient_id: str) -> str:
    """Hex HMAC-SHA256 of the patient id."""
    return hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
