"""The asset service on real backends: a fresh Postgres database at head, the embedded or the S3 object store,
and the development issuer for tokens (the OIDC provider's own tests use the real provider)."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import dsn_url, require_service


@dataclass
class Api:
    app: object  # fastapi.FastAPI
    client: object  # fastapi.testclient.TestClient
    issuer: object  # DevelopmentIssuer, None behind a real provider
    settings: object

    def headers(self, subject: str, *roles, amr=("pwd", "otp")) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(subject, roles, amr=amr)}"}

    def create(self, subject: str, role, data: bytes, content_type="text/plain", title="Spring promo", **fields):
        body = {
            "title": title,
            "license": {
                "licensor": "ACME Stock",
                "territories": ["DE", "FR"],
                "starts_on": "2026-01-01",
                "ends_on": "2027-12-31",
                "usage": ["organic", "paid"],
            },
            "file": {
                "filename": "promo.txt",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": content_type,
            },
            **fields,
        }
        return self.client.post("/assets", json=body, headers=self.headers(subject, role))

    def put(self, upload: dict, data: bytes):
        """PUT to an upload target: the API's own (in process) or a presigned S3 URL (over HTTP)."""
        import httpx

        prefix = self.settings.api_public_url.rstrip("/")
        if upload["url"].startswith(prefix):
            return self.client.put(upload["url"].removeprefix(prefix), content=data, headers=upload["headers"])
        return httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=30)


def _api(tmp_path, monkeypatch, postgres_dsn, object_store: str, **env) -> Api:
    from fastapi.testclient import TestClient

    from mm_pipelines.api.app import create_app
    from mm_pipelines.config import Settings
    from mm_pipelines.identity.development import DevelopmentIssuer

    values = {
        "MM_HOME": str(tmp_path / "mm"),
        "MM_POSTGRES_DSN": dsn_url(postgres_dsn),
        "MM_OBJECT_STORE": object_store,
        **env,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    app = create_app(settings)
    issuer = None if settings.oidc_issuer else DevelopmentIssuer(settings)
    return Api(app, TestClient(app, raise_server_exceptions=False), issuer, settings)


@pytest.fixture
def api_factory(tmp_path, monkeypatch, postgres_dsn):
    """Build the service with extra settings; each one's connection pool is closed before its database is dropped."""
    built = []

    def build(object_store: str | None = None, **env) -> Api:
        built.append(_api(tmp_path, monkeypatch, postgres_dsn, object_store or f"file://{tmp_path / 'objects'}", **env))
        return built[-1]

    yield build
    for api in built:
        api.app.state.service.close()


@pytest.fixture
def api(api_factory) -> Api:
    """The service on real Postgres with the embedded object store (uploads go to the API's own upload URL)."""
    return api_factory()


@pytest.fixture
def s3_api(api_factory, s3_store) -> Api:
    """The service on real Postgres and the real S3 server (uploads go to presigned URLs)."""
    return api_factory(s3_store.url)


# --- an S3 server that enforces Object Lock (versitygw) ---------------------------------------------------


@pytest.fixture(scope="session")
def lock_s3():
    """A boto3 client for the Object Lock-enforcing S3 server."""
    import boto3
    from botocore.config import Config

    endpoint = require_service(
        "The Object Lock S3 server (versitygw)",
        os.environ.get("MM_TEST_LOCK_S3_ENDPOINT"),
        "scripts/services/versitygw.sh start and export MM_TEST_LOCK_S3_ENDPOINT=http://127.0.0.1:18334",
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ.get("MM_TEST_LOCK_S3_ACCESS_KEY", "mmlock"),
        aws_secret_access_key=os.environ.get("MM_TEST_LOCK_S3_SECRET_KEY", "mmlock-secret"),
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


@pytest.fixture
def bucket(lock_s3):
    """A fresh bucket with Object Lock (and so versioning) on; emptied afterwards as far as the locks allow."""
    name = f"mm-lock-{uuid.uuid4().hex[:12]}"
    lock_s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    from botocore.exceptions import ClientError

    try:
        listing = lock_s3.list_object_versions(Bucket=name)
        for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            try:  # GOVERNANCE and released holds go; COMPLIANCE stays until it expires
                lock_s3.put_object_legal_hold(
                    Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"], LegalHold={"Status": "OFF"}
                )
            except ClientError:
                pass
            try:
                lock_s3.delete_object(
                    Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"], BypassGovernanceRetention=True
                )
            except ClientError:
                pass
        lock_s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


def assert_refused(call, **kwargs) -> None:
    """The call fails as AWS fails it for a locked version: 403 AccessDenied."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --- a fake Vault (KV secrets engine version 2): the production PII vault --------------------------------------

VAULT_TOKEN = "hvs.test-pii-token"


@pytest.fixture
def vault_kv():
    """A fake Vault KV v2 server (a separate process) with one mount, `secret`; its base URL."""
    import sys

    from tests.conftest import free_port, serving

    port = free_port()
    command = [sys.executable, "-m", "tests.fakes.vault_kv", "--port", str(port), "--token", VAULT_TOKEN]
    with serving(command, port, "/v1/sys/health") as url:
        yield url


def found_in_postgres(conn, values) -> list[str]:
    """`table.column: value` for every text, JSON or array column of the database (the audit log's details too)
    that holds any of `values`: personal data must reach Postgres only as pointers."""
    columns = conn.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema()
             AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'USER-DEFINED')
           ORDER BY table_name, column_name"""
    ).fetchall()
    assert columns, "no columns to look in"
    found = []
    for table, column in columns:
        for value in values:
            query = f'SELECT count(*) FROM "{table}" WHERE position(%s in "{column}"::text) > 0'
            if conn.execute(query, (value,)).fetchone()[0]:
                found.append(f"{table}.{column}: {value}")
    return found
