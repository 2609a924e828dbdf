"""Start or stop a real PostgreSQL 16 server (from the pgserver wheel) for tests and development.

Usage: postgres.py start|stop|status|dsn. The server listens on a Unix socket in its state folder
(no TCP port to clash with); `dsn` prints the connection string tests use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("MM_SERVICES_DIR", ROOT / ".mm" / "services")) / "postgres"
PGDATA = STATE / "pgdata"
DSN_FILE = STATE / "dsn"


def start() -> None:
    import pgserver

    server = pgserver.get_server(PGDATA, cleanup_mode=None)  # keep running after this process exits
    dsn = server.get_uri()
    DSN_FILE.write_text(dsn)
    print(f"postgres: started ({dsn})")


def stop() -> None:
    from pgserver._commands import pg_ctl

    if not (PGDATA / "postmaster.pid").exists():
        print("postgres: not running")
        return
    import pgserver

    server = pgserver.get_server(PGDATA, cleanup_mode=None)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=server.system_user)
    DSN_FILE.unlink(missing_ok=True)
    print("postgres: stopped")


def status() -> int:
    running = (PGDATA / "postmaster.pid").exists()
    print(f"postgres: {'running' if running else 'not running'}")
    return 0 if running else 1


if __name__ == "__main__":
    STATE.mkdir(parents=True, exist_ok=True)
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "start":
        start()
    elif action == "stop":
        stop()
    elif action == "status":
        sys.exit(status())
    elif action == "dsn":
        print(DSN_FILE.read_text() if DSN_FILE.exists() else "")
    else:
        sys.exit("usage: postgres.py start|stop|status|dsn")
