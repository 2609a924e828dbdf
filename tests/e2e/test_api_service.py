"""`mm api` served as production serves it (uvicorn, two workers) with tokens from `mm token`: a real HTTP client
uploads an asset on the embedded platform, the OpenAPI document is served, and bad configuration is one line."""

from __future__ import annotations

import hashlib
import os
import subprocess

import httpx
import pytest

from tests.conftest import free_port, serving
from tests.e2e.conftest import MM

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(mm_home):
    port = free_port()
    env = {**os.environ, "MM_API_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    with serving([MM, "api", "--port", str(port), "--workers", "2"], port, "/health", env) as url:
        yield url, env


def _token(env, *args) -> str:
    done = subprocess.run([MM, "token", *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_an_editor_uploads_through_the_served_api_with_a_token_from_mm_token(served):
    url, env = served
    editor = {"Authorization": f"Bearer {_token(env, '--sub', 'erin', '--role', 'Editor')}"}
    assert httpx.get(f"{url}/me", headers=editor).json()["roles"] == ["Editor"]
    data = b"caption for the spring campaign\n"
    created = httpx.post(
        f"{url}/assets",
        headers=editor,
        json={
            "title": "Spring",
            "license": {
                "licensor": "ACME",
                "territories": ["WW"],
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
                "usage": ["organic"],
            },
            "file": {
                "filename": "caption.txt",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": "text/plain",
            },
        },
    )
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]
    assert upload["url"].startswith(url + "/uploads/")
    assert httpx.put(upload["url"], content=data, headers=upload["headers"]).status_code == 204
    asset_id = created.json()["asset"]["asset_id"]
    done = httpx.post(f"{url}/assets/{asset_id}/versions/1/complete", headers=editor)
    assert done.status_code == 200 and done.json()["version"]["moderation"] == "passed"
    schema = httpx.get(f"{url}/openapi.json").json()
    assert "/assets/{asset_id}/versions/{version}/complete" in schema["paths"]
    assert httpx.get(f"{url}/docs").status_code == 200


def test_a_rotated_development_key_keeps_earlier_tokens_valid_on_running_workers(served):
    url, env = served
    before = _token(env, "--sub", "mo", "--role", "Moderator")
    after = _token(env, "--rotate", "--sub", "mo", "--role", "Moderator")
    for token in (before, after, after, before):  # both workers, both keys
        assert httpx.get(f"{url}/moderation/queue", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_mm_token_refuses_in_production_and_mm_api_names_the_missing_settings(mm):
    production = mm("token", "--sub", "a", "--role", "Editor", check=False)
    assert production.returncode == 0
    env_prod = {**os.environ, "MM_ENVIRONMENT": "production"}
    refused = subprocess.run([MM, "token", "--sub", "a"], env=env_prod, capture_output=True, text=True)
    assert refused.returncode == 1 and "MM_OIDC_ISSUER" in refused.stderr
    served = subprocess.run([MM, "api"], env=env_prod, capture_output=True, text=True, timeout=60)
    assert served.returncode == 1 and "needs MM_OIDC_ISSUER, MM_API_SIGNING_KEY" in served.stderr
    assert "Traceback" not in served.stderr
