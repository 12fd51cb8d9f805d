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


def test_settings_decide_the_pages() -> None:
    from cds_hooks.config import ConfigError, load_settings
    from cds_hooks.ui.wiring import access_from_settings

    def access(environ: dict[str, str]) -> UiAccess:
        base = {"LIPCDS_PUBLIC_BASE_URL": "https://cds.example.org"}
        return access_from_settings(load_settings(environ={**base, **environ}))

    assert access({"LIPCDS_ENV": "development"}).enabled
    assert not access({"LIPCDS_ENV": "development", "LIPCDS_UI_PAGES": "false"}).enabled
    assert not access({}).enabled  # production: off unless turned on
    on = access({"LIPCDS_UI_PAGES": "true", "LIPCDS_UI_CREDENTIAL": "x" * 20})
    assert on.enabled and on.credential == "x" * 20
    with pytest.raises(ConfigError, match="needs LIPCDS_UI_CREDENTIAL"):
        access({"LIPCDS_UI_PAGES": "true"})
    with pytest.raises(ConfigError, match="at least 16"):
        access({"LIPCDS_UI_PAGES": "true", "LIPCDS_UI_CREDENTIAL": "short"})
    with pytest.raises(ConfigError, match="LIPCDS_UI_PAGES"):
        access({"LIPCDS_UI_PAGES": "maybe"})
