"""The asset service under load, served as production serves it (`mm api --workers N`, uvicorn worker processes)
on loopback, with embedded Postgres and the embedded object store: p50/p95/p99 of create-asset, complete-upload
(a small file, uploaded beforehand), SentinelNet webhook verdicts and the review-queue listing, each at rising
request rates. Open loop: requests are sent on a fixed schedule, so queueing in the service shows in the latency.

    python benchmarks/api.py [--rates 100,250,500] [--seconds 4] [--workers 2]

The goal is p95 under 50 ms at 500 requests/s for these metadata operations on this 2-core machine (the load
generator runs on the same two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

console = Console(width=150)
GOAL_MS = 50.0
DATA = b"A short caption for the benchmark.\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _asset_body(i: int) -> dict:
    return {
        "title": f"Benchmark asset {i}",
        "license": {
            "licensor": "ACME",
            "territories": ["DE"],
            "starts_on": "2026-01-01",
            "ends_on": "2027-01-01",
            "usage": ["paid"],
        },
        "file": {
            "filename": "caption.txt",
            "size": len(DATA),
            "sha256": hashlib.sha256(DATA).hexdigest(),
            "content_type": "text/plain",
        },
    }


async def _open_loop(make_request, count: int, rate: int) -> tuple[list[float], int, float]:
    """Send `count` requests at `rate`/s on a fixed schedule; (latencies in ms, errors, achieved rate)."""
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            started = time.perf_counter()
            try:
                response = await make_request(client, i)
                if response.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

        start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(i, start + i / rate) for i in range(count)))
        elapsed = time.perf_counter() - start
    return latencies, errors, count / elapsed


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of load per operation and rate")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    home = Path(tempfile.mkdtemp(prefix="mm-api-bench-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    env.update({"MM_HOME": str(home), "MM_API_PUBLIC_URL": url})
    os.environ.update({"MM_HOME": str(home), "MM_API_PUBLIC_URL": url})
    for k in [k for k in os.environ if k.startswith("MM_") and k not in env]:
        del os.environ[k]
    mm = str(Path(sys.executable).parent / "mm")
    server = subprocess.Popen(
        [mm, "api", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _run(url, rates, args.seconds, args.workers)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run(url: str, rates: list[int], seconds: float, workers: int) -> None:
    import psycopg

    from mm_pipelines.config import Settings
    from mm_pipelines.identity.development import DevelopmentIssuer, local_secret
    from mm_pipelines.identity.roles import Role
    from mm_pipelines.moderation import service as moderation
    from mm_pipelines.moderation import webhook
    from mm_pipelines.platform import Platform

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    settings = Settings.from_env()
    issuer = DevelopmentIssuer(settings)
    editor = {"Authorization": f"Bearer {issuer.issue('bench-editor', [Role.EDITOR])}"}
    moderator = {"Authorization": f"Bearer {issuer.issue('bench-moderator', [Role.MODERATOR])}"}
    secret = local_secret(settings, "sentinelnet")
    most = int(max(rates) * seconds)
    total = int(sum(rates) * seconds)
    console.print(f"service: {url}, {workers} uvicorn worker(s); preparing {total:,} uploaded versions …")

    # Uploaded versions to complete, and scans out at SentinelNet to deliver verdicts for (prepared over HTTP and
    # through the domain, outside the measurement).
    def prepare(n: int) -> list[str]:
        ids = []
        with httpx.Client(timeout=30) as client:
            for i in range(n):
                created = client.post(f"{url}/assets", json=_asset_body(i), headers=editor).json()
                client.put(created["upload"]["url"], content=DATA, headers=created["upload"]["headers"])
                ids.append(created["asset"]["asset_id"])
        return ids

    to_complete = prepare(total)
    to_scan = prepare(total)
    scans = []
    with psycopg.connect(Platform(settings).metadata.dsn) as conn:
        from mm_pipelines.media.records import complete_upload

        objects = Platform(settings).objects
        for asset_id in to_scan:
            complete_upload(conn, objects, asset_id, 1, "bench", "Editor")
            scans.append(moderation.submit_scan(conn, asset_id, 1, moderation.SENTINELNET, "bench", "Editor"))
    console.print(f"prepared; {most:,} requests at the highest rate per operation")

    queue = iter(range(10**9))
    completions, verdicts = iter(to_complete), iter(scans)

    async def create(client, i):
        return await client.post(f"{url}/assets", json=_asset_body(next(queue)), headers=editor)

    async def complete(client, i):
        return await client.post(f"{url}/assets/{next(completions)}/versions/1/complete", headers=editor)

    async def verdict(client, i):
        body = json.dumps({"delivery_id": f"bench-{i}-{time.time_ns()}", "scan_id": next(verdicts), "verdict": "pass"})
        raw = body.encode()
        headers = {webhook.SIGNATURE_HEADER: webhook.signature_header(secret, raw)}
        return await client.post(f"{url}/webhooks/sentinelnet", content=raw, headers=headers)

    async def listing(client, i):
        return await client.get(f"{url}/moderation/queue", headers=moderator)

    table = Table(
        title=f"Asset service on loopback, {workers} worker(s), {seconds:g} s per step (goal p95 < {GOAL_MS:g} ms)"
    )
    for name in ("operation", "rate/s", "achieved/s", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "goal"):
        table.add_column(name, justify="left" if name in ("operation", "goal") else "right")
    for label, make in (
        ("create asset", create),
        ("complete upload", complete),
        ("webhook verdict", verdict),
        ("review queue", listing),
    ):
        for rate in rates:
            count = int(rate * seconds)
            latencies, errors, achieved = asyncio.run(_open_loop(make, count, rate))
            p50, p95, p99 = (_pct(latencies, q) for q in (50, 95, 99))
            met = "met" if p95 < GOAL_MS and errors == 0 else "missed"
            table.add_row(
                label,
                f"{rate}",
                f"{achieved:.0f}",
                f"{count:,}",
                f"{errors}",
                f"{p50:.1f}",
                f"{p95:.1f}",
                f"{p99:.1f}",
                met,
            )
            console.print(f"  {label} at {rate}/s: p95 {p95:.1f} ms")
    console.print(table)


if __name__ == "__main__":
    main()
