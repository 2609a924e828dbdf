"""A fake HashiCorp Vault as a separate HTTP server, speaking the KV secrets engine version 2 API at one mount:
POST/PUT /v1/<mount>/data/<path> {"data": {...}, "options": {"cas": N}} writes the next version and answers its
metadata; GET /v1/<mount>/data/<path>?version=N reads one (the latest without it). As Vault does: a wrong or missing
X-Vault-Token is 403 {"errors": ["permission denied"]}, an unknown path or version 404 {"errors": []}, another mount
404 "no handler for route", and only the newest --max-versions (10, Vault's default) versions of a path are kept.
POST /_control {"sealed": true|false} makes it answer 503 "Vault is sealed"; GET /v1/sys/health answers when up.

    python -m tests.fakes.vault_kv --port 18492 --token TOKEN [--mount secret] [--max-versions 10]
"""

from __future__ import annotations

import argparse
import threading
import uuid
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.http import JsonHandler

STATE: dict = {"sealed": False, "secrets": {}}
LOCK = threading.Lock()


def _envelope(data: dict | None) -> dict:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    }


class Handler(JsonHandler):
    token, mount, max_versions = "", "secret", 10

    def _secret_path(self) -> str | None:
        """The secret's path for a request to this mount's data endpoint; answers for anything else."""
        parts = urlsplit(self.path)
        if parts.path == "/v1/sys/health":
            self._send(200, {"initialized": True, "sealed": STATE["sealed"], "standby": False})
            return None
        if STATE["sealed"]:
            self._send(503, {"errors": ["Vault is sealed"]})
            return None
        if self.headers.get("X-Vault-Token") != self.token:
            self._send(403, {"errors": ["permission denied"]})
            return None
        prefix = f"/v1/{self.mount}/data/"
        if not parts.path.startswith(prefix) or parts.path == prefix:
            route = parts.path.removeprefix("/v1/")
            self._send(404, {"errors": [f'no handler for route "{route}". route entry not found.']})
            return None
        return "/".join(unquote(p) for p in parts.path.removeprefix(prefix).split("/"))

    def _write(self) -> None:
        path = self._secret_path()
        if path is None:
            return
        body = self._body()
        data = body.get("data")
        if not isinstance(data, dict):
            self._send(400, {"errors": ["no data provided"]})
            return
        with LOCK:
            versions = STATE["secrets"].setdefault(path, {})
            current = max(versions, default=0)
            cas = (body.get("options") or {}).get("cas")
            if cas is not None and cas != current:
                self._send(400, {"errors": ["check-and-set parameter did not match the current version"]})
                return
            metadata = {
                "created_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": current + 1,
            }
            versions[current + 1] = (dict(data), metadata)
            for old in sorted(versions)[: -self.max_versions]:  # Vault deletes the oldest beyond max_versions
                del versions[old]
        self._send(200, _envelope(metadata))

    do_PUT = _write

    def do_POST(self) -> None:
        if self.path == "/_control":
            with LOCK:
                STATE["sealed"] = bool(self._body().get("sealed"))
            self._send(200, {"sealed": STATE["sealed"]})
            return
        self._write()

    def do_GET(self) -> None:
        path = self._secret_path()
        if path is None:
            return
        asked = parse_qs(urlsplit(self.path).query).get("version", ["0"])[0]
        with LOCK:
            versions = STATE["secrets"].get(path, {})
            number = int(asked) if asked.isdigit() and int(asked) > 0 else max(versions, default=0)
            found = versions.get(number)
        if found is None:
            self._send(404, {"errors": []})
            return
        data, metadata = found
        self._send(200, _envelope({"data": data, "metadata": metadata}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--mount", default="secret")
    parser.add_argument("--max-versions", type=int, default=10)
    args = parser.parse_args()
    Handler.token, Handler.mount, Handler.max_versions = args.token, args.mount, args.max_versions
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
