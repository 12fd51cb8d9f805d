import base64

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from cds_hooks.ui.access import UiAccess, same_origin_post


def request_with(headers: dict[str, str], method: str = "GET") -> Request:
    return Request(EnvironBuilder(method=method, base_url="http://cds.local", headers=headers)
                   .get_environ())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_credential_needed_when_none_is_set() -> None:
    assert UiAccess(enabled=True).allows(request_with({}))


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (basic("anyone", "s3cret-ui"), True),
        ("Bearer s3cret-ui", True),
        (basic("anyone", "wrong"), False),
        ("Bearer wrong", False),
        ("Basic not-base64!", False),
        ("Basic " + base64.b64encode(b"no-colon").decode(), False),
        ("Digest s3cret-ui", False),
        ("", False),
    ],
)
def test_credential(header: str, allowed: bool) -> None:
    access = UiAccess(enabled=True, credential="s3cret-ui")
    headers = {"Authorization": header} if header else {}
    assert access.allows(request_with(headers)) is allowed


def test_repr_hides_the_credential() -> None:
    assert "s3cret" not in repr(UiAccess(enabled=True, credential="s3cret-ui"))


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": "http://cds.local"}, True),
        ({"Origin": "http://evil.example"}, False),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "http://cds.local"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Referer": "http://cds.local/ui/"}, True),
        ({"Referer": "http://evil.example/ui/"}, False),
        ({"Origin": "null"}, False),
        ({}, True),  # not a browser: nothing to forge
    ],
)
def test_same_origin_post(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin_post(request_with(headers, "POST")) is allowed
