"""Who may open the preview and governance pages.

The rule pages hold no patient data and are public. The card preview runs requests
through the service and records its cards; the governance page shows how clinicians
answered them. Both are on outside production. In production they are off unless turned
on, and then they need the credential: HTTP Basic authentication whose password is the
credential (any user name), or `Authorization: Bearer <credential>`.

A form that changes something (a preview run is recorded, feedback is written) must come
from the pages themselves: a cross-site POST is refused, since a browser sends Basic
credentials along with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Request


@dataclass(frozen=True)
class UiAccess:
    """Whether the preview and governance pages are served, and the credential they need."""

    enabled: bool
    credential: str | None = None

    def __repr__(self) -> str:  # never the credential
        shown = "set" if self.credential else "none"
        return f"UiAccess(enabled={self.enabled}, credential={shown})"

    def allows(self, request: Request) -> bool:
        """True when the request carries the credential, or none is needed."""
        if not self.credential:
            return True
        offered = _offered_secret(request.headers.get("Authorization", ""))
        return offered is not None and _same(offered, self.credential)


def _offered_secret(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep else None
    return None


def _same(offered: str, expected: str) -> bool:
    # Digests first: compare_digest's time then does not depend on the lengths.
    a = hashlib.sha256(offered.encode("utf-8")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


def same_origin_post(request: Request) -> bool:
    """False for a POST a browser sent from another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        referer = request.headers.get("Referer")
        if referer is None:
            return fetch_site is not None or origin is None  # non-browser clients
        origin = referer
    # The host alone: behind a proxy that ends TLS the scheme seen here may differ.
    return urlsplit(origin).netloc.lower() == request.host.lower()
