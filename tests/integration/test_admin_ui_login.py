"""The admin UI's login on the development issuer, step by step: authorization code with PKCE, state, the session
cookie's flags, and what happens to forged or replayed steps."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _sign_in(client, subject="mo", roles=("Moderator",), otp="123456", first="/ui/moderation"):
    """Follow the login from page `first` as a browser would; the callback's response and the login form's fields."""
    start = client.get(first)
    login = start if first.startswith("/ui/login") else client.get(start.headers["location"])
    form_page = client.get(_local(login.headers["location"]))
    fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form_page.text))
    code = client.post("/dev-issuer/authorize", data={**fields, "subject": subject, "roles": list(roles), "otp": otp})
    return client.get(_local(code.headers["location"])), fields


@pytest.fixture
def browser(api):
    return TestClient(api.app, base_url="https://testserver", follow_redirects=False)


def test_a_login_sets_a_secure_http_only_same_site_session_and_returns_to_the_page_asked_for(browser):
    callback, fields = _sign_in(browser)
    assert fields["code_challenge_method"] == "S256" and fields["code_challenge"]
    assert callback.status_code == 303 and callback.headers["location"] == "/ui/moderation"
    cookie = callback.headers["set-cookie"]
    assert "mm_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert browser.get("/ui/moderation").status_code == 200


def test_a_forged_state_a_replayed_code_and_a_wrong_verifier_are_refused(browser, api):
    start = browser.get("/ui/login")
    authorize = urlsplit(start.headers["location"])
    forged = browser.get("/ui/callback?code=x&state=not-the-one")
    assert forged.status_code == 400 and "state does not match" in forged.text
    # The token endpoint checks the PKCE verifier against the challenge the code carries.
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    code_redirect = browser.post("/dev-issuer/authorize", data={**query, "subject": "mo", "otp": "123456"})
    code = parse_qs(urlsplit(code_redirect.headers["location"]).query)["code"][0]
    wrong = browser.post(
        "/dev-issuer/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": query["client_id"],
            "redirect_uri": query["redirect_uri"],
            "code_verifier": "guessed",
        },
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_no_open_redirects_and_no_foreign_redirect_uris(browser):
    start = browser.get("/ui/login?after=https://evil.example/")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    elsewhere = browser.get(
        "/dev-issuer/authorize?"
        + "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "redirect_uri")
        + "&redirect_uri=https://evil.example/cb"
    )
    assert elsewhere.status_code == 422 and "redirect_uri must be" in elsewhere.json()["detail"]
    callback, _ = _sign_in(browser, first="/ui/login?after=https://evil.example/")
    assert callback.headers["location"] == "/ui/assets"


def test_a_login_without_a_second_factor_gets_no_session(browser):
    callback, _ = _sign_in(browser, otp="")
    assert callback.status_code == 403 and "second factor" in callback.text
    assert "mm_session" not in callback.headers.get("set-cookie", "")
