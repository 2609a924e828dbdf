"""A fake KYC vendor as a separate HTTP server, speaking a vendor's REST shape: bearer API key, POST /v1/checks
(202, an id), GET /v1/checks/{id} (pending, then approved or declined with an evidence URL), 503 with Retry-After
during an outage. Tests switch the outage on and off with POST /_control {"outage": true|false}.

    python -m tests.fakes.kyc_provider --port 18490 --api-key KEY

A check whose external_id contains "decline" is declined; any other is approved on the second look. GET /_control
also lists the subjects the checks were asked about (pointers to the person's details, never the details).
"""

from __future__ import annotations

import argparse
import threading
import uuid
from http.server import ThreadingHTTPServer

from tests.fakes.http import JsonHandler

STATE = {"outage": False, "checks": {}, "requests": 0}
LOCK = threading.Lock()


class Handler(JsonHandler):
    api_key = ""

    def _guard(self) -> bool:
        with LOCK:
            STATE["requests"] += 1
            outage = STATE["outage"]
        if outage:
            self._send(503, {"error": "service_unavailable"}, {"Retry-After": "30"})
            return False
        if self.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(401, {"error": "invalid_api_key"})
            return False
        return True

    def do_POST(self) -> None:
        if self.path == "/_control":
            with LOCK:
                STATE["outage"] = bool(self._body().get("outage"))
            self._send(200, {"outage": STATE["outage"]})
            return
        if self.path != "/v1/checks" or not self._guard():
            if self.path != "/v1/checks":
                self._send(404, {"error": "not_found"})
            return
        body = self._body()
        check = {
            "id": f"chk_{uuid.uuid4().hex[:16]}",
            "external_id": body.get("external_id", ""),
            "subject": body.get("subject", ""),
            "looks": 0,
        }
        with LOCK:
            STATE["checks"][check["id"]] = check
        self._send(202, {"id": check["id"], "status": "pending"})

    def do_GET(self) -> None:
        if self.path == "/_control":
            with LOCK:
                self._send(
                    200,
                    {
                        "outage": STATE["outage"],
                        "requests": STATE["requests"],
                        "checks": len(STATE["checks"]),
                        "subjects": sorted(c["subject"] for c in STATE["checks"].values()),
                    },
                )
            return
        if not self.path.startswith("/v1/checks/") or not self._guard():
            if not self.path.startswith("/v1/checks/"):
                self._send(404, {"error": "not_found"})
            return
        with LOCK:
            check = STATE["checks"].get(self.path.rsplit("/", 1)[1])
            if check is not None:
                check["looks"] += 1
        if check is None:
            self._send(404, {"error": "no_such_check"})
        elif check["looks"] < 2:
            self._send(200, {"id": check["id"], "status": "pending"})
        else:
            status = "declined" if "decline" in check["external_id"] else "approved"
            self._send(
                200,
                {"id": check["id"], "status": status, "evidence_url": f"https://kyc.example/evidence/{check['id']}"},
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    Handler.api_key = args.api_key
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
