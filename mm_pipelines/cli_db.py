"""`mm db`: the metadata DB's schema revision; upgrading a configured server is a deploy step."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.table import Table

from mm_pipelines.cli_support import UserError, console, open_platform, say

db_app = typer.Typer(help="The metadata DB (Postgres): schema revision and migrations.", no_args_is_help=True)

T = TypeVar("T")


def _target() -> str:
    from mm_pipelines.config import redact

    settings = open_platform().settings
    return (
        redact(settings.postgres_dsn) if settings.postgres_dsn else f"embedded Postgres ({settings.home / 'postgres'})"
    )


def _on_db(action: Callable[[], T]) -> T:
    """Run `action`, turning an unreachable server into one line that says what to check."""
    import psycopg

    try:
        return action()
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot reach the metadata DB {_target()}: {first}",
            "check MM_POSTGRES_DSN (and PGPASSWORD) and that the server is up",
        ) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration this code has, under a lock, in one transaction (safe to run twice or at once)."""
    before, after = _on_db(open_platform().metadata.upgrade)
    if before == after:
        say(f"metadata DB {_target()} is already at revision {after} (head)")
    else:
        say(f"metadata DB {_target()} upgraded from revision {before or 'none'} to {after} (head)")


@db_app.command("current")
def db_current() -> None:
    """The revision the metadata DB is at, and the one this code needs."""
    from mm_pipelines.stores.postgres import head_revision

    current, head = _on_db(open_platform().metadata.revision), head_revision()
    state = "up to date" if current == head else "run `mm db upgrade`"
    say(f"metadata DB {_target()}: revision {current or 'none'}, this code needs {head}: {state}")


@db_app.command("history")
def db_history() -> None:
    """Every migration, oldest first, marking the one the metadata DB is at."""
    from mm_pipelines.stores.postgres import history

    current = _on_db(open_platform().metadata.revision)
    table = Table(title=f"Migrations of the metadata DB {_target()}")
    for name in ("revision", "revises", "description", ""):
        table.add_column(name)
    for r in history():
        table.add_row(
            r.revision,
            r.down_revision or "",
            r.message.splitlines()[0] if r.message else "",
            "← current" if r.revision == current else "",
        )
    console.print(table)
