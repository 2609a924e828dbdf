"""The service's shared parts: settings read once when the app is built (at process start, never at import), one
metadata DB and object store per process, no state between requests (replicas are interchangeable)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request

from mm_pipelines.config import Settings
from mm_pipelines.identity.development import DevelopmentIssuer, local_secret
from mm_pipelines.identity.tokens import HttpKeySource, TokenVerifier, http_fetch
from mm_pipelines.moderation.service import BuiltinScanner
from mm_pipelines.platform import Platform


@dataclass
class Service:
    settings: Settings

    @cached_property
    def platform(self) -> Platform:
        return Platform(self.settings)

    @contextmanager
    def transaction(self):
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.platform.metadata.connect() as conn, conn.transaction():
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
        configured = {"upload": self.settings.api_signing_key, "sentinelnet": self.settings.sentinelnet_webhook_secret}[
            name
        ]
        return configured.get_secret_value().encode() if configured else local_secret(self.settings, name)

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
