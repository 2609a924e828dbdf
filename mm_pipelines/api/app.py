"""The app factory: `mm api` and the tests build the app from settings read at that moment."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from mm_pipelines.api import problems
from mm_pipelines.api.auth import check_every_route_declares_access
from mm_pipelines.api.routes import assets, creators, identity, moderation, payouts, ui, webhooks
from mm_pipelines.api.service import Service
from mm_pipelines.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    service = Service(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Market & Media asset service",
        version="1",
        description="Assets, uploads, moderation (SentinelNet, CommandPad review) and payout approvals. "
        "Every route names the roles it allows; errors are RFC 9457 problem documents.",
    )
    app.state.service = service
    app.state.verifier = service.verifier
    problems.install(app)
    for module in (identity, assets, moderation, creators, payouts, webhooks, ui):
        app.include_router(module.router)
    check_every_route_declares_access(app.routes)
    return app
