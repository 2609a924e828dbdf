"""The asset service under load, served as production serves it (`mm api --workers N`, uvicorn worker processes)
on loopback, with embedded Postgres and the embedded object store: p50/p95/p99 of create-asset, complete-upload
(a small file, uploaded beforehand), SentinelNet webhook verdicts and the review-queue listing, each at rising
request rates. Open loop: requests are sent on a fixed schedule, so queueing in the service shows in the latency.
Beside the latencies, the CPU each request cost the service, Postgres and the load generator: where their sum
approaches the machine's cores divided by the rate, the rate cannot be served, whatever the code waits on.

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

console = Console(width=190)
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


class _Connections:
    """Keep-alive HTTP/1.1 connections to the service: request bytes out, status back. A few microseconds of Python per
    request (httpx spent several milliseconds), so that the load generator leaves the cores to the service."""

    def __init__(self, url: str, limit: int = 256) -> None:
        address = url.removeprefix("http://")
        self.host, port = address.split(":")
        self.port = int(port)
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def raw(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, raw: bytes) -> int:
        async with self.slots:
            reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(raw)
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                length = head.partition(b"content-length:")[2].partition(b"\r\n")[0]
                await reader.readexactly(int(length or 0))
            except BaseException:
                writer.close()
                raise
            if b"connection: close" in head:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return int(head[9:12])

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _open_loop(url: str, make_request, count: int, rate: int) -> tuple[list[float], int, float]:
    """Send `count` requests at `rate`/s on a fixed schedule; (latencies in ms from each request's scheduled time,
    so that a late send counts against the service as it would for a client, errors, achieved rate)."""
    connections = _Connections(url)
    latencies, errors = [], 0

    async def one(raw: bytes, due: float) -> None:
        nonlocal errors
        try:
            if await connections.send(raw) >= 400:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        latencies.append((time.perf_counter() - due) * 1000)

    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(count):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(connections.raw(*make_request(i)), due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    connections.close()
    return latencies, errors, count / elapsed


def _cpu_seconds(root, children: bool = True) -> float:
    """CPU time used so far by a process and its children (uvicorn workers, Postgres backends)."""
    import psutil

    total = 0.0
    for process in [root, *(root.children(recursive=True) if children else [])]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


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
        _run(url, rates, args.seconds, args.workers, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run(url: str, rates: list[int], seconds: float, workers: int, server_pid: int) -> None:
    import psutil
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
    pgdata = Path(settings.home) / "postgres"
    postmaster = int((next(pgdata.rglob("postmaster.pid"))).read_text().split()[0])
    service, postgres, generator = psutil.Process(server_pid), psutil.Process(postmaster), psutil.Process()

    queue = iter(range(10**9))
    completions, verdicts = iter(to_complete), iter(scans)

    json_type = {"Content-Type": "application/json"}

    def create(i):
        return "POST", "/assets", editor | json_type, json.dumps(_asset_body(next(queue))).encode()

    def complete(i):
        return "POST", f"/assets/{next(completions)}/versions/1/complete", editor

    def verdict(i):
        body = json.dumps({"delivery_id": f"bench-{i}-{time.time_ns()}", "scan_id": next(verdicts), "verdict": "pass"})
        raw = body.encode()
        return "POST", "/webhooks/sentinelnet", {webhook.SIGNATURE_HEADER: webhook.signature_header(secret, raw)}, raw

    def listing(i):
        return "GET", "/moderation/queue", moderator

    table = Table(
        title=f"Asset service on loopback, {workers} worker(s), {seconds:g} s per step (goal p95 < {GOAL_MS:g} ms)"
    )
    columns = ("operation", "rate/s", "achieved/s", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "goal")
    for name in (*columns, "CPU ms/request: service", "postgres", "load generator"):
        table.add_column(name, justify="left" if name in ("operation", "goal") else "right")
    for label, make in (
        ("create asset", create),
        ("complete upload", complete),
        ("webhook verdict", verdict),
        ("review queue", listing),
    ):
        for rate in rates:
            count = int(rate * seconds)
            cpu_before = [_cpu_seconds(service), _cpu_seconds(postgres), _cpu_seconds(generator, children=False)]
            latencies, errors, achieved = asyncio.run(_open_loop(url, make, count, rate))
            cpu_after = [_cpu_seconds(service), _cpu_seconds(postgres), _cpu_seconds(generator, children=False)]
            cpu = [(after - before) * 1000 / count for before, after in zip(cpu_before, cpu_after, strict=True)]
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
                *(f"{ms:.2f}" for ms in cpu),
            )
            console.print(f"  {label} at {rate}/s: p95 {p95:.1f} ms, CPU {sum(cpu):.2f} ms per request")
    console.print(table)


if __name__ == "__main__":
    main()
