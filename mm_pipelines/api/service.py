"""The service's shared parts: settings read once when the app is built (at process start, never at import), one
metadata DB and object store per process, no state between requests (replicas are interchangeable)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from fastapi import Request

from mm_pipelines.audit.chain import audited
from mm_pipelines.config import Settings
from mm_pipelines.identity.development import DevelopmentIssuer, OAuthError, local_secret
from mm_pipelines.identity.login import LoginError
from mm_pipelines.identity.tokens import HttpKeySource, TokenVerifier, http_fetch
from mm_pipelines.moderation.sentinelnet import SentinelNetClient
from mm_pipelines.moderation.service import BUILTIN, SENTINELNET, BuiltinScanner
from mm_pipelines.platform import Platform
from mm_pipelines.royalties.batches import PayoutSettings

# Connections per worker process: uvicorn runs sync routes on a 40-thread pool; a request holds one for its transaction.
POOL_SIZE = 10


@dataclass
class Service:
    settings: Settings
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _connections: object = field(default=None, repr=False)
    _secrets: dict[str, bytes] = field(default_factory=dict, repr=False)

    @cached_property
    def platform(self) -> Platform:
        return Platform(self.settings)

    def _pool(self):
        if self._connections is None:
            with self._pool_lock:
                if self._connections is None:
                    from psycopg_pool import ConnectionPool

                    with self.platform.metadata.connect():  # upgrades the embedded DB, or refuses a stale one
                        pass
                    self._connections = ConnectionPool(
                        self.platform.metadata.dsn,
                        min_size=1,
                        max_size=POOL_SIZE,
                        kwargs={"connect_timeout": 10},
                        open=True,
                        name="mm-api",
                    )
        return self._connections

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()
            self._connections = None

    @contextmanager
    def transaction(self):
        """One transaction on a pooled connection: committed when the block ends, rolled back if it raises. Its audit
        records are written with the commit (audit.chain.audited), so requests hold the chain's lock only briefly."""
        with self._pool().connection() as conn, audited(conn):
            yield conn

    @cached_property
    def development_issuer(self) -> DevelopmentIssuer | None:
        return None if self.settings.oidc_issuer or self.settings.production else DevelopmentIssuer(self.settings)

    @cached_property
    def verifier(self) -> TokenVerifier:
        s = self.settings
        if self.development_issuer is not None:
            return self.development_issuer.verifier()
        source = HttpKeySource(s.oidc_issuer, http_fetch())
        return TokenVerifier(
            s.oidc_issuer.rstrip("/"), s.oidc_audience, s.oidc_roles_claim, s.oidc_clock_skew_seconds, source
        )

    def secret(self, name: str) -> bytes:
        """upload (signed upload URLs and UI sessions), sentinelnet (webhook HMAC), dev-issuer (its login codes);
        read once per process, not from a locked key file on every request."""
        if name not in self._secrets:
            configured = {
                "upload": self.settings.api_signing_key,
                "sentinelnet": self.settings.sentinelnet_webhook_secret,
                "dev-issuer": None,
            }[name]
            self._secrets[name] = (
                configured.get_secret_value().encode() if configured else local_secret(self.settings, name)
            )
        return self._secrets[name]

    @cached_property
    def payout_settings(self) -> PayoutSettings:
        return PayoutSettings.from_settings(self.settings)

    def discovery(self) -> Mapping[str, object]:
        """The issuer's discovery document: where the UI sends people to log in and trades their codes."""
        if self.development_issuer is not None:
            return self.development_issuer.discovery()
        return self.verifier.source.discovery()

    def exchange_code(self, form: dict) -> Mapping[str, object]:
        """The token endpoint's answer to an authorization code (the development issuer's is called in process)."""
        if self.development_issuer is not None:
            try:
                return self.development_issuer.exchange(self.secret("dev-issuer"), form)
            except OAuthError as e:
                raise LoginError(f"the sign-in could not be completed ({e.error}: {e})") from None
        import httpx

        response = httpx.post(str(self.discovery()["token_endpoint"]), data=form, timeout=10)
        if response.status_code != 200:
            try:
                error = response.json()
            except ValueError:
                error = {"error": f"HTTP {response.status_code}"}
            raise LoginError(
                f"the identity provider refused the code ({error.get('error')}: {error.get('error_description', '')})"
            )
        return response.json()

    @property
    def scanner_name(self) -> str:
        return SENTINELNET if self.settings.sentinelnet_url else BUILTIN

    @property
    def verdict_callback(self) -> str:
        return self.settings.api_public_url.rstrip("/") + "/webhooks/sentinelnet"

    @cached_property
    def sentinelnet(self) -> SentinelNetClient | None:
        s = self.settings
        if not s.sentinelnet_url:
            return None
        return SentinelNetClient(
            s.sentinelnet_url, s.sentinelnet_api_key.get_secret_value() if s.sentinelnet_api_key else ""
        )

    @cached_property
    def scanner(self) -> BuiltinScanner:
        return BuiltinScanner(
            self.platform.objects,
            self.secret("sentinelnet"),
            self.settings.moderation_blocked_terms,
            self.settings.home / "moderation" / "image-blocklist.txt",
        )


def service(request: Request) -> Service:
    return request.app.state.service
