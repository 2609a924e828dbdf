"""`mm api` (the asset service) and `mm token` (tokens from the development issuer)."""

from __future__ import annotations

from typing import Annotated

import typer

from mm_pipelines.cli_support import UserError, err, open_platform, say


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8600,
    workers: Annotated[int, typer.Option(help="Worker processes (production runs several).")] = 1,
) -> None:
    """Serve the API and its OpenAPI documentation (/docs) with uvicorn."""
    import uvicorn

    settings = open_platform().settings  # validated now, so a bad setting is one line, not a worker traceback
    if settings.oidc_issuer is None:
        say("identity: the development issuer (make tokens with `mm token --sub NAME --role ROLE`)")
    say(f"asset service on http://{host}:{port} (OpenAPI at /docs), {workers} worker(s)")
    uvicorn.run(
        "mm_pipelines.api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )


def token(
    sub: Annotated[str, typer.Option("--sub", help="Whom the token is for (its subject).")] = "",
    role: Annotated[list[str] | None, typer.Option("--role", help="A role; repeat for several.")] = None,
    ttl: Annotated[int, typer.Option(help="Seconds until it expires.")] = 3600,
    single_factor: Annotated[
        bool, typer.Option("--single-factor", help="A login without a second factor (amr pwd only).")
    ] = False,
    rotate: Annotated[bool, typer.Option("--rotate", help="Sign with a new key from now on.")] = False,
) -> None:
    """Print an access token from the development issuer (off in production and beside MM_OIDC_ISSUER)."""
    from mm_pipelines.config import ConfigError
    from mm_pipelines.identity.development import DevelopmentIssuer
    from mm_pipelines.identity.roles import role_named

    try:
        issuer = DevelopmentIssuer(open_platform().settings)
        if rotate:
            err.print(f"the development issuer signs with key {issuer.rotate()} from now on")
            if not sub:
                return
        roles = [role_named(r) for r in role or []]
        print(issuer.issue(sub, roles, amr=("pwd",) if single_factor else ("pwd", "otp"), ttl_s=ttl))
    except ConfigError as e:
        raise UserError(str(e), "get a token from your identity provider instead") from None
    except ValueError as e:
        raise UserError(str(e), "e.g. mm token --sub alice --role Editor") from None
