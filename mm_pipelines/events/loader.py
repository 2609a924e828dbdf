"""`mm events load`: a JSON Lines file of canonical events onto the event bus.

Valid lines are produced (keyed by user_id); invalid ones are quarantined in raw.dead_letters with
file, line number and reason (a line rejected for PII is stored with its personal data redacted). A
file is identified by its SHA-256: loading the same content again is a no-op unless forced, so
re-running a load (or the demo) never duplicates events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mm_pipelines.events.ingest import record_file_dead_letters, validate_lines
from mm_pipelines.platform import Platform
from mm_pipelines.stores.warehouse_tables import ensure_tables

PRODUCE_CHUNK = 50_000


@dataclass
class LoadReport:
    file: str
    sha256: str
    lines: int
    produced: int
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    already_loaded_at: datetime | None = None


def load_file(
    platform: Platform,
    path: Path,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    topic = platform.settings.events_topic
    with platform.metadata.connect() as conn:
        row = conn.execute(
            "SELECT loaded_at, lines, produced FROM event_file_loads WHERE sha256 = %s", (sha,)
        ).fetchone()
    if row and not force:
        return LoadReport(str(path), sha, row[1], 0, already_loaded_at=row[0])
    lines = [line.rstrip(b"\r") for line in data.split(b"\n")]
    if lines and lines[-1] == b"":
        lines.pop()
    # The bus first: when it cannot be reached, nothing is quarantined or produced, and that is said at once.
    bus = platform.bus
    bus.ensure_topic(topic, platform.settings.events_partitions)
    with platform.warehouse.session() as s:
        ensure_tables(s)
        checked = validate_lines(s, f"file:{sha}", lines)
        record_file_dead_letters(s, str(path), f"file:{sha}", checked)
    total = len(checked.valid_lines)
    for i in range(0, total, PRODUCE_CHUNK):
        chunk = range(i, min(i + PRODUCE_CHUNK, total))
        bus.produce(topic, ((checked.keys[j], lines[checked.valid_lines[j] - 1]) for j in chunk))
        if progress:
            progress(chunk.stop, total)
    with platform.metadata.connect() as conn:
        conn.execute(
            """INSERT INTO event_file_loads (sha256, file_name, topic, lines, produced, quarantined)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (sha256) DO UPDATE SET loaded_at = now(), """
            """produced = event_file_loads.produced + EXCLUDED.produced""",
            (sha, path.name, topic, len(lines), total, len(checked.invalid)),
        )
    return LoadReport(str(path), sha, len(lines), total, checked.invalid)
