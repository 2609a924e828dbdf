"""A fake SentinelNet as a separate HTTP server: POST /v1/scans (bearer API key, Idempotency-Key) answers 202, then
delivers the verdict to the scan's callback URL as SentinelNet does, signed (HMAC-SHA256 over "<t>.<body>"), and
delivers it twice, as at-least-once webhooks do. POST /_control {"outage": true|false} makes it answer 503.

    python -m tests.fakes.sentinelnet --port 18491 --api-key KEY --secret WEBHOOK_SECRET

Verdicts: a title containing "defamatory" is blocked (defamation); a filename containing "pii" is quarantined
(pii); anything else passes.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import ThreadingHTTPServer

import httpx

from tests.fakes.http import JsonHandler

STATE = {"outage": False, "scans": {}, "deliveries": 0}
LOCK = threading.Lock()


def _verdict(asset: dict) -> tuple[str, list[str], list[dict]]:
    if "defamatory" in str(asset.get("title", "")).lower():
        return "block", ["defamation"], [{"kind": "claim", "where": "title", "match": "defamatory"}]
    if "pii" in str(asset.get("filename", "")).lower():
        return "quarantine", ["pii"], [{"kind": "id_document", "where": "file", "match": "passport"}]
    return "pass", [], []


def _deliver(secret: bytes, scan: dict) -> None:
    time.sleep(0.2)
    verdict, categories, evidence = _verdict(scan["asset"])
    body = json.dumps(
        {
            "delivery_id": f"snd_{uuid.uuid4().hex[:16]}",
            "scan_id": scan["scan_id"],
            "verdict": verdict,
            "categories": categories,
            "evidence": evidence,
        }
    ).encode()
    for _ in range(2):
        t = int(time.time())
        signature = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        try:
            httpx.post(
                scan["callback_url"],
                content=body,
                headers={"Content-Type": "application/json", "X-SentinelNet-Signature": f"t={t},v1={signature}"},
                timeout=10,
            )
            with LOCK:
                STATE["deliveries"] += 1
        except httpx.HTTPError:
            pass


class Handler(JsonHandler):
    api_key, secret = "", b""

    def do_GET(self) -> None:
        with LOCK:
            self._send(
                200, {"outage": STATE["outage"], "scans": len(STATE["scans"]), "deliveries": STATE["deliveries"]}
            )

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/_control":
            with LOCK:
                STATE["outage"] = bool(body.get("outage"))
            self._send(200, {"outage": STATE["outage"]})
            return
        if self.path != "/v1/scans":
            self._send(404, {"error": "not_found"})
            return
        if STATE["outage"]:
            self._send(503, {"error": "unavailable"}, {"Retry-After": "15"})
            return
        if self.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(401, {"error": "invalid_api_key"})
            return
        key = self.headers.get("Idempotency-Key") or body["scan_id"]
        with LOCK:
            seen = key in STATE["scans"]
            STATE["scans"].setdefault(key, {"id": f"sn_{uuid.uuid4().hex[:12]}", **body})
            scan = STATE["scans"][key]
        if not seen:  # a retried submission is acknowledged again, scanned once
            threading.Thread(target=_deliver, args=(self.secret, scan), daemon=True).start()
        self._send(202, {"id": scan["id"], "status": "queued"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    Handler.api_key, Handler.secret = args.api_key, args.secret.encode()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
